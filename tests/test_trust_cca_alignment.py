"""Never a silently wrong number: the CCA and alignment families on the data real activations
bring (dead units, identical rows, over-fitting, extreme magnitudes, float32), regularisation
(``epsilon``), LAPACK failures, Ctrl-C and the memory pre-flight.

Expected values come from the slow references (``reference_cca.py``,
``reference_alignment.py``, written from the definitions) or from identities: invariance to
isotropic scaling, homogeneity of the unnormalised distances, and the limits of the partial
whitening of the angular shape metric.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.linalg

import congruence as cg
import congruence._memory as memory
from congruence import DegenerateDataWarning

sys.path.insert(0, os.path.dirname(__file__))
from reference_alignment import (  # noqa: E402
    ref_angular_shape_metric,
    ref_linear_regression,
    ref_linear_regression_ridge,
    ref_orthogonal_procrustes,
)
from reference_cca import ref_cca, ref_pwcca, ref_svcca  # noqa: E402

CCA_FAMILY = ("cca", "svcca", "pwcca")
ALIGNMENT = (
    "orthogonal_procrustes",
    "procrustes_size_and_shape",
    "angular_shape_metric",
    "permutation_procrustes",
    "linear_regression",
    "aligned_cosine",
    "correlation_match",
)


def _pair(n=80, p1=6, p2=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) @ rng.standard_normal((p1, p1)) + rng.uniform(-3, 3, p1)
    Y = np.tanh(X @ rng.standard_normal((p1, p2)) / math.sqrt(p1))
    Y = Y + 0.4 * rng.standard_normal((n, p2)) - 1.0
    return X, Y


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        return f(*args, **kwargs)


def _no_warning(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        return f(*args, **kwargs)


def _close(got, want, tol, what=""):
    assert isinstance(got, float), f"{what}: {type(got).__name__}"
    assert abs(got - want) <= tol * max(1.0, abs(want)), (
        f"{what}: got {got!r}, want {want!r}, diff {abs(got - want):.3g}"
    )


# ---------------------------------------------------------------------------------------------
# Dead units (constant columns)
# ---------------------------------------------------------------------------------------------


def _with_dead(X, cols, values):
    Z = X.copy()
    for c, v in zip(cols, values):
        Z[:, c] = v
    return Z


@pytest.mark.parametrize("measure", ["cca", "pwcca"])
def test_dead_units_dropped_with_one_warning(measure):
    X, Y = _pair(seed=1)
    # Two dead units in X (one of them 0.1 repeated, whose computed variance is not 0), one in Y.
    Xd = _with_dead(X, [1, 4], [0.0, 0.1])
    Yd = _with_dead(Y, [2], [3.3])
    f = getattr(cg, measure)
    ref = ref_cca if measure == "cca" else ref_pwcca
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = f(Xd, Yd)
    dead = [w for w in caught if issubclass(w.category, DegenerateDataWarning)]
    assert len(dead) == 1, [str(w.message) for w in caught]
    msg = str(dead[0].message)
    assert "X has 2 constant columns of 6" in msg and "Y has 1 constant column of 4" in msg
    assert measure in msg
    _close(got, ref(np.delete(X, [1, 4], axis=1), np.delete(Y, [2], axis=1)), 1e-10)


def test_dead_units_in_svcca_and_linear_regression():
    X, Y = _pair(seed=2)
    Xd = _with_dead(X, [0], [-2.5])
    with pytest.warns(DegenerateDataWarning, match=r"X has 1 constant column of 6.*svcca drops"):
        got = cg.svcca(Xd, Y, variance=1.0)
    _close(got, ref_svcca(np.delete(X, [0], axis=1), Y, 1.0), 1e-9)
    with pytest.warns(DegenerateDataWarning, match=r"Y \(the predictor\) has 1 constant column"):
        got = cg.linear_regression(Y, Xd)
    _close(got, ref_linear_regression(Y, np.delete(X, [0], axis=1)), 1e-10)
    # A dead unit in the target is an ordinary zero-variance column: no warning, same value.
    Yd = _with_dead(Y, [1], [0.0])
    _close(_no_warning(cg.linear_regression, Yd, X), ref_linear_regression(Yd, X), 1e-10)


def test_dead_units_make_the_width_fit():
    """The p <= n - 1 requirement applies to the kept columns."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 12))
    X[:, 5:] = 1.0  # 7 dead units: 5 live columns
    Y = rng.standard_normal((10, 3))
    with pytest.warns(DegenerateDataWarning, match="7 constant columns of 12"):
        _close(cg.cca(X, Y), ref_cca(X[:, :5], Y), 1e-10)


