"""Never a silently wrong number: RSM, topology, descriptive and functional measures.

* ``rsa(compare="kendall_tau_a" | "cosine")`` against a direct O(m^2) pair count, the cosine
  from ``np.dot``, and SciPy's tau-b through the identity
  ``tau_a = tau_b sqrt((n0 - n1)(n0 - n2)) / n0``;
* degenerate data: every ``nan`` comes with a ``DegenerateDataWarning`` naming the argument
  and the cause; identical rows give ``nan`` or the formula's defined value, as declared;
* magnitudes from 1e-300 to 1e300, float32 up to 3.4e38 and offsets up to 1e8 give the value
  at unit scale through each measure's invariance or scaling law (identities, independent of
  the code); float32 inputs give the float64 computation on the same values;
* Ctrl-C during a long LAPACK or GUDHI call raises ``KeyboardInterrupt`` within 1 s, and the
  next call is correct;
* the ``n x n`` buffers are checked against the memory budget first.
"""

from __future__ import annotations

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
import scipy.linalg
from conftest import CHILD_SIGINT
from scipy.spatial.distance import pdist
from scipy.stats import kendalltau

import congruence as cg
from congruence import _memory
from congruence.measures import functional as fn

sys.path.insert(0, os.path.dirname(__file__))
from reference_functional import ref_jsd  # noqa: E402
from reference_rsm import (  # noqa: E402
    ref_cosine,
    ref_eigenspace_overlap,
    ref_kendall_tau_a,
    ref_rsa,
    ref_rsm_norm_diff,
)
from reference_topology import (  # noqa: E402
    ref_concentricity,
    ref_imd,
    ref_magnitude,
    ref_rtd,
    ref_uniformity,
)


def _dyadic(rng, n, p, bits=10, span=4):
    """Random data on the grid ``2**-bits`` in ``[-span, span)``: adding an offset up to 1e8
    (float64) or 1e4 (float32) to it is exact, so offset invariance is an identity."""
    return np.floor(rng.uniform(-span, span, (n, p)) * 2**bits) / 2**bits


RNG = np.random.default_rng(20240610)
X = _dyadic(RNG, 40, 5)
Y = np.tanh(X[:, :4] @ RNG.standard_normal((4, 4))) + 0.5 * _dyadic(RNG, 40, 4)
Y = np.floor(Y * 2**10) / 2**10
XW = _dyadic(RNG, 12, 16)  # wide (p >= n) for riemannian_distance
YW = _dyadic(RNG, 12, 18)

RSA_VARIANTS = [
    {"rsm": rsm, "compare": compare}
    for rsm in ("correlation", "euclidean")
    for compare in ("spearman", "pearson", "kendall_tau_a", "cosine")
]


# =========================================================================== rsa comparators


@pytest.mark.parametrize("rsm", ["correlation", "euclidean"])
@pytest.mark.parametrize("compare", ["kendall_tau_a", "cosine"])
def test_new_comparators_match_the_references(rsm, compare):
    rng = np.random.default_rng(1)
    for n, p, levels in ((6, 3, 2), (25, 4, 3), (40, 6, None)):
        A = rng.standard_normal((n, p))
        B = A[:, :3] ** 2 + rng.standard_normal((n, 3))
        if levels is not None and rsm == "euclidean":
            # Integer data: many exactly tied distances (sums of squared integer differences
            # are exact, so every route ties them). Row correlations of integer data can be
            # equal in exact arithmetic yet differ by round-off along different routes, so
            # the correlation RSM is compared on continuous data only.
            A, B = np.round(A * levels), np.round(B * levels)
        got = cg.rsa(A, B, rsm=rsm, compare=compare)
        assert math.isclose(got, ref_rsa(A, B, rsm, compare), rel_tol=1e-12, abs_tol=1e-14)


