"""Tests of the alignment measures (docs: alignment page).

Values are checked against the slow references of ``tests/reference_alignment.py`` (written
from the specification alone: explicit rotations, brute-force permutations, explicit
least squares), against identities between measures (Procrustes, Bures, CCA), against the
metric axioms, against hand-computed small cases, and for every error and ``nan`` case of the
specification. The generic properties (symmetry, invariances, bounds, ...) are in
``test_common.py``.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import scipy.linalg

import congruence as cg
from congruence import DegenerateDataWarning
from congruence.measures import alignment as al
from congruence.measures.alignment import (
    aligned_cosine,
    angular_shape_metric,
    correlation_match,
    linear_regression,
    orthogonal_procrustes,
    permutation_procrustes,
    procrustes_size_and_shape,
)

sys.path.insert(0, os.path.dirname(__file__))
from reference_alignment import (  # noqa: E402
    ref_aligned_cosine,
    ref_angular_shape_metric,
    ref_canonical_correlations,
    ref_correlation_match,
    ref_linear_regression,
    ref_mean_cca,
    ref_normalized_bures,
    ref_orthogonal_procrustes,
    ref_permutation_procrustes,
    ref_procrustes_size_and_shape,
)

TOL = 1e-9

SYMMETRIC = [
    "orthogonal_procrustes",
    "procrustes_size_and_shape",
    "angular_shape_metric",
    "permutation_procrustes",
    "aligned_cosine",
    "correlation_match",
]


def _pair(n, p1, p2, seed=0, offset=2.0):
    """``X`` with column offsets and a ``Y`` that depends on it nonlinearly, plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) + offset * rng.standard_normal(p1)
    Y = np.tanh(X @ rng.standard_normal((p1, p2)) / math.sqrt(p1)) + 0.5 * rng.standard_normal(
        (n, p2)
    )
    return X, Y + offset


def _orthogonal(rng, p):
    Q, R = np.linalg.qr(rng.standard_normal((p, p)))
    return Q * np.sign(np.diag(R))


def _close(got, want, tol=TOL):
    assert isinstance(got, float), type(got)
    assert math.isfinite(want), want
    assert abs(got - want) <= tol * max(1.0, abs(want)), (got, want, abs(got - want))


# ---------------------------------------------------------------------------------------------
# (0) registry metadata as stated on the docs' alignment page
# ---------------------------------------------------------------------------------------------

ORTH, ISO, LIN, TRANS, PERM = (
    "orthogonal",
    "isotropic_scaling",
    "invertible_linear",
    "translation",
    "permutation",
)
META = {
    "orthogonal_procrustes": ("distance", (0.0, math.sqrt(2.0)), True, {ORTH, ISO, TRANS, PERM}),
    "procrustes_size_and_shape": ("distance", (0.0, math.inf), True, {ORTH, TRANS, PERM}),
    "angular_shape_metric": ("distance", (0.0, math.pi / 2), True, {ORTH, ISO, TRANS, PERM}),
    "permutation_procrustes": ("distance", (0.0, math.inf), True, {PERM}),
    "linear_regression": ("similarity", (0.0, 1.0), False, {ORTH, ISO, TRANS, PERM}),
    "aligned_cosine": ("similarity", (-1.0, 1.0), True, {ORTH, ISO, PERM}),
    "correlation_match": ("similarity", (-1.0, 1.0), True, {ISO, TRANS, PERM}),
}


@pytest.mark.parametrize("name", sorted(META))
def test_metadata(name):
    kind, bounds, symmetric, invariances = META[name]
    m = cg.get_measure(name)
    assert m.family == "alignment" and m.inputs == "representations"
    assert m.func is getattr(al, name)
    assert m.kind == kind and m.bounds() == bounds and m.symmetric() is symmetric
    assert m.invariances() == invariances
    assert m.min_rows() == 2
    assert m.layers.prepare is not None and m.layers.permuted is not None
    assert set(cg.list_measures(family="alignment")) == set(META)


def test_angular_metadata_depends_on_alpha():
    m = cg.get_measure("angular_shape_metric")
    assert m.params == {"alpha": 1.0}
    assert m.invariances(alpha=0.0) == {ORTH, ISO, LIN, TRANS, PERM}
    assert m.invariances(alpha=1.0) == m.invariances(alpha=1.0 - 5e-8) == {ORTH, ISO, TRANS, PERM}
    # 0 < alpha < 1: not scale invariant (deviation from the property list of Williams et al. 2021,
    # see test_angular_scaling_invariance_depends_on_alpha)
    assert m.invariances(alpha=0.5) == m.invariances(alpha=1.0 - 2e-7) == {ORTH, TRANS, PERM}
    assert cg.get_measure("correlation_match").params == {"soft": False}


# ---------------------------------------------------------------------------------------------
# (1) agreement with the references
# ---------------------------------------------------------------------------------------------

