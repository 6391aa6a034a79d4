"""Out-of-core readers and ``stream_layers``: every format gives ``compare_layers``' values."""

from __future__ import annotations

import doctest
import functools
import importlib
import json
import os
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference_streaming import ref_minibatch_cka

import congruence as cg
from congruence.errors import LayerNotFoundError, UnreadableFileError
from congruence.io import RowSource, load_layers, open_layers, open_source, stream_layers

N = 230


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(0)
    h1 = (rng.standard_normal((N, 6)) + 20.0).astype(np.float32)
    h2 = np.tanh(h1.astype(np.float64) @ rng.standard_normal((6, 4)) / 10).astype(np.float32)
    h3 = rng.standard_normal((N, 5)) * 3.0  # float64
    return {"h1": h1, "h2": h2, "h3": h3}


def _want(layers, b=None, measure="cka", **params):
    """compare_layers on float64 copies (the stream accumulates float32 in float64)."""
    f64 = {k: v.astype(np.float64) for k, v in layers.items()}
    b64 = None if b is None else {k: v.astype(np.float64) for k, v in b.items()}
    return cg.compare_layers(f64, b64, measure, **params)


def _check(res, want):
    assert res.rows == want.rows and res.cols == want.cols and res.measure == want.measure
    np.testing.assert_allclose(res.values, want.values, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- formats


def test_npy_folder_and_files(tmp_path, layers):
    for k, v in layers.items():
        np.save(tmp_path / f"{k}.npy", v)
    _check(stream_layers(tmp_path, batch_size=64, debiased=True), _want(layers, debiased=True))
    srcs = {k: str(tmp_path / f"{k}.npy") for k in ("h3", "h1")}
    res = stream_layers(srcs, {"h2": tmp_path / "h2.npy"}, measure="hsic", batch_size=50)
    _check(res, _want({"h3": layers["h3"], "h1": layers["h1"]}, {"h2": layers["h2"]}, "hsic"))
    src = open_source(tmp_path / "h1.npy")
    assert isinstance(src._obj, np.memmap) and src.shape == (N, 6) and src.dtype == np.float32
    np.testing.assert_array_equal(src.read(10, 20), layers["h1"][10:20])
    assert list(open_layers(tmp_path, keys=["h2", "h1"])) == ["h2", "h1"]


def test_safetensors(tmp_path, layers):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "acts.safetensors"
    safetensors_numpy.save_file(dict(layers), str(path))
    _check(stream_layers(path, batch_size=100), _want(layers))
    one = open_source(path, key="h2")
    np.testing.assert_array_equal(one.read(0, 7), layers["h2"][:7])
    with pytest.raises(ValueError, match=r"holds 3 arrays .*pass key= to choose one"):
        open_source(path)
    with pytest.raises(
        LayerNotFoundError,
        match=r"no layer named 'h9' in '.*acts\.safetensors'; did you mean 'h3' or 'h2' or 'h1'\?",
    ):
        open_layers(path, keys=["h9"])


def _write_bf16_safetensors(path):
    header = {"x": {"dtype": "BF16", "shape": [4, 2], "data_offsets": [0, 16]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(16))


def test_safetensors_bf16_refused(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "bf16.safetensors"
    _write_bf16_safetensors(path)
    with pytest.raises(ValueError, match=r"tensor 'x' has dtype BF16, which NumPy cannot read"):
        open_layers(path)


def test_hdf5(tmp_path, layers):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "acts.h5"
    with h5py.File(path, "w") as f:
        f["model/h1"] = layers["h1"]
        f.create_dataset("model/h2", data=layers["h2"], chunks=(32, 4))
        f["h3"] = layers["h3"]
    res = stream_layers(path, batch_size=40, debiased=True)
    assert res.rows == ("h3", "model/h1", "model/h2")  # every dataset, by path
    want = _want(
        {"h3": layers["h3"], "model/h1": layers["h1"], "model/h2": layers["h2"]}, debiased=True
    )
    _check(res, want)
    with h5py.File(path, "r") as f:  # open datasets are sources too
        res = stream_layers({"h1": f["model/h1"]}, {"h3": f["h3"]}, batch_size=33)
        _check(res, _want({"h1": layers["h1"]}, {"h3": layers["h3"]}))


def test_zarr(tmp_path, layers):
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "acts.zarr"), mode="w")
    for k, v in layers.items():
        group.create_array(k, data=v, chunks=(50, v.shape[1]))
    _check(stream_layers(tmp_path / "acts.zarr", batch_size=64), _want(layers))
    arr = zarr.open_array(
        str(tmp_path / "one.zarr"), mode="w", shape=(N, 5), chunks=(60, 5), dtype="f8"
    )
    arr[:] = layers["h3"]
    res = stream_layers(
        {"z": tmp_path / "one.zarr"},
        {"h1": zarr.open(str(tmp_path / "acts.zarr"))["h1"]},
        batch_size=64,
    )
    _check(res, _want({"z": layers["h3"]}, {"h1": layers["h1"]}))


def test_in_memory_sources_and_lists(layers):
    res = stream_layers(list(layers.values()), batch_size=1000)  # one block
    _check(res, _want(dict(zip("012", layers.values()))))
    src = open_source(layers["h3"])
    assert src.read(0, 3).base is not None  # a view of an in-memory array, no copy
    assert open_source(src) is src


def test_prefetch_off_and_batch_of_one_row(layers):
    small = {k: v[:40] for k, v in layers.items()}
    a = stream_layers(small, batch_size=1, prefetch=False, debiased=True)
    b = stream_layers(small, batch_size=7, prefetch=True, debiased=True)
    _check(a, _want(small, debiased=True))
    np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-12)