def test_kendall_tau_a_by_hand():
    # Distances (1, 2, 1) and (1, 3, 2): two concordant pairs, one tied in the first.
    a, b = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [3.0]])
    assert cg.rsa(a, b, rsm="euclidean", compare="kendall_tau_a") == pytest.approx(2 / 3, abs=1e-15)
    # Distances (1, 3, 2) and (2, 3, 1): pairs C, D, C -> 1/3.
    c = np.array([[0.0], [2.0], [3.0]])
    b2 = np.array([[0.0], [1.0], [3.0]])
    got = cg.rsa(b2, c, rsm="euclidean", compare="kendall_tau_a")
    assert got == pytest.approx(1 / 3, abs=1e-15)
    # Direct reference, with ties in both vectors and in both at once.
    u = np.array([0.0, 0.0, 1.0, 1.0, 2.0])
    v = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    # pairs: (0,1) tie u; (0,2) C; (0,3) C; (0,4) tie v; (1,2) tie v; (1,3) tie v;
    # (1,4) D; (2,3) tie both; (2,4) D; (3,4) D -> (2 - 3) / 10
    assert ref_kendall_tau_a(u, v) == pytest.approx(-0.1, abs=1e-15)


def _tau_a_from_scipy(a, b) -> float:
    """tau_a = tau_b sqrt((n0 - n1)(n0 - n2)) / n0, with SciPy's tau-b and the tie counts."""
    n0 = a.size * (a.size - 1) / 2
    n1 = sum(t * (t - 1) / 2 for t in np.unique(a, return_counts=True)[1])
    n2 = sum(t * (t - 1) / 2 for t in np.unique(b, return_counts=True)[1])
    tau_b = kendalltau(a, b, variant="b").statistic
    return tau_b * math.sqrt((n0 - n1) * (n0 - n2)) / n0


@pytest.mark.parametrize("levels", [None, 1, 3])
def test_kendall_tau_a_against_scipy_tau_b(levels):
    # n = 300: N = 44850 entries, about 1e9 pairs, far beyond a direct count.
    rng = np.random.default_rng(2)
    A = rng.standard_normal((300, 3))
    B = A @ rng.standard_normal((3, 3)) + rng.standard_normal((300, 3))
    if levels is not None:
        A, B = np.round(A * levels), np.round(B * levels)
    a, b = pdist(A), pdist(B)
    got = cg.rsa(A, B, rsm="euclidean", compare="kendall_tau_a")
    assert math.isclose(got, _tau_a_from_scipy(a, b), rel_tol=1e-10)


def test_kendall_tau_a_is_rank_invariant_and_bounded():
    # A monotone map of one triangle keeps every pair's order: tau_a(X, 3X + 1) counts every
    # untied pair as concordant; with no ties that is 1.
    A = np.random.default_rng(3).standard_normal((30, 4))
    assert cg.rsa(A, 3 * A + 1, rsm="euclidean", compare="kendall_tau_a") == 1.0
    assert cg.rsa(A, 3 * A + 1, rsm="euclidean", compare="cosine") == pytest.approx(1.0, abs=1e-15)
    # Ties lower tau_a below 1 even for identical triangles: 1 - ties / n0.
    T = np.round(A)
    a = pdist(T)
    n0 = a.size * (a.size - 1) / 2
    ties = sum(t * (t - 1) / 2 for t in np.unique(a, return_counts=True)[1])
    got = cg.rsa(T, T.copy(), rsm="euclidean", compare="kendall_tau_a")
    assert got == pytest.approx(1 - ties / n0, rel=1e-14)


def test_cosine_is_not_centred():
    a = pdist(X)
    b = pdist(Y)
    want = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cg.rsa(X, Y, rsm="euclidean", compare="cosine") == pytest.approx(want, rel=1e-13)
    # Distances are positive: the uncentred cosine is well above the Pearson correlation.
    assert want > cg.rsa(X, Y, rsm="euclidean", compare="pearson") + 0.05
    assert ref_cosine(a, b) == pytest.approx(want, rel=1e-14)


# =========================================================================== degenerate data

CONST = np.full((40, 5), 0.3)  # every row the same
CONSTW = np.full((12, 16), -2.0)

