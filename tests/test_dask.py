"""Dask reduction of the exact accumulators, on a local cluster of two worker processes."""

from __future__ import annotations

import doctest
import importlib
import sys

import numpy as np
import pytest

import congruence as cg
from congruence.distributed import dask_compare_layers

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",  # a free port: no clash with a dashboard already running
        silence_logs=40,
        worker_class=distributed.Nanny,
    )
    c = distributed.Client(cluster, timeout="30s")
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        c.close(timeout=10)
        cluster.close(timeout=10)


def _models(n=600, seed=0):
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((n, 7)) + 40.0
    h2 = np.tanh((h1 - 40.0) @ rng.standard_normal((7, 5))) + 0.3 * rng.standard_normal((n, 5))
    g1 = h2 @ rng.standard_normal((5, 3)) + rng.standard_normal((n, 3))
    g2 = rng.standard_normal((n, 4))
    return {"h1": h1, "h2": h2}, {"g1": g1, "g2": g2}


def _key(task) -> str:
    key = task["key"]
    return key if isinstance(key, str) else str(key[0])


def _close(res, want):
    assert (res.measure, res.rows, res.cols) == (want.measure, want.rows, want.cols)
    assert dict(res.params) == dict(want.params)
    scale = max(1.0, float(np.abs(want.values).max()))
    np.testing.assert_allclose(res.values, want.values, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize(
    "measure,params", [("cka", {}), ("cka", {"debiased": True}), ("hsic", {"unbiased": True})]
)
def test_dask_equals_in_memory(client, measure, params):
    a, b = _models()
    # ragged, different row chunks per layer (re-chunked to the first layer's) and one row alone
    chunks = (1, 150, 149, 300)
    da_a = {
        "h1": da.from_array(a["h1"], chunks=(chunks, 7)),
        "h2": da.from_array(a["h2"], chunks=(200, 5)),
    }
    da_b = {"g1": da.from_array(b["g1"], chunks=(97, 3)), "g2": b["g2"]}  # numpy is wrapped
    with distributed.get_task_stream(client) as ts:
        res = dask_compare_layers(da_a, da_b, measure, split_every=2, **params)
    partial = [t for t in ts.data if _key(t).startswith("_partial")]
    assert len(partial) == 4  # one task per row chunk
    assert {t["worker"] for t in partial} <= set(client.scheduler_info()["workers"])
    _close(res, cg.compare_layers(a, b, measure, **params))
    self_res = dask_compare_layers(da_a, None, measure, **params)
    _close(self_res, cg.compare_layers(a, None, measure, **params))


def test_dask_float32_lazy_and_list(client):
    a, _ = _models(400, seed=3)
    x32 = [da.from_array(v.astype(np.float32), chunks=(64, -1)) for v in a.values()]
    delayed = dask_compare_layers(x32, compute=False, debiased=True)
    res = delayed.compute()
    want = cg.compare_layers(
        [v.astype(np.float32).astype(np.float64) for v in a.values()], debiased=True
    )
    assert res.rows == ("0", "1")
    np.testing.assert_allclose(res.values, want.values, rtol=0, atol=1e-10)


def test_dask_errors(client):
    a, b = _models(50)
    x = da.from_array(a["h1"], chunks=(10, 7))
    with pytest.raises(ValueError, match=r"b\['g'\] has shape \(49, 3\) but a\['x'\] has 50 rows"):
        dask_compare_layers({"x": x}, {"g": b["g1"][:-1]})
    with pytest.raises(ValueError, match=r"a\['x'\] has shape \(50, 7, 1\) \(3-D\); expected 2-D"):
        dask_compare_layers({"x": x[:, :, None]})
    with pytest.raises(ValueError, match=r"kernel='rbf' cannot be accumulated"):
        dask_compare_layers({"x": x}, kernel="rbf")
    with pytest.raises(
        ValueError, match=r"split_every=1 is out of range; expected a value in \[2, inf\)"
    ):
        dask_compare_layers({"x": x}, split_every=1)
    with pytest.raises(ValueError, match=r"a must map layer names to \(n, p\) dask arrays"):
        dask_compare_layers(x)
    with pytest.raises(ValueError, match=r"a\['s'\] has dtype <U1; expected real numbers"):
        dask_compare_layers({"s": da.from_array(np.array([["a"], ["b"]]))})


def test_dask_missing_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"pip install 'congruence\[dask\]'"):
        dask_compare_layers({"x": np.ones((4, 2))})


def test_doctests(client):
    module = importlib.import_module("congruence.streaming.dask")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