@pytest.mark.parametrize("measure", ["cca", "pwcca", "linear_regression"])
def test_compare_layers_with_a_dead_relu_unit(measure):
    """Real ReLU layers have dead units: the layer matrix is computed, with a warning."""
    rng = np.random.default_rng(4)
    h1 = rng.standard_normal((120, 6))
    h2 = np.maximum(h1 @ rng.standard_normal((6, 8)), 0.0)
    h2[:, 3] = 0.0  # a dead ReLU unit
    h3 = np.maximum(h2 @ rng.standard_normal((8, 5)) + 0.5, 0.0)
    layers = {"h1": h1, "h2": h2, "h3": h3}
    with pytest.warns(DegenerateDataWarning, match=r"a\['h2'\]"):  # named by the layer's name
        res = cg.compare_layers(layers, None, measure)
    assert np.all(np.isfinite(res.values))
    f = getattr(cg, measure)
    want = np.array([[_quiet(f, x, y) for y in layers.values()] for x in layers.values()])
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Identical rows (every column constant)
# ---------------------------------------------------------------------------------------------

NAN_FOR_IDENTICAL = [
    ("cca", {}),
    ("svcca", {}),
    ("pwcca", {}),
    ("orthogonal_procrustes", {}),
    ("angular_shape_metric", {}),
    ("angular_shape_metric", {"alpha": 0.5}),
]


@pytest.mark.parametrize("measure, params", NAN_FOR_IDENTICAL)
@pytest.mark.parametrize("const", [0.0, 0.7, -3.3e5])
def test_identical_rows_nan_with_warning(measure, params, const):
    _, Y = _pair(n=30, seed=5)
    C = np.full((30, 4), const)
    f = getattr(cg, measure)
    for args, name in (((C, Y), "X"), ((Y, C), "Y")):
        with pytest.warns(
            DegenerateDataWarning,
            match=rf"{name} has zero variance: every row "
            rf"is identical.*{measure}",
        ):
            assert math.isnan(f(*args, **params))


def test_identical_rows_linear_regression():
    _, Y = _pair(n=30, seed=6)
    C = np.full((30, 3), 2.0)
    with pytest.warns(DegenerateDataWarning, match=r"X \(the target\) has zero variance.*nan"):
        assert math.isnan(cg.linear_regression(C, Y))
    # A constant predictor explains nothing: the projector onto its column space {0} is 0.
    with pytest.warns(
        DegenerateDataWarning, match=r"Y \(the predictor\) has zero variance.*R\^2 = 0"
    ):
        assert cg.linear_regression(Y, C) == 0.0


