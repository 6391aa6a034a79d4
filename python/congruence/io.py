"""Out-of-core inputs: layers read in row blocks from files and arrays.

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

Activations of more than two dimensions are pooled as they are read: ``pooling=`` takes the
policies of :func:`congruence.pool` (3-D ``(n, tokens, d)``: ``"mean"``, ``"first"``, ``"last"``,
``"max"``, ``"flatten"``, ``"tokens"``; 4-D ``(n, c, h, w)``: ``"flatten"``, ``"mean"``,
``"spatial"``), one for every layer or a dict of layer names to policies; ``flatten=True`` is
``pooling="flatten"``. Files hold no padding mask: every token counts.

Pickle-based formats (``.pkl``, ``.pt``, ``.pth``, ``.ckpt``, ``.joblib``, object arrays) are
refused: loading them can run arbitrary code. There is no option to unpickle.

:func:`load_layers` reads whole layers into memory (the command line uses it); it also reads
``.npz`` archives of numeric arrays.

Errors
------
Every reader reports a bad file the same way, whichever library reads it:

* a path that does not exist: ``FileNotFoundError`` naming it;
* a file that exists but cannot be read safely (truncated, corrupted or malformed header,
  pickled objects, an error of h5py, zarr or safetensors):
  :class:`~congruence.errors.UnreadableFileError`, a ``ValueError`` whose ``path`` is the file.
  A ``.npy`` (or ``.npz`` member) header that declares more data than the file holds is
  refused before any allocation;
* a layer name that is not in the file: :class:`~congruence.errors.LayerNotFoundError` (a
  ``KeyError`` and a ``ValueError``) listing the close names;
* arrays that are not 2-D real numbers: ``ValueError``; data too large for the memory left:
  ``MemoryError``.

Sources are only read: read-only arrays, ``np.memmap`` files and safetensors memory maps are
never written to, and streaming copies one block of rows at a time, never a whole layer.

:func:`congruence.streaming.drive.stream_layers` (also importable from here) drives the
accumulators of :mod:`congruence.streaming` over such sources. This module depends on nothing
above it: it reads, the streaming package computes.
"""

from __future__ import annotations

import errno
import mmap
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._memory import check_fits
from congruence._validation import _to_numpy, check_bool, check_number
from congruence.errors import InputTypeError, UnreadableFileError
from congruence.pooling import POLICIES_3D, POLICIES_4D, _float, policies_text, pool
from congruence.results import find_layer

__all__ = [
    "RowSource",
    "open_source",
    "open_layers",
    "load_layers",
    "stream_layers",  # noqa: F822 (a lazy attribute: see __getattr__ below)
    "SAFE_FORMATS",
]

#: The formats congruence reads, named in every refusal.
SAFE_FORMATS = ".npy (memory-mapped), .safetensors, HDF5 (.h5, .hdf5) and zarr"

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_ALL_POLICIES = tuple(dict.fromkeys(POLICIES_3D + POLICIES_4D))

PathLike = Union[str, "os.PathLike[str]"]


_PICKLE_ADVICE = (
    "loading it can run arbitrary code, so congruence refuses it. Save the activations in a "
    f"safe format instead: {SAFE_FORMATS} (e.g. np.save(path, array) or "
    "safetensors.numpy.save_file({name: array}, path))"
)


def _pickle_refusal(what: str, path: Any = None) -> ValueError:
    if path is not None:
        return UnreadableFileError(path, f"{what} is pickle-based: {_PICKLE_ADVICE}")
    return ValueError(f"{what} is pickle-based: {_PICKLE_ADVICE}")