#: (measure, params, value when X has identical rows: "nan" or a reference callable)
IDENTICAL_ROWS = [
    *[(cg.rsa, v, "nan") for v in RSA_VARIANTS],
    (cg.rsm_norm_diff, {}, lambda A, B: ref_rsm_norm_diff(A, B)),
    (cg.rsm_norm_diff, {"norm": "spectral"}, lambda A, B: ref_rsm_norm_diff(A, B, "spectral")),
    (cg.distance_correlation, {}, "nan"),
    (cg.eigenspace_overlap, {}, lambda A, B: ref_eigenspace_overlap(A, B)),
    (cg.gulp, {}, "nan"),
    (cg.gulp, {"lam": 0.1}, "nan"),
    (cg.normalized_bures, {}, "nan"),
    (cg.riemannian_distance, {}, "nan"),
    (cg.imd, {}, "nan"),
    (cg.rtd, {}, "nan"),
    (cg.geometry_score, {"n_landmarks": 8, "n_samples": 2, "seed": 0}, "nan"),
    (cg.magnitude_diff, {}, lambda A, B: abs(ref_magnitude(A) - ref_magnitude(B))),
    (cg.concentricity_diff, {}, lambda A, B: abs(ref_concentricity(A) - ref_concentricity(B))),
    (cg.uniformity_diff, {}, lambda A, B: abs(ref_uniformity(A) - ref_uniformity(B))),
]


def _ids(cases):
    return [f"{f.__name__}-{','.join(f'{k}={v}' for k, v in p.items())}" for f, p, *_ in cases]


def _pair_for(f):
    if f is cg.riemannian_distance:
        return XW, YW, CONSTW
    return X, Y, CONST


@pytest.mark.parametrize("f,params,expected", IDENTICAL_ROWS, ids=_ids(IDENTICAL_ROWS))
@pytest.mark.parametrize("side", ["X", "Y"])
def test_identical_rows_warn_with_nan_or_the_defined_value(f, params, expected, side):
    A, B, C = _pair_for(f)
    args = (C, B) if side == "X" else (A, C)
    with pytest.warns(cg.DegenerateDataWarning) as caught:
        got = f(*args, **params)
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith(f"{side} has zero variance: every row is identical; {f.__name__}")
        for m in messages
    ), messages
    if expected == "nan":
        assert math.isnan(got)
        assert any("undefined (nan)" in m for m in messages)
    else:
        assert math.isclose(got, expected(*args), rel_tol=1e-10, abs_tol=1e-12)
        assert any("still defined" in m for m in messages)


ORDINARY = [(f, p) for f, p, _ in IDENTICAL_ROWS]


@pytest.mark.parametrize("f,params", ORDINARY, ids=_ids(ORDINARY))
def test_ordinary_data_warn_nothing(f, params):
    A, B, _ = _pair_for(f)
    A = A.copy()
    A[:, 1] = 0.25  # one constant column among others is ordinary data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(f(A, B, **params))


@pytest.mark.parametrize("compare", ["spearman", "pearson", "kendall_tau_a", "cosine"])
def test_a_constant_row_in_a_correlation_rsm(compare):
    A = X.copy()
    A[7] = 1.5
    with pytest.warns(
        cg.DegenerateDataWarning, match=r"X has a row of zero variance: row 7 is constant"
    ):
        assert math.isnan(cg.rsa(A, Y, compare=compare))
    with pytest.warns(
        cg.DegenerateDataWarning, match=r"Y has a row of zero variance: row 7 is constant"
    ):
        assert math.isnan(cg.rsa(Y, A, compare=compare))
    # The Euclidean RSM is defined for such a row: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(cg.rsa(A, Y, rsm="euclidean", compare=compare))


@pytest.mark.parametrize("compare", ["spearman", "pearson", "kendall_tau_a", "cosine"])
def test_a_constant_triangle_warns(compare):
    # The corners of an equilateral triangle, e1, e2, e3: every distance is sqrt 2 exactly.
    tri = np.eye(3)
    other = np.array([[0.0], [1.0], [3.0]])
    with pytest.warns(cg.DegenerateDataWarning, match="RSM triangle of X is constant"):
        assert math.isnan(cg.rsa(tri, other, rsm="euclidean", compare=compare))
    # The warning names the side at fault.
    with pytest.warns(cg.DegenerateDataWarning, match="RSM triangle of Y is constant"):
        assert math.isnan(cg.rsa(other, tri, rsm="euclidean", compare=compare))