def test_identical_rows_defined_values_with_warning():
    X, Y = _pair(n=30, p1=3, p2=3, seed=7)
    C = np.full((30, 3), 0.5)
    Yc = Y - Y.mean(axis=0)
    with pytest.warns(DegenerateDataWarning, match="procrustes_size_and_shape stays defined"):
        _close(cg.procrustes_size_and_shape(Y, C), float(np.linalg.norm(Yc)), 1e-12)
    # permutation Procrustes (no centring): the best matching of columns by the definition.
    with pytest.warns(DegenerateDataWarning, match="permutation_procrustes stays defined"):
        got = cg.permutation_procrustes(C, Y)
    assert math.isfinite(got) and got > 0
    with pytest.warns(DegenerateDataWarning, match="aligned_cosine stays defined"):
        assert math.isfinite(cg.aligned_cosine(C, Y))
    with pytest.warns(DegenerateDataWarning, match="correlation_match stays defined"):
        assert cg.correlation_match(C, Y) == 0.0
    with pytest.warns(DegenerateDataWarning, match=r"X is all zeros.*aligned_cosine is undefined"):
        assert math.isnan(cg.aligned_cosine(np.zeros((30, 3)), Y))
    Xh = np.zeros((30, 3))
    Xh[:15] = X[:15]
    Yh = np.zeros((30, 3))
    Yh[15:] = Y[15:]
    with pytest.warns(DegenerateDataWarning, match="no row where both"):
        assert math.isnan(cg.aligned_cosine(Xh, Yh))


def test_no_warning_on_ordinary_data():
    X, Y = _pair(seed=8)
    for name in CCA_FAMILY + ALIGNMENT:
        _no_warning(getattr(cg, name), X, Y)


