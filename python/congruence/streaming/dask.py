"""Dask: exact linear CKA/HSIC layer matrices over arrays chunked along rows.

Each row chunk is turned into a partial :class:`~congruence.streaming.LayerAccumulator` on the
worker that holds it; the partial states are merged in a tree (``split_every`` at a time) and
only the final state, whose size depends on the layer widths and not on ``n``, comes back.
The result equals :func:`congruence.compare_layers` on the concatenated rows.

Dask is imported only when a function here is called (``pip install 'congruence[dask]'``).
With a ``dask.distributed`` client active, the computation runs on its cluster:

.. code-block:: python

    from dask.distributed import Client
    client = Client("scheduler-address:8786")      # or LocalCluster() on one machine
    res = dask_compare_layers(a, b, "cka", debiased=True)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from congruence._validation import check_bool, check_number
from congruence.results import LayerComparison, layer_set, same_rows
from congruence.streaming.exact import LayerAccumulator

__all__ = ["dask_compare_layers"]


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ImportError(
            "the Dask functions need the optional package 'dask': pip install 'congruence[dask]'"
        ) from None
    return dask, da


def _partial(
    measure: str,
    params: Mapping[str, Any],
    names_a: Sequence[str],
    blocks_a: Sequence[np.ndarray],
    names_b: Optional[Sequence[str]],
    blocks_b: Optional[Sequence[np.ndarray]],
) -> LayerAccumulator:
    """The accumulator of one row chunk (runs on a worker)."""
    acc = LayerAccumulator(measure, **params)
    if blocks_a[0].shape[0] == 0:
        return acc
    acc.update(
        dict(zip(names_a, blocks_a)),
        None if names_b is None else dict(zip(names_b, blocks_b)),  # type: ignore[arg-type]
    )
    return acc


def _merge(*parts: LayerAccumulator) -> LayerAccumulator:
    """Merge partial accumulators (runs on a worker)."""
    out = parts[0].copy()
    for p in parts[1:]:
        out.merge(p)
    return out


def _finish(acc: LayerAccumulator) -> LayerComparison:
    return acc.result()


def _layers(layers: Any, arg: str, da: Any) -> tuple[list[str], list[Any]]:
    """Names and Dask arrays of one side (the one parser of layer sets)."""

    def convert(v: Any, label: str) -> Any:
        x = v if isinstance(v, da.Array) else da.asarray(v)
        if x.ndim != 2:
            raise ValueError(
                f"{label} has shape {x.shape} ({x.ndim}-D); expected 2-D (n_samples, n_features)"
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(
                f"{label} has dtype {x.dtype}; expected real numbers (float, int or bool)"
            )
        return x

    return layer_set(layers, arg, convert, what="(n, p) dask arrays")


def dask_compare_layers(
    a: Any,
    b: Any = None,
    measure: str = "cka",
    *,
    split_every: int = 8,
    compute: bool = True,
    **params: Any,
):
    """Exact linear CKA or HSIC between all layers of Dask arrays chunked along rows.

    The same value as ``cg.compare_layers(a, b, measure, **params)`` (linear kernel), computed
    as a Dask reduction: every row chunk becomes a partial
    :class:`~congruence.streaming.LayerAccumulator` where it lives, and the partial states are
    merged in a tree. Memory per task is one chunk plus one state.

    Parameters
    ----------
    a, b : dict of str to dask array of shape (n, p_layer), or list of them
        Layers of each model on the same ``n`` inputs (numpy arrays are wrapped with
        ``dask.array.asarray``). All layers are re-chunked to the row chunks of the first layer
        of ``a`` and to a single chunk along the columns. ``b=None`` compares ``a`` with itself.
    measure : {"cka", "hsic"}
    split_every : int >= 2
        How many partial states one merge task combines.
    compute : bool
        ``True``: compute and return the result (on the active ``dask.distributed`` client, if
        any, else Dask's default scheduler). ``False``: return a ``dask.delayed`` object.
    **params
        ``debiased`` (cka) or ``unbiased`` (hsic); ``kernel`` must be ``"linear"``.

    Returns
    -------
    LayerComparison (or a Delayed that computes it)

    Raises
    ------
    ImportError
        Naming the ``dask`` extra if Dask is not installed.
    ValueError
        For layers that are not 2-D numeric arrays, different row counts, or invalid
        parameters (as :class:`~congruence.streaming.LayerAccumulator`).

    Examples
    --------
    >>> import numpy as np, dask.array as da, congruence as cg
    >>> from congruence.distributed import dask_compare_layers
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((1000, 8)); h2 = np.tanh(h1 @ rng.standard_normal((8, 4)))
    >>> a = {"h1": da.from_array(h1, chunks=(300, 8)), "h2": da.from_array(h2, chunks=(300, 4))}
    >>> res = dask_compare_layers(a)          # a 2 x 2 matrix from 4 row chunks
    >>> want = cg.compare_layers({"h1": h1, "h2": h2})
    >>> bool(np.allclose(res.values, want.values, rtol=0, atol=1e-12))
    True
    """
    dask, da = _import_dask()
    LayerAccumulator(measure, **params)  # validates measure and parameters early
    split_every = check_number("split_every", split_every, low=2, integer=True)
    compute = check_bool("compute", compute)
    names_a, xa = _layers(a, "a", da)
    names_b, xb = (None, None) if b is None else _layers(b, "b", da)
    same_rows([("a", names_a, xa)] + ([("b", names_b, xb)] if xb is not None else []))
    rows = xa[0].chunks[0]
    xa = [x.rechunk((rows, -1)) for x in xa]
    xb = None if xb is None else [x.rechunk((rows, -1)) for x in xb]
    blocks_a = [x.to_delayed()[:, 0] for x in xa]
    blocks_b = None if xb is None else [x.to_delayed()[:, 0] for x in xb]
    partial = dask.delayed(_partial, pure=True)
    merge = dask.delayed(_merge, pure=True)
    parts = [
        partial(
            measure,
            dict(params),
            names_a,
            [blk[k] for blk in blocks_a],
            names_b,
            None if blocks_b is None else [blk[k] for blk in blocks_b],
        )
        for k in range(len(rows))
    ]
    while len(parts) > 1:
        parts = [merge(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    result = dask.delayed(_finish, pure=True)(parts[0])
    return result.compute() if compute else result
