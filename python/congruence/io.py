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

:func:`stream_layers` drives the exact accumulators of :mod:`congruence.streaming` (or minibatch
CKA) over such sources and returns the same :class:`~congruence.results.LayerComparison` as
:func:`congruence.compare_layers`.
"""

from __future__ import annotations

import errno
import mmap
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._memory import check_fits
from congruence._validation import check_bool, check_choice, check_number
from congruence.errors import UnreadableFileError
from congruence.results import LayerComparison, find_layer
from congruence.streaming import LayerAccumulator, MinibatchCKA, batch_bounds

__all__ = [
    "RowSource",
    "open_source",
    "open_layers",
    "load_layers",
    "stream_layers",
    "SAFE_FORMATS",
]

#: The formats congruence reads, named in every refusal.
SAFE_FORMATS = ".npy (memory-mapped), .safetensors, HDF5 (.h5, .hdf5) and zarr"

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_DEFAULT_EXACT_BATCH = 4096

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

    def __init__(
        self,
        obj: Any,
        name: str,
        *,
        flatten: bool = False,
        handle: Any = None,
        path: Optional[str] = None,
    ):
        #: the file behind the source (None for arrays in memory), named in read errors
        self.path = path
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
            block = self._rows(start, stop, copy=True)
        else:
            block = self._rows(start, stop)
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
        block = self._rows(start, stop)
        return block if block.ndim == 2 else block.reshape(block.shape[0], -1)

    def _rows(self, start: int, stop: int, copy: bool = False) -> np.ndarray:
        """``obj[start:stop]`` as numpy; a reader's failure becomes UnreadableFileError.

        Reads that allocate (every reader but an in-memory array) are checked against the
        memory left first, so a file declaring a huge shape gets a MemoryError, not an abort.
        """
        if copy or not isinstance(self._obj, np.ndarray):
            rows = max(0, min(stop, self.n) - max(start, 0))
            check_fits(
                rows * self.shape[1] * self.dtype.itemsize,
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
            raise _unreadable(self.path, exc, f"reading rows {start}:{stop} of {self.name}") from None

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


def _open_npy(path: Path, flatten: bool) -> RowSource:
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
    return RowSource(arr, str(path), flatten=flatten, path=str(path))


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
        For an unknown format, a non-numeric or non-2-D array.
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
    """
    flatten = check_bool("flatten", flatten)
    p = Path(path)
    _must_exist(p)
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
        try:  # the header is parsed and checked here, before any tensor is read
            handle = safe_open(str(p), framework="numpy")
            names = list(handle.keys())
        except Exception as exc:  # SafetensorError and friends, not ValueErrors
            raise _unreadable(p, exc, "not a valid .safetensors file") from None
        chosen = _pick(names, keys, repr(str(p)))
        return {
            k: RowSource(
                _SafetensorsRows(handle, k, p), f"{p}::{k}", flatten=flatten, handle=handle,
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
        out = {}
        for k in chosen:
            try:
                ds = handle[k]
                shape, dtype = ds.shape, ds.dtype
            except Exception as exc:
                raise _unreadable(p, exc, f"dataset {k!r}") from None
            if shape is None:
                raise UnreadableFileError(p, f"dataset {k!r} is empty (no shape)")
            out[k] = RowSource(ds, f"{p}::{k}", flatten=flatten, handle=handle, path=str(p))
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
        try:
            arrays = {k: node[k] for k in chosen} if group else {chosen[0]: node}
        except Exception as exc:
            raise _unreadable(p, exc, "zarr array") from None
        return {
            k: RowSource(a, f"{p}::{k}" if group else str(p), flatten=flatten, path=str(p))
            for k, a in arrays.items()
        }
    raise ValueError(f"{str(p)!r} has an unknown format ({suffix or 'no suffix'}); expected {SAFE_FORMATS}")


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
    path: PathLike, keys: Optional[Sequence[str]] = None, *, flatten: bool = False
) -> dict[str, np.ndarray]:
    """Read every layer (or the named ``keys``) of a file or folder into memory.

    The formats of :func:`open_layers`, plus ``.npz`` archives of numeric arrays
    (``np.savez(path, layer=array, ...)``; never unpickled). ``.npy`` files come back as
    read-only memory maps (not copied); other formats are read whole, after a check that
    they fit in the memory left.

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
    flatten = check_bool("flatten", flatten)
    p = Path(path)
    _must_exist(p)
    _refuse_unsafe_path(p, npz=True)
    if _suffix(p) == ".npz":
        arrays = _load_npz(p, keys)
        if flatten:
            arrays = {
                k: a.reshape(a.shape[0], -1) if a.ndim > 2 else a for k, a in arrays.items()
            }
        return arrays
    out: dict[str, np.ndarray] = {}
    for k, src in open_layers(p, keys, flatten=flatten).items():
        if src.mapped:
            out[k] = src.view(0, src.n)
            continue
        check_fits(
            src.n * src.shape[1] * src.dtype.itemsize,
            f"layer {k!r} of {str(p)!r}",
            "stream it with congruence.io.stream_layers instead of loading it whole",
        )
        out[k] = src.read(0, src.n)
    return out


def open_source(source: Any, key: Optional[str] = None, *, flatten: bool = False) -> RowSource:
    """One layer as a :class:`RowSource`.

    ``source`` is a :class:`RowSource`; a path (``.npy``, or with ``key`` a tensor of a
    ``.safetensors`` file, a dataset of an HDF5 file or an array of a zarr group; a file with a
    single array needs no ``key``); or an open array: numpy array or memmap, h5py dataset,
    zarr array (anything with ``.shape``, ``.dtype`` and row slicing).

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
    flatten = check_bool("flatten", flatten)
    if isinstance(source, RowSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        _must_exist(p)
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
    FileNotFoundError, UnreadableFileError, LayerNotFoundError
        For paths and files, as :func:`open_layers` (a file that fails midway, e.g. a
        corrupted HDF5 chunk, raises UnreadableFileError naming it).
    ValueError
        For unknown options, sources with different row counts, fewer rows than the
        estimator needs.

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
