"""Out-of-core inputs: layers read in row blocks from files, and the driver that streams them.

A layer that does not fit in memory is read a block of rows at a time, never whole:

* ``.npy``: memory-mapped (``np.load(mmap_mode="r")``); the pages of a block are released
  from the process (``madvise(MADV_DONTNEED)``) once it has been read, so the resident memory
  stays at one block however large the file.
* ``.safetensors``: ``safe_open(path, framework="numpy")``, sliced by rows (needs the
  ``safetensors`` package: ``pip install 'congruence[safetensors]'``).
* HDF5 (``.h5``, ``.hdf5``): h5py datasets (``congruence[hdf5]``).
* zarr arrays and groups (``congruence[zarr]``).
* Already open objects: numpy arrays and memmaps, h5py datasets, zarr arrays (anything with
  ``.shape``, ``.dtype`` and row slicing).

Pickle-based formats (``.pkl``, ``.pt``, ``.pth``, ``.ckpt``, ``.joblib``, object arrays) are
refused: loading them can run arbitrary code.

:func:`stream_layers` drives the exact accumulators of :mod:`congruence.streaming` (or minibatch
CKA) over such sources and returns the same :class:`~congruence.results.LayerComparison` as
:func:`congruence.compare_layers`.
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._validation import check_bool, check_choice, check_number
from congruence.results import LayerComparison
from congruence.streaming import LayerAccumulator, MinibatchCKA, batch_bounds

__all__ = ["RowSource", "open_source", "open_layers", "stream_layers", "SAFE_FORMATS"]

#: The formats congruence reads, named in every refusal.
SAFE_FORMATS = ".npy (memory-mapped), .safetensors, HDF5 (.h5, .hdf5) and zarr"

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_DEFAULT_EXACT_BATCH = 4096

PathLike = Union[str, "os.PathLike[str]"]


def _pickle_refusal(what: str) -> ValueError:
    return ValueError(
        f"{what} is pickle-based: loading it can run arbitrary code, so congruence refuses "
        f"it. Save the activations in a safe format instead: {SAFE_FORMATS} "
        "(e.g. np.save(path, array) or safetensors.numpy.save_file({name: array}, path))"
    )


def _missing(extra: str, package: str, what: str) -> ImportError:
    return ImportError(
        f"reading {what} needs the optional package {package!r}: "
        f"pip install 'congruence[{extra}]'"
    )


def _check_dtype(dtype: Any, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise _pickle_refusal(f"{what} holds Python objects (dtype {dt}), which")
    if dt.kind not in "biuf":
        raise ValueError(f"{what} has dtype {dt}; expected real numbers (float, int or bool)")
    return dt


# ------------------------------------------------------------------------------ sources


class RowSource:
    """One layer's activations, ``(n, p)``, readable a block of rows at a time.

    Made by :func:`open_source` / :func:`open_layers`; pass it (or anything
    :func:`open_source` accepts) to :func:`stream_layers`.

    Attributes
    ----------
    name : str
        Where it comes from (file and key), for messages.
    shape : tuple of int
        ``(n, p)`` (trailing dimensions flattened into ``p`` when ``flatten=True``).
    dtype : numpy.dtype
    """

    def __init__(self, obj: Any, name: str, *, flatten: bool = False, handle: Any = None):
        shape = tuple(int(s) for s in obj.shape)
        self.dtype = _check_dtype(obj.dtype, name)
        if len(shape) != 2:
            if len(shape) > 2 and flatten:
                shape = (shape[0], int(np.prod(shape[1:])))
            elif len(shape) > 2:
                raise ValueError(
                    f"{name} has shape {shape} ({len(shape)}-D); expected 2-D (n_samples, "
                    "n_features). Pass flatten=True to flatten the trailing dimensions of each row"
                )
            else:
                raise ValueError(
                    f"{name} has shape {shape} ({len(shape)}-D); expected 2-D (n_samples, "
                    "n_features)"
                )
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(f"{name} has shape {shape}; expected at least one row and one column")
        self.name = name
        self.shape = shape
        self._obj = obj
        self._handle = handle
        self._mmap, self._data_pos, self._row_bytes = _mmap_geometry(obj)

    @property
    def n(self) -> int:
        """The number of rows."""
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an in-memory ``(stop - start, p)`` array.

        A copy for memory-mapped files (whose pages are then released), a view for an
        in-memory numpy array, what the reader returns otherwise.
        """
        if self._obj is None:
            raise ValueError(f"{self.name} is closed")
        if isinstance(self._obj, np.memmap):
            # a copy, so that the pages are read here and can be released at once
            block = np.array(self._obj[start:stop], copy=True)
        else:
            block = np.asarray(self._obj[start:stop])
        if block.ndim != 2:
            block = block.reshape(block.shape[0], -1)
        self.release(start, stop)
        return block

    @property
    def mapped(self) -> bool:
        """Whether the rows are a memory map of a file (``.npy``)."""
        return self._mmap is not None

    def will_need(self, start: int, stop: int) -> None:
        """Ask the kernel to read rows ``start:stop`` ahead (``madvise(MADV_WILLNEED)``)."""
        self._advise(getattr(mmap, "MADV_WILLNEED", None), start, stop)

    def view(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` without a copy where the reader allows it (memory maps).

        Pair it with :meth:`release` once the rows have been used.
        """
        if self._obj is None:
            raise ValueError(f"{self.name} is closed")
        block = np.asarray(self._obj[start:stop])
        return block if block.ndim == 2 else block.reshape(block.shape[0], -1)

    def release(self, start: int, stop: int) -> None:
        """Drop the memory-mapped pages of rows ``start:stop`` from this process (``.npy``)."""
        self._advise(getattr(mmap, "MADV_DONTNEED", None), start, stop)

    def _advise(self, advice: Optional[int], start: int, stop: int) -> None:
        if self._mmap is None or advice is None or stop <= start:
            return
        b0 = self._data_pos + start * self._row_bytes
        b1 = self._data_pos + stop * self._row_bytes
        a0 = b0 - b0 % mmap.PAGESIZE
        try:
            self._mmap.madvise(advice, a0, b1 - a0)
        except (AttributeError, OSError, ValueError):  # pragma: no cover - platform dependent
            pass

    def blocks(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of ``batch_size`` rows (the last one shorter)."""
        batch_size = check_number("batch_size", batch_size, low=1, integer=True)
        for s in range(0, self.n, batch_size):
            yield self.read(s, min(self.n, s + batch_size))

    def close(self) -> None:
        """Drop the references to the file (it closes when no source uses it)."""
        self._obj = self._handle = self._mmap = None

    def __enter__(self) -> "RowSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RowSource({self.name!r}, shape={self.shape}, dtype={self.dtype})"


def _mmap_geometry(obj: Any) -> tuple[Any, int, int]:
    """The mmap behind a C-contiguous numpy memmap, its data offset and row size, or None."""
    mm = getattr(obj, "_mmap", None)
    if mm is None or not isinstance(obj, np.memmap) or not obj.flags.c_contiguous:
        return None, 0, 0
    offset = int(getattr(obj, "offset", 0))
    start_in_file = offset - offset % mmap.ALLOCATIONGRANULARITY
    row_bytes = int(obj.strides[0]) if obj.ndim else 0
    return mm, offset - start_in_file, row_bytes


class _SafetensorsRows:
    """Row slicing of one tensor of an open safetensors file."""

    def __init__(self, handle: Any, key: str):
        self._slice = handle.get_slice(key)
        self.shape = tuple(self._slice.get_shape())
        code = self._slice.get_dtype()
        dt = _SAFETENSORS_DTYPES.get(code)
        if dt is None:
            raise ValueError(
                f"tensor {key!r} has dtype {code}, which NumPy cannot read; save it as F32 or "
                "F64 (e.g. tensor.float())"
            )
        self.dtype = dt

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self._slice[rows]


_SAFETENSORS_DTYPES = {
    "F64": np.dtype("float64"),
    "F32": np.dtype("float32"),
    "F16": np.dtype("float16"),
    "I64": np.dtype("int64"),
    "I32": np.dtype("int32"),
    "I16": np.dtype("int16"),
    "I8": np.dtype("int8"),
    "U64": np.dtype("uint64"),
    "U32": np.dtype("uint32"),
    "U16": np.dtype("uint16"),
    "U8": np.dtype("uint8"),
    "BOOL": np.dtype("bool"),
}


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _refuse_unsafe_path(path: Path) -> None:
    suffix = _suffix(path)
    if suffix in _PICKLE_SUFFIXES:
        raise _pickle_refusal(f"{str(path)!r} ({suffix})")
    if suffix == ".npz":
        raise ValueError(
            f"{str(path)!r} is a .npz archive, whose members cannot be read in row blocks "
            f"(and may hold pickled objects); congruence reads {SAFE_FORMATS}. Save each "
            "layer with np.save(path, array) instead"
        )


def _open_npy(path: Path, flatten: bool) -> RowSource:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        header = (
            np.lib.format.read_array_header_1_0(f)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(f)
        )
    dtype = header[2]
    if np.dtype(dtype).hasobject:
        raise _pickle_refusal(f"{str(path)!r} holds an object array (pickled Python objects), which")
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return RowSource(arr, str(path), flatten=flatten)


def _is_zarr_dir(path: Path) -> bool:
    return any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zarray"))


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise _missing("hdf5", "h5py", "HDF5 files") from None
    return h5py


def _import_zarr():
    try:
        import zarr
    except ImportError:
        raise _missing("zarr", "zarr", "zarr arrays") from None
    return zarr


def _import_safetensors():
    try:
        from safetensors import safe_open
    except ImportError:
        raise _missing("safetensors", "safetensors", ".safetensors files") from None
    return safe_open


def _pick(available: Sequence[str], keys: Optional[Sequence[str]], where: str) -> list[str]:
    if keys is None:
        if not available:
            raise ValueError(f"{where} holds no array")
        return list(available)
    if isinstance(keys, str):
        keys = [keys]
    missing = [k for k in keys if k not in available]
    if missing:
        shown = ", ".join(repr(a) for a in list(available)[:20])
        raise ValueError(f"{where} has no array named {missing[0]!r}; it holds: {shown}")
    return list(keys)


def open_layers(
    path: PathLike, keys: Optional[Sequence[str]] = None, *, flatten: bool = False
) -> dict[str, RowSource]:
    """Open every layer (or the named ``keys``) of a file or folder as row sources.

    Parameters
    ----------
    path : str or path
        A ``.safetensors`` file (its tensors), an HDF5 file (its datasets, named by their
        paths), a zarr group or array, a ``.npy`` file, or a folder of ``.npy`` files (named
        by their stems, in sorted order).
    keys : sequence of str, optional
        The layers to open, in this order (default: all, in the file's order).
    flatten : bool
        Flatten trailing dimensions (e.g. ``(n, C, H, W)`` to ``(n, C*H*W)``).

    Returns
    -------
    dict of str to RowSource

    Raises
    ------
    ValueError
        For a pickle-based file (naming the safe formats), an unknown format, a missing key,
        a non-numeric or non-2-D array. ImportError if the optional reader is not installed.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from congruence.io import open_layers
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "h1.npy"), np.ones((10, 3)))
    >>> np.save(os.path.join(d, "h2.npy"), np.zeros((10, 2), dtype=np.float32))
    >>> {k: s.shape for k, s in open_layers(d).items()}
    {'h1': (10, 3), 'h2': (10, 2)}
    """
    flatten = check_bool("flatten", flatten)
    p = Path(path)
    if not p.exists():
        raise ValueError(f"path {str(p)!r} does not exist")
    _refuse_unsafe_path(p)
    if p.is_dir() and not _is_zarr_dir(p) and _suffix(p) != ".zarr":
        files = sorted(p.glob("*.npy"))
        names = [f.stem for f in files]
        chosen = _pick(names, keys, f"folder {str(p)!r} (.npy files)")
        return {k: _open_npy(p / f"{k}.npy", flatten) for k in chosen}
    suffix = _suffix(p)
    if suffix == ".npy":
        chosen = _pick([p.stem], keys, repr(str(p)))
        return {chosen[0]: _open_npy(p, flatten)}
    if suffix == ".safetensors":
        safe_open = _import_safetensors()
        handle = safe_open(str(p), framework="numpy")
        chosen = _pick(list(handle.keys()), keys, repr(str(p)))
        return {
            k: RowSource(_SafetensorsRows(handle, k), f"{p}::{k}", flatten=flatten, handle=handle)
            for k in chosen
        }
    if suffix in _HDF5_SUFFIXES:
        h5py = _import_h5py()
        handle = h5py.File(str(p), "r")
        found: list[str] = []
        handle.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        chosen = _pick(found, keys, repr(str(p)))
        return {k: RowSource(handle[k], f"{p}::{k}", flatten=flatten, handle=handle) for k in chosen}
    if p.is_dir() or suffix == ".zarr":
        zarr = _import_zarr()
        node = zarr.open(str(p), mode="r")
        if hasattr(node, "array_keys"):
            chosen = _pick(sorted(node.array_keys()), keys, f"zarr group {str(p)!r}")
            return {k: RowSource(node[k], f"{p}::{k}", flatten=flatten) for k in chosen}
        chosen = _pick([p.stem], keys, repr(str(p)))
        return {chosen[0]: RowSource(node, str(p), flatten=flatten)}
    raise ValueError(f"{str(p)!r} has an unknown format ({suffix or 'no suffix'}); expected {SAFE_FORMATS}")


def open_source(source: Any, key: Optional[str] = None, *, flatten: bool = False) -> RowSource:
    """One layer as a :class:`RowSource`.

    ``source`` is a :class:`RowSource`; a path (``.npy``, or with ``key`` a tensor of a
    ``.safetensors`` file, a dataset of an HDF5 file or an array of a zarr group; a file with a
    single array needs no ``key``); or an open array: numpy array or memmap, h5py dataset,
    zarr array (anything with ``.shape``, ``.dtype`` and row slicing).

    Raises
    ------
    ValueError
        For pickle-based files or object arrays (naming the safe formats), unknown formats,
        non-numeric or non-2-D data.

    Examples
    --------
    >>> import numpy as np
    >>> from congruence.io import open_source
    >>> src = open_source(np.arange(12.0).reshape(6, 2))
    >>> src.shape, src.read(4, 6).tolist()
    ((6, 2), [[8.0, 9.0], [10.0, 11.0]])
    """
    flatten = check_bool("flatten", flatten)
    if isinstance(source, RowSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise ValueError(f"path {str(p)!r} does not exist")
        _refuse_unsafe_path(p)
        if key is None and _suffix(p) == ".npy":
            return _open_npy(p, flatten)
        layers = open_layers(p, None if key is None else [key], flatten=flatten)
        if len(layers) != 1:
            raise ValueError(
                f"{str(p)!r} holds {len(layers)} arrays ({', '.join(map(repr, layers))}); "
                "pass key= to choose one, or use open_layers()"
            )
        return next(iter(layers.values()))
    if isinstance(source, np.ndarray):
        return RowSource(source, f"array{source.shape}", flatten=flatten)
    if hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        return RowSource(source, f"{type(source).__name__}{tuple(source.shape)}", flatten=flatten)
    raise ValueError(
        f"cannot read rows from a {type(source).__name__}; expected a path ({SAFE_FORMATS}), a "
        "numpy array or memmap, an h5py dataset or a zarr array"
    )


def _sources(layers: Any, arg: str) -> tuple[list[str], list[RowSource]]:
    if isinstance(layers, (str, os.PathLike)):
        opened = open_layers(layers)
        return list(opened), list(opened.values())
    if isinstance(layers, Mapping):
        items = [(str(k), v) for k, v in layers.items()]
    elif isinstance(layers, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(layers)]
    else:
        raise ValueError(
            f"{arg} must map layer names to sources (a dict), be a list of sources, or a path "
            f"to a file of layers; got {type(layers).__name__}"
        )
    if not items:
        raise ValueError(f"{arg} holds no layers")
    return [k for k, _ in items], [open_source(v) for _, v in items]


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True needs the optional package 'tqdm': pip install 'congruence[progress]' "
            "(or pass progress=False)"
        ) from None
    return tqdm(total=total, unit="row", unit_scale=True, desc="congruence")


_ESTIMATORS = ("exact", "minibatch")


def stream_layers(
    a: Any,
    b: Any = None,
    *,
    measure: str = "cka",
    estimator: str = "exact",
    batch_size: Optional[int] = None,
    ragged: str = "merge",
    progress: bool = False,
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
        :func:`open_source` accepts (a ``.npy`` path, a numpy array or memmap, an h5py
        dataset, a zarr array, a :class:`RowSource`); a path to a multi-layer file or folder
        is opened with :func:`open_layers`. ``b=None`` compares ``a`` with itself.
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
    progress : bool
        Show a tqdm progress bar (ImportError naming the ``progress`` extra if tqdm is not
        installed).
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
    ValueError
        For unknown options, sources with different row counts, unreadable or unsafe files,
        fewer rows than the estimator needs.

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
    """
    estimator = check_choice("estimator", estimator, _ESTIMATORS)
    progress = check_bool("progress", progress)
    prefetch = check_bool("prefetch", prefetch)
    if estimator == "minibatch":
        check_choice("measure", measure, ("cka",))
        if params:
            raise ValueError(
                f"estimator='minibatch' takes no measure parameters (got {sorted(params)}); it "
                "always uses the unbiased HSIC of each batch"
            )
        if batch_size is None:
            raise ValueError(
                "estimator='minibatch' needs batch_size (an int >= 4): the minibatch CKA "
                "value depends on it"
            )
        batch_size = check_number("batch_size", batch_size, low=4, integer=True)
        ragged = check_choice("ragged", ragged, ("merge", "drop"))
        acc: Any = MinibatchCKA()
    else:
        acc = LayerAccumulator(measure, **params)
        batch_size = _DEFAULT_EXACT_BATCH if batch_size is None else batch_size
        batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    names_a, src_a = _sources(a, "a")
    names_b, src_b = ([], []) if b is None else _sources(b, "b")
    n = src_a[0].n
    for arg, names, srcs in (("a", names_a, src_a), ("b", names_b, src_b)):
        for name, s in zip(names, srcs):
            if s.n != n:
                raise ValueError(
                    f"{arg}[{name!r}] ({s.name}) has {s.n} rows but a[{names_a[0]!r}] has {n}; "
                    "every layer must hold the same n inputs"
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
            acc.update(
                dict(zip(names_a, blocks[:la])),
                None if b is None else dict(zip(names_b, blocks[la:])),
            )
        finally:
            del blocks
            for s in everything:
                s.release(*bound)

    bar = _progress_bar(progress, bounds[-1][1] - bounds[0][0] if bounds else 0)
    pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(bounds) > 1 else None
    try:
        pending = pool.submit(fetch, bounds[0]) if pool else None
        for k, bound in enumerate(bounds):
            fetched = pending.result() if pool else fetch(bound)
            if pool and k + 1 < len(bounds):
                pending = pool.submit(fetch, bounds[k + 1])
            consume(bound, fetched)
            del fetched
            if bar is not None:
                bar.update(bound[1] - bound[0])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return acc.result()
