"""Fuzzing the file readers and the command-line parser (hypothesis).

Whatever bytes a file holds and whatever arguments a user types, congruence answers with one
of its documented exceptions, never with a crash, a foreign exception class or a traceback:

* readers (:func:`congruence.io.open_layers`, :func:`~congruence.io.load_layers` and the
  rows they read): ``ValueError`` (which includes ``UnreadableFileError`` and
  ``LayerNotFoundError``), ``FileNotFoundError`` or ``MemoryError``. Inputs: random bytes
  under every suffix; valid ``.npy``, ``.npz``, ``.safetensors`` and ``.h5`` files with
  flipped bytes, inserted bytes or a cut tail; ``.npy`` and safetensors headers written from
  random shapes, dtypes and offsets; zarr metadata replaced by random text.
* the command line (:func:`congruence.cli.main` with a random argument list drawn from its
  own vocabulary, real and broken files, and random text): an integer exit code; a nonzero
  one comes with a ``congruence: error: ...`` line on stderr and no traceback.

Budget: ``CONGRUENCE_FUZZ_EXAMPLES`` examples per test (default 500: about a minute for the
whole module on one core). The longer run (about half an hour)::

    CONGRUENCE_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -q -p no:cacheprovider

Hypothesis prints the smallest failing input (file bytes or argument list) of any failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import congruence.demo
from congruence.cli import main
from congruence.errors import LayerNotFoundError, UnreadableFileError
from congruence.io import load_layers, open_layers

EXAMPLES = int(os.environ.get("CONGRUENCE_FUZZ_EXAMPLES", "500"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

#: what a reader may raise for a bad file (UnreadableFileError and LayerNotFoundError are
#: ValueErrors)
DOCUMENTED = (ValueError, FileNotFoundError, MemoryError)

#: rows are read only when the block is this small (a fuzzed header may declare a huge one)
_READ_LIMIT = 1 << 24


# --------------------------------------------------------------------------- valid files


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz(compressed: bool) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    save = np.savez_compressed if compressed else np.savez
    save(buf, h1=rng.standard_normal((12, 3)), h2=np.arange(24, dtype=np.int32).reshape(12, 2))
    return buf.getvalue()


def _safetensors() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(2)
    return save(
        {"h1": rng.standard_normal((12, 3)), "h2": rng.standard_normal((12, 2)).astype(np.float32)}
    )


def _hdf5() -> bytes:
    import h5py

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.h5")
        with h5py.File(path, "w") as f:
            f["h1"] = np.random.default_rng(3).standard_normal((12, 3))
            f.create_dataset("grp/h2", data=np.ones((12, 2), dtype=np.float32), chunks=(4, 2))
        return Path(path).read_bytes()


VALID = {
    ".npy": _npy(np.random.default_rng(0).standard_normal((12, 3))),
    ".npy-f": _npy(np.asfortranarray(np.random.default_rng(0).standard_normal((12, 3)))),
    ".npz": _npz(False),
    ".npz-z": _npz(True),
    ".safetensors": _safetensors(),
    ".h5": _hdf5(),
}


# --------------------------------------------------------------------------- the check


def _exercise(path: Path) -> None:
    """Open every layer, read its first rows, and load the file whole; documented errors only."""
    try:
        sources = open_layers(path)
        for src in sources.values():
            stop = min(src.n, 8)
            if stop * src.shape[1] * src.dtype.itemsize <= _READ_LIMIT:
                block = src.read(0, stop)
                assert block.shape == (stop, src.shape[1])
    except DOCUMENTED as exc:
        _check_documented(exc, path)
    try:
        layers = load_layers(path)
        assert all(isinstance(v, np.ndarray) for v in layers.values())
    except DOCUMENTED as exc:
        _check_documented(exc, path)


def _check_documented(exc: BaseException, path: Path) -> None:
    if isinstance(exc, UnreadableFileError):
        assert exc.path == str(path)
    if isinstance(exc, FileNotFoundError):  # pragma: no cover - every fuzzed file exists
        pytest.fail(f"FileNotFoundError for an existing file: {exc}")
    assert str(exc), f"{type(exc).__name__} without a message"
    assert isinstance(exc, (UnreadableFileError, LayerNotFoundError, ValueError, MemoryError))


def _write_and_check(suffix: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"acts{suffix}"
        path.write_bytes(content)
        _exercise(path)


# --------------------------------------------------------------------------- readers


@FUZZ
@given(
    suffix=st.sampled_from([".npy", ".npz", ".safetensors", ".h5", ".hdf5", ".pt", ".bin"]),
    content=st.binary(max_size=600),
)
def test_random_bytes(suffix, content):
    _write_and_check(suffix, content)


@st.composite
def mutated(draw):
    """A valid file with a few bytes flipped (mostly in the header), inserted or cut off."""
    kind = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "cut", "delete"]))
        if not data:
            break
        head = min(len(data) - 1, 300)  # the headers live in the first few hundred bytes
        pos = draw(st.one_of(st.integers(0, head), st.integers(0, len(data) - 1)))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(
                st.sampled_from([0x00, 0xFF, 0x7F, 0x80, ord("9"), ord("("), ord(",")])
            )
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "cut":
            del data[pos:]
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return kind.split("-")[0], bytes(data)


@FUZZ
@given(case=mutated())
def test_mutated_valid_files(case):
    suffix, content = case
    _write_and_check(suffix, content)


_DTYPES = [
    "<f8",
    "<f4",
    ">f8",
    "<f2",
    "<i8",
    "|u1",
    "|b1",
    "|O",
    "<U3",
    "|V8",
    "<c16",
    "<M8[s]",
    "bogus",
    "",
    "<f8'",
]

_dim = st.one_of(st.integers(0, 20), st.integers(-3, 2**63 + 5), st.just(2**31))


@FUZZ
@given(
    shape=st.lists(_dim, max_size=4),
    dtype=st.sampled_from(_DTYPES),
    fortran=st.sampled_from(["False", "True", "1", "None"]),
    extra=st.sampled_from(["", ", 'x': 1", "}{"]),
    payload=st.integers(0, 400),
    raw_shape=st.one_of(st.none(), st.text(max_size=12)),
)
def test_npy_headers(shape, dtype, fortran, extra, payload, raw_shape):
    shape_text = raw_shape if raw_shape is not None else repr(tuple(shape))
    header = f"{{'descr': '{dtype}', 'fortran_order': {fortran}, 'shape': {shape_text}{extra}, }}"
    header = header.encode("latin1", "replace")
    pad = (-(10 + len(header) + 1)) % 64
    blob = (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header) + pad + 1)
        + header
        + b" " * pad
        + b"\n"
    )
    _write_and_check(".npy", blob + bytes(range(256)) * (payload // 256 + 1))


@FUZZ
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["h1", "h2", "__metadata__", ""]),
            st.sampled_from(["F64", "F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "X", 3]),
            st.lists(_dim, max_size=3),
            st.tuples(st.integers(-2, 2**64 + 2), st.integers(-2, 2**64 + 2)),
        ),
        max_size=3,
    ),
    length=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    data_bytes=st.integers(0, 300),
)
def test_safetensors_headers(entries, length, data_bytes):
    header = {
        name: {"dtype": dtype, "shape": shape, "data_offsets": list(offsets)}
        for name, dtype, shape, offsets in entries
    }
    text = json.dumps(header).encode()
    size = len(text) if length is None else length
    _write_and_check(".safetensors", struct.pack("<Q", size) + text + bytes(data_bytes))


@pytest.mark.filterwarnings("ignore::UserWarning")  # zarr's own notes on odd metadata
@FUZZ
@given(
    metadata=st.one_of(
        st.text(max_size=200),
        st.fixed_dictionaries(
            {
                "zarr_format": st.sampled_from([2, 3, 4, "3"]),
                "node_type": st.sampled_from(["array", "group", "x"]),
                "shape": st.lists(_dim, max_size=3),
                "data_type": st.sampled_from(["float64", "float32", "int8", "complex128", "nope"]),
            }
        ).map(json.dumps),
    )
)
def test_zarr_metadata(metadata):
    zarr = pytest.importorskip("zarr")
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "acts.zarr"
        group = zarr.open_group(str(store), mode="w")
        group.create_array("h1", shape=(12, 3), dtype="f8")[:] = np.ones((12, 3))
        (store / "h1" / "zarr.json").write_text(metadata)
        _exercise(store)


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(4)
    good = d / "a.npz"
    np.savez(good, l1=rng.standard_normal((12, 3)), l2=rng.standard_normal((12, 2)))
    other = d / "b.npz"
    np.savez(other, m1=rng.standard_normal((12, 4)))
    short = d / "short.npz"
    np.savez(short, m1=rng.standard_normal((7, 4)))
    cut = d / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-100])
    pickled = d / "model.pt"
    pickled.write_bytes(b"\x80\x04K\x01.")
    text = d / "notes.txt"
    text.write_text("hello")
    return [str(p) for p in (good, other, short, cut, pickled, text, d, d / "missing.npz")]


_WORDS = [
    "compare",
    "list",
    "demo",
    "--measure",
    "-m",
    "--param",
    "-p",
    "--out",
    "-o",
    "--digits",
    "--layers",
    "-l",
    "--layers-b",
    "--seed-a",
    "--seed-b",
    "--help",
    "-h",
    "--version",
    "--",
    "-",
    "cka",
    "hsic",
    "rsa",
    "ckaa",
    "",
    "kernel=rbf",
    "kernel=poly",
    "sigma_frac=0",
    "sigma_frac=-1",
    "debiased=True",
    "unbiased=1",
    "k=[1,",
    "x",
    "=",
    "a=b=c",
    "l1",
    "l2",
    "l1,l2",
    "l_1",
    "m1",
    ",",
    "3",
    "-1",
    "1e999",
    "99999999999999999999",
]


@FUZZ
@given(data=st.data())
def test_cli_arguments(cli_files, data):
    token = st.one_of(
        st.sampled_from(_WORDS),
        st.sampled_from(cli_files),
        st.text(max_size=12),
    )
    argv = data.draw(st.lists(token, max_size=8), label="argv")
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as cwd, pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # --out NAME writes here
        mp.setattr(congruence.demo, "run", lambda **kwargs: print("demo"))  # no training
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    stderr = err.getvalue()
    event(f"exit code {code}")
    assert isinstance(code, int)
    assert "Traceback" not in stderr and "Traceback" not in out.getvalue()
    if code != 0:
        assert code in (1, 2), (argv, code, stderr)
        lines = stderr.strip().splitlines()
        assert lines, f"exit {code} without a message for {argv!r}"
        assert lines[-1].startswith("congruence: error: ") or code == 2 and "usage:" in stderr, (
            argv,
            stderr,
        )