SHAPES = [
    (3, 1, 2),
    (5, 2, 3),
    (10, 3, 3),
    (30, 4, 7),
    (40, 5, 2),
    (12, 20, 5),  # p1 > n: rank-deficient centred X
    (9, 4, 15),  # p2 > n
    (160, 60, 52),  # k >= 48: the eigenvalue route of the nuclear norm
]
SHAPE_IDS = [f"n{n}-p{a}-p{b}" for n, a, b in SHAPES]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_orthogonal_procrustes_matches_reference(shape):
    X, Y = _pair(*shape, seed=sum(shape))
    _close(orthogonal_procrustes(X, Y), ref_orthogonal_procrustes(X, Y))
    _close(orthogonal_procrustes(Y, X), ref_orthogonal_procrustes(X, Y))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_procrustes_size_and_shape_matches_reference(shape):
    X, Y = _pair(*shape, seed=sum(shape) + 1)
    _close(procrustes_size_and_shape(X, Y), ref_procrustes_size_and_shape(X, Y))
    _close(procrustes_size_and_shape(3 * X, Y), ref_procrustes_size_and_shape(3 * X, Y))


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0 - 2e-7, 1.0 - 5e-8, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_angular_shape_metric_matches_reference(shape, alpha):
    n, p1, p2 = shape
    X, Y = _pair(*shape, seed=sum(shape) + 2)
    # The literal eigh of the reference is accurate for full-rank p <= n - 1; for rank-deficient
    # inputs the reference takes the same eigendecomposition from an SVD (see its docstring).
    method = "eigh" if max(p1, p2) <= n - 1 else "svd"
    _close(
        angular_shape_metric(X, Y, alpha=alpha),
        ref_angular_shape_metric(X, Y, alpha, method=method),
    )


@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if max(s[1:]) <= 5], ids=lambda s: f"n{s[0]}-p{s[1]}-p{s[2]}"
)
def test_permutation_procrustes_matches_brute_force(shape):
    X, Y = _pair(*shape, seed=sum(shape) + 3)
    _close(permutation_procrustes(X, Y), ref_permutation_procrustes(X, Y))
    # A Y that is a permuted, slightly perturbed X: the brute force finds the permutation.
    rng = np.random.default_rng(7)
    Z = X[:, rng.permutation(X.shape[1])] + 0.01 * rng.standard_normal(X.shape)
    _close(permutation_procrustes(X, Z), ref_permutation_procrustes(X, Z))


@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if s[2] <= s[0] - 1], ids=lambda s: f"n{s[0]}-p{s[1]}-p{s[2]}"
)
def test_linear_regression_matches_least_squares(shape):
    X, Y = _pair(*shape, seed=sum(shape) + 4)
    _close(linear_regression(X, Y), ref_linear_regression(X, Y))
    if shape[1] <= shape[0] - 1:
        _close(linear_regression(Y, X), ref_linear_regression(Y, X))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_aligned_cosine_matches_reference(shape):
    X, Y = _pair(*shape, seed=sum(shape) + 5)
    _close(aligned_cosine(X, Y), ref_aligned_cosine(X, Y))
    _close(aligned_cosine(Y, X), ref_aligned_cosine(X, Y))


@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if max(s[1:]) <= 7], ids=lambda s: f"n{s[0]}-p{s[1]}-p{s[2]}"
)
@pytest.mark.parametrize("soft", [False, True])
def test_correlation_match_matches_reference(shape, soft):
    X, Y = _pair(*shape, seed=sum(shape) + 6)
    _close(correlation_match(X, Y, soft=soft), ref_correlation_match(X, Y, soft))


def test_aligned_cosine_partially_skipped_rows():
    X, Y = _pair(12, 3, 4, seed=8)
    X[[2, 5]] = 0.0
    Y[[5, 9]] = 0.0
    got = aligned_cosine(X, Y)
    _close(got, ref_aligned_cosine(X, Y))
    assert np.isfinite(got)


# ---------------------------------------------------------------------------------------------
# (2) identities and metric axioms
# ---------------------------------------------------------------------------------------------


def test_procrustes_zero_under_rotation_translation_scaling():
    rng = np.random.default_rng(10)
    for p in (1, 3, 8):
        X = rng.standard_normal((25, p))
        Y = 4.2 * X @ _orthogonal(rng, p) + rng.standard_normal(p) * 30
        assert orthogonal_procrustes(X, Y) < 1e-6
        assert angular_shape_metric(X, Y) < 1e-6
        # size-and-shape: rotation and translation only
        assert procrustes_size_and_shape(X, Y / 4.2) < 1e-6
        assert procrustes_size_and_shape(X, Y) > 1.0