class TestFunctionalNanWarns:
    def test_error_corrected_disagreement(self):
        y, a, b = [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]
        with pytest.warns(cg.DegenerateDataWarning, match="pred_a makes no error"):
            assert math.isnan(fn.error_corrected_disagreement(b, a, y))
        for first, second in ((a, b), (b, a)):
            with pytest.warns(cg.DegenerateDataWarning, match="no error on labels.*min_max"):
                assert math.isnan(fn.error_corrected_disagreement(first, second, y, mode="min_max"))
        with pytest.warns(cg.DegenerateDataWarning, match="pred_a and pred_b make"):
            fn.error_corrected_disagreement(y, y, y, mode="min_max")

    def test_kappas(self):
        with pytest.warns(cg.DegenerateDataWarning, match="chance agreement p_e is 1"):
            assert math.isnan(fn.cohens_kappa([2, 2, 2], [2, 2, 2]))
        with pytest.warns(cg.DegenerateDataWarning, match="chance agreement P_e is 1"):
            assert math.isnan(fn.fleiss_kappa([[1, 1, 1], [1, 1, 1]]))

    def test_zero_rows(self):
        with pytest.warns(cg.DegenerateDataWarning, match="Q has 1 all-zero row"):
            assert math.isnan(fn.surrogate_churn([[1, 0], [1, 0]], [[1, 0], [0, 0]]))
        with pytest.warns(cg.DegenerateDataWarning, match="every row is all zeros in P or in Q"):
            assert math.isnan(fn.jsd([[0, 0], [1, 0]], [[1, 0], [0, 0]]))
        P = [[1, 0], [1, 0], [0.3, 0.7], [0, 0]]
        Q = [[0, 1], [0, 0], [0.3, 0.7], [0, 0]]
        with pytest.warns(cg.DegenerateDataWarning, match="2 of 4 rows are all zeros"):
            assert fn.jsd(P, Q) == pytest.approx(0.5, abs=1e-15)

    def test_ordinary_outputs_warn_nothing(self):
        rng = np.random.default_rng(4)
        P, Q = rng.dirichlet(np.ones(4), 30), rng.dirichlet(np.ones(4), 30)
        y = rng.integers(0, 4, 30)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fn.jsd(P, Q)
            fn.surrogate_churn(P, Q)
            fn.cohens_kappa(P, Q)
            fn.fleiss_kappa([P, Q, y])
            fn.error_corrected_disagreement(P, Q, y, mode="min_max")
            fn.prediction_difference(P, Q)


# =========================================================================== magnitudes

#: Scale-invariant in each argument separately: f(aX, bY) = f(X, Y) for a, b > 0.
SCALE_INVARIANT = [
    *[(cg.rsa, v) for v in RSA_VARIANTS],
    (cg.distance_correlation, {}),
    (cg.eigenspace_overlap, {}),
    (cg.gulp, {}),
    (cg.gulp, {"lam": 0.1}),
    (cg.normalized_bures, {}),
    (cg.imd, {}),
    (cg.rtd, {}),
    (cg.geometry_score, {"n_landmarks": 10, "n_samples": 3, "gamma": 0.3, "seed": 0}),
    (cg.concentricity_diff, {}),
]


@pytest.mark.parametrize("f,params", SCALE_INVARIANT, ids=_ids(SCALE_INVARIANT))
def test_scale_invariant_measures_at_any_magnitude(f, params):
    unit = f(X, Y, **params)
    for a, b in ((1e300, 1.0), (1.0, 1e-300), (1e300, 1e-300), (2.0**1000, 2.0**-1000)):
        got = f(a * X, b * Y, **params)
        # Powers of two scale exactly: the same value; 1e300 rounds each entry (1e-16).
        tol = 0.0 if math.frexp(a)[0] == 0.5 and math.frexp(b)[0] == 0.5 else 1e-10
        assert math.isclose(got, unit, rel_tol=tol, abs_tol=tol), (a, b, got, unit)
    # float32 at the top of its range: the float64 computation on the same values (1e-6),
    # and exactly the unit-scale value when the scale is a power of two (exact in float32).
    X32 = (X * 2.0**120).astype(np.float32)
    Y32 = (Y * 3.0e38 / np.abs(Y).max()).astype(np.float32)
    got32 = f(X32, Y32, **params)
    got64 = f(X32.astype(np.float64), Y32.astype(np.float64), **params)
    assert math.isclose(got32, got64, rel_tol=1e-6, abs_tol=1e-12)
    assert f(X32, Y, **params) == pytest.approx(unit, rel=1e-12, abs=1e-14)


