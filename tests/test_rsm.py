"""The RSM family (docs: RSM page): rsa, rsm_norm_diff, distance_correlation,
eigenspace_overlap, gulp, normalized_bures, riemannian_distance.

Expected values come from (1) the slow references of ``tests/reference_rsm.py``, written from
the formulas; (2) SciPy's independent implementations (``pdist``, ``rankdata``, ``spearmanr``);
(3) published values of the R ``energy`` package, as used in the test suite of the Python
``dcor`` package; (4) small cases worked by hand; (5) identities and invariances.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference_rsm import (
    ref_average_ranks,
    ref_dcov2,
    ref_distance_correlation,
    ref_distance_matrix,
    ref_eigenspace_overlap,
    ref_gulp,
    ref_normalized_bures,
    ref_riemannian_distance,
    ref_rsa,
    ref_rsm_norm_diff,
)
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata, spearmanr

import congruence as cg
from congruence import DegenerateDataWarning, _core
from congruence._core import _testing
from congruence.measures import rsm as rsm_module

RSA_VARIANTS = [
    {"rsm": r, "compare": c} for r in ("correlation", "euclidean") for c in ("spearman", "pearson")
]


def _fn(name):
    """The public function (``cg.<name>`` once exported; the module's until then)."""
    return getattr(cg, name, getattr(rsm_module, name))


rsa = _fn("rsa")
rsm_norm_diff = _fn("rsm_norm_diff")
distance_correlation = _fn("distance_correlation")
eigenspace_overlap = _fn("eigenspace_overlap")
gulp = _fn("gulp")
normalized_bures = _fn("normalized_bures")
riemannian_distance = _fn("riemannian_distance")


def _pair(seed, n, p1, p2, related=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) + rng.standard_normal(p1)
    if related:
        Y = np.tanh(X @ rng.standard_normal((p1, p2)) / math.sqrt(p1))
        Y = Y + 0.3 * rng.standard_normal((n, p2))
    else:
        Y = rng.standard_normal((n, p2))
    return X, Y


SHAPES = [(3, 2, 4), (7, 5, 3), (40, 6, 9), (23, 50, 30), (130, 3, 70)]


# --------------------------------------------------------------------------- vs references


@pytest.mark.parametrize("params", RSA_VARIANTS, ids=lambda p: f"{p['rsm']}-{p['compare']}")
@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_rsa_matches_reference(params, n, p1, p2):
    for related in (True, False):
        X, Y = _pair(n + p1, n, p1, p2, related)
        want = ref_rsa(X, Y, **params)
        got = rsa(X, Y, **params)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (got, want)


@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_rsm_norm_diff_matches_reference(n, p1, p2):
    X, Y = _pair(2 * n, n, p1, p2)
    for norm in ("fro", "spectral"):
        want = ref_rsm_norm_diff(X, Y, norm)
        assert rsm_norm_diff(X, Y, norm=norm) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("n, p1, p2", SHAPES + [(2, 1, 3), (65, 300, 2)])
def test_distance_correlation_matches_reference(n, p1, p2):
    for related in (True, False):
        X, Y = _pair(3 * n, n, p1, p2, related)
        want = ref_distance_correlation(X, Y)
        assert distance_correlation(X, Y) == pytest.approx(want, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_eigenspace_overlap_matches_reference(n, p1, p2):
    X, Y = _pair(4 * n, n, p1, p2)
    assert eigenspace_overlap(X, Y) == pytest.approx(ref_eigenspace_overlap(X, Y), rel=1e-12)
    # Rank-deficient inputs: the rank rule drops the null directions.
    Xr = X[:, :1] @ np.ones((1, p1)) + 0.0
    assert eigenspace_overlap(Xr, Y) == pytest.approx(ref_eigenspace_overlap(Xr, Y), rel=1e-10)


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.1, 10.0])
@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_gulp_matches_literal_formula(lam, n, p1, p2):
    X, Y = _pair(5 * n, n, p1, p2)
    want = ref_gulp(X, Y, lam)
    assert gulp(X, Y, lam=lam) == pytest.approx(max(want, 0.0), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_normalized_bures_matches_eigenvalue_form(n, p1, p2):
    X, Y = _pair(6 * n, n, p1, p2)
    assert normalized_bures(X, Y) == pytest.approx(ref_normalized_bures(X, Y), abs=1e-12)


@pytest.mark.parametrize("n, p1, p2", [(2, 2, 3), (5, 9, 5), (20, 40, 64)])
def test_riemannian_distance_matches_whitening_form(n, p1, p2):
    X, Y = _pair(7 * n, n, p1, p2, related=False)
    want = ref_riemannian_distance(X, Y)
    assert riemannian_distance(X, Y) == pytest.approx(want, rel=1e-9)


# --------------------------------------------------------------------------- building blocks


def test_distance_matrix_is_exact_symmetric_and_matches_scipy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 263))  # crosses row blocks, feature chunks and lanes
    D = _testing.distance_matrix(X)
    assert np.array_equal(D, D.T)
    assert np.all(np.diag(D) == 0)
    np.testing.assert_allclose(D, squareform(pdist(X)), rtol=1e-13, atol=0)
    np.testing.assert_allclose(D, ref_distance_matrix(X), rtol=1e-13, atol=0)