def test_flatten_trailing_dimensions(tmp_path):
    rng = np.random.default_rng(1)
    conv = rng.standard_normal((50, 2, 3, 2))
    other = rng.standard_normal((50, 4))
    np.save(tmp_path / "conv.npy", conv)
    with pytest.raises(
        ValueError, match=r"has shape \(50, 2, 3, 2\) \(4-D\); expected 2-D .*flatten=True"
    ):
        open_source(tmp_path / "conv.npy")
    src = open_source(tmp_path / "conv.npy", flatten=True)
    assert src.shape == (50, 12)
    res = stream_layers({"conv": src}, {"o": other}, batch_size=16)
    _check(res, cg.compare_layers({"conv": conv.reshape(50, -1)}, {"o": other}))


# --------------------------------------------------------------------------- pooling


def _tokens_and_maps(n=60, seed=3):
    rng = np.random.default_rng(seed)
    tok = rng.standard_normal((n, 5, 4)) + np.linspace(0, 2, 5)[None, :, None]
    conv = rng.standard_normal((n, 3, 2, 4)).astype(np.float32)
    flat = np.tanh(tok[:, 0, :] @ rng.standard_normal((4, 6)))
    return tok, conv, flat


def test_pooling_policies_as_rows_are_read(tmp_path):
    tok, conv, flat = _tokens_and_maps()
    np.save(tmp_path / "tok.npy", tok)
    np.save(tmp_path / "conv.npy", conv)
    # NumPy references written from the definitions (one row per input, or per token/position)
    refs = {
        ("tok", "mean"): tok.mean(axis=1),
        ("tok", "first"): tok[:, 0, :],
        ("tok", "last"): tok[:, -1, :],
        ("tok", "max"): tok.max(axis=1),
        ("tok", "flatten"): tok.reshape(60, 20),
        ("tok", "tokens"): np.concatenate([tok[i] for i in range(60)]),
        ("conv", "mean"): conv.astype(np.float64).mean(axis=(2, 3)),
        ("conv", "flatten"): conv.reshape(60, 24),
        ("conv", "spatial"): np.stack(
            [conv[i, :, u, v] for i in range(60) for u in range(2) for v in range(4)]
        ),
    }
    for (key, policy), want in refs.items():
        src = open_layers(tmp_path, [key], pooling=policy)[key]
        assert src.shape == want.shape and src.pooling == policy
        # blocks that cut inputs in the middle (7 rows: tokens 5 and positions 8 per input)
        got = np.concatenate([src.read(s, min(src.n, s + 7)) for s in range(0, src.n, 7)])
        np.testing.assert_allclose(got, want, rtol=1e-6 if key == "conv" else 1e-12, atol=1e-6)
        np.testing.assert_allclose(src.view(3, 11), want[3:11], rtol=1e-6, atol=1e-6)
        loaded = load_layers(tmp_path, [key], pooling=policy)[key]
        np.testing.assert_allclose(loaded, want, rtol=1e-6, atol=1e-6)
    # float32 data pools to float32 (as cg.pool), flatten keeps the dtype
    assert open_source(tmp_path / "conv.npy", pooling="mean").dtype == np.float32
    assert open_source(tmp_path / "tok.npy", pooling="tokens").dtype == np.float64
    assert open_source(tmp_path / "tok.npy", pooling="tokens").inputs == 60
    # per-layer policies, and 2-D layers read as they are under any policy
    np.save(tmp_path / "flat.npy", flat)
    both = open_layers(tmp_path, pooling={"tok": "last", "conv": "spatial"})
    assert {k: s.shape for k, s in both.items()} == {
        "conv": (480, 3),
        "flat": (60, 6),
        "tok": (60, 4),
    }
    np.testing.assert_array_equal(
        open_source(tmp_path / "flat.npy", pooling="max").read(0, 60), flat
    )


