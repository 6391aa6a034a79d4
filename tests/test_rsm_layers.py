"""The per-layer contract of the RSM family: layer matrices equal the pairwise calls, every
layer is prepared once, degenerate layers are warned about once by name, reindexed
preparations equal fresh ones, and the permutation fast path of ``rsa`` equals its definition."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence import _core
from congruence.measures import rsm as rsm_module

RSM_MEASURES = cg.list_measures(family="rsm")
CASES = [
    pytest.param(name, params, id=name + "-" + ",".join(f"{k}={v}" for k, v in params.items()))
    for name in RSM_MEASURES
    for params in cg.get_measure(name).variants
]


def _layers(n: int, wide: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Layers of different widths (all at least ``n`` wide for measures that need it)."""
    rng = np.random.default_rng(seed)
    extra = n if wide else 0
    h1 = rng.standard_normal((n, 5 + extra))
    h2 = np.tanh(h1 @ rng.standard_normal((h1.shape[1], 7 + extra)))
    h3 = np.maximum(h2, 0.0) + 0.1 * rng.standard_normal(h2.shape)
    return {"h1": h1, "h2": h2, "h3": h3}


def _loop(f, a, b, params):
    return np.array([[f(x, y, **params) for y in b.values()] for x in a.values()])


def _close(got, want, tol=1e-10):
    scale = max(1.0, float(np.nanmax(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def test_the_family_is_complete():
    assert set(RSM_MEASURES) == {
        "rsa",
        "rsm_norm_diff",
        "distance_correlation",
        "eigenspace_overlap",
        "gulp",
        "normalized_bures",
        "riemannian_distance",
    }
    for name in RSM_MEASURES:
        layers = cg.get_measure(name).layers
        assert layers.prepare is not None and layers.pair is not None, name
        assert layers.reindex is not None, name


@pytest.mark.parametrize("name, params", CASES)
def test_layer_matrices_equal_the_pairwise_calls(name, params):
    m = cg.get_measure(name)
    f = getattr(cg, name)
    a = _layers(30, m.wide, seed=1)
    b = _layers(30, m.wide, seed=2)
    b["h4"] = b["h1"][:, ::-1] ** 3
    res = cg.compare_layers(a, b, measure=name, progress=False, **params)
    _close(res.values, _loop(f, a, b, params))
    self_ = cg.compare_layers(a, measure=name, progress=False, **params)
    assert np.array_equal(self_.values, self_.values.T)
    _close(self_.values, _loop(f, a, a, params))


def test_each_layer_is_prepared_once():
    calls = []
    m = cg.get_measure("rsa")
    real = m.layers

    def counting(x, **kw):
        calls.append(kw["name"])
        return real.prepare(x, **kw)

    # The record is frozen: swap its contract for the duration of the test.
    object.__setattr__(m, "layers", dataclasses.replace(real, prepare=counting))
    try:
        a = _layers(20, False)
        cg.compare_layers(a, a, measure="rsa", progress=False)
    finally:
        object.__setattr__(m, "layers", real)
    assert sorted(calls) == sorted([f"a[{k!r}]" for k in a] + [f"b[{k!r}]" for k in a])


@pytest.mark.parametrize(
    "name, params",
    [
        ("rsa", {}),
        ("rsa", {"rsm": "euclidean", "compare": "kendall_tau_a"}),
        ("distance_correlation", {}),
        ("gulp", {}),
        ("normalized_bures", {}),
    ],
)
def test_a_degenerate_layer_is_warned_about_once_by_name(name, params):
    a = _layers(25, False)
    a["flat"] = np.ones((25, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cg.compare_layers(a, measure=name, progress=False, **params)
    mine = [str(w.message) for w in caught if issubclass(w.category, cg.DegenerateDataWarning)]
    assert len(mine) == 1 and "a['flat']" in mine[0], mine
    assert np.isnan(res.values[3]).all() and np.isnan(res.values[:, 3]).all()
    assert np.isfinite(res.values[:3, :3]).all()


def test_a_constant_rsm_triangle_is_warned_about_by_name():
    # The unit vectors of R^3 are all exactly sqrt(2) apart: a constant triangle.
    a = {"tri": np.eye(3), "line": np.array([[0.0], [1.0], [3.0]])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cg.compare_layers(a, measure="rsa", rsm="euclidean", progress=False)
    msgs = [str(w.message) for w in caught if issubclass(w.category, cg.DegenerateDataWarning)]
    assert len(msgs) == 1 and "a['tri']" in msgs[0] and "constant" in msgs[0]
    assert np.isnan(res.values[0]).all() and res.values[1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("name, params", CASES)
def test_reindex_equals_preparing_the_permuted_rows(name, params):
    m = cg.get_measure(name)
    f = getattr(cg, name)
    a = _layers(24, m.wide, seed=3)
    X, Y = a["h1"], a["h3"]
    rng = np.random.default_rng(4)
    perm = rng.permutation(X.shape[0])
    px = m.prepare(X, name="X", **params)
    py = m.prepare(Y, name="Y", **params)
    moved = m.reindex(py, perm, **params)
    _close(m.pair(px, moved, **params), f(X, Y[perm], **params), 1e-12)
    # ... and for a resample with repeated rows (a bootstrap), a fresh preparation.
    boot = rng.integers(0, X.shape[0], X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cg.DegenerateDataWarning)
        got = m.pair(m.reindex(px, boot, **params), m.reindex(py, boot, **params), **params)
        want = f(X[boot], Y[boot], **params)
    if math.isnan(want):
        assert math.isnan(got)
    else:
        _close(got, want, 1e-12)


def test_rsa_reindex_gathers_the_ranked_triangle():
    """For Spearman the ranks of the permuted triangle are the gathered ranks: the prepared
    triangle of the permuted rows, computed afresh, is the gathered one."""
    a = _layers(40, False, seed=5)
    m = cg.get_measure("rsa")
    perm = np.random.default_rng(6).permutation(40)
    for params in m.variants:
        p = m.prepare(a["h2"], **params)
        fresh = m.prepare(a["h2"][perm], **params)
        np.testing.assert_allclose(m.reindex(p, perm, **params).data, fresh.data, atol=1e-15)


@pytest.mark.parametrize("params", cg.get_measure("rsa").variants)
def test_rsa_permuted_is_pair_of_reindex(params):
    m = cg.get_measure("rsa")
    a = _layers(300, False, seed=7)  # 44850 entries: two groups of the core's reduction
    X, Y = a["h1"], a["h3"]
    rng = np.random.default_rng(8)
    perms = np.array([rng.permutation(300) for _ in range(4)])
    px, py = m.prepare(X, **params), m.prepare(Y, **params)
    got = m.permuted(px, py, perms, **params)
    want = np.array([m.pair(px, m.reindex(py, p, **params), **params) for p in perms])
    assert np.array_equal(got, want)
    _close(got, [cg.rsa(X, Y[p], **params) for p in perms], 1e-12)


def test_permuted_dots_refuses_rows_that_are_not_permutations():
    z = np.zeros(6)
    with pytest.raises(ValueError, match="perms"):
        _core.permuted_dots(z, z, 4, np.array([[0, 1, 2, 2]]))
    with pytest.raises(ValueError, match="perms"):
        _core.permuted_dots(z, z, 4, np.array([[0, 1, 2]]))


def test_layer_cross_is_a_product_of_the_stacked_vectors():
    rng = np.random.default_rng(9)
    a = [rng.standard_normal(70001) for _ in range(5)]
    b = [rng.standard_normal(70001) for _ in range(3)]
    A, B = np.array(a), np.array(b)
    np.testing.assert_allclose(_core.layer_cross(a, b, True), A @ B.T, rtol=1e-12, atol=1e-9)
    sq = ((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(_core.layer_cross(a, b, False), sq, rtol=1e-12)
    with pytest.raises(ValueError, match="same number of rows"):
        _core.layer_cross(a, [b[0][:10]], True)


@pytest.mark.parametrize("name", ["rsa", "distance_correlation", "rsm_norm_diff"])
def test_caches_that_do_not_fit_fall_back_to_recomputing(name, monkeypatch):
    a = _layers(30, False, seed=10)
    want = cg.compare_layers(a, measure=name, progress=False).values
    monkeypatch.setattr(rsm_module, "_fits", lambda nbytes, what: False)
    m = cg.get_measure(name)
    assert m.prepare(a["h1"]).lazy
    got = cg.compare_layers(a, measure=name, progress=False).values
    _close(got, want, 1e-12)
    if name == "rsa":
        px, py = m.prepare(a["h1"]), m.prepare(a["h2"])
        perms = np.array([np.random.default_rng(11).permutation(30)])
        _close(m.permuted(px, py, perms), [cg.rsa(a["h1"], a["h2"][perms[0]])], 1e-12)


def test_rsm_norm_diff_layers_at_different_scales():
    a = _layers(20, False, seed=12)
    a["huge"] = a["h1"] * 2.0**700
    b = {"small": a["h2"], "huge2": a["h3"] * 2.0**690}
    for norm in ("fro", "spectral"):
        got = cg.compare_layers(a, b, measure="rsm_norm_diff", norm=norm, progress=False).values
        want = _loop(cg.rsm_norm_diff, a, b, {"norm": norm})
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isfinite(got).all()


_THREADS_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import congruence as cg
    rng = np.random.default_rng(0)
    a = {str(i): rng.standard_normal((260, 6 + i)) for i in range(3)}
    out = []
    for name, kw in [("rsa", {}), ("rsa", {"rsm": "euclidean", "compare": "pearson"}),
                     ("distance_correlation", {}), ("rsm_norm_diff", {})]:
        out.extend(cg.compare_layers(a, measure=name, progress=False, **kw).values.ravel())
    m = cg.get_measure("rsa")
    perms = np.array([rng.permutation(260) for _ in range(5)])
    out.extend(m.permuted(m.prepare(a["0"]), m.prepare(a["1"]), perms))
    print(json.dumps([repr(float(v)) for v in out]))
    """
)


def test_results_do_not_depend_on_the_thread_count():
    runs = []
    for k in (1, 2):
        env = dict(os.environ, RAYON_NUM_THREADS=str(k))
        res = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1]


def test_ctrl_c_stops_the_permutation_fast_path(default_sigint):
    rng = np.random.default_rng(13)
    n = 2000
    z = rng.standard_normal(n * (n - 1) // 2)
    perms = np.array([rng.permutation(n) for _ in range(3000)])  # many seconds of work
    sent = {}

    def kill():
        sent["t"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.5, kill)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _core.permuted_dots(z, z, n, perms)
            time.sleep(5)  # only reached if the call ended before the signal
        caught = time.monotonic()
    finally:
        timer.join()
    assert caught - sent["t"] < 1.0