def test_duplicate_rows_are_at_distance_exactly_zero():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 8)) * 1e3 + 5e4
    X[17] = X[4]
    D = _testing.distance_matrix(X)
    assert D[4, 17] == 0.0 and D[17, 4] == 0.0
    assert np.count_nonzero(D == 0) == 30 + 2


def test_ranks_match_scipy_and_definition():
    rng = np.random.default_rng(2)
    v = rng.integers(0, 40, size=5000).astype(np.float64)  # many ties
    v[:3] = [-0.0, 0.0, -2.5]
    got = _testing.average_ranks(v)
    np.testing.assert_array_equal(got, rankdata(v, method="average"))
    small = v[:700]
    np.testing.assert_array_equal(_testing.average_ranks(small), ref_average_ranks(small))
    # A tie group spanning several of the core's parallel chunks (2**15 values each).
    w = np.repeat(np.arange(3.0), 40000)[::-1].copy()
    np.testing.assert_array_equal(_testing.average_ranks(w), rankdata(w))


def test_ranks_match_scipy_across_the_ranking_blocks():
    # Sizes around the ranking's blocks (runs of about 1024 values, chunks of 2**16, runs
    # split again in cache), with ties, a far outlier that puts more than 2**20 values in
    # one run (the sorted path), and geometric spacings that defeat equal-width buckets.
    rng = np.random.default_rng(21)
    cases = [
        rng.standard_normal(1023),
        rng.standard_normal(2049),
        np.round(rng.standard_normal(3 * 2**16 + 5), 2),
        2.0 ** -rng.integers(0, 900, size=20000),
    ]
    far = np.concatenate([np.arange(2**20 + 500) * 1e-9, np.full(3000, 0.5), [1e9]])
    cases.append(rng.permutation(far))
    for v in cases:
        np.testing.assert_array_equal(_testing.average_ranks(v), rankdata(v, method="average"))


def test_rsa_layer_matrix_with_ties_matches_scipy():
    # Integer layers: the RSM triangles (11175 values, several ranking runs) are full of
    # ties; every cell equals SciPy's Spearman correlation of the two triangles.
    rng = np.random.default_rng(22)
    layers = {f"l{i}": rng.integers(0, 3 + i, size=(150, 5)).astype(np.float64) for i in range(3)}
    got = cg.compare_layers(layers, measure="rsa", rsm="euclidean", progress=False).values
    tri = [pdist(x) for x in layers.values()]
    want = np.array([[spearmanr(a, b).statistic for b in tri] for a in tri])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_rsm_triangle_order_and_values():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 5))
    lower = _core.rsm_lower(X, "euclidean")
    D = ref_distance_matrix(X)
    il = np.tril_indices(12, k=-1)  # row-major (i, j < i)
    np.testing.assert_allclose(lower, D[il], rtol=1e-14)
    C = np.corrcoef(X)
    np.testing.assert_allclose(_core.rsm_lower(X, "correlation"), C[il], rtol=0, atol=1e-14)
    X[5] = 2.0
    assert _core.rsm_lower(X, "correlation") is None


# --------------------------------------------------------------------------- RSA specifics


def test_rsa_spearman_with_ties_matches_scipy():
    # Integer features with duplicated rows: many exactly tied distances.
    rng = np.random.default_rng(4)
    X = rng.integers(0, 3, size=(40, 4)).astype(np.float64)
    Y = rng.integers(0, 2, size=(40, 6)).astype(np.float64)
    dx, dy = pdist(X), pdist(Y)
    assert len(np.unique(dx)) < len(dx) / 10  # the ties are really there
    want = spearmanr(dx, dy).statistic
    assert rsa(X, Y, rsm="euclidean") == pytest.approx(want, rel=1e-12)
    assert rsa(X, Y, rsm="euclidean") == pytest.approx(ref_rsa(X, Y, "euclidean"), rel=1e-12)
    # Pearson on the correlation RSM matches NumPy's corrcoef-based route.
    X = X + rng.standard_normal(X.shape)
    Y = Y + rng.standard_normal(Y.shape)
    iu = np.triu_indices(40, 1)
    want = np.corrcoef(np.corrcoef(X)[iu], np.corrcoef(Y)[iu])[0, 1]
    assert rsa(X, Y, compare="pearson") == pytest.approx(want, rel=1e-12)