def test_pooling_in_hdf5_zarr_and_npz(tmp_path):
    h5py = pytest.importorskip("h5py")
    zarr = pytest.importorskip("zarr")
    tok, conv, _ = _tokens_and_maps(seed=4)
    with h5py.File(tmp_path / "acts.h5", "w") as f:
        f["tok"] = tok
        f["conv"] = conv
    z = zarr.open_group(str(tmp_path / "acts.zarr"), mode="w")
    z.create_array("tok", shape=tok.shape, dtype=tok.dtype)[:] = tok
    np.savez(tmp_path / "acts.npz", tok=tok, conv=conv)
    want_tok = tok.mean(axis=1)
    for path in ("acts.h5", "acts.zarr", "acts.npz"):
        got = load_layers(tmp_path / path, ["tok"], pooling="mean")["tok"]
        np.testing.assert_allclose(got, want_tok, rtol=1e-12, atol=1e-12)
    src = open_layers(tmp_path / "acts.h5", ["conv"], pooling="spatial")["conv"]
    np.testing.assert_allclose(
        src.read(5, 21), conv.transpose(0, 2, 3, 1).reshape(-1, 3)[5:21], rtol=1e-6
    )
    # .npz without a policy: the arrays as they are (compare_layers then asks for pooling)
    assert load_layers(tmp_path / "acts.npz")["tok"].shape == (60, 5, 4)
    assert load_layers(tmp_path / "acts.npz", flatten=True)["conv"].shape == (60, 24)


def test_stream_layers_pooling_equals_compare_layers_on_pooled_arrays(tmp_path):
    tok, conv, flat = _tokens_and_maps(seed=5)
    tok2 = np.tanh(tok @ np.random.default_rng(6).standard_normal((4, 3)))
    np.save(tmp_path / "tok.npy", tok)
    np.save(tmp_path / "conv.npy", conv)
    # mean over tokens and positions, against compare_layers on NumPy-pooled arrays (float32
    # data pools to float32, as cg.pool: the float64 mean rounded once)
    res = stream_layers(tmp_path, {"flat": flat}, pooling="mean", batch_size=16, debiased=True)
    conv_mean = conv.astype(np.float64).mean(axis=(2, 3)).astype(np.float32).astype(np.float64)
    want = cg.compare_layers(
        {"conv": conv_mean, "tok": tok.mean(axis=1)},
        {"flat": flat},
        debiased=True,
    )
    _check(res, want)
    # one row per token on both sides: the same rows
    res = stream_layers({"t": tok}, {"u": tok2}, pooling="tokens", batch_size=13)
    _check(res, cg.compare_layers({"t": tok.reshape(-1, 4)}, {"u": tok2.reshape(-1, 3)}))
    # minibatch CKA over pooled rows
    res = stream_layers(
        {"t": tok}, {"u": tok2}, pooling="tokens", estimator="minibatch", batch_size=50
    )
    x, y = tok.reshape(-1, 4), tok2.reshape(-1, 3)
    bounds = [(s, s + 50) for s in range(0, 300, 50)]
    want = ref_minibatch_cka([x[s:e] for s, e in bounds], [y[s:e] for s, e in bounds])
    assert res["t", "u"] == pytest.approx(want, abs=1e-10)
    # a dict of policies names the layers of a and b
    res = stream_layers({"t": tok}, {"c": conv}, pooling={"t": "first", "c": "flatten"})
    _check(
        res, cg.compare_layers({"t": tok[:, 0, :]}, {"c": conv.reshape(60, -1).astype(np.float64)})
    )