def test_procrustes_of_padded_copy_is_zero():
    """Zero padding: X against [X, 0] (and its rotation) is at distance 0."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 3))
    Xp = np.hstack([X, np.zeros((20, 2))]) @ _orthogonal(rng, 5)
    assert orthogonal_procrustes(X, Xp) < 1e-6
    assert procrustes_size_and_shape(X, Xp) < 1e-6
    for alpha in (0.0, 0.5, 1.0):
        assert angular_shape_metric(X, Xp, alpha=alpha) < 1e-6


def _triples(n=15, seeds=range(8)):
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        ps = rng.integers(1, 7, size=3)
        X = rng.standard_normal((n, ps[0]))
        # some triples close together, where the triangle inequality is tightest
        Y = np.hstack([X, rng.standard_normal((n, ps[1]))])[:, : ps[1]] + 0.3 * rng.standard_normal(
            (n, ps[1])
        )
        Z = (
            rng.standard_normal((n, ps[2]))
            if seed % 2
            else Y[:, ::-1] + 0.2 * rng.standard_normal((n, ps[1]))
        )
        yield seed, X, Y, Z


def _pad_all(*mats):
    p = max(m.shape[1] for m in mats)
    return [np.hstack([m, np.zeros((m.shape[0], p - m.shape[1]))]) for m in mats]


METRICS = [
    ("orthogonal_procrustes", {}),
    ("procrustes_size_and_shape", {}),
    ("permutation_procrustes", {}),
    ("angular_shape_metric", {"alpha": 0.0}),
    ("angular_shape_metric", {"alpha": 0.5}),
    ("angular_shape_metric", {"alpha": 1.0}),
]


@pytest.mark.parametrize("name, params", METRICS, ids=[f"{m}-{p}" for m, p in METRICS])
def test_triangle_inequality(name, params):
    f = getattr(al, name)
    for seed, X, Y, Z in _triples():
        if name == "permutation_procrustes":
            # a metric among equal widths only (see the next test): pad all three to one width
            X, Y, Z = _pad_all(X, Y, Z)
        for A, B, C in ((X, Y, Z), (Y, Z, X), (Z, X, Y)):
            ab, bc, ac = f(A, B, **params), f(B, C, **params), f(A, C, **params)
            assert ac <= ab + bc + 1e-10, (seed, ab, bc, ac)


def test_permutation_procrustes_mixed_widths_not_a_metric():
    """Pairwise zero padding (as specified) breaks the triangle inequality across widths: with
    a third, wider matrix, X's column may be 'matched to padding' on the way through Z."""
    X = np.array([[1.0], [0.0]])
    Y = -X
    Z = np.array([[0.5, -0.5], [0.0, 0.0]])
    f = permutation_procrustes
    assert f(X, Y) == 2.0  # width 1: the columns must be matched to each other
    assert f(X, Z) == pytest.approx(math.sqrt(0.5)) and f(Z, Y) == pytest.approx(math.sqrt(0.5))
    assert f(X, Z) + f(Z, Y) < f(X, Y)
    # padded to a common width the triangle inequality holds again
    Xp, Yp, Zp = _pad_all(X, Y, Z)
    assert f(Xp, Yp) == pytest.approx(math.sqrt(2.0))
    assert f(Xp, Yp) <= f(Xp, Zp) + f(Zp, Yp) + 1e-12


def test_angular_alpha_one_is_arccos_normalized_bures():
    for shape in [(10, 3, 3), (30, 4, 7), (12, 20, 5)]:
        X, Y = _pair(*shape, seed=20)
        nbs = ref_normalized_bures(X, Y)
        _close(angular_shape_metric(X, Y, alpha=1.0), math.acos(min(1.0, nbs)))
        # and cos(theta) for alpha = 1 is exactly the nuclear-norm form of Williams et al. (2021)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        direct = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum() / (
            np.linalg.norm(Xc) * np.linalg.norm(Yc)
        )
        _close(math.cos(angular_shape_metric(X, Y)), float(direct))


@pytest.mark.parametrize("shape", [(20, 3, 3), (50, 6, 6), (80, 8, 3), (60, 2, 9)])
def test_angular_alpha_zero_is_arccos_mean_cca(shape):
    """alpha=0 whitens fully: cos(theta) = sum(rho) / sqrt(p1 p2), the mean CCA when p1 = p2."""
    n, p1, p2 = shape
    X, Y = _pair(*shape, seed=21)
    rho = ref_canonical_correlations(X, Y)
    theta = angular_shape_metric(X, Y, alpha=0.0)
    _close(math.cos(theta), float(rho.sum() / math.sqrt(p1 * p2)))
    if p1 == p2:
        _close(theta, math.acos(ref_mean_cca(X, Y)))


def test_angular_alpha_zero_invariant_to_invertible_maps_only_then():
    rng = np.random.default_rng(22)
    X, Y = _pair(40, 5, 4, seed=22)
    A = rng.standard_normal((5, 5)) + 2 * np.eye(5)
    base0 = angular_shape_metric(X, Y, alpha=0.0)
    _close(angular_shape_metric(X @ A, Y, alpha=0.0), base0)
    for alpha in (0.5, 1.0):
        base = angular_shape_metric(X, Y, alpha=alpha)
        assert abs(angular_shape_metric(X @ A, Y, alpha=alpha) - base) > 1e-4