def test_rsa_hand_computed_four_points():
    # Points on a line at 0, 1, 3, 7: distances (i<j) 1, 3, 7, 2, 6, 4.
    # Y at 0, 1, 2, 3:                            1, 2, 3, 1, 2, 1.
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    Y = np.array([[0.0], [1.0], [2.0], [3.0]])
    rx = np.array([1, 3, 6, 2, 5, 4], dtype=float)  # ranks of 1, 3, 7, 2, 6, 4
    ry = np.array([2, 4.5, 6, 2, 4.5, 2])  # ranks of 1, 2, 3, 1, 2, 1 (ties averaged)
    cx, cy = rx - rx.mean(), ry - ry.mean()
    want = (cx @ cy) / math.sqrt((cx @ cx) * (cy @ cy))
    assert rsa(X, Y, rsm="euclidean") == pytest.approx(want, rel=1e-14)


def test_rsa_correlation_rsm_ignores_row_offsets_and_scales():
    X, Y = _pair(5, 30, 6, 4)
    rng = np.random.default_rng(5)
    shifted = X * rng.uniform(0.5, 2.0, size=(30, 1)) + rng.standard_normal((30, 1))
    for compare in ("spearman", "pearson"):
        base = rsa(X, Y, compare=compare)
        assert rsa(shifted, Y, compare=compare) == pytest.approx(base, abs=1e-12)


def test_rsa_correlation_rsm_survives_extreme_magnitudes():
    X, Y = _pair(6, 20, 5, 3)
    base = rsa(X, Y, compare="pearson")
    assert rsa(X * 1e200, Y * 1e-200, compare="pearson") == pytest.approx(base, abs=1e-12)


# --------------------------------------------------------------------------- dCor: published


# Values of the R package energy, as used in the test suite of the Python package dcor
# (vnmabus/dcor, dcor/tests/test_dcor.py). They are squared distance correlations.
M1 = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)
M2 = np.array([[7, 3, 6], [2, 1, 4], [3, 8, 1]], dtype=float)
M3 = np.array([[1, 1, 1], [2, 1, 1], [1, 1, 1]], dtype=float)
V1 = np.arange(1.0, 7.0)[:, None]
V2 = np.array([1.0, 7.0, 5.0, 5.0, 6.0, 2.0])[:, None]


def test_distance_correlation_published_energy_values():
    assert distance_correlation(M1, M1) ** 2 == pytest.approx(1.0, abs=1e-12)
    assert round(distance_correlation(M1, M2) ** 2, 5) == 0.93387
    assert round(distance_correlation(M1, M3) ** 2, 5) == 0.31623
    assert round(distance_correlation(V1, V2) ** 2, 7) == 0.3066099
    # dCov^2 = (sum A B) / n^2 from the core's streamed sums.
    ab, aa, bb = _testing.dcov_sums(V1, V2)
    assert round(ab / 36, 7) == 0.6851852
    assert round(aa / 36, 6) == 1.706790
    assert round(bb / 36, 5) == 2.92593


def test_distance_correlation_three_points_by_hand():
    # M1: three collinear, equally spaced points (spacing s); M3: rows 0 and 2 equal, row 1
    # at distance 1. So a = s [[0,1,2],[1,0,1],[2,1,0]] and b = [[0,1,0],[1,0,1],[0,1,0]].
    # Row means of a/s: 1, 2/3, 1 (grand mean 8/9); of b: 1/3, 2/3, 1/3 (grand mean 4/9).
    # Double centring:  A = (s/9) [[-10, 2, 8], [2, -4, 2], [8, 2, -10]],
    #                   B = (1/9) [[-2, 4, -2], [4, -8, 4], [-2, 4, -2]].
    # 81 sum AB / s = 72, 81 sum A^2 / s^2 = 360, 81 sum B^2 = 144, so
    # dCor^4 = 72^2 / (360 * 144) = 1/10, i.e. dCor^2 = 0.316228 (energy: 0.31623).
    assert distance_correlation(M1, M3) ** 4 == pytest.approx(0.1, rel=1e-13)
    ab, aa, bb = _testing.dcov_sums(M1, M3)
    s = math.sqrt(27.0)
    assert ab == pytest.approx(72 / 81 * s, rel=1e-13)
    assert aa == pytest.approx(360 / 81 * s * s, rel=1e-13)
    assert bb == pytest.approx(144 / 81, rel=1e-13)


