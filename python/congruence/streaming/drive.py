"""Drivers: row blocks of every layer, from files, arrays or models, into the accumulators.

:class:`Feed` is where blocks go, whoever reads them: the exact
:class:`~congruence.streaming.LayerAccumulator` or :class:`~congruence.streaming.MinibatchCKA`
(with the rows regrouped into minibatches of an exact size when the blocks come in other
sizes, as forward batches of a model do). :func:`stream_layers` drives a :class:`Feed` over
row sources (:mod:`congruence.io`: ``.npy``, safetensors, HDF5, zarr, arrays),
:func:`congruence.compare_models` over the activations of two models, and
:func:`congruence.distributed.dask_compare_layers` over Dask chunks.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from congruence._progress import Progress
from congruence._registry import get_measure
from congruence._validation import _check_finite, check_bool, check_choice, check_number
from congruence.io import (
    Pooling,
    RowSource,
    _open,
    _policy_of,
    open_source,
    reader_pooling,
    rows_explanation,
)
from congruence.results import LayerComparison, find_layer, layer_set, same_rows
from congruence.streaming.exact import LayerAccumulator
from congruence.streaming.minibatch import MinibatchCKA, Regroup, batch_bounds
from congruence.streaming.moments import _centred_rows, batch_layers

__all__ = ["Feed", "streams", "stream_layers"]

ESTIMATORS = ("exact", "minibatch")
#: the measures with an exact streaming estimator (linear kernel)
STREAMABLE = ("cka", "hsic")
#: rows per block of the exact estimator when the caller does not choose
DEFAULT_EXACT_BATCH = 4096
#: rows per update when the model driver adds its forward batches in blocks: as fast per row as
#: larger blocks, and the float64 copy of a block stays a few MB (larger ones, allocated and
#: freed batch after batch, made the resident memory grow by about 100 MB)
MODEL_BLOCK = 1024
#: with ``Feed(block=...)``: an update also starts once the rows held take this many bytes
BLOCK_BYTES = 1 << 22
#: dtypes that ``Feed(block=...)`` stages without the full validation after the first block
_STAGED = (np.dtype(np.float32), np.dtype(np.float64))


def streams(measure: str, params: Mapping[str, Any]) -> bool:
    """Whether ``measure`` with ``params`` has an exact streaming estimator (linear CKA or
    HSIC, biased or debiased); raises for an unknown measure or parameter."""
    m = get_measure(measure)
    full = m.check_params(dict(params))
    return m.name in STREAMABLE and full.get("kernel") == "linear"


def check_minibatch(measure: str, params: Mapping[str, Any]) -> None:
    """ValueError unless ``measure`` and ``params`` are minibatch CKA's: ``"cka"``, none."""
    if measure != "cka":
        raise ValueError(
            f"measure={measure!r} is invalid; expected one of 'cka' (estimator='minibatch' is "
            "minibatch CKA: measure='cka' without parameters)"
        )
    if params:
        raise ValueError(
            f"estimator='minibatch' takes no measure parameters (got {sorted(params)}); "
            "minibatch CKA is measure='cka' without parameters, with the unbiased HSIC of "
            "each batch"
        )