#: Invariant to translation: f(X + 1 c^T, Y) = f(X, Y).
TRANSLATION_INVARIANT = [
    *[
        (cg.rsa, {"rsm": "euclidean", "compare": c})
        for c in ("spearman", "pearson", "kendall_tau_a", "cosine")
    ],
    (cg.rsm_norm_diff, {}),
    (cg.rsm_norm_diff, {"norm": "spectral"}),
    (cg.distance_correlation, {}),
    (cg.gulp, {}),
    (cg.normalized_bures, {}),
    (cg.imd, {}),
    (cg.rtd, {}),
    (cg.geometry_score, {"n_landmarks": 10, "n_samples": 3, "gamma": 0.3, "seed": 0}),
    (cg.uniformity_diff, {}),
]


@pytest.mark.parametrize("f,params", TRANSLATION_INVARIANT, ids=_ids(TRANSLATION_INVARIANT))
def test_large_offsets(f, params):
    unit = f(X, Y, **params)
    # Offsets up to 1e8 in float64 and 1e4 in float32 are exact on the dyadic data.
    offsets = np.array([1e8, -3e7, 5e6, 1e8, 12345.0])
    shifted = X + offsets
    assert np.array_equal(shifted - offsets, X)
    assert math.isclose(f(shifted, Y, **params), unit, rel_tol=1e-9, abs_tol=1e-12)
    X32 = (X + 1e4).astype(np.float32)
    assert np.array_equal(X32.astype(np.float64), X + 1e4)
    assert math.isclose(f(X32, Y, **params), unit, rel_tol=1e-9, abs_tol=1e-12)


def test_rank_comparators_keep_exact_ties_at_any_scale():
    # Integer data: many tied distances. Power-of-two scalings keep every tie and order.
    A = np.round(X)
    B = np.round(Y * 2)
    for compare in ("spearman", "kendall_tau_a"):
        unit = cg.rsa(A, B, rsm="euclidean", compare=compare)
        assert unit == pytest.approx(ref_rsa(A, B, "euclidean", compare), rel=1e-12)
        for a in (2.0**900, 2.0**-900):
            assert cg.rsa(a * A, B / a, rsm="euclidean", compare=compare) == unit
        A32, B32 = (A * 2.0**100).astype(np.float32), (B * 2.0**-100).astype(np.float32)
        assert cg.rsa(A32, B32, rsm="euclidean", compare=compare) == unit


def test_correlation_rsm_row_offsets():
    # Adding a constant to all features of a row leaves every row correlation unchanged.
    unit = {c: cg.rsa(X, Y, compare=c) for c in ("spearman", "pearson", "kendall_tau_a", "cosine")}
    row_offsets = np.linspace(-1e8, 1e8, X.shape[0])[:, None]
    shifted = X + row_offsets
    assert np.array_equal(shifted - row_offsets, X)
    for compare, value in unit.items():
        assert math.isclose(cg.rsa(shifted, Y, compare=compare), value, rel_tol=1e-9)


def test_rsm_norm_diff_scaling_law_and_overflow():
    unit = cg.rsm_norm_diff(X, Y)
    spectral = cg.rsm_norm_diff(X, Y, norm="spectral")
    assert unit == pytest.approx(ref_rsm_norm_diff(X, Y), rel=1e-12)
    for a in (1e300, 1e-300, 2.0**-900):
        assert cg.rsm_norm_diff(a * X, a * Y) == pytest.approx(a * unit, rel=1e-12)
        got = cg.rsm_norm_diff(a * X, a * Y, norm="spectral")
        assert got == pytest.approx(a * spectral, rel=1e-12)
    # d(1e308 X, 1e308 Y) = 1e308 d(X, Y) is beyond float64: inf with a warning.
    assert unit / 8 > 1.8  # 1e308 unit / 8 > 1.8e308 > the largest float64
    with pytest.warns(cg.DegenerateDataWarning, match="exceeds the float64 range"):
        assert cg.rsm_norm_diff(X * (1e308 / 8), Y * (1e308 / 8)) == math.inf