def test_angular_scaling_invariance_depends_on_alpha():
    """Documented deviation from the spec's property list: 0 < alpha < 1 is scale dependent."""
    X, Y = _pair(60, 7, 5, seed=23)
    for alpha in (0.0, 1.0):
        _close(
            angular_shape_metric(3.7 * X, Y, alpha=alpha), angular_shape_metric(X, Y, alpha=alpha)
        )
    for alpha in (0.25, 0.5):
        got = angular_shape_metric(3.7 * X, Y, alpha=alpha)
        _close(got, ref_angular_shape_metric(3.7 * X, Y, alpha))
        assert abs(got - angular_shape_metric(X, Y, alpha=alpha)) > 1e-5


def test_angular_eigenvalue_clip_reproduced():
    """A direction with variance below 1e-7 is whitened as if its eigenvalue were 1e-7."""
    rng = np.random.default_rng(24)
    X = rng.standard_normal((40, 4))
    X[:, 3] = 1e-6 * rng.standard_normal(40)  # eigenvalue ~ 4e-11, clipped to 1e-7
    Y = X @ rng.standard_normal((4, 4)) + 0.1 * rng.standard_normal((40, 4))
    for alpha in (0.0, 0.5):
        got = angular_shape_metric(X, Y, alpha=alpha)
        _close(got, ref_angular_shape_metric(X, Y, alpha))
        unclipped = ref_angular_shape_metric(X, Y, alpha, clip=1e-300)
        assert abs(got - unclipped) > 1e-3, "the clip must change the value here"


def test_angular_clip_on_null_directions_and_padding():
    """p > n - 1 and padding: null directions are clipped but carry no data (reference by SVD)."""
    X, Y = _pair(10, 14, 6, seed=25)
    for alpha in (0.0, 0.3, 0.7):
        _close(
            angular_shape_metric(X, Y, alpha=alpha),
            ref_angular_shape_metric(X, Y, alpha, method="svd"),
        )
    # the variance-preserving factor (padding dependent) cancels: same as without padding
    X, Y = _pair(30, 3, 6, seed=26)
    Xpad = np.hstack([X, np.zeros((30, 3))])
    _close(angular_shape_metric(X, Y, alpha=0.4), angular_shape_metric(Xpad, Y, alpha=0.4))


def test_angular_arccos_argument_clipped():
    """Identical inputs: the ratio may round above 1; the angle is small, never nan."""
    rng = np.random.default_rng(27)
    for seed in range(20):
        X = rng.standard_normal((7 + seed, 1 + seed % 5)) * 10.0 ** (seed % 7 - 3)
        for alpha in (0.0, 0.5, 1.0):
            v = angular_shape_metric(X, X.copy(), alpha=alpha)
            assert 0.0 <= v < 1e-6, (seed, alpha, v)
        assert 0.0 <= orthogonal_procrustes(X, X.copy()) < 1e-6


def test_whitening_routes_agree(monkeypatch):
    """eigh(Xc^T Xc) (well conditioned) and the SVD of Xc give the same metric."""
    X, Y = _pair(50, 6, 5, seed=28)
    by_eigh = [angular_shape_metric(X, Y, alpha=a) for a in (0.0, 0.5)]
    monkeypatch.setattr(al, "_WHITEN_EIGH_MIN_RATIO", math.inf)  # force the SVD route
    by_svd = [angular_shape_metric(X, Y, alpha=a) for a in (0.0, 0.5)]
    for a, b in zip(by_eigh, by_svd):
        _close(a, b, 1e-11)


def test_linear_regression_invariances_of_each_side():
    rng = np.random.default_rng(29)
    X, Y = _pair(40, 4, 3, seed=29)
    base = linear_regression(X, Y)
    A = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    _close(linear_regression(X, Y @ A + 5.0), base)  # any invertible map of the predictor
    _close(linear_regression(2.5 * X @ _orthogonal(rng, 4) - 1.0, Y), base)
    B = np.diag([1.0, 5.0, 0.2, 1.0])
    assert abs(linear_regression(X @ B, Y) - base) > 1e-3  # not for the target


def test_linear_regression_exact_fit_and_asymmetry():
    rng = np.random.default_rng(30)
    Y = rng.standard_normal((20, 3))
    X = Y @ rng.standard_normal((3, 2)) + 4.0
    _close(linear_regression(X, Y), 1.0, 1e-12)
    assert linear_regression(Y, X) < 0.99  # 2 columns cannot explain 3 independent ones


def test_permutation_procrustes_exact_zero_and_padding():
    rng = np.random.default_rng(31)
    X = rng.standard_normal((9, 4))
    assert permutation_procrustes(X, X[:, [3, 1, 0, 2]]) == 0.0
    # extra columns of Y are matched to padding: d = norm of the extra columns
    extra = rng.standard_normal((9, 2))
    _close(
        permutation_procrustes(X, np.hstack([X, extra])[:, [4, 0, 1, 5, 2, 3]]),
        float(np.linalg.norm(extra)),
    )