class Feed:
    """Blocks of rows of every layer, fed to the exact accumulator or to minibatch CKA.

    Parameters
    ----------
    measure : {"cka", "hsic"}
    params : dict
        The measure's parameters (none for ``estimator="minibatch"``).
    estimator : {"exact", "minibatch"}
    minibatch : int, optional
        With ``regroup=True``: the minibatch size (``None``: the first block's size).
    regroup : bool
        Minibatch only: regroup the blocks into minibatches of exactly ``minibatch`` rows
        (the rows left at the end join the last one, as ``batch_bounds(ragged="merge")``);
        without it every block is one minibatch.
    block : int, optional
        Exact only: gather the pushed blocks (mappings of arrays) until they have ``block``
        rows (or :data:`BLOCK_BYTES` bytes), then add them in one update. Fewer, larger
        updates cost less per row (one product per layer pair instead of one per small
        block); the value is the same (the exact estimator does not depend on the split into
        blocks) and the memory stays bounded. The rows are copied as they arrive into one
        float64 buffer, the layers side by side, kept from block to block: the update
        centres it in place, with no per-block concatenation or allocation. The accumulator
        is then this Feed's alone, and each update writes its products into the matrices of
        the state that the previous update replaced (two sets, each in pages of its own), so
        no large array is allocated between the updates either: a model driver's forward
        passes then find the heap as they left it (see :func:`congruence.compare_models`).
    workers : int
        Exact only: threads that share the matrix products of an update (for callers that
        keep BLAS on one thread); the result does not depend on it.

    ``push(a, b)`` adds one block (``{layer: (m, p)}``), ``result()`` gives the
    :class:`~congruence.results.LayerComparison`.
    """

    def __init__(
        self,
        measure: str = "cka",
        params: Optional[Mapping[str, Any]] = None,
        estimator: str = "exact",
        *,
        minibatch: Optional[int] = None,
        regroup: bool = False,
        block: Optional[int] = None,
        workers: int = 1,
    ):
        estimator = check_choice("estimator", estimator, ESTIMATORS)
        params = dict(params or {})
        self._regroup: Optional[Regroup] = None
        if block is not None:
            block = check_number("block", block, low=1, integer=True)
        self._block = block if estimator == "exact" else None
        #: block=: the staging buffer (rows, sum of widths), float64, and its rows in use
        self._stage: Optional[np.ndarray] = None
        self._held_rows = 0
        self._held_bytes = 0
        #: block=: (names_a, names_b, widths) of the first block; later blocks must match
        self._layers: Optional[tuple[list[str], Optional[list[str]], list[int]]] = None
        if estimator == "minibatch":
            check_minibatch(measure, params)
            self.acc: Any = MinibatchCKA()
            if regroup:
                self._regroup = Regroup(minibatch, self.acc.update)
        else:
            self.acc = LayerAccumulator(measure, **params)
            self.acc._workers = check_number("workers", workers, low=1, integer=True)
            # the accumulator is ours alone: an update may reuse the arrays of the state it
            # replaces (the large arrays then stay out of the heap, see _Moments.blank)
            self.acc._recycle = block is not None
        self.estimator = estimator

    def push(
        self, a: Mapping[str, np.ndarray], b: Optional[Mapping[str, np.ndarray]] = None
    ) -> None:
        """Add one block of rows of every layer of ``a`` (and ``b``)."""
        if self._regroup is not None:
            self._regroup.push(dict(a), None if b is None else dict(b))
        elif self._block is not None:
            arrays = self._checked(a, b)
            m = arrays[0].shape[0]
            self._stage_rows(arrays, m)
            self._held_bytes += sum(x.nbytes for x in arrays)
            if self._held_rows >= self._block or self._held_bytes >= BLOCK_BYTES:
                self.flush()
        else:
            self.acc.update(a, b)

    def _checked(self, a: Any, b: Any) -> list[np.ndarray]:
        """The arrays of one pushed block (layers of ``a`` then ``b``), validated.

        The first block is validated in full (:func:`congruence.streaming.moments.
        batch_layers`) and fixes the layers; a later block of float32/float64 matrices with
        the same layers, widths and rows needs only a look at their shapes (its values are
        checked for NaN and inf at the update, from the column extremes computed there
        anyway); anything else is validated in full.
        """
        known = self._layers
        if known is not None and isinstance(a, Mapping) and (b is None) == (known[1] is None):
            names_a, names_b, widths = known
            if list(a) == names_a and (b is None or list(b) == names_b):
                arrays = list(a.values()) + ([] if b is None else list(b.values()))
                m = np.shape(arrays[0])[0] if np.ndim(arrays[0]) == 2 else -1
                if all(
                    type(x) is np.ndarray
                    and x.dtype in _STAGED
                    and x.ndim == 2
                    and x.shape[0] == m
                    and x.shape[1] == w
                    for x, w in zip(arrays, widths)
                ):
                    return arrays
        names_a, xa, names_b, xb, _ = batch_layers(a, b)
        widths = [x.shape[1] for x in xa + xb]
        if known is None:
            self.acc._check_batch(names_a, names_b, widths)
            self._layers = (names_a, names_b, widths)
        else:
            self.acc._check_batch(names_a, names_b, widths, expect=known)
        return xa + xb

    def _stage_rows(self, arrays: list[np.ndarray], m: int) -> None:
        """Copy one block's layers side by side into the staging buffer (float32 values
        exactly), growing it if the block does not fit."""
        rows = self._held_rows
        stage = self._stage
        if stage is None or rows + m > stage.shape[0]:
            width = sum(x.shape[1] for x in arrays)
            # doubling up to the block's rows (the bytes limit may flush before)
            grown = np.empty((max(rows + m, min(self._block or 0, 2 * (rows + m))), width))
            if stage is not None and rows:
                grown[:rows] = stage[:rows]
            self._stage = stage = grown
        col = 0
        for x in arrays:
            p = x.shape[1]
            stage[rows : rows + m, col : col + p] = x
            col += p
        self._held_rows = rows + m

    def flush(self) -> None:
        """Add the rows gathered by ``block=`` in one update (nothing without them)."""
        rows, self._held_rows, self._held_bytes = self._held_rows, 0, 0
        if not rows:
            return
        assert self._stage is not None and self._layers is not None
        names_a, names_b, widths = self._layers
        Z = self._stage[:rows]

        def check(lo: np.ndarray, hi: np.ndarray) -> None:
            # NaN and inf show in the column extremes; the message is that of as_matrix
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                return
            col = 0
            labels = [f"a[{k!r}]" for k in names_a] + [f"b[{k!r}]" for k in names_b or []]
            for label, p in zip(labels, widths):
                _check_finite(Z[:, col : col + p], label)
                col += p

        block = _centred_rows(Z, self.acc._debiased, check)
        self.acc._absorb((names_a, names_b, widths, block))

    def result(self) -> LayerComparison:
        """The layer matrix over every row pushed."""
        if self._regroup is not None:
            self._regroup.finish()
        self.flush()
        return self.acc.result()