def _unreadable(path: Any, exc: BaseException, what: str = "") -> UnreadableFileError:
    """Wrap a reader's (NumPy, h5py, zarr, safetensors) exception with the path."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    lead = f"{what}: " if what else ""
    err = UnreadableFileError(path, f"{lead}{type(exc).__name__}: {detail}")
    err.__cause__ = exc
    return err


def _must_exist(p: Path) -> None:
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(p))


def _missing(extra: str, package: str, what: str) -> ImportError:
    return ImportError(
        f"reading {what} needs the optional package {package!r}: pip install 'congruence[{extra}]'"
    )


def _check_dtype(dtype: Any, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise _pickle_refusal(f"{what} holds Python objects (dtype {dt}), which")
    if dt.kind not in "biuf":  # complex, strings, dates: the class compare_layers raises
        raise InputTypeError(f"{what} has dtype {dt}; expected real numbers (float, int or bool)")
    return dt


# ------------------------------------------------------------------------------ sources


Pooling = Union[None, str, Mapping[str, str]]


def reader_pooling(pooling: Any, flatten: Any) -> Pooling:
    """The pooling of the readers' ``pooling=`` and ``flatten=`` (``flatten=True`` is an alias
    of ``pooling="flatten"``): ``None``, a policy name, or a mapping of layer names to policies.
    """
    flatten = check_bool("flatten", flatten)
    if pooling is not None and not isinstance(pooling, (str, Mapping)):
        raise ValueError(
            f"pooling must be a policy name or a dict of layer names to policy names; got "
            f"{type(pooling).__name__}. The policies: {policies_text()}"
        )
    if flatten:
        if pooling is not None and pooling != "flatten":
            raise ValueError(
                f"flatten=True is pooling='flatten' but pooling={pooling!r} was passed too; "
                "pass only one of them"
            )
        return "flatten"
    return pooling


def _policy_of(pooling: Pooling, key: str) -> Optional[str]:
    """The policy of layer ``key`` (a mapping's keys are checked by :func:`_check_keys`)."""
    if isinstance(pooling, Mapping):
        return pooling.get(key)
    return pooling


def _check_keys(pooling: Pooling, chosen: Sequence[str], where: str) -> None:
    if isinstance(pooling, Mapping):
        for key in pooling:
            find_layer(key, list(chosen), f"{where} (a key of pooling=)")


class RowSource:
    """One layer's activations, ``(n, p)``, readable a block of rows at a time.

    Made by :func:`open_source` / :func:`open_layers`; pass it (or anything
    :func:`open_source` accepts) to :func:`congruence.io.stream_layers`.

    3-D ``(n, tokens, d)`` and 4-D ``(n, c, h, w)`` arrays need a ``pooling`` policy (those
    of :func:`congruence.pool`; arrays of more dimensions take ``"flatten"`` only), applied to
    each block of rows as it is read. ``"tokens"`` and ``"spatial"`` make one row per token or
    position: row ``r`` of the source is token (position) ``r mod T`` of input ``r // T``.
    ``label`` (e.g. ``"a['conv1']"``), if given, names the layer in the validation errors
    instead of ``name``.

    Attributes
    ----------
    name : str
        Where it comes from (file and key), for messages.
    shape : tuple of int
        ``(rows, p)`` after pooling.
    dtype : numpy.dtype
        Of the rows read (pooling other than ``"flatten"`` gives float32 for float32 and
        float16 data, float64 otherwise, as :func:`congruence.pool`).
    pooling : str or None
        The policy applied (``None`` for 2-D data read as it is).
    inputs : int
        The number of inputs (rows of the array before pooling).
    """

    def __init__(
        self,
        obj: Any,
        name: str,
        *,
        pooling: Optional[str] = None,
        flatten: bool = False,
        handle: Any = None,
        path: Optional[str] = None,
        label: Optional[str] = None,
    ):
        #: the file behind the source (None for arrays in memory), named in read errors
        self.path = path
        policy = reader_pooling(pooling, flatten)
        if isinstance(policy, Mapping):
            raise ValueError("RowSource takes one pooling policy (a str), not a dict")
        what = label or name  # the layer's label, if the caller has one, in these errors
        raw = tuple(int(s) for s in obj.shape)
        raw_dtype = _check_dtype(obj.dtype, what)
        if len(raw) < 2:
            raise ValueError(
                f"{what} has shape {raw} ({len(raw)}-D); expected 2-D (n_samples, n_features)"
                + ("; reshape(-1, 1) makes one feature of a 1-D array" if len(raw) == 1 else "")
            )
        if 0 in raw:
            raise ValueError(f"{what} has shape {raw}; expected at least one row and one column")
        shape, mult, policy = _pooled_geometry(raw, policy, what)
        self.name = name
        self.raw_shape = raw
        self.shape = shape
        self.pooling = policy
        #: rows per input (tokens or positions for "tokens" / "spatial", else 1)
        self.per_input = mult
        #: pooling that computes (not a reshape): rows are pooled as they are read
        self._computes = policy is not None and policy != "flatten" and len(raw) > 2
        self.dtype = _float(np.empty(0, raw_dtype)).dtype if self._computes else raw_dtype
        self._raw_dtype = raw_dtype
        self._obj = obj
        self._handle = handle
        self._mmap, self._data_pos, self._row_bytes = _mmap_geometry(obj)

    @property
    def n(self) -> int:
        """The number of rows (after pooling)."""
        return self.shape[0]

    @property
    def inputs(self) -> int:
        """The number of inputs (rows before pooling)."""
        return self.raw_shape[0]

    def describe(self) -> str:
        """`` (name) has r rows`` and how pooling made them, for row-count messages."""
        if self.per_input > 1:
            what = "tokens" if len(self.raw_shape) == 3 else "positions"
            return (
                f" ({self.name}, pooling={self.pooling!r}: {self.inputs} inputs x "
                f"{self.per_input} {what}) has {self.n} rows"
            )
        return f" ({self.name}) has {self.n} rows"

    def _inputs_of(self, start: int, stop: int) -> tuple[int, int]:
        """The inputs (rows before pooling) that hold rows ``start:stop``."""
        k = self.per_input
        start, stop = max(0, start), min(stop, self.n)
        if stop <= start:
            return start // k, start // k
        return start // k, -(-stop // k)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an in-memory ``(stop - start, p)`` array.

        A copy for memory-mapped files (whose pages are then released), a view for an
        in-memory numpy array, what the reader returns otherwise; pooled as it is read.
        """
        if self._obj is None:
            raise ValueError(f"{self.name} is closed")
        # a copy of memory maps, so that the pages are read here and can be released at once
        block = self._pooled(start, stop, copy=isinstance(self._obj, np.memmap))
        self.release(start, stop)
        return block

    def _pooled(self, start: int, stop: int, copy: bool = False) -> np.ndarray:
        i0, i1 = self._inputs_of(start, stop)
        raw = self._rows(i0, i1, copy=copy)
        if not self._computes:
            return raw if raw.ndim == 2 else raw.reshape(raw.shape[0], -1)
        out = pool(raw, self.pooling, name=self.name)
        if self.per_input > 1:
            k0 = i0 * self.per_input
            out = out[max(0, start) - k0 : min(stop, self.n) - k0]
        return out

    @property
    def mapped(self) -> bool:
        """Whether the rows are a memory map of a file (``.npy``)."""
        return self._mmap is not None

    def will_need(self, start: int, stop: int) -> None:
        """Ask the kernel to read rows ``start:stop`` ahead (``madvise(MADV_WILLNEED)``)."""
        self._advise(getattr(mmap, "MADV_WILLNEED", None), start, stop)

    def view(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` without a copy where the reader allows it (memory maps of 2-D
        or flattened data; pooled rows are computed).

        Pair it with :meth:`release` once the rows have been used.
        """
        if self._obj is None:
            raise ValueError(f"{self.name} is closed")
        return self._pooled(start, stop)

    def _rows(self, start: int, stop: int, copy: bool = False) -> np.ndarray:
        """``obj[start:stop]`` (inputs, before pooling) as numpy; a reader's failure becomes
        UnreadableFileError.

        Reads that allocate (every reader but an in-memory array) are checked against the
        memory left first, so a file declaring a huge shape gets a MemoryError, not an abort.
        """
        if copy or not isinstance(self._obj, np.ndarray):
            rows = max(0, min(stop, self.inputs) - max(start, 0))
            per_row = int(np.prod(self.raw_shape[1:], dtype=object)) * self._raw_dtype.itemsize
            check_fits(
                rows * per_row,
                f"rows {start}:{stop} of {self.name}",
                "read fewer rows at a time (a smaller batch_size)",
            )
        try:
            rows = self._obj[start:stop]
            return np.array(rows, copy=True) if copy else np.asarray(rows)
        except (MemoryError, UnreadableFileError):
            raise
        except Exception as exc:
            if self.path is None:
                raise
            raise _unreadable(
                self.path, exc, f"reading rows {start}:{stop} of {self.name}"
            ) from None

    def release(self, start: int, stop: int) -> None:
        """Drop the memory-mapped pages of rows ``start:stop`` from this process (``.npy``)."""
        self._advise(getattr(mmap, "MADV_DONTNEED", None), start, stop)

    def _advise(self, advice: Optional[int], start: int, stop: int) -> None:
        if self._mmap is None or advice is None or stop <= start:
            return
        start, stop = self._inputs_of(start, stop)
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
        pooled = f", pooling={self.pooling!r}" if self.pooling is not None else ""
        return f"RowSource({self.name!r}, shape={self.shape}, dtype={self.dtype}{pooled})"


def _pooled_geometry(
    raw: tuple[int, ...], policy: Optional[str], name: str
) -> tuple[tuple[int, int], int, Optional[str]]:
    """``(shape after pooling, rows per input, policy)`` of an array of shape ``raw``."""
    nd = len(raw)
    if policy is not None and (not isinstance(policy, str) or policy not in _ALL_POLICIES):
        raise ValueError(f"pooling={policy!r} is invalid; expected one of: {policies_text()}")
    if nd == 2:
        return (raw[0], raw[1]), 1, policy
    if policy is None:
        raise ValueError(
            f"{name} has shape {raw} ({nd}-D); expected 2-D (n_samples, n_features). Pass "
            f"pooling= to make rows of it ({policies_text()}); flatten=True is "
            "pooling='flatten', which flattens the trailing dimensions of each row"
        )
    n = raw[0]
    if policy == "flatten":
        return (n, int(np.prod(raw[1:], dtype=object))), 1, policy
    allowed = POLICIES_3D if nd == 3 else POLICIES_4D if nd == 4 else ("flatten",)
    if policy not in allowed:
        kind = {3: "3-D (n, tokens, d)", 4: "4-D (n, c, h, w)"}.get(nd, f"{nd}-D")
        listed = ", ".join(repr(p) for p in allowed)
        raise ValueError(
            f"pooling={policy!r} is invalid for the {kind} {name} of shape {raw}; expected one "
            f"of {listed}"
        )
    if nd == 3:
        if policy == "tokens":
            return (n * raw[1], raw[2]), raw[1], policy
        return (n, raw[2]), 1, policy
    if policy == "spatial":
        return (n * raw[2] * raw[3], raw[1]), raw[2] * raw[3], policy
    return (n, raw[1]), 1, policy


def rows_explanation(source: "RowSource", reference: "RowSource") -> str:
    """Why two sources' row counts differ, when a pooling policy multiplies the rows."""
    pooled = [s for s in (source, reference) if s.per_input > 1]
    if not pooled:
        return ""
    return (
        f"; pooling={pooled[0].pooling!r} gives one row per token or position, so every "
        "layer compared must then yield the same rows (the same tokens or positions per "
        "input, pooled the same way); pool per input ('mean', 'first', ...) to compare "
        "layers of different shapes"
    )


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

    def __init__(self, handle: Any, key: str, path: Path):
        try:
            self._slice = handle.get_slice(key)
            self.shape = tuple(int(d) for d in self._slice.get_shape())
            code = self._slice.get_dtype()
        except Exception as exc:
            raise _unreadable(path, exc, f"tensor {key!r}") from None
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


def _refuse_unsafe_path(path: Path, npz: bool = False) -> None:
    suffix = _suffix(path)
    if suffix in _PICKLE_SUFFIXES:
        raise _pickle_refusal(f"a {suffix} file", path)
    if suffix == ".npz" and not npz:
        raise ValueError(
            f"{str(path)!r} is a .npz archive, whose members cannot be read in row blocks "
            f"(and may hold pickled objects); congruence reads {SAFE_FORMATS}. Save each "
            "layer with np.save(path, array) instead"
        )


def _npy_header(f: Any, path: Any, what: str = "", fortran: bool = False) -> tuple:
    """Read and check a ``.npy`` header from the open binary file ``f``.

    Returns ``(shape, dtype, nbytes)`` (and the Fortran-order flag if ``fortran``); the header is parsed by NumPy's own reader (a literal,
    never evaluated code). Object dtypes are refused (pickles), as is anything NumPy cannot
    parse: :class:`UnreadableFileError` naming ``path`` (and ``what``, a member of an archive).
    """
    lead = f"{what}: " if what else ""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, order_f, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, order_f, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    except MemoryError:
        raise
    except Exception as exc:  # ValueError, EOFError, SyntaxError, tokenize.TokenError, ...
        raise _unreadable(path, exc, f"{lead}not a valid .npy array") from None
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise _pickle_refusal(f"{lead}an object array (pickled Python objects)", path)
    if any(int(d) < 0 for d in shape):
        raise UnreadableFileError(path, f"{lead}the header declares a negative shape {shape}")
    nbytes = int(np.prod([int(d) for d in shape], dtype=object)) * dtype.itemsize
    shape = tuple(int(d) for d in shape)
    return (shape, dtype, nbytes, bool(order_f)) if fortran else (shape, dtype, nbytes)


def _open_npy(path: Path, pooling: Optional[str]) -> RowSource:
    try:
        with open(path, "rb") as f:
            shape, dtype, nbytes = _npy_header(f, path)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if size - offset < nbytes:  # before anything is mapped or allocated
        raise UnreadableFileError(
            path,
            f"truncated: the header declares shape {shape} of {dtype} ({nbytes} bytes), but "
            f"the file holds only {size - offset} bytes of data",
        )
    if len(shape) >= 2 and 0 in shape:
        raise ValueError(
            f"{str(path)!r} has shape {shape}; expected at least one row and one column"
        )
    _check_dtype(dtype, repr(str(path)))
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    return RowSource(arr, str(path), pooling=pooling, path=str(path))


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
    available = list(available)
    for k in keys:
        find_layer(k, available, where)  # LayerNotFoundError listing the close names
    return list(keys)


def open_layers(
    path: PathLike,
    keys: Optional[Sequence[str]] = None,
    *,
    pooling: Pooling = None,
    flatten: bool = False,
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
    pooling : str or dict of str to str, optional
        The pooling policy of 3-D and 4-D layers (:func:`congruence.pool`; no mask), for
        every layer or per layer name; applied to each block of rows as it is read. 2-D layers
        are read as they are. ``"tokens"`` / ``"spatial"`` give one row per token / position.
    flatten : bool
        ``pooling="flatten"``: flatten trailing dimensions (e.g. ``(n, C, H, W)`` to
        ``(n, C*H*W)``).

    Returns
    -------
    dict of str to RowSource

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    UnreadableFileError
        (a ``ValueError``, ``.path`` is the file) for a truncated or corrupted file, a
        malformed header, a pickle-based file or object array (naming the safe formats), or
        an error of the reader library.
    LayerNotFoundError
        (a ``KeyError`` and a ``ValueError``) for a key that is not in the file; the message
        lists the close names.
    ValueError
        For an unknown format, a non-numeric array, an array of more than 2 dimensions
        without ``pooling`` (listing the policies), or a policy not defined for it.
    ImportError
        If the optional reader is not installed.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from congruence.io import open_layers
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "h1.npy"), np.ones((10, 3)))
    >>> np.save(os.path.join(d, "h2.npy"), np.zeros((10, 2), dtype=np.float32))
    >>> {k: s.shape for k, s in open_layers(d).items()}
    {'h1': (10, 3), 'h2': (10, 2)}
    >>> np.save(os.path.join(d, "tok.npy"), np.ones((10, 4, 3)))   # 10 inputs, 4 tokens
    >>> {k: s.shape for k, s in open_layers(d, ["tok"], pooling="tokens").items()}
    {'tok': (40, 3)}
    """
    return _open(Path(path), keys, reader_pooling(pooling, flatten), strict=True)


def _open(
    p: Path, keys: Optional[Sequence[str]], pooling: Pooling, strict: bool
) -> dict[str, RowSource]:
    """:func:`open_layers`; with ``strict=False`` a pooling dict may name layers of other files
    (the caller checks its keys)."""

    def _check_pooling_keys(pooling: Pooling, chosen: Sequence[str], where: str) -> None:
        if strict:
            _check_keys(pooling, chosen, where)

    _must_exist(p)
    _refuse_unsafe_path(p)
    if p.is_dir() and not _is_zarr_dir(p) and _suffix(p) != ".zarr":
        files = sorted(p.glob("*.npy"))
        names = [f.stem for f in files]
        where = f"folder {str(p)!r} (.npy files)"
        chosen = _pick(names, keys, where)
        _check_pooling_keys(pooling, chosen, where)
        return {k: _open_npy(p / f"{k}.npy", _policy_of(pooling, k)) for k in chosen}
    suffix = _suffix(p)
    if suffix == ".npy":
        chosen = _pick([p.stem], keys, repr(str(p)))
        _check_pooling_keys(pooling, chosen, repr(str(p)))
        return {chosen[0]: _open_npy(p, _policy_of(pooling, chosen[0]))}
    if suffix == ".safetensors":
        safe_open = _import_safetensors()
        try:  # the header is parsed and checked here, before any tensor is read
            handle = safe_open(str(p), framework="numpy")
            names = list(handle.keys())
        except Exception as exc:  # SafetensorError and friends, not ValueErrors
            raise _unreadable(p, exc, "not a valid .safetensors file") from None
        chosen = _pick(names, keys, repr(str(p)))
        _check_pooling_keys(pooling, chosen, repr(str(p)))
        return {
            k: RowSource(
                _SafetensorsRows(handle, k, p),
                f"{p}::{k}",
                pooling=_policy_of(pooling, k),
                handle=handle,
                path=str(p),
            )
            for k in chosen
        }
    if suffix in _HDF5_SUFFIXES:
        h5py = _import_h5py()
        try:
            handle = h5py.File(str(p), "r")
            found: list[str] = []
            handle.visititems(
                lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
            )
        except Exception as exc:
            raise _unreadable(p, exc, "not a readable HDF5 file") from None
        chosen = _pick(found, keys, repr(str(p)))
        _check_pooling_keys(pooling, chosen, repr(str(p)))
        out = {}
        for k in chosen:
            try:
                ds = handle[k]
                shape = ds.shape
            except Exception as exc:
                raise _unreadable(p, exc, f"dataset {k!r}") from None
            if shape is None:
                raise UnreadableFileError(p, f"dataset {k!r} is empty (no shape)")
            out[k] = RowSource(
                ds, f"{p}::{k}", pooling=_policy_of(pooling, k), handle=handle, path=str(p)
            )
        return out
    if p.is_dir() or suffix == ".zarr":
        zarr = _import_zarr()
        try:
            node = zarr.open(str(p), mode="r")
            group = hasattr(node, "array_keys")
            names = sorted(node.array_keys()) if group else [p.stem]
        except Exception as exc:
            raise _unreadable(p, exc, "not a readable zarr array or group") from None
        where = f"zarr group {str(p)!r}" if group else repr(str(p))
        chosen = _pick(names, keys, where)
        _check_pooling_keys(pooling, chosen, where)
        try:
            arrays = {k: node[k] for k in chosen} if group else {chosen[0]: node}
        except Exception as exc:
            raise _unreadable(p, exc, "zarr array") from None
        return {
            k: RowSource(
                a, f"{p}::{k}" if group else str(p), pooling=_policy_of(pooling, k), path=str(p)
            )
            for k, a in arrays.items()
        }
    raise ValueError(
        f"{str(p)!r} has an unknown format ({suffix or 'no suffix'}); expected {SAFE_FORMATS}"
    )


def _load_npz(p: Path, keys: Optional[Sequence[str]]) -> dict[str, np.ndarray]:
    """The numeric arrays of an ``.npz`` archive; every member header is checked first."""
    if p.is_dir():
        raise UnreadableFileError(p, "is a folder, expected an .npz archive")
    advice = "save the layers with np.savez(path, layer_name=array, ...)"
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise UnreadableFileError(p, f"not an .npz archive ({exc}); {advice}") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        if not members:
            raise ValueError(f"{str(p)!r} holds no arrays; {advice}")
        for k in _pick(list(members), keys, repr(str(p))):
            info = members[k]
            what = f"member {k!r}"
            try:
                with zf.open(info) as f:
                    shape, dtype, nbytes, fortran = _npy_header(f, p, what, fortran=True)
                    room = info.file_size - f.tell()
                    if room < nbytes:  # before allocating
                        raise UnreadableFileError(
                            p,
                            f"{what} is truncated: its header declares shape {shape} of "
                            f"{dtype} ({nbytes} bytes), but it holds {max(room, 0)} bytes of data",
                        )
                    _check_dtype(dtype, f"{str(p)!r} {what}")
                    check_fits(nbytes, f"{what} of {str(p)!r}", "load fewer layers (keys=...)")
                    buf = f.read(nbytes)
            except (UnreadableFileError, MemoryError):
                raise
            except ValueError as exc:
                if "dtype" in str(exc):  # _check_dtype: not real numbers
                    raise
                raise _unreadable(p, exc, what) from None
            except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError, OSError
                raise _unreadable(p, exc, what) from None
            if len(buf) != nbytes:
                raise UnreadableFileError(p, f"{what} is truncated (its data ends early)")
            arr = np.frombuffer(buf, dtype=dtype) if nbytes else np.empty(0, dtype=dtype)
            out[k] = arr.reshape(shape, order="F" if fortran else "C")
    return out


def load_layers(
    path: PathLike,
    keys: Optional[Sequence[str]] = None,
    *,
    pooling: Pooling = None,
    flatten: bool = False,
) -> dict[str, np.ndarray]:
    """Read every layer (or the named ``keys``) of a file or folder into memory.

    The formats of :func:`open_layers`, plus ``.npz`` archives of numeric arrays
    (``np.savez(path, layer=array, ...)``; never unpickled). ``.npy`` files come back as
    read-only memory maps (not copied) unless a pooling policy computes new rows; other
    formats are read whole, after a check that they fit in the memory left. ``pooling`` and
    ``flatten`` as for :func:`open_layers` (without a policy, arrays of ``.npz`` archives come
    back as they are, whatever their dimension).

    Raises
    ------
    FileNotFoundError, UnreadableFileError, LayerNotFoundError, ValueError, ImportError
        As :func:`open_layers` (a truncated ``.npz`` member, or one whose header declares
        more data than it holds, is refused before anything is allocated).
    MemoryError
        If a layer does not fit in the memory left (stream it with :func:`stream_layers`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from congruence.io import load_layers
    >>> path = os.path.join(tempfile.mkdtemp(), "acts.npz")
    >>> np.savez(path, h1=np.ones((10, 3)), h2=np.zeros((10, 2)))
    >>> {k: v.shape for k, v in load_layers(path).items()}
    {'h1': (10, 3), 'h2': (10, 2)}
    """
    pooling = reader_pooling(pooling, flatten)
    p = Path(path)
    _must_exist(p)
    _refuse_unsafe_path(p, npz=True)
    if _suffix(p) == ".npz":
        arrays = _load_npz(p, keys)
        _check_keys(pooling, list(arrays), repr(str(p)))
        out_npz = {}
        for k, a in arrays.items():
            policy = _policy_of(pooling, k)
            if policy is None or a.ndim < 2:
                out_npz[k] = a
            else:  # the readers' rule: a RowSource over the array in memory
                src = RowSource(a, f"{str(p)!r} member {k!r}", pooling=policy)
                out_npz[k] = src.read(0, src.n)
        return out_npz
    out: dict[str, np.ndarray] = {}
    for k, src in open_layers(p, keys, pooling=pooling).items():
        if src.mapped and not src._computes:
            out[k] = src.view(0, src.n)
            continue
        check_fits(
            src.n * src.shape[1] * src.dtype.itemsize,
            f"layer {k!r} of {str(p)!r}",
            "stream it with congruence.io.stream_layers instead of loading it whole",
        )
        out[k] = src.read(0, src.n)
    return out


def open_source(
    source: Any,
    key: Optional[str] = None,
    *,
    pooling: Optional[str] = None,
    flatten: bool = False,
    name: Optional[str] = None,
) -> RowSource:
    """One layer as a :class:`RowSource`.

    ``source`` is a :class:`RowSource`; a path (``.npy``, or with ``key`` a tensor of a
    ``.safetensors`` file, a dataset of an HDF5 file or an array of a zarr group; a file with a
    single array needs no ``key``); or an open array: numpy array or memmap, h5py dataset,
    zarr array (anything with ``.shape``, ``.dtype`` and row slicing), or an in-memory tensor
    of another framework (anything with ``__dlpack__``: converted to NumPy as
    :func:`congruence.compare_layers` does). ``pooling`` and ``flatten`` as for
    :func:`open_layers` (one policy; a :class:`RowSource` keeps its own). ``name`` names an
    open array in its validation errors (e.g. ``"a['conv1']"``; default: its type and shape).

    Raises
    ------
    FileNotFoundError, UnreadableFileError, LayerNotFoundError
        For a path, as :func:`open_layers`.
    ValueError
        For object arrays (naming the safe formats), unknown formats, non-numeric or non-2-D
        data.

    Examples
    --------
    >>> import numpy as np
    >>> from congruence.io import open_source
    >>> src = open_source(np.arange(12.0).reshape(6, 2))
    >>> src.shape, src.read(4, 6).tolist()
    ((6, 2), [[8.0, 9.0], [10.0, 11.0]])
    """
    policy = reader_pooling(pooling, flatten)
    if isinstance(policy, Mapping):
        raise ValueError("open_source opens one layer: pass one pooling policy (a str), not a dict")
    if isinstance(source, RowSource):
        # a policy changes nothing for 2-D data; for more dimensions it is fixed at opening
        if policy is not None and len(source.raw_shape) > 2 and policy != source.pooling:
            raise ValueError(
                f"{source.name} is already open with pooling={source.pooling!r}; pass "
                f"pooling={policy!r} when opening it"
            )
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        _must_exist(p)
        _refuse_unsafe_path(p)
        if key is None and _suffix(p) == ".npy":
            return _open_npy(p, policy)
        layers = open_layers(p, None if key is None else [key], pooling=policy)
        if len(layers) != 1:
            raise ValueError(
                f"{str(p)!r} holds {len(layers)} arrays ({', '.join(map(repr, layers))}); "
                "pass key= to choose one, or use open_layers()"
            )
        return next(iter(layers.values()))
    if not isinstance(source, np.ndarray) and hasattr(source, "__dlpack__"):
        source = _to_numpy(source, name or type(source).__name__)  # torch, JAX, CuPy, ...
    if isinstance(source, np.ndarray):
        return RowSource(source, f"array{source.shape}", pooling=policy, label=name)
    if hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        kind = f"{type(source).__name__}{tuple(source.shape)}"
        return RowSource(source, kind, pooling=policy, label=name)
    raise ValueError(
        f"cannot read rows from a {type(source).__name__}; expected a path ({SAFE_FORMATS}), a "
        "numpy array or memmap, an h5py dataset or a zarr array"
    )


def __getattr__(name: str) -> Any:
    # the driver lives with the accumulators (congruence.streaming.drive), above the readers;
    # it stays importable from here without the readers importing it
    if name == "stream_layers":
        from congruence.streaming.drive import stream_layers

        return stream_layers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