def test_distance_covariance_sums_match_reference():
    X, Y = _pair(8, 70, 4, 3)
    ab, aa, bb = _testing.dcov_sums(X, Y)
    n2 = 70.0**2
    assert ab / n2 == pytest.approx(ref_dcov2(X, Y), rel=1e-12)
    assert aa / n2 == pytest.approx(ref_dcov2(X, X), rel=1e-12)
    assert bb / n2 == pytest.approx(ref_dcov2(Y, Y), rel=1e-12)


def test_two_points_have_distance_correlation_one():
    X = np.array([[0.0, 1.0], [2.0, 5.0]])
    Y = np.array([[3.0], [-1.0]])
    assert distance_correlation(X, Y) == pytest.approx(1.0, abs=1e-15)


# --------------------------------------------------------------------------- other identities


def test_rsm_norm_diff_hand_computed():
    # Triangle 3-4-5 against the same triangle scaled by 2: D_X - D_Y = -D_X.
    X = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert rsm_norm_diff(X, 2 * X) == pytest.approx(math.sqrt(2 * (9 + 16 + 25)), rel=1e-15)
    # Spectral norm of D_X = [[0,3,4],[3,0,5],[4,5,0]]: its largest |eigenvalue|.
    want = np.max(np.abs(np.linalg.eigvalsh(squareform([3.0, 4.0, 5.0]))))
    assert rsm_norm_diff(X, 2 * X, norm="spectral") == pytest.approx(want, rel=1e-14)


def test_rsm_norm_diff_triangle_inequality():
    rng = np.random.default_rng(9)
    A, B, C = (rng.standard_normal((25, 4)) * s for s in (1.0, 2.0, 0.5))
    for norm in ("fro", "spectral"):
        ab, bc, ac = (rsm_norm_diff(P, Q, norm=norm) for P, Q in ((A, B), (B, C), (A, C)))
        assert ac <= ab + bc + 1e-12


def test_eigenspace_overlap_wide_inputs_stay_below_one():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((10, 25))  # rank 10 = n, normalised by p = 25
    assert eigenspace_overlap(X, X) == pytest.approx(10 / 25, rel=1e-13)
    assert eigenspace_overlap(X, X @ rng.standard_normal((25, 25))) == pytest.approx(0.4)


def test_gulp_identities():
    X, Y = _pair(11, 50, 6, 4)
    Xc = X - X.mean(0)
    # lam = 0: squared Frobenius distance of the orthogonal projectors onto the column spaces.
    Px = Xc @ np.linalg.pinv(Xc)
    Yc = Y - Y.mean(0)
    Py = Yc @ np.linalg.pinv(Yc)
    assert gulp(X, Y) == pytest.approx(np.sum((Px - Py) ** 2), rel=1e-10)
    assert 0.0 <= gulp(X, Y) <= 6 + 4
    # Disjoint column spaces reach the upper bound rank(Xc) + rank(Yc).
    Z = np.zeros((8, 4))
    Z[:4, :2] = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    W = np.zeros((8, 1))
    W[4:, 0] = [1.0, -1.0, 2.0, -2.0]
    assert gulp(Z, W) == pytest.approx(3.0, abs=1e-12)
    # lam > 0 shrinks every eigen-direction, so GULP decreases with lam here.
    values = [gulp(X, Y, lam=lam) for lam in (0.0, 0.01, 1.0, 100.0)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_gulp_uses_the_same_value_for_wide_inputs():
    # p > n (the n x n route) against the literal p x p formula.
    X, Y = _pair(12, 12, 40, 25)
    for lam in (0.0, 0.5):
        assert gulp(X, Y, lam=lam) == pytest.approx(max(ref_gulp(X, Y, lam), 0.0), abs=1e-9)


def test_normalized_bures_identities():
    X, Y = _pair(13, 30, 5, 7)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuc = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    want = nuc / (np.linalg.norm(Xc) * np.linalg.norm(Yc))
    assert normalized_bures(X, Y) == pytest.approx(want, rel=1e-13)
    # Wide inputs: the QR reduction keeps the singular values.
    Xw, Yw = _pair(14, 10, 30, 45)
    Xc, Yc = Xw - Xw.mean(0), Yw - Yw.mean(0)
    nuc = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    want = nuc / (np.linalg.norm(Xc) * np.linalg.norm(Yc))
    assert normalized_bures(Xw, Yw) == pytest.approx(want, rel=1e-12)


def test_normalized_bures_is_cosine_of_angular_shape_metric():
    if "angular_shape_metric" not in cg.list_measures():
        pytest.skip("angular_shape_metric is not registered")
    X, Y = _pair(15, 40, 6, 6)
    angle = cg.get_measure("angular_shape_metric")(X, Y, alpha=1.0)
    assert normalized_bures(X, Y) == pytest.approx(math.cos(angle), abs=1e-9)


# --------------------------------------------------------------------------- Riemannian


def _wide_pair(seed, n=8, p1=12, p2=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1))
    Y = np.tanh(X @ rng.standard_normal((p1, p2))) + 0.5 * rng.standard_normal((n, p2))
    return X, Y


