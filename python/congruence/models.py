r"""Compare two models layer by layer on the same data: :func:`compare_models`.

Both models see the same batches, in one pass over the data. Their layers' activations are
captured and pooled as by :func:`congruence.torch.extract`, then

* **linear CKA or HSIC** (biased or debiased): each batch goes straight into
  :class:`congruence.LayerAccumulator` (``estimator="exact"``, the same value as
  :func:`congruence.compare_layers` on all rows) or :class:`congruence.MinibatchCKA`
  (``estimator="minibatch"``, Nguyen et al. 2021) and is released: the memory does not grow
  with the number of inputs;
* **every other measure**: the activations are gathered (in memory, or with ``out=`` in
  ``.npy`` files) and compared by :func:`congruence.compare_layers`; the memory is estimated
  after the first batch and a ``MemoryError`` suggests ``out=`` when it will not fit.

PyTorch is imported on the first call only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import numpy as np

from congruence._registry import get_measure
from congruence._validation import check_choice, check_number
from congruence.compare import ON_ERROR, OnError, compare_layers
from congruence.results import LayerComparison
from congruence.streaming.drive import (
    ESTIMATORS,
    MODEL_BLOCK,
    Feed,
    check_minibatch,
    streams,
)

__all__ = ["compare_models"]


def compare_models(
    model_a: Any,
    model_b: Any,
    data: Any,
    layers_a: Any,
    layers_b: Any = None,
    measure: str = "cka",
    *,
    pooling: Union[None, str, Mapping[str, str]] = None,
    estimator: str = "exact",
    batch_size: Optional[int] = None,
    progress: bool = True,
    output: Any = None,
    input_fn: Optional[Callable[[Any], Any]] = None,
    device: Any = None,
    max_rows: Optional[int] = None,
    out: Union[None, str, os.PathLike] = None,
    reuse: Optional[str] = None,
    on_error: OnError = "raise",
    **params: Any,
) -> LayerComparison:
    r"""Compare every layer of ``model_a`` with every layer of ``model_b`` on ``data``.

    Both models run on the same batches in one pass; ``values[i, j]`` is ``measure`` between
    layer ``rows[i]`` of ``model_a`` and layer ``cols[j]`` of ``model_b``, each a matrix of one
    row per input (or per token / position with ``pooling="tokens"`` / ``"spatial"``).

    For linear ``"cka"`` and ``"hsic"`` nothing is gathered: every batch updates a
    :class:`~congruence.LayerAccumulator` (exact: equal to :func:`congruence.compare_layers`
    on all activations) or a :class:`~congruence.MinibatchCKA`, so the memory is independent
    of the number of inputs. Other measures gather the activations (memory estimated first;
    ``out=`` keeps them on disk) and call :func:`congruence.compare_layers`, on float64 copies
    of the float32 activations when they are in memory.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The models (rows and columns). ``model_b=None`` (or ``model_a`` again) compares
        ``model_a``'s layers with each other.
    data
        As for :func:`congruence.torch.extract`: a DataLoader, an iterable of batches
        (tensors, ``(input, ...)`` tuples, dicts of keyword arguments whose ``attention_mask``
        is the pooling mask), or one tensor / array split into ``batch_size`` rows.
    layers_a, layers_b
        Layers of each model as for :func:`~congruence.torch.extract` (names, glob patterns,
        modules, ``"hidden_states"``). ``layers_b=None``: the same as ``layers_a``.
    measure : str
        A registered measure on representations (default ``"cka"``).
    pooling : str or dict of layer name to str, optional
        Pooling policy of 3-D and 4-D activations (:func:`congruence.pool`).
    estimator : {"exact", "minibatch"}
        ``"minibatch"``: minibatch CKA (``measure="cka"`` without parameters), over
        minibatches of exactly ``batch_size`` rows regrouped from the forward batches (the
        left-over rows join the last one); without ``batch_size``, the first forward batch's
        size. Its value depends on the minibatch size.
    batch_size : int, optional
        Forward batch size when ``data`` is one tensor (default 256), and the minibatch size.
    progress : bool
        Progress display once the run lasts over a second (tqdm, else a stderr counter).
    output, input_fn, device, max_rows, reuse
        As for :func:`~congruence.torch.extract`, applied to both models.
    out : path, optional
        Gathering measures only: the activations are written to ``<out>/a/*.npy`` and
        ``<out>/b/*.npy`` (float32) and compared from memory maps.
    on_error : {"raise", "nan"}
        Gathering measures: passed to :func:`congruence.compare_layers` (a cell that cannot be
        computed raises, or becomes ``nan`` with a warning).
    **params
        The measure's parameters (e.g. ``debiased=True``).

    Returns
    -------
    LayerComparison

    Raises
    ------
    ValueError
        For invalid options or measure parameters, before any forward pass; for the
        errors of :func:`~congruence.torch.extract`; when the two models give different
        numbers of rows for a batch (e.g. ``pooling="tokens"`` with a 2-D layer).
    MemoryError
        When a gathering measure's activations would not fit; pass ``out=``.

    Examples
    --------
    >>> import numpy as np, torch, congruence as cg
    >>> _ = torch.manual_seed(0)
    >>> def mlp():
    ...     return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> a, b, x = mlp(), mlp(), torch.randn(300, 8)
    >>> res = cg.compare_models(a, b, x, ["0", "2"], batch_size=64)
    >>> res.rows, res.cols
    (('0', '2'), ('0', '2'))
    >>> f64 = lambda acts: {k: v.astype(np.float64) for k, v in acts.items()}
    >>> acts_a, acts_b = cg.extract(a, x, ["0", "2"]), cg.extract(b, x, ["0", "2"])
    >>> want = cg.compare_layers(f64(acts_a), f64(acts_b), "cka")
    >>> bool(np.allclose(res.values, want.values, rtol=0, atol=1e-10))
    True
    """
    from congruence import torch as ct

    m = get_measure(measure)
    if m.inputs != "representations":
        raise ValueError(
            f"measure {measure!r} compares model outputs, not layer representations; call it "
            "on the two models' outputs instead of compare_models"
        )
    m.check_params(params)
    estimator = check_choice("estimator", estimator, ESTIMATORS)
    on_error = check_choice("on_error", on_error, ON_ERROR)
    streaming = streams(m.name, params)
    if estimator == "minibatch":
        check_minibatch(m.name, params)
        if batch_size is not None:
            batch_size = check_number("batch_size", batch_size, low=4, integer=True)
    if out is not None and streaming:
        raise ValueError(
            f"out= is for measures that gather the activations; linear {m.name} streams them "
            "and keeps nothing (use congruence.torch.extract(..., out=...) to save them)"
        )
    fwd = ct.DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    fwd, max_rows, progress = ct._check_options(
        pooling, output, reuse, fwd, max_rows, progress, out
    )
    same = model_b is None or model_b is model_a
    if layers_b is None and not same:
        layers_b = layers_a
    entries_a = ct._resolve(model_a, layers_a, "model_a")
    entries_b = None
    if same:
        entries_b = None if layers_b is None else ct._resolve(model_a, layers_b, "model_a")
        union = list(entries_a)
        for e in entries_b or []:
            if e not in union:
                union.append(e)
        taps = [
            ct._Tap(
                model_a,
                union,
                "model_a",
                output=output,
                reuse=reuse,
                pooling=pooling,
                device=device,
            )
        ]
    else:
        entries_b = ct._resolve(model_b, layers_b, "model_b")
        taps = [
            ct._Tap(
                model_a,
                entries_a,
                "model_a",
                output=output,
                reuse=reuse,
                pooling=pooling,
                device=device,
            ),
            ct._Tap(
                model_b,
                entries_b,
                "model_b",
                output=output,
                reuse=reuse,
                pooling=pooling,
                device=device,
            ),
        ]

    def split(results: list[dict]) -> tuple[dict, Optional[dict]]:
        n_hidden = taps[0].n_hidden or 0
        la = ct._labels(entries_a, n_hidden)
        a = {k: results[0][k] for k in la}
        if same:
            if entries_b is None:
                return a, None
            return a, {k: results[0][k] for k in ct._labels(entries_b, n_hidden)}
        return a, results[1]

    first = [True]
    drive = dict(
        input_fn=input_fn, batch_size=fwd, max_rows=max_rows, progress=progress, pooling=pooling
    )

    def check_first() -> None:
        if first[0]:
            ct._check_pooling_keys(pooling, taps)
            first[0] = False

    if streaming:
        # exact: the forward batches are added MODEL_BLOCK rows at a time (fewer, larger
        # products; the same value), the products shared by torch's thread count of
        # one-thread BLAS calls (BLAS stays on one thread beside torch's threads, see _drive)
        feed = Feed(
            m.name,
            params,
            estimator,
            minibatch=batch_size,
            regroup=True,
            block=MODEL_BLOCK,
            workers=ct._torch().get_num_threads(),
        )

        def consume(results: list[dict], inputs: int, total: Optional[int]) -> None:
            check_first()
            feed.push(*split(results))

        if estimator == "exact":  # Feed(block=) copies every batch into its staging buffer
            for t in taps:
                t.recycle = True

        ct._drive(taps, data, consume, **drive)
        with ct._one_blas_thread():  # the last block as the others: results do not
            return feed.result()  # depend on the thread count

    if estimator == "minibatch":  # pragma: no cover - excluded above (minibatch is cka only)
        raise AssertionError
    if out is None:
        sinks = [ct._MemorySink(12, f"gathering the activations of both models for {m.name}")]
    else:
        sinks = [
            ct._NpySink(os.path.join(os.fspath(out), "a")),
            ct._NpySink(os.path.join(os.fspath(out), "b")),
        ]
    try:

        def consume_g(results: list[dict], inputs: int, total: Optional[int]) -> None:
            check_first()
            a, b = split(results)
            if out is None:
                both = {("a", k): v for k, v in a.items()}
                both.update({("b", k): v for k, v in (b or {}).items()})
                sinks[0].add(both, inputs, total)
            else:
                sinks[0].add(a, inputs, total)
                if b is not None:
                    sinks[1].add(b, inputs, total)

        ct._drive(taps, data, consume_g, **drive)
        if out is None:
            got = sinks[0].finish(np.float64)
            xa = {k: v for (side, k), v in got.items() if side == "a"}
            xb = {k: v for (side, k), v in got.items() if side == "b"} or None
        else:
            xa = sinks[0].finish()
            xb = sinks[1].finish() if not (same and entries_b is None) else None
    finally:
        for s in sinks:
            s.close()
    return compare_layers(xa, xb, m.name, progress=progress, on_error=on_error, **params)