def test_magnitude_diff_scaling_law_and_overflow():
    unit = cg.magnitude_diff(X + 1.0, Y)
    assert unit == pytest.approx(abs(ref_magnitude(X + 1.0) - ref_magnitude(Y)), rel=1e-12)
    for a in (1e300, 1e-300):
        assert cg.magnitude_diff(a * (X + 1.0), a * Y) == pytest.approx(a * unit, rel=1e-12)
    big = np.full((300, 40), 1.5e308)  # mean (1.5e308, ...): norm 1.5e308 sqrt(40)
    big[0] = 1.0e308
    with pytest.warns(cg.DegenerateDataWarning, match="exceeds the float64 range"):
        assert cg.magnitude_diff(big, np.zeros((300, 2)) + np.arange(300)[:, None]) == math.inf


def test_uniformity_at_extreme_scales():
    # Spread far beyond 1: every off-diagonal term is exp(-huge) = 0, u = log(n / n^2).
    # Squeezed below 1e-150: every term is exp(-tiny) = 1 in float64, u = 0.
    n = X.shape[0]
    u_y = ref_uniformity(Y)
    assert cg.uniformity_diff(1e300 * X, Y) == pytest.approx(abs(-math.log(n) - u_y), rel=1e-12)
    assert cg.uniformity_diff(1e-300 * X, Y) == pytest.approx(abs(u_y), rel=1e-12)
    X32 = (X * 8e37).astype(np.float32)
    assert cg.uniformity_diff(X32, Y) == pytest.approx(abs(-math.log(n) - u_y), rel=1e-12)


def _riemannian_reference(A, B) -> float:
    """The formula at unit scale with SciPy's generalized eigensolver (another route)."""
    Sa, Sb = A @ A.T / A.shape[1], B @ B.T / B.shape[1]
    lam = scipy.linalg.eigh(Sb, Sa, eigvals_only=True)
    return float(np.sqrt(np.sum(np.log(lam) ** 2)))


def test_riemannian_distance_at_any_magnitude():
    # The reproducer of the issue: 1e300 * X raised LinAlgError. The scaling law:
    # X -> aX, Y -> bY multiplies every lambda_i by (b / a)^2.
    A, B = XW + 0.25 * np.eye(12, 16), YW
    unit = cg.riemannian_distance(A, B)
    assert unit == pytest.approx(_riemannian_reference(A, B), rel=1e-9)
    Sa, Sb = A @ A.T / A.shape[1], B @ B.T / B.shape[1]
    log_lam = np.log(scipy.linalg.eigh(Sb, Sa, eigvals_only=True))
    for a, b in ((1e300, 1.0), (1.0, 1e-300), (1e300, 1e-300), (1e-300, 1e300)):
        shift = 2.0 * (math.log(b) - math.log(a))
        want = float(np.sqrt(np.sum((log_lam + shift) ** 2)))
        assert cg.riemannian_distance(a * A, b * B) == pytest.approx(want, rel=1e-9)
    A32, B32 = (A * 1e30).astype(np.float32), (B * 3e38 / np.abs(B).max()).astype(np.float32)
    got32 = cg.riemannian_distance(A32, B32)
    assert got32 == pytest.approx(
        cg.riemannian_distance(A32.astype(np.float64), B32.astype(np.float64)), rel=1e-6
    )
    want32 = _riemannian_reference(A32.astype(np.float64), B32.astype(np.float64))
    assert got32 == pytest.approx(want32, rel=1e-9)