def _orthogonal(rng, p):
    Q, R = np.linalg.qr(rng.standard_normal((p, p)))
    return Q * np.sign(np.diag(R))


def test_riemannian_distance_properties():
    # The common tests use p < n, which this measure refuses; its properties are checked here.
    X, Y = _wide_pair(16)
    rng = np.random.default_rng(17)
    d = riemannian_distance(X, Y)
    assert type(d) is float and d > 0
    assert riemannian_distance(Y, X) == pytest.approx(d, rel=1e-10)
    assert riemannian_distance(X, X.copy()) == pytest.approx(0.0, abs=1e-6)
    for T in (_orthogonal(rng, 12), np.eye(12)[rng.permutation(12)]):
        assert riemannian_distance(X @ T, Y) == pytest.approx(d, rel=1e-9)
    # Scaling X by a shifts every log eigenvalue by -2 log a: d(aX, X) = 2 sqrt(n) |log a|.
    assert riemannian_distance(3.0 * X, X) == pytest.approx(
        2 * math.sqrt(8) * math.log(3), rel=1e-10
    )
    assert abs(riemannian_distance(3.0 * X, Y) - d) > 1e-3
    assert abs(riemannian_distance(X + 5.0, Y) - d) > 1e-3
    # A metric: triangle inequality.
    Z = _wide_pair(18)[0]
    assert riemannian_distance(X, Z) <= d + riemannian_distance(Y, Z) + 1e-10
    # Hand-computed: S_X = I/3, S_Y = diag(1, 4, 16)/3, eigenvalues 1, 4, 16.
    assert riemannian_distance(np.eye(3), np.diag([1.0, 2.0, 4.0])) == pytest.approx(
        math.sqrt(5) * math.log(4), rel=1e-14
    )


# --------------------------------------------------------------------------- nan cases


@pytest.mark.parametrize("value", [0.0, 0.1, -7.25, 1e4 + 0.1])
def test_constant_representation_gives_nan(value):
    rng = np.random.default_rng(19)
    C = np.full((9, 3), value)
    Y = rng.standard_normal((9, 4))
    for f, kw in [
        (rsa, {}),
        (rsa, {"rsm": "euclidean"}),
        (rsa, {"compare": "pearson"}),
        (rsa, {"rsm": "euclidean", "compare": "pearson"}),
        (distance_correlation, {}),
        (gulp, {}),
        (gulp, {"lam": 0.5}),
        (normalized_bures, {}),
    ]:
        for A, B, arg in ((C, Y, "X"), (Y, C, "Y"), (C.astype(np.float32), Y, "X")):
            match = rf"^{arg} has zero variance.*{f.__name__} is undefined"
            with pytest.warns(DegenerateDataWarning, match=match):
                assert math.isnan(f(A, B, **kw)), (f.__name__, kw)


def test_eigenspace_overlap_nan_only_for_all_zeros():
    rng = np.random.default_rng(20)
    Y = rng.standard_normal((6, 2))
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance: it is all zeros"):
        assert math.isnan(eigenspace_overlap(np.zeros((6, 3)), Y))
    with pytest.warns(DegenerateDataWarning, match=r"^Y has zero variance: it is all zeros"):
        assert math.isnan(eigenspace_overlap(Y, np.zeros((6, 1))))
    # A non-zero constant is a rank-one matrix, not undefined (no centring here); identical rows
    # still come with a warning (MEASURES.md 0.2).
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*still defined"):
        assert eigenspace_overlap(np.full((6, 3), 2.0), Y) >= 0.0