def test_flatten_is_pooling_flatten_in_stream_layers(tmp_path):
    tok, conv, flat = _tokens_and_maps(seed=7)
    np.save(tmp_path / "conv.npy", conv)
    # the reported failure: "unexpected parameter(s) ['flatten']"
    res = stream_layers(
        {"conv": tmp_path / "conv.npy"}, {"flat": flat}, flatten=True, batch_size=16
    )
    want = cg.compare_layers({"conv": conv.reshape(60, -1).astype(np.float64)}, {"flat": flat})
    _check(res, want)
    same = stream_layers(
        {"conv": tmp_path / "conv.npy"}, {"flat": flat}, pooling="flatten", batch_size=16
    )
    np.testing.assert_array_equal(same.values, res.values)
    assert load_layers(tmp_path, flatten=True)["conv"].shape == (60, 24)


def test_pooling_errors(tmp_path):
    tok, conv, flat = _tokens_and_maps(seed=8)
    np.save(tmp_path / "tok.npy", tok)
    np.save(tmp_path / "conv.npy", conv)
    # tokens on one side, one row per input on the other: refused, saying why
    with pytest.raises(
        ValueError,
        match=r"b\['f'\] \(array\(60, 6\)\) has 60 rows but a\['t'\] has 300 rows; every layer "
        r"must hold the same n inputs; pooling='tokens' gives one row per token or position",
    ):
        stream_layers({"t": tok}, {"f": flat}, pooling="tokens")
    with pytest.raises(
        ValueError, match=r"60 inputs x 5 tokens\) has 300 rows but a\['f'\] has 60"
    ):
        stream_layers({"f": flat, "t": tok}, pooling={"t": "tokens"})
    # 3-D and 4-D without a policy: the policies listed, flatten=True named
    with pytest.raises(
        ValueError,
        match=r"\(3-D\); expected 2-D .*'mean', 'first', 'last', 'max', 'flatten', 'tokens'.*flatten=True",
    ):
        open_source(tmp_path / "tok.npy")
    with pytest.raises(ValueError, match=r"\(4-D\); expected 2-D .*'spatial'"):
        stream_layers({"c": conv})
    with pytest.raises(ValueError, match=r"pooling='tokens' is invalid for the 4-D \(n, c, h, w\)"):
        open_source(tmp_path / "conv.npy", pooling="tokens")
    with pytest.raises(ValueError, match=r"pooling='spatial' is invalid for the 3-D"):
        open_layers(tmp_path, pooling="spatial")
    with pytest.raises(ValueError, match=r"pooling='avg' is invalid; expected one of"):
        open_source(flat, pooling="avg")
    with pytest.raises(ValueError, match=r"flatten=True is pooling='flatten' but pooling='mean'"):
        stream_layers({"c": conv}, pooling="mean", flatten=True)
    with pytest.raises(ValueError, match=r"pooling must be a policy name or a dict"):
        open_layers(tmp_path, pooling=3)
    with pytest.raises(
        LayerNotFoundError, match=r"no layer named 'tokk' .*pooling=.*did you mean 'tok'"
    ):
        open_layers(tmp_path, pooling={"tokk": "mean", "conv": "mean"})
    with pytest.raises(LayerNotFoundError, match=r"no layer named 'x' in the layers of a and b"):
        stream_layers({"t": tok}, {"f": flat}, pooling={"t": "mean", "x": "mean"})
    # 5-D arrays: flatten only
    five = np.ones((4, 2, 2, 2, 2))
    assert open_source(five, pooling="flatten").shape == (4, 16)
    with pytest.raises(ValueError, match=r"pooling='mean' is invalid for the 5-D"):
        open_source(five, pooling="mean")
    src = open_source(tok, pooling="mean")
    with pytest.raises(ValueError, match=r"already open with pooling='mean'"):
        open_source(src, pooling="first")
    assert open_source(src) is src
    flat_src = open_source(flat)  # 2-D: a policy given later changes nothing
    assert open_source(flat_src, pooling="mean") is flat_src
    res = stream_layers({"f": flat_src}, {"t": tok}, pooling="mean")
    _check(res, cg.compare_layers({"f": flat}, {"t": tok.mean(axis=1)}))


# --------------------------------------------------------------------------- minibatch