def _sources(layers: Any, arg: str, pooling: Pooling) -> tuple[list[str], list[RowSource]]:
    """Names and row sources of one side: the one parser of layer sets, plus paths."""
    if isinstance(layers, (str, os.PathLike)):
        layers = _open(Path(layers), None, pooling, strict=False)
    names, items = layer_set(
        layers,
        arg,
        lambda v, label: v,
        what="sources",
        alternatives=", or a path to a file of layers",
    )
    return names, [
        open_source(v, pooling=_policy_of(pooling, k), name=f"{arg}[{k!r}]")
        for k, v in zip(names, items)
    ]


def stream_layers(
    a: Any,
    b: Any = None,
    *,
    measure: str = "cka",
    estimator: str = "exact",
    batch_size: Optional[int] = None,
    ragged: str = "merge",
    pooling: Pooling = None,
    flatten: bool = False,
    progress: bool = True,
    prefetch: bool = True,
    **params: Any,
) -> LayerComparison:
    """Compare every layer of ``a`` with every layer of ``b`` (or ``a``), reading row blocks.

    No layer is loaded whole: the rows are read ``batch_size`` at a time from every source,
    fed to an accumulator and released. The exact estimator gives the same result as
    ``cg.compare_layers(a, b, measure, **params)`` on the full arrays, with memory that does
    not grow with ``n``.

    Parameters
    ----------
    a, b : dict of str to source, list of sources, or a path
        Layers of each model on the same ``n`` inputs. A source is anything
        :func:`congruence.io.open_source` accepts (a ``.npy`` path, a numpy array or memmap,
        an h5py dataset, a zarr array, a :class:`~congruence.io.RowSource`); a path to a
        multi-layer file or folder is opened with :func:`congruence.io.open_layers`.
        ``b=None`` compares ``a`` with itself.
    measure : {"cka", "hsic"}
        Linear kernel only (the exact streaming estimators).
    estimator : {"exact", "minibatch"}
        ``"exact"``: :class:`~congruence.streaming.LayerAccumulator`, the exact value on all
        rows. ``"minibatch"``: minibatch CKA (:class:`~congruence.streaming.MinibatchCKA`;
        ``measure="cka"`` only, no ``params``), whose value depends on ``batch_size``.
    batch_size : int, optional
        Rows per block. Exact: any ``>= 1``, it does not change the value (default 4096).
        Minibatch: required, ``>= 4``.
    ragged : {"merge", "drop"}
        Minibatch only: the left-over ``n mod batch_size`` rows join the last batch
        (``"merge"``) or are left out (``"drop"``).
    pooling : str or dict of layer name to str, optional
        The pooling policy of 3-D and 4-D sources (:func:`congruence.pool`, without mask),
        applied to every block as it is read; a dict names the layers of ``a`` and ``b``.
        ``"tokens"`` / ``"spatial"`` make one row per token / position: every layer compared
        must then yield the same rows (ValueError otherwise, saying why).
    flatten : bool
        ``pooling="flatten"`` (flatten the trailing dimensions of each row).
    progress : bool
        Show the rows done once the work lasts over a second (tqdm when installed, else a
        one-line counter on stderr); nothing for shorter work.
    prefetch : bool
        Read ahead while the current block is computed: the next block of HDF5, zarr and
        safetensors sources is read in a background thread, memory-mapped ``.npy`` files get
        a read-ahead hint (``MADV_WILLNEED``). The computation stays on the calling thread.
    **params
        The measure's parameters (``debiased`` for cka, ``unbiased`` for hsic).

    Returns
    -------
    LayerComparison

    Raises
    ------
    FileNotFoundError, UnreadableFileError, LayerNotFoundError
        For paths and files, as :func:`congruence.io.open_layers` (a file that fails midway,
        e.g. a corrupted HDF5 chunk, raises UnreadableFileError naming it).
    ValueError
        For unknown options, sources with different row counts, fewer rows than the
        estimator needs, 3-D or 4-D sources without ``pooling``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, congruence as cg
    >>> from congruence.io import stream_layers
    >>> rng = np.random.default_rng(0)
    >>> h1 = rng.standard_normal((1000, 8)); h2 = np.tanh(h1 @ rng.standard_normal((8, 4)))
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "h1.npy"), h1); np.save(os.path.join(d, "h2.npy"), h2)
    >>> res = stream_layers(d, batch_size=256)           # every .npy file in the folder
    >>> want = cg.compare_layers({"h1": h1, "h2": h2})
    >>> bool(np.allclose(res.values, want.values, rtol=0, atol=1e-12))
    True
    >>> tokens = rng.standard_normal((100, 5, 6))        # 100 inputs, 5 tokens, 6 features
    >>> res = stream_layers({"t": tokens}, pooling="mean", batch_size=32)
    >>> round(res["t", "t"], 12)
    1.0
    """
    estimator = check_choice("estimator", estimator, ESTIMATORS)
    progress = check_bool("progress", progress)
    prefetch = check_bool("prefetch", prefetch)
    pooling = reader_pooling(pooling, flatten)
    if estimator == "minibatch":
        check_minibatch(measure, params)
        if batch_size is None:
            raise ValueError(
                "estimator='minibatch' needs batch_size (an int >= 4): the minibatch CKA "
                "value depends on it"
            )
        batch_size = check_number("batch_size", batch_size, low=4, integer=True)
        ragged = check_choice("ragged", ragged, ("merge", "drop"))
    else:
        batch_size = DEFAULT_EXACT_BATCH if batch_size is None else batch_size
        batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    feed = Feed(measure, params, estimator)
    names_a, src_a = _sources(a, "a", pooling)
    names_b, src_b = ([], []) if b is None else _sources(b, "b", pooling)
    if isinstance(pooling, Mapping):
        for key in pooling:
            find_layer(key, names_a + names_b, "the layers of a and b (a key of pooling=)")
    sets = [("a", names_a, src_a)] + ([("b", names_b, src_b)] if b is not None else [])
    n = same_rows(
        sets,
        rows=lambda s: s.n,
        describe=lambda s: s.describe(),
        explain=rows_explanation,
    )
    if estimator == "minibatch":
        bounds = batch_bounds(n, batch_size, ragged)
    else:
        bounds = [(s, min(n, s + batch_size)) for s in range(0, n, batch_size)]
    everything = src_a + src_b

    la = len(src_a)

    def fetch(bound: tuple[int, int]) -> list[Optional[np.ndarray]]:
        """I/O only (runs ahead in a thread): memory maps get a read-ahead hint and are
        viewed later; other readers (HDF5, zarr, safetensors) read their block here."""
        out: list[Optional[np.ndarray]] = []
        for s in everything:
            if s.mapped:
                s.will_need(*bound)
                out.append(None)
            else:
                out.append(s.read(*bound))
        return out

    def consume(bound: tuple[int, int], fetched: list[Optional[np.ndarray]]) -> None:
        # the centring and the products run here, on the caller's thread: on a machine whose
        # cores are all busy with BLAS, a second compute thread only slows BLAS down
        blocks = [s.view(*bound) if f is None else f for s, f in zip(everything, fetched)]
        try:
            feed.push(
                dict(zip(names_a, blocks[:la])),
                None if b is None else dict(zip(names_b, blocks[la:])),
            )
        finally:
            del blocks
            for s in everything:
                s.release(*bound)

    total = bounds[-1][1] - bounds[0][0] if bounds else 0
    pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(bounds) > 1 else None
    with Progress(progress, total=total, unit="row") as bar:
        try:
            pending = pool.submit(fetch, bounds[0]) if pool else None
            for k, bound in enumerate(bounds):
                fetched = pending.result() if pool else fetch(bound)
                if pool and k + 1 < len(bounds):
                    pending = pool.submit(fetch, bounds[k + 1])
                consume(bound, fetched)
                del fetched
                bar.update(bound[1] - bound[0])
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    return feed.result()