def test_rsa_nan_cases():
    rng = np.random.default_rng(21)
    X = rng.standard_normal((10, 4))
    Y = rng.standard_normal((10, 3))
    # A row with zero variance makes the correlation RSM undefined (only that RSM).
    Xz = X.copy()
    Xz[6] = 3.0
    for compare in ("spearman", "pearson"):
        with pytest.warns(
            DegenerateDataWarning, match=r"^X has a row of zero variance: row 6 is constant"
        ):
            assert math.isnan(rsa(Xz, Y, compare=compare))
        with pytest.warns(
            DegenerateDataWarning, match=r"^Y has a row of zero variance: row 6 is constant"
        ):
            assert math.isnan(rsa(Y, Xz, compare=compare))
        assert not math.isnan(rsa(Xz, Y, rsm="euclidean", compare=compare))
    # Rows that are all equal: every distance 0, a constant triangle.
    E = np.tile(rng.standard_normal(4), (5, 1))
    for compare in ("spearman", "pearson"):
        with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance: every row"):
            assert math.isnan(rsa(E, rng.standard_normal((5, 2)), rsm="euclidean", compare=compare))


def test_rsa_equilateral_triangle_is_nan():
    # Exactly equilateral in float64: the three unit vectors of R^3 (all distances sqrt 2).
    E = np.eye(3)
    Y = np.array([[0.0], [1.0], [3.0]])
    for compare in ("spearman", "pearson"):
        with pytest.warns(DegenerateDataWarning, match=r"^the RSM triangle of X is constant"):
            assert math.isnan(rsa(E, Y, rsm="euclidean", compare=compare))


def test_riemannian_distance_nan_when_not_positive_definite():
    rng = np.random.default_rng(22)
    X = rng.standard_normal((6, 10))
    Y = rng.standard_normal((6, 8))
    dup = X.copy()
    dup[4] = dup[1]  # two equal rows: S_X is singular
    not_pd_x = r"^X X\^T / p is not numerically positive definite"
    not_pd_y = r"^Y Y\^T / p is not numerically positive definite"
    with pytest.warns(DegenerateDataWarning, match=not_pd_x):
        assert math.isnan(riemannian_distance(dup, Y))
    with pytest.warns(DegenerateDataWarning, match=not_pd_y):
        assert math.isnan(riemannian_distance(Y, dup))
    low_rank = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 10))
    with pytest.warns(DegenerateDataWarning, match=not_pd_x):
        assert math.isnan(riemannian_distance(low_rank, Y))
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance"):
        assert math.isnan(riemannian_distance(np.zeros((6, 7)), Y))


# --------------------------------------------------------------------------- ValueError


def test_parameter_errors_name_the_argument_and_the_choices():
    X, Y = _pair(23, 10, 3, 2)
    with pytest.raises(
        ValueError, match=r"rsm='cosine' is invalid; expected one of 'correlation', 'euclidean'"
    ):
        rsa(X, Y, rsm="cosine")
    with pytest.raises(
        ValueError, match=r"compare='kendall' is invalid; expected one of 'spearman', 'pearson'"
    ):
        rsa(X, Y, compare="kendall")
    with pytest.raises(
        ValueError, match=r"norm='nuc' is invalid; expected one of 'fro', 'spectral'"
    ):
        rsm_norm_diff(X, Y, norm="nuc")
    with pytest.raises(ValueError, match=r"norm=2 is invalid; expected one of 'fro', 'spectral'"):
        rsm_norm_diff(X, Y, norm=2)
    with pytest.raises(
        ValueError, match=r"lam=-0.1 is out of range; expected a value in \[0, inf\)"
    ):
        gulp(X, Y, lam=-0.1)
    for bad in (math.nan, math.inf):
        with pytest.raises(
            ValueError, match=r"lam=.* is out of range; expected a value in \[0, inf\)"
        ):
            gulp(X, Y, lam=bad)
    with pytest.raises(ValueError, match=r"lam='1' is invalid; expected a real number"):
        gulp(X, Y, lam="1")
    with pytest.raises(ValueError, match=r"lam=True is invalid; expected a real number"):
        gulp(X, Y, lam=True)