@pytest.mark.parametrize("ragged", ["merge", "drop"])
def test_minibatch_over_files(tmp_path, layers, ragged):
    np.save(tmp_path / "h1.npy", layers["h1"])
    res = stream_layers(
        {"h1": tmp_path / "h1.npy"},
        {"h3": layers["h3"]},
        estimator="minibatch",
        batch_size=50,
        ragged=ragged,
    )
    # 230 rows, batches of 50: the 30 left over join the last batch (merge) or are dropped
    bounds = [(0, 50), (50, 100), (100, 150), (150, 230 if ragged == "merge" else 200)]
    x, y = layers["h1"].astype(np.float64), layers["h3"]
    want = ref_minibatch_cka([x[s:e] for s, e in bounds], [y[s:e] for s, e in bounds])
    assert res.measure == "minibatch_cka"
    assert res["h1", "h3"] == pytest.approx(
        want, abs=1e-10
    )  # the reference skips centring: offsets


def test_minibatch_options_errors(layers):
    with pytest.raises(ValueError, match=r"estimator='minibatch' needs batch_size"):
        stream_layers(layers, estimator="minibatch")
    with pytest.raises(
        ValueError,
        match=r"estimator='minibatch' takes no measure parameters \(got \['debiased'\]\)",
    ):
        stream_layers(layers, estimator="minibatch", batch_size=10, debiased=True)
    with pytest.raises(ValueError, match=r"measure='hsic' is invalid; expected one of 'cka'"):
        stream_layers(layers, estimator="minibatch", measure="hsic", batch_size=10)
    with pytest.raises(
        ValueError, match=r"batch_size=2 is out of range; expected a value in \[4, inf\)"
    ):
        stream_layers(layers, estimator="minibatch", batch_size=2)
    with pytest.raises(
        ValueError, match=r"estimator='fast' is invalid; expected one of 'exact', 'minibatch'"
    ):
        stream_layers(layers, estimator="fast")
    with pytest.raises(
        ValueError, match=r"batch_size=0 is out of range; expected a value in \[1, inf\)"
    ):
        stream_layers(layers, batch_size=0)