def test_riemannian_distance_not_positive_definite_warns():
    low_rank = XW[:, :3] @ np.ones((3, 16))  # rank 3 < n = 12
    with pytest.warns(cg.DegenerateDataWarning, match="X X\\^T / p is not numerically positive"):
        assert math.isnan(cg.riemannian_distance(low_rank, YW))
    with pytest.warns(cg.DegenerateDataWarning, match="Y Y\\^T / p is not numerically positive"):
        assert math.isnan(cg.riemannian_distance(YW[:, :12] @ np.ones((12, 16)) + XW, low_rank))


class TestFunctionalMagnitudes:
    rng = np.random.default_rng(6)
    P = rng.dirichlet(np.ones(5), 20)
    Q = rng.dirichlet(np.ones(5), 20)

    def test_jsd_rows_of_any_magnitude(self):
        unit = fn.jsd(self.P, self.Q)
        assert unit == pytest.approx(ref_jsd(self.P, self.Q), rel=1e-12)
        assert fn.jsd(2.0**1000 * self.P, 2.0**-1000 * self.Q) == unit
        assert fn.jsd(1e300 * self.P, 1e-300 * self.Q) == pytest.approx(unit, rel=1e-12)
        # Row sums of 1.7e308 entries overflowed before the rows were scaled.
        assert fn.jsd(1.7e308 * self.P / self.P.max(), self.Q) == pytest.approx(unit, rel=1e-12)

    def test_surrogate_churn_any_magnitude(self):
        unit = fn.surrogate_churn(self.P, self.Q)
        assert fn.surrogate_churn(1e300 * self.P, 1e-300 * self.Q) == pytest.approx(unit, rel=1e-12)

    def test_prediction_difference_scaling_law_and_overflow(self):
        for p in (1, 2, 3.5, math.inf):
            unit = fn.prediction_difference(self.P, self.Q, p=p)
            for a in (1e300, 1e-300):
                got = fn.prediction_difference(a * self.P, a * self.Q, p=p)
                assert got == pytest.approx(a * unit, rel=1e-12)
        big = np.full((4, 6), 1.7e308)
        # (1 / (2n)) sum_i ||P_i - 0||_1 = 6 * 1.7e308 / 2: beyond float64.
        with pytest.warns(cg.DegenerateDataWarning, match="exceeds the float64 range"):
            assert fn.prediction_difference(big, np.zeros((4, 6))) == math.inf


# =========================================================================== memory


N_BY_N = [
    (cg.rsm_norm_diff, {"norm": "spectral"}, "rsm_norm_diff", "norm='fro'"),
    (cg.riemannian_distance, {}, "riemannian_distance", "subsample"),
    (cg.imd, {}, "imd", "subsample"),
    (cg.rtd, {}, "rtd", "max_points"),
    (cg.gulp, {}, "gulp", "subsample"),
    (cg.eigenspace_overlap, {}, "eigenspace_overlap", "subsample"),
    (cg.normalized_bures, {}, "normalized_bures", "subsample"),
]


@pytest.mark.parametrize("f,params,name,alternative", N_BY_N, ids=[c[2] for c in N_BY_N])
def test_memory_preflight(monkeypatch, f, params, name, alternative):
    monkeypatch.setattr(_memory, "memory_budget", lambda: 4096)
    A, B, _ = _pair_for(f)
    with pytest.raises(MemoryError, match=rf"(?s){name}.*needs about .* GB.*{alternative}"):
        f(A, B, **params)


def test_geometry_score_falls_back_when_the_distance_cache_does_not_fit(monkeypatch):
    params = {"n_landmarks": 10, "n_samples": 3, "gamma": 0.3, "seed": 0}
    want = cg.geometry_score(X, Y, **params)
    monkeypatch.setattr(_memory, "memory_budget", lambda: 4096)
    assert cg.geometry_score(X, Y, **params) == pytest.approx(want, rel=1e-12)


# =========================================================================== Ctrl-C