def test_rsa_needs_three_rows():
    X = np.array([[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(
        ValueError,
        match=r"X has shape \(2, 2\): 2 row\(s\), but this measure needs at least 3 rows",
    ):
        rsa(X, X)
    # The compiled function refuses too, naming the argument.
    with pytest.raises(ValueError, match=r"X has shape \[2, 2\]; expected at least 3 rows"):
        _core.rsa(X, X, "euclidean", "spearman")


@pytest.mark.parametrize(
    "f",
    [
        rsm_norm_diff,
        distance_correlation,
        eigenspace_overlap,
        gulp,
        normalized_bures,
        riemannian_distance,
    ],
)
def test_two_rows_minimum(f):
    X = np.array([[0.0, 1.0, 2.0]])
    with pytest.raises(
        ValueError,
        match=r"X has shape \(1, 3\): 1 row\(s\), but this measure needs at least 2 rows",
    ):
        f(X, X)


def test_riemannian_distance_needs_as_many_columns_as_rows():
    rng = np.random.default_rng(24)
    wide, narrow = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    with pytest.raises(
        ValueError,
        match=r"X has shape \(5, 4\): riemannian_distance needs at least as many columns as rows "
        r"\(p >= n = 5\)",
    ):
        riemannian_distance(narrow, wide)
    with pytest.raises(
        ValueError,
        match=r"Y has shape \(5, 4\): riemannian_distance needs at least as many columns as rows "
        r"\(p >= n = 5\)",
    ):
        riemannian_distance(wide, narrow)
    assert riemannian_distance(wide[:, :5], wide) >= 0.0  # p = n is allowed


@pytest.mark.parametrize(
    "f",
    [
        rsa,
        rsm_norm_diff,
        distance_correlation,
        eigenspace_overlap,
        gulp,
        normalized_bures,
        riemannian_distance,
    ],
)
def test_array_errors_name_the_argument(f):
    X, Y = _pair(25, 8, 3, 2)
    with pytest.raises(
        ValueError,
        match=r"X has shape \(8, 3\) and Y has shape \(7, 2\): they must have the same number "
        r"of rows",
    ):
        f(X, Y[:-1])
    bad = Y.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"Y of shape \(8, 2\) contains 1 non-finite value"):
        f(X, bad)
    with pytest.raises(
        ValueError, match=r"X must be 2-D \(n_samples, n_features\) but has shape \(8,\)"
    ):
        f(X[:, 0], Y)


def test_compiled_functions_reject_bad_input_without_crashing():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"X has 4 rows and Y has 3"):
        _core.distance_correlation(X, X[:3])
    with pytest.raises(ValueError, match=r"X contains 1 non-finite value"):
        bad = X.copy()
        bad[0, 0] = np.inf
        _core.rsm_fro_diff(bad, X)
    with pytest.raises(
        ValueError, match=r"rsm=\"cosine\" is invalid; expected 'correlation' or 'euclidean'"
    ):
        _core.rsa(np.eye(3), np.eye(3), "cosine", "spearman")
    with pytest.raises(
        ValueError,
        match=r"compare=\"kendall\" is invalid; expected 'spearman', 'pearson', "
        r"'kendall_tau_a' or 'cosine'",
    ):
        _core.rsa(np.eye(3), np.eye(3), "euclidean", "kendall")
    with pytest.raises(ValueError, match=r"v contains 1 non-finite value"):
        _testing.average_ranks(np.array([1.0, np.nan]))


# --------------------------------------------------------------------------- dtypes, layouts


def test_float32_and_strided_inputs():
    X, Y = _pair(26, 90, 12, 7)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    X32d, Y32d = X32.astype(np.float64), Y32.astype(np.float64)
    # float32 -> float64 is exact, and so are the core's differences: identical results.
    for f, kw in [
        (rsa, {"rsm": "euclidean"}),
        (rsa, {}),
        (distance_correlation, {}),
        (rsm_norm_diff, {}),
    ]:
        assert f(X32, Y32, **kw) == f(X32d, Y32d, **kw), (f.__name__, kw)
    F = np.asfortranarray(X)
    V = np.hstack([X, X])[:, ::2]  # a strided view
    for f in (rsa, distance_correlation, rsm_norm_diff, gulp, normalized_bures, eigenspace_overlap):
        base = f(np.ascontiguousarray(X), Y)
        assert f(F, Y) == pytest.approx(base, rel=1e-13, abs=1e-15)
        assert f(V, Y) == pytest.approx(f(np.ascontiguousarray(V), Y), rel=1e-13, abs=1e-15)


# --------------------------------------------------------------------------- threads


_THREAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from congruence import _core
    from congruence._core import _testing
    rng = np.random.default_rng(0)
    out = []
    # n = 300: five row blocks of the core, and 44850 pairs (two chunks of the rank pass).
    X = rng.standard_normal((300, 70)); Y = np.tanh(X[:, :20]) + rng.standard_normal((300, 20))
    X[7] = X[3]
    Yi = rng.integers(0, 3, size=(300, 5)).astype(float)
    for compare in ("spearman", "pearson"):
        out.append(_core.rsa(X, Y, "correlation", compare))
        out.append(_core.rsa(X, Y, "euclidean", compare))
        out.append(_core.rsa(X, Yi, "euclidean", compare))  # many tied distances
    out.append(_core.distance_correlation(X, Y))
    # n = 2200: several waves of row blocks in the streamed distance covariance.
    Xw = rng.standard_normal((2200, 3)); Yw = np.abs(Xw[:, :2]) + rng.standard_normal((2200, 2))
    out.extend(_testing.dcov_sums(Xw, Yw))
    out.extend(_testing.dcov_sums(X, Yi))
    out.append(_core.rsm_fro_diff(X, Y))
    out.append(float(np.sum(_testing.distance_matrix(X) ** 2)))
    out.append(float(np.sum(_core.distance_difference(X, Y) ** 2)))
    out.append(float(np.sum(_testing.average_ranks(_core.rsm_lower(Yi, "euclidean")) ** 2)))
    print(json.dumps([repr(float(v)) for v in out]))
    """
)


def _run_with_threads(k):
    env = dict(os.environ, RAYON_NUM_THREADS=str(k))
    res = subprocess.run(
        [sys.executable, "-c", _THREAD_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_thread_count_does_not_change_results():
    one, two = _run_with_threads(1), _run_with_threads(2)
    assert len(one) == len(two) > 10
    diffs = [(i, a, b) for i, (a, b) in enumerate(zip(one, two)) if a != b]
    assert not diffs, (
        f"results differ between 1 and 2 threads (index, 1 thread, 2 threads): {diffs}"
    )
    assert all(v != "nan" for v in one)


def test_gulp_is_continuous_in_a_tiny_ridge_on_rank_deficient_data():
    # X has an exactly repeated column: Sa has an exact zero eigenvalue, whose ridge factor
    # mu / (mu + lam) is 0 for every lam > 0; round-off (mu ~ 1e-33) once made it about 1 for
    # lam below that (lam = 1e-40 gave 3.74 against 3.016 at lam = 0)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((10, 3))
    X = np.c_[X, X[:, :1]]
    Y = rng.standard_normal((10, 2))
    at0 = cg.gulp(X, Y)
    for lam in (1e-300, 1e-40, 1e-30, 1e-20):
        assert cg.gulp(X, Y, lam=lam) == pytest.approx(at0, rel=1e-10)
    # while a ridge of the size of the eigenvalues moves it (its value is tested elsewhere)
    assert abs(cg.gulp(X, Y, lam=0.1) - at0) > 1e-3


def test_rsa_triangle_constant_up_to_round_off_is_nan():
    # Rows on a ray from the origin after centring: every correlation is exactly 1, but the
    # computed ones differ in the last bits; comparing that round-off gave numbers (0.40,
    # 0.28, ...) instead of the nan of a constant RSM (MEASURES 4.1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    X[:, 0] = np.abs(X[:, 0]) + 1
    X[:, 1] = -np.abs(X[:, 1])
    Y = rng.standard_normal((5, 3))
    for compare in ("spearman", "pearson", "kendall_tau_a", "cosine"):
        with pytest.warns(DegenerateDataWarning, match="the RSM triangle of X is constant"):
            assert np.isnan(cg.rsa(X, Y, compare=compare))


def test_rsa_correlation_rsm_removes_large_row_offsets():
    # rows = 1e8 k_i + 1e-3 noise: the correlation RSM of the float64 rows, from residuals
    # computed exactly (Fractions) against the core's corrected two-pass centring (a single
    # pass left 2e-8 relative error)
    from fractions import Fraction

    rng = np.random.default_rng(3)
    B, C = rng.standard_normal((12, 6)), rng.standard_normal((12, 4))
    X = 1e-3 * B + 1e8 * rng.integers(1, 9, size=(12, 1))

    def centred_rows_exactly(A):
        out = np.empty_like(A)
        for i, r in enumerate(A):
            fr = [Fraction(v) for v in r]
            mu = sum(fr) / len(fr)
            out[i] = [float(v - mu) for v in fr]
        return out

    def triangle(Z):
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        return (Z @ Z.T)[np.tril_indices(len(Z), -1)]

    want = np.corrcoef(triangle(centred_rows_exactly(X)), triangle(C - C.mean(1)[:, None]))
    assert cg.rsa(X, C, compare="pearson") == pytest.approx(want[0, 1], rel=1e-12)