# --------------------------------------------------------------------------- refusals and errors


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib"])
def test_pickle_formats_refused(tmp_path, suffix):
    path = tmp_path / f"acts{suffix}"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle; never loaded
    with pytest.raises(
        UnreadableFileError,
        match=r"pickle-based.*\.npy \(memory-mapped\), \.safetensors, HDF5 \(\.h5, \.hdf5\) and zarr",
    ) as info:
        open_source(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    with pytest.raises(ValueError, match=r"pickle-based"):
        stream_layers({"x": path})


def test_object_arrays_refused(tmp_path):
    obj = np.empty((3, 2), dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(
        UnreadableFileError,
        match=r"obj\.npy.*an object array \(pickled Python objects\) is pickle-based.*safetensors",
    ):
        open_source(tmp_path / "obj.npy")
    with pytest.raises(
        ValueError, match=r"holds Python objects \(dtype object\), which is pickle-based"
    ):
        open_source(obj)


def test_npz_and_unknown_formats_refused(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones((3, 2)))
    with pytest.raises(
        ValueError, match=r"is a \.npz archive, whose members cannot be read in row blocks"
    ):
        open_source(tmp_path / "a.npz")
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"has an unknown format \(\.csv\); expected \.npy"):
        open_layers(tmp_path / "a.csv")
    with pytest.raises(FileNotFoundError, match=r"no such file or folder: '.*missing\.npy'"):
        open_source(tmp_path / "missing.npy")
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        open_layers(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match=r"cannot read rows from a int"):
        open_source(3)
    with pytest.raises(ValueError, match=r"has dtype <U1; expected real numbers"):
        open_source(np.array([["a", "b"]]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no array"):
        open_layers(tmp_path / "empty")


def test_row_mismatch_and_bad_layers(layers):
    with pytest.raises(
        ValueError, match=r"b\['x'\] \(array\(229, 6\)\) has 229 rows but a\['h1'\] has 230"
    ):
        stream_layers(layers, {"x": layers["h1"][:-1]})
    with pytest.raises(ValueError, match=r"a must map layer names to sources"):
        stream_layers(3)
    with pytest.raises(ValueError, match=r"a holds no layers"):
        stream_layers({})
    with pytest.raises(ValueError, match=r"kernel='rbf' cannot be accumulated"):
        stream_layers(layers, kernel="rbf")
    with pytest.raises(ValueError, match=r"has shape \(0, 3\); expected at least one row"):
        open_source(np.ones((0, 3)))


def test_missing_optional_packages(tmp_path, monkeypatch, layers):
    (tmp_path / "a.h5").write_bytes(b"")
    (tmp_path / "a.safetensors").write_bytes(b"")
    for mod in ("h5py", "safetensors", "zarr", "tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    with pytest.raises(
        ImportError, match=r"needs the optional package 'h5py': pip install 'congruence\[hdf5\]'"
    ):
        open_layers(tmp_path / "a.h5")
    with pytest.raises(ImportError, match=r"pip install 'congruence\[safetensors\]'"):
        open_layers(tmp_path / "a.safetensors")
    (tmp_path / "z.zarr").mkdir()
    with pytest.raises(ImportError, match=r"pip install 'congruence\[zarr\]'"):
        open_layers(tmp_path / "z.zarr")
    # progress=True never needs tqdm: a plain counter replaces it
    _check(stream_layers(layers, progress=True), _want(layers))
    stream_layers(layers, progress=False)


def _no_delay(monkeypatch):
    """Show the progress display at once (it waits for work lasting over a second)."""
    from congruence import _progress
    from congruence.streaming import drive

    monkeypatch.setattr(drive, "Progress", functools.partial(_progress.Progress, delay=0.0))


def test_progress_bar(layers, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    res = stream_layers(layers, batch_size=100)  # short work: nothing shown
    assert capsys.readouterr().err == ""
    _no_delay(monkeypatch)
    res = stream_layers(layers, batch_size=100, progress=True)
    _check(res, _want(layers))
    err = capsys.readouterr().err
    assert "congruence" in err and "230" in err
    stream_layers(layers, batch_size=100, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_counter_without_tqdm(layers, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    _no_delay(monkeypatch)
    _check(stream_layers(layers, batch_size=100), _want(layers))
    err = capsys.readouterr().err
    assert "congruence: 230/230 rows" in err and err.endswith("\n")


def test_rowsource_blocks_and_close(layers):
    src = RowSource(layers["h3"], "h3")
    blocks = list(src.blocks(100))
    assert [b.shape[0] for b in blocks] == [100, 100, 30]
    np.testing.assert_array_equal(np.concatenate(blocks), layers["h3"])
    with src:
        pass
    with pytest.raises(ValueError, match=r"h3 is closed"):
        src.read(0, 1)


# --------------------------------------------------------------------------- bad files


def _npy_bytes(a) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_truncated_npy_names_the_file(tmp_path):
    raw = _npy_bytes(np.arange(60.0).reshape(20, 3))
    path = tmp_path / "cut.npy"
    path.write_bytes(raw[:-10])
    for call in (
        lambda: open_source(path),
        lambda: load_layers(path),
        lambda: stream_layers({"x": path}),
    ):
        with pytest.raises(
            UnreadableFileError,
            match=r"cut\.npy.*truncated: the header declares shape \(20, 3\) of float64 \(480 bytes\), but the file holds only 470",
        ) as info:
            call()
        assert info.value.path == str(path) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "reading magic string"),
        (b"\x93NUMPY\x01\x00garbage", "reading array header"),
        (b"not an npy file at all", "not a valid .npy array"),
        (b"\x93NUMPY\x07\x00\x10\x00{}              ", "format version 7.0"),
    ],
)
def test_corrupted_npy_headers(tmp_path, content, fragment):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=re.escape(fragment)) as info:
        open_layers(path)
    assert info.value.path == str(path)


def test_npy_header_larger_than_the_file_is_refused_before_allocation(tmp_path):
    import tracemalloc

    raw = _npy_bytes(np.zeros((20, 3)))
    big = raw.replace(b"(20, 3)", b"(9000000, 3000)")  # 216 GB declared, 480 bytes held
    path = tmp_path / "liar.npy"
    path.write_bytes(big)
    tracemalloc.start()
    try:
        with pytest.raises(
            UnreadableFileError, match=r"truncated: the header declares shape \(9000000, 3000\)"
        ):
            open_layers(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing near the declared size was allocated


def test_npz_members_are_checked(tmp_path):
    import zipfile

    arr = np.arange(60.0).reshape(20, 3)
    good = tmp_path / "good.npz"
    np.savez(good, h1=arr, h2=arr[:, :2])
    got = load_layers(good)
    assert list(got) == ["h1", "h2"] and np.array_equal(got["h1"], arr)
    with pytest.raises(
        LayerNotFoundError, match=r"no layer named 'h3' .*did you mean 'h2' or 'h1'"
    ):
        load_layers(good, ["h1", "h3"])
    # a member whose header declares more rows than it holds (same header length)
    liar = tmp_path / "liar.npz"
    with zipfile.ZipFile(liar, "w") as zf:
        zf.writestr("h.npy", _npy_bytes(arr).replace(b"(20, 3)", b"(99, 3)"))
    with pytest.raises(
        UnreadableFileError, match=r"member 'h' is truncated: its header declares shape \(99, 3\)"
    ):
        load_layers(liar)
    # corrupted compressed data
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, h=np.random.default_rng(0).standard_normal((200, 5)))
    raw = bytearray(packed.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    packed.write_bytes(bytes(raw))
    with pytest.raises(UnreadableFileError, match=r"packed\.npz"):
        load_layers(packed)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK but not really a zip")
    with pytest.raises(UnreadableFileError, match=r"not an \.npz archive .*np\.savez"):
        load_layers(junk)


def test_object_npz_is_refused_naming_the_safe_formats(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, layer=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(
        UnreadableFileError,
        match=r"obj\.npz.*object array \(pickled Python objects\) is pickle-based.*\.safetensors, HDF5",
    ):
        load_layers(path)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl"])
def test_load_layers_never_unpickles(tmp_path, suffix, monkeypatch):
    import pickle

    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"h": [1.0, 2.0]}))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    with pytest.raises(UnreadableFileError, match=r"pickle-based"):
        load_layers(path)


def _safetensors_bytes(tmp_path, arrays):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "tmp.safetensors"
    safetensors_numpy.save_file(arrays, str(path))
    return path.read_bytes()


def test_safetensors_bad_headers_name_the_file(tmp_path):
    raw = _safetensors_bytes(tmp_path, {"x": np.ones((20, 3))})
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    cases = {
        "oversized": struct.pack("<Q", 10**12) + raw[8:],
        "malformed": raw[:8] + b"[" + b"x" * (hlen - 1) + raw[8 + hlen :],
        "truncated": raw[: 8 + hlen + 20],
    }
    header["x"]["data_offsets"] = [0, 10**9]  # points far beyond the data
    lying = json.dumps(header).encode()
    cases["offsets"] = struct.pack("<Q", len(lying)) + lying + raw[8 + hlen :]
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        for call in (
            lambda: open_layers(path),
            lambda: load_layers(path),
            lambda: stream_layers(path),
        ):
            with pytest.raises(UnreadableFileError, match=re.escape(str(path))) as info:
                call()
            assert info.value.path == str(path), name
            assert "SafetensorError" in str(info.value), name


def test_hdf5_and_zarr_errors_name_the_file(tmp_path):
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(b"this is not HDF5" * 10)
    with pytest.raises(UnreadableFileError, match=r"junk\.h5.*not a readable HDF5 file: OSError"):
        load_layers(h5)
    zarr = pytest.importorskip("zarr")
    store = tmp_path / "g.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("x", shape=(20, 3), dtype="f8")[:] = np.ones((20, 3))
    (store / "zarr.json").write_text("{not json")
    with pytest.raises(UnreadableFileError, match=r"g\.zarr.*not a readable zarr"):
        load_layers(store)


def test_a_read_that_fails_midway_names_the_file():
    class Flaky:
        shape, dtype = (100, 3), np.dtype("float64")

        def __getitem__(self, rows):
            if rows.start >= 50:
                raise OSError("Can't read data (inflate() failed)")
            return np.ones((rows.stop - rows.start, 3))

    src = RowSource(Flaky(), "acts.h5::x", path="acts.h5")
    with pytest.raises(
        UnreadableFileError,
        match=r"'acts\.h5': reading rows 50:75 of acts\.h5::x: OSError: Can't read data",
    ) as info:
        list(src.blocks(25))
    assert info.value.path == "acts.h5"
    # an in-memory source has no file to name: its error passes through unchanged
    bare = RowSource(Flaky(), "flaky")
    with pytest.raises(OSError, match=r"inflate"):
        bare.read(60, 70)


def test_unknown_keys_list_close_names(tmp_path, layers):
    for k, v in layers.items():
        np.save(tmp_path / f"{k}.npy", v)
    with pytest.raises(
        LayerNotFoundError, match=r"no layer named 'h4' in folder .*did you mean"
    ) as info:
        open_layers(tmp_path, ["h1", "h4"])
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(LayerNotFoundError, match=r"'hidden1'"):
        open_source(tmp_path / "h1.npy", key="hidden1")


# --------------------------------------------------------------------------- read-only sources


def test_read_only_arrays_and_memmaps_are_never_written(tmp_path, layers):
    ro = {k: v.copy() for k, v in layers.items()}
    for v in ro.values():
        v.flags.writeable = False  # any write raises
    _check(stream_layers(ro, batch_size=64), _want(layers))
    for k, v in layers.items():
        np.save(tmp_path / f"{k}.npy", v)
    before = {k: (tmp_path / f"{k}.npy").read_bytes() for k in layers}
    maps = {k: np.load(tmp_path / f"{k}.npy", mmap_mode="r") for k in layers}
    _check(stream_layers(maps, batch_size=64), _want(layers))
    _check(stream_layers(tmp_path, batch_size=64, debiased=True), _want(layers, debiased=True))
    assert {k: (tmp_path / f"{k}.npy").read_bytes() for k in layers} == before
    mapped = load_layers(tmp_path)  # .npy comes back as a read-only view of the map, no copy
    assert all(not v.flags.writeable and not v.flags.owndata for v in mapped.values())
    assert all(np.array_equal(mapped[k], layers[k]) for k in layers)


def test_streaming_safetensors_copies_one_block_at_a_time(tmp_path):
    import tracemalloc

    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(3)
    rows, p = 20_000, 100  # 16 MB per tensor
    path = tmp_path / "big.safetensors"
    safetensors_numpy.save_file(
        {"a": rng.standard_normal((rows, p)), "b": rng.standard_normal((rows, p))}, str(path)
    )
    tracemalloc.start()
    try:
        res = stream_layers(path, batch_size=1000, prefetch=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one = rows * p * 8  # a full copy of either tensor would need this much
    assert peak < one / 2, f"peak {peak / 2**20:.1f} MiB while streaming 2 x {one / 2**20:.0f} MiB"
    assert res.values.shape == (2, 2) and abs(res["a", "b"]) < 0.01


# --------------------------------------------------------------------------- memory


_NPY_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from congruence.io import stream_layers

    def hwm_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    stream_layers({"x": np.ones((10, 4))}, batch_size=5)  # warm-up
    base = hwm_kib()
    res = stream_layers({"a": sys.argv[1]}, {"b": sys.argv[2]}, batch_size=4096)
    print(hwm_kib() - base, res.values[0, 0])
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_npy_memmap_pages_are_released(tmp_path):
    rows, p = 120_000, 128  # 117 MiB per file
    for name, seed in (("a", 0), ("b", 1)):
        out = np.lib.format.open_memmap(
            tmp_path / f"{name}.npy", mode="w+", dtype=np.float64, shape=(rows, p)
        )
        rng = np.random.default_rng(seed)
        for s in range(0, rows, 40_000):
            out[s : s + 40_000] = rng.random((40_000, p))
        out.flush()
        del out
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _NPY_CHILD, str(tmp_path / "a.npy"), str(tmp_path / "b.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    grown_kib, value = out.stdout.split()
    grown_mib = int(grown_kib) / 1024
    assert grown_mib < 50, f"resident memory grew by {grown_mib:.1f} MiB reading 234 MiB of .npy"
    assert 0.0 <= float(value) < 0.05  # independent uniform noise


# --------------------------------------------------------------------------- docs


def test_doctests():
    module = importlib.import_module("congruence.io")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_non_real_data_in_files_and_arrays_is_an_input_type_error(tmp_path):
    # the class compare_layers raises (a TypeError and a ValueError), also from the readers
    X = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "c.npy", X.astype(complex))
    with pytest.raises(cg.InputTypeError, match="complex128; expected real numbers"):
        cg.open_layers(tmp_path / "c.npy")
    with pytest.raises(cg.InputTypeError, match=r"a\['c'\] has dtype complex128"):
        cg.stream_layers({"c": X.astype(complex)}, progress=False)
    with pytest.raises(cg.InputTypeError, match="expected real numbers"):
        cg.stream_layers({"s": X.astype(str)}, progress=False)