def _interrupt_during(call, warm_up, delay=0.3):
    """Run ``call()`` with SIGINT sent to this process ``delay`` s in; return the seconds
    from the signal to the ``KeyboardInterrupt`` and the worker threads still busy with the
    interrupted call at that moment.

    ``warm_up()`` runs first, uninterrupted, so that lazy imports (GUDHI pulls in
    scikit-learn) are done: an import cut short by Ctrl-C leaves a half-initialised module
    behind, which is Python's behaviour and not what these tests are about.
    """
    warm_up()
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        call()
    except KeyboardInterrupt:
        waited = time.perf_counter() - start - delay
        busy = [t for t in threading.enumerate() if t.name == "congruence-worker"]
        return waited, busy
    finally:
        timer.cancel()
    pytest.fail("the call finished before the interrupt: make it longer")


def _wait_for_workers(threads):
    for t in threads:
        t.join(120)
        assert not t.is_alive()


def test_ctrl_c_interrupts_a_long_lapack_call(default_sigint):
    # n = p = 2000: uninterrupted, two LAPACK calls of about 0.7 s each on an idle 2-core
    # AMD EPYC (Zen 5), with a few tens of ms of Python between them; the signal, 0.3 s in,
    # lands in the first one (at 1500 the first call ended near 0.34 s and a signal arriving
    # in the gap found no call running; on older machines 1500 took about 4 s).
    rng = np.random.default_rng(8)
    A, B = rng.standard_normal((2000, 2000)), rng.standard_normal((2000, 2000))
    waited, busy = _interrupt_during(
        lambda: cg.riemannian_distance(A, B), lambda: cg.riemannian_distance(XW, YW)
    )
    assert waited < 1.0
    assert busy, "the interrupt should arrive while a LAPACK/BLAS call is running"
    _wait_for_workers(busy)
    a, b = XW + 0.25 * np.eye(12, 16), YW
    assert cg.riemannian_distance(a, b) == pytest.approx(_riemannian_reference(a, b), rel=1e-9)


def test_ctrl_c_interrupts_an_exact_heat_trace(default_sigint):
    rng = np.random.default_rng(9)
    # n = 1800: two 1800 x 1800 eigendecompositions, about 4 s uninterrupted (1400: 2.0 s).
    A, B = rng.standard_normal((1800, 3)), rng.standard_normal((1800, 3))
    waited, busy = _interrupt_during(lambda: cg.imd(A, B), lambda: cg.imd(X, Y))
    assert waited < 1.0
    _wait_for_workers(busy)
    small_a, small_b = X[:12], Y[:12]
    assert cg.imd(small_a, small_b) == pytest.approx(ref_imd(small_a, small_b), rel=1e-9)


def test_ctrl_c_interrupts_a_persistence_computation(default_sigint):
    rng = np.random.default_rng(10)
    # n = 500: two Rips persistences on 1000 points, about 4 s uninterrupted (450: 2.8 s).
    A, B = rng.standard_normal((500, 3)), rng.standard_normal((500, 3))
    waited, busy = _interrupt_during(lambda: cg.rtd(A, B), lambda: cg.rtd(X[:6], Y[:6]))
    assert waited < 1.0
    assert busy, "the interrupt should arrive while GUDHI is computing"
    # The worker is still running (and can be waited for): an interrupted Thread.join
    # would have marked it stopped on Python 3.11.
    assert any(t.is_alive() for t in busy)
    _wait_for_workers(busy)
    small_a, small_b = X[:8], Y[:8]
    want = ref_rtd(small_a, small_b)
    assert cg.rtd(small_a, small_b) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_exit_right_after_an_interrupted_persistence_call_is_clean():
    # The worker finishes before the interpreter exits. A daemon worker returning from GUDHI
    # while the interpreter finalises is ended inside C++ code, which aborts the process
    # ("terminate called without an active exception").
    script = CHILD_SIGINT + textwrap.dedent(
        """
        import os, signal, threading, time
        import numpy as np
        import congruence as cg

        class SlowTeardown:  # keeps the interpreter finalising while GUDHI would return
            def __del__(self):
                time.sleep(3)

        keep = SlowTeardown()
        rng = np.random.default_rng(10)
        cg.rtd(rng.standard_normal((6, 3)), rng.standard_normal((6, 3)))
        A, B = rng.standard_normal((500, 3)), rng.standard_normal((500, 3))
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            cg.rtd(A, B)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert "interrupted" in run.stdout
    assert "terminate called" not in run.stderr