def test_correlation_match_by_hand():
    # x1 = (0,1,2,3), x2 = (0,1,0,1), x3 constant; y1 = x1 reversed, y2 = (1,0,0,1)
    X = np.array([[0.0, 0.0, 7.0], [1.0, 1.0, 7.0], [2.0, 0.0, 7.0], [3.0, 1.0, 7.0]])
    Y = np.array([[3.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # corr(x1, y1) = -1, corr(x1, y2) = 0, corr(x2, y1) = -1/sqrt5, corr(x2, y2) = 0, x3: 0
    c = 1 / math.sqrt(5)
    # hard: 2 pairs; best = {x1-y2: 0, x3-y1: 0} or {x2-y2: 0, x3-y1: 0} = 0 (any pairing with y1
    # other than x3 is negative)
    assert correlation_match(X, Y) == pytest.approx(0.0, abs=1e-15)
    # soft: row maxima (0, 0, 0) -> 0; column maxima (max(-1, -c, 0), max(0, 0, 0)) = (0, 0) -> 0
    assert correlation_match(X, Y, soft=True) == pytest.approx(0.0, abs=1e-15)
    # without the constant column: hard = (-1/sqrt5 + 0) / 2 (x2-y1, x1-y2) vs (-1 + 0) / 2
    assert correlation_match(X[:, :2], Y) == pytest.approx(-c / 2, abs=1e-15)
    # soft: rows (max(-1, 0), max(-c, 0)) = (0, 0); columns (max(-1, -c), 0) = (-c, 0)
    assert correlation_match(X[:, :2], Y, soft=True) == pytest.approx(
        (0.0 + (-c + 0.0) / 2) / 2, abs=1e-15
    )


def test_correlation_match_per_neuron_scaling_and_sign():
    X, Y = _pair(30, 4, 3, seed=32)
    for soft in (False, True):
        base = correlation_match(X, Y, soft=soft)
        _close(correlation_match(X * np.array([0.1, 3.0, 7.0, 1.0]) + 2.0, Y, soft=soft), base)
        assert abs(correlation_match(-X, Y, soft=soft) - base) > 1e-3  # signed correlations


def test_correlation_match_constant_column_with_rounding_residue():
    """A constant column of 0.1 centres to round-off (1e-17), which must count as zero variance."""
    rng = np.random.default_rng(33)
    X = np.hstack([np.full((7, 1), 0.1), rng.standard_normal((7, 1))])
    assert np.any(X[:, 0] - X[:, 0].mean() != 0)  # the residue this test is about
    Y = np.hstack([np.full((7, 1), 0.1), X[:, 1:] * 2.0])
    # C = [[0, 0], [0, 1]]: hard (0 + 1) / 2; soft ((0 + 1) / 2 + (0 + 1) / 2) / 2
    assert correlation_match(X, Y) == pytest.approx(0.5, abs=1e-15)
    assert correlation_match(X, Y, soft=True) == pytest.approx(0.5, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# (3) nan cases and errors
# ---------------------------------------------------------------------------------------------


def _warns_constant(arg, outcome=r"is undefined \(nan\)"):
    """Expect the DegenerateDataWarning that names ``arg`` as a constant representation."""
    return pytest.warns(DegenerateDataWarning, match=rf"{arg} has zero variance.*{outcome}")


@pytest.mark.parametrize("const", [0.0, 0.1, 0.7, -3.3e5])
def test_nan_for_constant_representations(const):
    rng = np.random.default_rng(34)
    C = np.full((7, 3), const)
    Y = rng.standard_normal((7, 2))
    # Every call warns that C (named X or Y by its position) has zero variance, nan or not.
    with _warns_constant("X"):
        assert math.isnan(orthogonal_procrustes(C, Y))
    with _warns_constant("Y"):
        assert math.isnan(orthogonal_procrustes(Y, C))
    for alpha in (0.0, 0.5, 1.0):
        with _warns_constant("X"):
            assert math.isnan(angular_shape_metric(C, Y, alpha=alpha))
        with _warns_constant("Y"):
            assert math.isnan(angular_shape_metric(Y, C, alpha=alpha))
    with _warns_constant(r"X \(the target\)"):
        assert math.isnan(linear_regression(C, Y))
    # not nan: the size-and-shape distance to a constant is the other's centred norm
    with _warns_constant("X", "stays defined"):
        _close(procrustes_size_and_shape(C, Y), float(np.linalg.norm(Y - Y.mean(0))))
    with _warns_constant("Y", "stays defined"):
        _close(procrustes_size_and_shape(Y, C), float(np.linalg.norm(Y - Y.mean(0))))
    with _warns_constant("X", "stays defined"):
        assert correlation_match(C, Y) == 0.0
    with _warns_constant("X", "stays defined"):
        assert correlation_match(C, Y, soft=True) == 0.0


def test_aligned_cosine_nan_cases():
    rng = np.random.default_rng(35)
    Y = rng.standard_normal((6, 3))
    with pytest.warns(DegenerateDataWarning, match=r"X is all zeros.*undefined \(nan\)"):
        assert math.isnan(aligned_cosine(np.zeros((6, 2)), Y))
    with pytest.warns(DegenerateDataWarning, match=r"Y is all zeros.*undefined \(nan\)"):
        assert math.isnan(aligned_cosine(Y, np.zeros((6, 2))))
    # every row skipped although neither input is all zero
    X = np.zeros((6, 3))
    X[:3] = rng.standard_normal((3, 3))
    Z = np.zeros((6, 3))
    Z[3:] = rng.standard_normal((3, 3))
    with pytest.warns(DegenerateDataWarning, match=r"no row where both .* are non-zero"):
        assert math.isnan(aligned_cosine(X, Z))
    # a constant (non-zero) representation is fine: no centring (still said, MEASURES 0.2)
    with _warns_constant("X", "stays defined"):
        assert math.isfinite(aligned_cosine(np.full((6, 2), 0.1), Y))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, 1.0 + 1e-12, math.nan, math.inf])
def test_alpha_out_of_range(alpha):
    X, Y = _pair(10, 2, 2)
    with pytest.raises(ValueError, match=r"alpha=.* is out of range; expected a value in \[0, 1\]"):
        angular_shape_metric(X, Y, alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha=.*\[0, 1\]"):
        cg.compare_layers([X, Y], measure="angular_shape_metric", alpha=alpha)


@pytest.mark.parametrize("alpha", ["0.5", None, True, [0.5]])
def test_alpha_not_a_number(alpha):
    X, Y = _pair(10, 2, 2)
    with pytest.raises(ValueError, match=r"alpha=.* is invalid; expected a real number"):
        angular_shape_metric(X, Y, alpha=alpha)


@pytest.mark.parametrize("soft", ["yes", 1, None])
def test_soft_not_a_bool(soft):
    X, Y = _pair(10, 2, 2)
    with pytest.raises(ValueError, match=r"soft=.* is invalid; expected True or False"):
        correlation_match(X, Y, soft=soft)


def test_linear_regression_too_many_predictors():
    rng = np.random.default_rng(36)
    X = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match=r"Y \(the predictor\).*n - 1 = 4.*p2 <= n - 1.*p2 = 5"):
        linear_regression(X, rng.standard_normal((5, 5)))
    # the limit itself is fine (an exact fit), and X may be wider than n
    _close(linear_regression(X, rng.standard_normal((5, 4))), 1.0, 1e-12)
    assert math.isfinite(
        linear_regression(rng.standard_normal((5, 9)), rng.standard_normal((5, 2)))
    )


# Revision 2 of the convention: constant predictor columns are dropped with a warning (see
# tests/test_trust_cca_alignment.py), so only collinear ones make the predictor rank deficient.
@pytest.mark.parametrize("case", ["collinear", "duplicate"])
def test_linear_regression_rank_deficient_predictor(case):
    rng = np.random.default_rng(37)
    X = rng.standard_normal((12, 3))
    Y = rng.standard_normal((12, 3))
    if case == "collinear":
        Y[:, 2] = 2 * Y[:, 0] - Y[:, 1] + 1.0  # collinear only after centring
    else:
        Y[:, 2] = Y[:, 0]
    with pytest.raises(
        ValueError, match=r"Y \(the predictor\).*rank deficient.*numerical rank \d < p2 = 3"
    ):
        linear_regression(X, Y)


def test_linear_regression_errors_in_compare_layers_name_the_layer():
    rng = np.random.default_rng(38)
    ok = rng.standard_normal((8, 2))
    wide = rng.standard_normal((8, 9))
    with pytest.raises(ValueError, match=r"b\['1'\] \(the predictor\).*p2 <= n - 1"):
        cg.compare_layers([ok], [ok, wide], measure="linear_regression")
    with pytest.raises(ValueError, match=r"a\['0'\] \(the predictor\).*rank deficient"):
        cg.compare_layers([np.hstack([ok, ok])], measure="linear_regression")


# ---------------------------------------------------------------------------------------------
# (4) compare_layers: batch == pairwise, each layer prepared once
# ---------------------------------------------------------------------------------------------


def _layers(seed, n=40):
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((n, 5)) + 1.0
    h2 = np.tanh(h1 @ rng.standard_normal((5, 9)))
    h3 = np.maximum(h2 @ rng.standard_normal((9, 3)), 0) + 0.1 * rng.standard_normal((n, 3))
    wide = np.tanh(h2 @ rng.standard_normal((9, n + 6)))  # p > n
    return {"h1": h1, "h2": h2, "h3": h3, "wide": wide}


BATCH_CASES = [
    ("orthogonal_procrustes", {}),
    ("procrustes_size_and_shape", {}),
    ("angular_shape_metric", {}),
    ("angular_shape_metric", {"alpha": 0.0}),
    ("angular_shape_metric", {"alpha": 0.5}),
    ("permutation_procrustes", {}),
    ("linear_regression", {}),
    ("aligned_cosine", {}),
    ("correlation_match", {}),
    ("correlation_match", {"soft": True}),
]


def _direct(name, a, b, params):
    f = getattr(al, name)
    return np.array([[f(x, y, **params) for y in b.values()] for x in a.values()])


def _assert_matrix_close(got, want, tol=1e-10):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, params", BATCH_CASES, ids=[f"{m}-{p}" for m, p in BATCH_CASES])
def test_batch_equals_pairwise(name, params):
    assert cg.get_measure(name).layers.prepare is not None
    a = _layers(40)
    if name == "linear_regression":
        del a["wide"]  # p2 > n - 1 is an error for the predictor
    rng = np.random.default_rng(41)
    b = {"x": a["h1"] @ rng.standard_normal((5, 4)), "y": rng.standard_normal((40, 6)) - 3.0}
    res = cg.compare_layers(a, measure=name, **params)
    _assert_matrix_close(res.values, _direct(name, a, a, params))
    if name in SYMMETRIC:
        assert np.array_equal(res.values, res.values.T)
    cross = cg.compare_layers(a, b, measure=name, **params)
    _assert_matrix_close(cross.values, _direct(name, a, b, params))
    # float32 layers are compared as float64 copies of the same values
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    a64 = {k: v.astype(np.float64) for k, v in a32.items()}
    _assert_matrix_close(
        cg.compare_layers(a32, measure=name, **params).values, _direct(name, a64, a64, params)
    )


def test_batch_nan_entries():
    rng = np.random.default_rng(42)
    layers = [rng.standard_normal((10, 3)), np.full((10, 2), 0.1)]
    with _warns_constant(r"a\['1'\]"):
        res = cg.compare_layers(layers, measure="orthogonal_procrustes").values
    assert math.isnan(res[0, 1]) and math.isnan(res[1, 0]) and math.isnan(res[1, 1])
    assert res[0, 0] < 1e-6


@pytest.mark.parametrize(
    "name, prep",
    [
        ("orthogonal_procrustes", "_centre"),
        ("procrustes_size_and_shape", "_centre"),
        ("angular_shape_metric", "_whiten"),
        ("permutation_procrustes", "_plain"),
        ("aligned_cosine", "_rows"),
        ("correlation_match", "_unit_columns"),
        ("linear_regression", "_predictor_basis"),
    ],
)
def test_each_layer_prepared_once(monkeypatch, name, prep):
    """L1 + L2 preparations for an L1 x L2 matrix, not L1 * L2."""
    calls = []
    original = getattr(al, prep)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(al, prep, counted)
    rng = np.random.default_rng(43)
    a = [rng.standard_normal((20, 3)) for _ in range(3)]
    b = [rng.standard_normal((20, 2)) for _ in range(4)]
    cg.compare_layers(a, b, measure=name)
    expected = 4 if name == "linear_regression" else 7  # linear_regression: bases of b only
    assert len(calls) == expected
    calls.clear()
    cg.compare_layers(a, measure=name)
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------
# (5) numerical routes: eigenvalue route of the nuclear norm, SVD fallback, float32
# ---------------------------------------------------------------------------------------------


def test_nuclear_norm_eigenvalue_route_accepts_well_conditioned():
    rng = np.random.default_rng(50)
    for shape in [(60, 60), (80, 50), (50, 90)]:
        M = rng.standard_normal(shape)
        got = al._nuclear_norm_eig(M)
        assert got is not None
        want = np.linalg.svd(M, compute_uv=False).sum()
        assert abs(got - want) <= 1e-12 * want
        assert al._nuclear_norm(M) == got


def test_nuclear_norm_eigenvalue_route_rejects_rank_deficient():
    rng = np.random.default_rng(51)
    M = rng.standard_normal((60, 20)) @ rng.standard_normal((20, 60))  # rank 20
    assert al._nuclear_norm_eig(M) is None
    U = _orthogonal(rng, 60)
    V = _orthogonal(rng, 60)
    s = np.logspace(0, -12, 60)  # ill conditioned
    M2 = (U * s) @ V.T
    assert al._nuclear_norm_eig(M2) is None
    assert abs(al._nuclear_norm(M2) - s.sum()) <= 1e-13 * s.sum()
    assert al._nuclear_norm_eig(np.zeros((60, 60))) is None
    assert al._nuclear_norm(np.zeros((60, 60))) == 0.0


def test_svd_falls_back_to_gesvd(monkeypatch):
    X, Y = _pair(30, 6, 4, seed=52)
    want = {
        "op": orthogonal_procrustes(X, Y),
        "ang": angular_shape_metric(X, Y, alpha=0.5),
        "ac": aligned_cosine(X, Y),
    }
    calls = []
    real_svd = scipy.linalg.svd

    def failing_gesdd(*args, **kwargs):  # NumPy's SVD is LAPACK gesdd
        calls.append("gesdd")
        raise np.linalg.LinAlgError("SVD did not converge")

    def gesvd(a, *args, lapack_driver="gesdd", **kwargs):
        calls.append(lapack_driver)
        return real_svd(a, *args, lapack_driver=lapack_driver, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", failing_gesdd)
    monkeypatch.setattr(scipy.linalg, "svd", gesvd)
    monkeypatch.setattr(al, "_WHITEN_EIGH_MIN_RATIO", math.inf)  # whitening through the SVD too
    _close(orthogonal_procrustes(X, Y), want["op"], 1e-12)
    _close(angular_shape_metric(X, Y, alpha=0.5), want["ang"], 1e-12)
    _close(aligned_cosine(X, Y), want["ac"], 1e-12)
    assert "gesdd" in calls and "gesvd" in calls


@pytest.mark.parametrize("name, params", BATCH_CASES, ids=[f"{m}-{p}" for m, p in BATCH_CASES])
def test_float32_input(name, params):
    X, Y = _pair(30, 4, 3, seed=53)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    f = getattr(al, name)
    _close(
        f(X32, Y32, **params), f(X32.astype(np.float64), Y32.astype(np.float64), **params), 1e-12
    )


# ------------------------------------------------------------------ near-identical sides


def _mp_procrustes(X, Y):
    """(orthogonal_procrustes, procrustes_size_and_shape, arccos form) at 60 digits."""
    import mpmath

    with mpmath.workdps(60):

        def centred(A):
            M = mpmath.matrix(A.tolist())
            for j in range(M.cols):
                mu = mpmath.fsum(M[i, j] for i in range(M.rows)) / M.rows
                for i in range(M.rows):
                    M[i, j] -= mu
            return M

        A, B = centred(X), centred(Y)
        na = mpmath.fsum(x * x for x in A)
        nb = mpmath.fsum(x * x for x in B)
        nuc = mpmath.fsum(mpmath.svd_r(A.T * B, compute_uv=False))
        s = nuc / mpmath.sqrt(na * nb)
        return (
            float(mpmath.sqrt(2 - 2 * s)),
            float(mpmath.sqrt(na + nb - 2 * nuc)),
            float(mpmath.acos(s)),
        )


def test_identical_and_scaled_copies_are_at_distance_exactly_zero():
    # FAULTS: X == Y gives Procrustes distance 0 (2 - 2 ||A^T A||_* left about 1.5e-8)
    X = np.random.default_rng(40).standard_normal((15, 4))
    for Y in (X, X.copy()):
        assert orthogonal_procrustes(X, Y) == 0.0
        assert procrustes_size_and_shape(X, Y) == 0.0
        for alpha in (0.0, 0.5, 1.0):
            assert angular_shape_metric(X, Y, alpha=alpha) == 0.0
    assert orthogonal_procrustes(X, 2 * X) == 0.0  # scale is normalised away
    assert procrustes_size_and_shape(X, 2 * X) == pytest.approx(
        float(np.linalg.norm(X - X.mean(0))), rel=1e-14
    )


@pytest.mark.parametrize("t", [1e-12, 1e-8, 1e-5, 1e-3, 1e-1])
@pytest.mark.parametrize("widths", [(4, 4), (4, 6), (6, 4)])
def test_near_identical_sides_against_60_digits(t, widths):
    # Y = X Q (rotated, zero-padded when wider) plus a small perturbation: the distances are
    # then of order t, and must not sit on the sqrt(eps) floor of 2 - 2 ||A^T B||_*.
    rng = np.random.default_rng(41)
    p1, p2 = widths
    X = rng.standard_normal((20, p1))
    Q, _ = np.linalg.qr(rng.standard_normal((max(p1, p2), max(p1, p2))))
    if p2 >= p1:  # X zero-padded to p2 columns, rotated: at distance 0 from X
        Y = np.c_[X, np.zeros((20, p2 - p1))] @ Q
    else:  # narrower: X's first p2 columns rotated (a distance of order 1 to X)
        Y = X[:, :p2] @ Q[:p2, :p2]
    Y = Y + t * rng.standard_normal(Y.shape)
    op, pss, ang = _mp_procrustes(X, Y)
    assert orthogonal_procrustes(X, Y) == pytest.approx(op, rel=1e-3, abs=1e-14)
    assert procrustes_size_and_shape(X, Y) == pytest.approx(pss, rel=1e-3, abs=1e-13)
    assert angular_shape_metric(X, Y) == pytest.approx(ang, rel=1e-3, abs=1e-14)


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e160, 1e250])
def test_correlation_match_does_not_depend_on_column_scales(scale):
    # Column b of X is Y itself: the hard match is exactly 1, the soft one
    # ((corr(a, b) + 1) / 2 + 1) / 2 (MEASURES 3.7). A column 1e160 times smaller than the
    # others once had its squared norm underflow (values above 1, or near 0).
    rng = np.random.default_rng(42)
    a, b = rng.standard_normal((2, 50))
    X, Y = np.c_[scale * a, b], b[:, None]
    r = float(np.corrcoef(a, b)[0, 1])
    assert cg.correlation_match(X, Y) == pytest.approx(1.0, rel=1e-15)
    assert cg.correlation_match(X, Y, soft=True) == pytest.approx(((r + 1) / 2 + 1) / 2, rel=1e-14)