def test_batch_identical_layer_warns_once():
    X, Y = _pair(n=30, seed=9)
    layers = [X, np.full((30, 2), 1.5), Y]
    for measure in ("cca", "orthogonal_procrustes"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = cg.compare_layers(layers, None, measure).values
        ours = [w for w in caught if issubclass(w.category, DegenerateDataWarning)]
        assert len(ours) == 1 and "zero variance" in str(ours[0].message), ours
        assert np.isnan(res[1]).all() and np.isnan(res[:, 1]).all()
        assert np.isfinite(np.delete(np.delete(res, 1, 0), 1, 1)).all()


# ---------------------------------------------------------------------------------------------
# Over-fitting: correlations that are 1 by construction
# ---------------------------------------------------------------------------------------------


def test_svcca_on_wide_noise_warns():
    """The reproducer: independent noise 500 x 2000 gave svcca 0.970 with no warning."""
    rng = np.random.default_rng(10)
    X = rng.standard_normal((500, 2000))
    Y = rng.standard_normal((500, 2000))
    with pytest.warns(DegenerateDataWarning, match=r"k_X \+ k_Y = .* > n - 1 = 499.*svcca"):
        value = cg.svcca(X, Y)
    assert value > 0.9  # the over-fitted value itself; the warning is what matters


@pytest.mark.parametrize("measure", ["cca", "pwcca"])
def test_cca_overfitting_warns(measure):
    X, Y = _pair(n=20, p1=12, p2=12, seed=11)
    with pytest.warns(
        DegenerateDataWarning,
        match=r"p1 \+ p2 = 12 \+ 12 = 24 > n - 1 = 19: "
        r"at least 5 canonical",
    ):
        getattr(cg, measure)(X, Y)
    _no_warning(getattr(cg, measure), X[:, :10], Y[:, :9])  # 19 = n - 1: no warning


# ---------------------------------------------------------------------------------------------
# epsilon (ridge) and svcca(statistic=)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1e-6, 0.01, 0.5])
@pytest.mark.parametrize("shape", [(60, 5, 3), (40, 4, 4), (30, 7, 9)])
def test_epsilon_matches_reference(epsilon, shape):
    X, Y = _pair(*shape, seed=12)
    for statistic in ("mean", "r2"):
        _close(
            cg.cca(X, Y, statistic=statistic, epsilon=epsilon),
            ref_cca(X, Y, statistic, epsilon),
            1e-10,
            f"cca {statistic}",
        )
    _close(cg.pwcca(X, Y, epsilon=epsilon), ref_pwcca(X, Y, epsilon), 1e-9, "pwcca")
    _close(cg.pwcca(Y, X, epsilon=epsilon), ref_pwcca(Y, X, epsilon), 1e-9, "pwcca reversed")
    for variance in (0.5, 1.0):
        for statistic in ("mean", "r2"):
            _close(
                cg.svcca(X, Y, variance=variance, statistic=statistic, epsilon=epsilon),
                ref_svcca(X, Y, variance, statistic, epsilon),
                1e-9,
                "svcca",
            )
    _close(
        cg.linear_regression(X, Y, epsilon=epsilon),
        ref_linear_regression_ridge(X, Y, epsilon),
        1e-10,
        "linear_regression",
    )


def test_epsilon_allows_collinear_and_wide_inputs():
    X, Y = _pair(n=30, p1=5, p2=4, seed=13)
    dup = np.hstack([X, X[:, :2] * 2.0 + 1.0])  # collinear after centring
    with pytest.raises(ValueError, match="full column rank.*epsilon"):
        cg.cca(dup, Y)
    _close(cg.cca(dup, Y, epsilon=1e-3), ref_cca(dup, Y, "mean", 1e-3), 1e-10)
    _close(cg.pwcca(dup, Y, epsilon=1e-3), ref_pwcca(dup, Y, 1e-3), 1e-9)
    _close(
        cg.linear_regression(Y, dup, epsilon=1e-3), ref_linear_regression_ridge(Y, dup, 1e-3), 1e-10
    )
    wide = np.random.default_rng(14).standard_normal((30, 40))
    with pytest.raises(ValueError, match="p <= n-1"):
        cg.cca(wide, Y)
    with pytest.warns(DegenerateDataWarning, match="over-fitting"):
        _close(cg.cca(wide, Y, epsilon=0.1), ref_cca(wide, Y, "mean", 0.1), 1e-10)
    _close(
        cg.linear_regression(Y, wide, epsilon=0.1), ref_linear_regression_ridge(Y, wide, 0.1), 1e-10
    )
    with pytest.raises(ValueError, match="narrower representation"):
        _quiet(cg.pwcca, wide, np.random.default_rng(15).standard_normal((30, 35)), epsilon=0.1)


def test_epsilon_zero_is_the_unregularised_measure():
    X, Y = _pair(seed=16)
    for name in ("cca", "svcca", "pwcca", "linear_regression"):
        f = getattr(cg, name)
        assert f(X, Y, epsilon=0.0) == f(X, Y) == f(X, Y, epsilon=0)


@pytest.mark.parametrize("bad", [-1e-3, math.nan, math.inf, "0.1", None, True])
@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca", "linear_regression"])
def test_epsilon_validated(name, bad):
    X, Y = _pair(seed=17)
    with pytest.raises(ValueError, match="epsilon="):
        getattr(cg, name)(X, Y, epsilon=bad)
    with pytest.raises(ValueError, match="epsilon="):
        cg.compare_layers([X, Y], None, name, epsilon=bad)


def test_epsilon_in_compare_layers_and_registry():
    X, Y = _pair(seed=18)
    layers = [X, Y, np.tanh(X)]
    for name in ("cca", "svcca", "pwcca", "linear_regression"):
        m = cg.get_measure(name)
        assert m.params["epsilon"] == 0.0
        assert any(v.get("epsilon", 0) > 0 for v in m.variants)
        res = cg.compare_layers(layers, None, name, epsilon=0.05).values
        want = np.array([[getattr(cg, name)(a, b, epsilon=0.05) for b in layers] for a in layers])
        np.testing.assert_allclose(res, want, rtol=0, atol=1e-10)
    assert "invertible_linear" not in cg.get_measure("cca").invariances(epsilon=0.1)
    assert "orthogonal" not in cg.get_measure("linear_regression").invariances(epsilon=0.1)


def test_svcca_statistic_r2():
    X, Y = _pair(seed=19)
    _close(cg.svcca(X, Y, statistic="r2"), ref_svcca(X, Y, 0.99, "r2"), 1e-10)
    with pytest.raises(ValueError, match="statistic='max' is invalid"):
        cg.svcca(X, Y, statistic="max")
    res = cg.compare_layers([X, Y], None, "svcca", statistic="r2").values
    _close(float(res[0, 1]), cg.svcca(X, Y, statistic="r2"), 1e-12)


def test_pwcca_docstring_documents_the_centring_departure():
    doc = cg.pwcca.__doc__
    assert "google/svcca" in doc and "centres the activations throughout" in doc


# ---------------------------------------------------------------------------------------------
# Magnitude (float64 1e-300..1e300, float32 1e-30..1e30)
# ---------------------------------------------------------------------------------------------

SCALE_INVARIANT = [
    ("cca", {}),
    ("cca", {"statistic": "r2"}),
    ("svcca", {}),
    ("pwcca", {}),
    ("cca", {"epsilon": 0.1}),
    ("svcca", {"epsilon": 0.1}),
    ("pwcca", {"epsilon": 0.1}),
    ("orthogonal_procrustes", {}),
    ("angular_shape_metric", {}),
    ("linear_regression", {}),
    ("linear_regression", {"epsilon": 0.1}),
    ("aligned_cosine", {}),
    ("correlation_match", {}),
    ("correlation_match", {"soft": True}),
]
HOMOGENEOUS = [("procrustes_size_and_shape", {}), ("permutation_procrustes", {})]
F64_SCALES = [1e-300, 1e-200, 1e-100, 1e100, 1e200, 1e300]
F32_SCALES = [1e-30, 1e-15, 1e15, 1e30]


@pytest.mark.parametrize("measure, params", SCALE_INVARIANT)
@pytest.mark.parametrize("scale", F64_SCALES)
def test_scale_invariant_measures_at_any_magnitude(measure, params, scale):
    X, Y = _pair(n=50, p1=5, p2=4, seed=20)
    f = getattr(cg, measure)
    base = f(X, Y, **params)
    _close(f(scale * X, Y, **params), base, 1e-10, "X scaled")
    _close(f(X, scale * Y, **params), base, 1e-10, "Y scaled")
    _close(f(scale * X, scale * Y, **params), base, 1e-10, "both scaled")


@pytest.mark.parametrize("measure, params", HOMOGENEOUS)
@pytest.mark.parametrize("scale", F64_SCALES)
def test_homogeneous_distances_at_any_magnitude(measure, params, scale):
    X, Y = _pair(n=50, p1=5, p2=4, seed=21)
    f = getattr(cg, measure)
    _close(f(scale * X, scale * Y, **params) / scale, f(X, Y, **params), 1e-10)


def test_procrustes_rotation_reproducer_at_1e200():
    """The reproducer: orthogonal_procrustes(X, X @ R) at 1e200 returned 0.0."""
    rng = np.random.default_rng(22)
    X = rng.standard_normal((100, 10))
    R = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    Y = np.tanh(X @ R) + 0.5 * rng.standard_normal((100, 10))
    want = ref_orthogonal_procrustes(X, Y)
    assert want > 0.1
    _close(cg.orthogonal_procrustes(1e200 * X, 1e200 * Y), want, 1e-10)
    _close(cg.orthogonal_procrustes(1e200 * X, 1e200 * X @ R), 0.0, 1e-6)


def test_overflowing_distance_is_inf_with_warning():
    rng = np.random.default_rng(23)
    X = 1e307 * rng.standard_normal((200, 20))
    Y = -X
    # ||Xc - Yc||_F = 2 ||Xc||_F ~ 2 * 1e307 * sqrt(4000): beyond float64.
    # The zero Y is also a constant representation: said by a second warning.
    with pytest.warns(DegenerateDataWarning, match="Y has zero variance.*stays defined"):
        with pytest.warns(DegenerateDataWarning, match="overflow.*inf"):
            assert cg.procrustes_size_and_shape(X, np.zeros((200, 20))) == math.inf
    with pytest.warns(DegenerateDataWarning, match="overflow"):
        assert cg.permutation_procrustes(X, Y) == math.inf
    # Still finite: computed without overflow although the squares are far beyond float64.
    # The reference scales by the largest entry first (NumPy's norm of the raw vector
    # overflows to inf, against which any value would pass).
    v = (X[:, :1] - X[:, :1].mean()) * 1e-3
    big = float(np.max(np.abs(v)))
    want = big * float(np.linalg.norm(v / big))
    assert 1e300 < want < math.inf
    with pytest.warns(DegenerateDataWarning, match="Y has zero variance.*stays defined"):
        _close(cg.procrustes_size_and_shape(X[:, :1] * 1e-3, X[:, :1] * 0.0), want, 1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_angular_partial_whitening_limits(alpha):
    """For alpha < 1 the metric is not scale invariant (absolute clip of 1e-7). Far above the
    clip the whitening weights tend to alpha s_i (alpha > 0) or stay 1 (alpha = 0), far below
    it they are all proportional to s_i: identities that hold at any magnitude."""
    X, Y = _pair(n=50, p1=5, p2=4, seed=24)
    no_whitening = cg.angular_shape_metric(X, Y, alpha=1.0)
    big = cg.angular_shape_metric(X, Y, alpha=0.0) if alpha == 0.0 else no_whitening
    for scale in (1e100, 1e200, 1e300):
        _close(cg.angular_shape_metric(scale * X, scale * Y, alpha=alpha), big, 1e-10)
    for scale in (1e-100, 1e-200, 1e-300):
        _close(cg.angular_shape_metric(scale * X, scale * Y, alpha=alpha), no_whitening, 1e-10)
    # At moderate scales: the reference written from the definition.
    for scale in (1e-3, 1.0, 1e3):
        _close(
            cg.angular_shape_metric(scale * X, scale * Y, alpha=alpha),
            ref_angular_shape_metric(scale * X, scale * Y, alpha),
            1e-9,
        )


@pytest.mark.parametrize("measure, params", SCALE_INVARIANT + HOMOGENEOUS)
@pytest.mark.parametrize("scale", F32_SCALES)
def test_float32_at_any_magnitude(measure, params, scale):
    """float32 inputs hold float32 values: the reference is the float64 computation on those
    values, related to unit scale by the invariance (or homogeneity) identity."""
    X, Y = _pair(n=50, p1=5, p2=4, seed=25)
    X32 = (scale * X).astype(np.float32)
    Y32 = (scale * Y).astype(np.float32)
    f = getattr(cg, measure)
    unit = f(X32.astype(np.float64) / scale, Y32.astype(np.float64) / scale, **params)
    got = f(X32, Y32, **params)
    if (measure, params) in HOMOGENEOUS:
        got /= scale
    _close(got, unit, 1e-9)


def test_float32_near_its_largest_value():
    X, Y = _pair(n=50, p1=5, p2=4, seed=26)
    X32 = (X / np.abs(X).max() * 3.0e38).astype(np.float32)
    X64 = X32.astype(np.float64)
    for name in CCA_FAMILY + ALIGNMENT:
        f = getattr(cg, name)
        _close(
            f(X32, Y),
            f(X64 / 1e38, Y) if name not in dict(HOMOGENEOUS) else f(X64 / 1e38, Y / 1e38) * 1e38,
            1e-9,
            name,
        )


# ---------------------------------------------------------------------------------------------
# LAPACK non-convergence
# ---------------------------------------------------------------------------------------------


def _failing_svd(calls):
    def svd(*args, **kwargs):
        calls.append("gesdd")
        raise np.linalg.LinAlgError("SVD did not converge")

    return svd


def test_svd_retries_with_gesvd(monkeypatch):
    X, Y = _pair(seed=27)
    names = ("cca", "svcca", "pwcca", "orthogonal_procrustes", "aligned_cosine")
    want = {name: getattr(cg, name)(X, Y) for name in names}
    calls = []
    real = scipy.linalg.svd

    def gesvd(a, *args, lapack_driver="gesdd", **kwargs):
        calls.append(lapack_driver)
        return real(a, *args, lapack_driver=lapack_driver, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", _failing_svd(calls))
    monkeypatch.setattr(scipy.linalg, "svd", gesvd)
    for name in names:
        calls.clear()
        _close(getattr(cg, name)(X, Y), want[name], 1e-12, name)
        assert calls[:2] == ["gesdd", "gesvd"], (name, calls)


def test_svd_failing_twice_raises_with_context(monkeypatch):
    X, Y = _pair(seed=28)

    def failing_gesvd(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", _failing_svd([]))
    monkeypatch.setattr(scipy.linalg, "svd", failing_gesvd)
    for name, pattern in (
        ("cca", r"cca: the whitened cross-covariance of X and Y of shape \(6, 4\)"),
        ("aligned_cosine", r"aligned_cosine: X\^T Y of shape \(6, 4\)"),
    ):
        with pytest.raises(np.linalg.LinAlgError, match=pattern + r".*gesdd.*gesvd"):
            getattr(cg, name)(X, Y)


# ---------------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------------


def test_ctrl_c_interrupts_a_long_cca_call(monkeypatch):
    """SIGINT 0.1 s into the longest single LAPACK call of a cca call of seconds (the
    singular values of the 2000 x 2000 whitened cross-covariance, about 0.8 s on its own with
    2 threads; at 1500 x 1500 it took 0.33 s, too close to the signal) raises
    KeyboardInterrupt within 0.25 s (measured 0.002 s; 0.56 s when the SVD is called
    directly, outside the worker thread); the next call gives the right value. (A signal during the
    shorter steps before it arrives at their end anyway, so it would not test much.)"""
    from congruence import _linalg

    rng = np.random.default_rng(29)
    n, p = 4500, 2000
    X = rng.standard_normal((n, p))
    Y = rng.standard_normal((n, p))
    sent, long_calls = [], []

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.1, send)
    real_run = _linalg.run

    def run(flops, fn, *args, **kwargs):
        if flops >= _linalg.LONG_FLOPS and fn is np.linalg.svd:
            long_calls.append(fn)
            if len(long_calls) == 1:
                timer.start()
        return real_run(flops, fn, *args, **kwargs)

    monkeypatch.setattr(_linalg, "run", run)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            cg.cca(X, Y)
        arrived = time.perf_counter()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert sent, f"the call finished in {arrived - start:.2f} s, before the signal"
    assert arrived - sent[0] <= 0.25, f"KeyboardInterrupt came {arrived - sent[0]:.2f} s late"
    monkeypatch.undo()
    Xs, Ys = _pair(seed=30)
    _close(cg.cca(Xs, Ys), ref_cca(Xs, Ys), 1e-10)


def test_small_calls_do_not_start_threads(monkeypatch):
    started = []
    real = threading.Thread.start

    def counting(self):
        started.append(self.name)
        return real(self)

    monkeypatch.setattr(threading.Thread, "start", counting)
    X, Y = _pair(seed=31)
    for name in CCA_FAMILY + ALIGNMENT:
        getattr(cg, name)(X, Y)
    assert started == []


# ---------------------------------------------------------------------------------------------
# Memory pre-flight
# ---------------------------------------------------------------------------------------------


def test_memory_preflight_refuses_large_buffers(monkeypatch):
    monkeypatch.setattr(memory, "memory_budget", lambda: 10 * 2**20)  # 10 MiB
    rng = np.random.default_rng(32)
    wide = rng.standard_normal((3000, 3100))  # svcca: p > n, an n x n Gram (72 MB)
    with pytest.raises(MemoryError, match=r"3000 x 3000 Gram matrix of X in svcca"):
        cg.svcca(wide, wide[:, :5])
    tall = rng.standard_normal((20, 3000))  # a 3000 x 3000 cross product (72 MB)
    with pytest.raises(MemoryError, match=r"3000 x 3000 cross product in orthogonal_procrustes"):
        cg.orthogonal_procrustes(tall, tall[:, ::-1])  # (tall with itself is 0 at once)
    with pytest.raises(MemoryError, match=r"3000 x 3000 covariance block of X in cca"):
        cg.cca(tall, tall[:, :3], epsilon=0.1)
