"""Tests of the CCA measures ``cca``, ``svcca`` and ``pwcca`` (docs: CCA page).

Values are checked against the slow references of ``tests/reference_cca.py`` (written from the
specification alone), hand-computed cases, identities (invertible maps, column spaces), the
published number of Kornblith et al. (2019), and every ValueError / nan case of the spec. The
engineering promises are tested too: the Gram (covariance) route and the QR / SVD fallback
agree, the guard sends ill-conditioned data to the fallback, the gesvd fallback works, and
``compare_layers`` prepares each layer once and equals the pairwise calls.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import numpy as np
import pytest
import scipy.linalg

import congruence as cg
import congruence.measures.cca as mod
from congruence import DegenerateDataWarning
from congruence.measures.cca import cca, pwcca, svcca

sys.path.insert(0, os.path.dirname(__file__))
from reference_cca import (  # noqa: E402
    ref_canonical_correlations,
    ref_cca,
    ref_centre,
    ref_pwcca,
    ref_pwcca_mp,
    ref_pwcca_weights,
    ref_svcca,
    ref_svcca_k,
)

TOL = 1e-10


def _pair(n, p1, p2, seed=0):
    """X (n, p1) with column offsets and a Y (n, p2) that depends on it nonlinearly."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) @ rng.standard_normal((p1, p1)) + rng.uniform(-5, 5, p1)
    Y = np.tanh(X @ rng.standard_normal((p1, p2)) / math.sqrt(p1))
    Y = Y + 0.5 * rng.standard_normal((n, p2)) + 2.0
    return X, Y


def _close(got, want, tol=TOL, what=""):
    assert isinstance(got, float), f"{what}: returned {type(got).__name__}"
    assert abs(got - want) <= tol, f"{what}: got {got!r}, want {want!r}, diff {abs(got - want):.3g}"


#: The DegenerateDataWarning of over-fitting (``p1 + p2 > n - 1``, for svcca ``k_X + k_Y``).
OVERFIT = r"> n - 1.*1 by construction \(over-fitting"
#: The DegenerateDataWarning of a representation with identical rows (the value is nan).
IDENTICAL = r"zero variance: every row is identical"


def _overfits(X, Y, variance=None):
    """The spec's over-fitting condition (MEASURES 2.1 / 2.2): ``p1 + p2 > n - 1`` for cca and
    pwcca; for svcca (``variance`` given) ``k_X + k_Y > n - 1`` with the reference's ``k``."""
    n = X.shape[0]
    if variance is None:
        return X.shape[1] + Y.shape[1] > n - 1
    return ref_svcca_k(X, variance) + ref_svcca_k(Y, variance) > n - 1


def _overfit_warning(expected=True):
    """Expect the over-fitting warning if ``expected``, else nothing."""
    if expected:
        return pytest.warns(DegenerateDataWarning, match=OVERFIT)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------
# (1) values against the references
# ---------------------------------------------------------------------------------------------

# (n, p1, p2): smallest n, one column, unequal widths both ways, equal widths, p1 + p2 > n-1,
# p = n-1 on one side.
SHAPES = [
    (2, 1, 1),
    (3, 1, 2),
    (5, 2, 2),
    (10, 3, 7),
    (40, 7, 5),
    (61, 5, 9),
    (120, 20, 30),
    (30, 14, 17),
    (12, 11, 3),
]


@pytest.mark.parametrize("statistic", ["mean", "r2"])
@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_cca_matches_reference(n, p1, p2, statistic):
    X, Y = _pair(n, p1, p2, seed=n + p1)
    with _overfit_warning(_overfits(X, Y)):
        got = cca(X, Y, statistic=statistic)
    _close(got, ref_cca(X, Y, statistic), what="cca(X, Y)")
    with _overfit_warning(_overfits(Y, X)):
        got = cca(Y, X, statistic=statistic)
    _close(got, ref_cca(Y, X, statistic), what="cca(Y, X)")


# Shapes for SVCCA include p > n (no width limit) on one or both sides.
SV_SHAPES = SHAPES[1:] + [(25, 2, 60), (30, 50, 20)]


@pytest.mark.parametrize("variance", [0.3, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("n, p1, p2", SV_SHAPES)
def test_svcca_matches_reference(n, p1, p2, variance):
    X, Y = _pair(n, p1, p2, seed=3 * n + p2)
    with _overfit_warning(_overfits(X, Y, variance)):
        got = svcca(X, Y, variance=variance)
    _close(got, ref_svcca(X, Y, variance), what="svcca")


# PWCCA: p1 + p2 <= n - 1, where the singular vectors are unique (Note 2 of the spec).
PW_SHAPES = [
    (2, 1, 1),
    (4, 1, 2),
    (10, 3, 3),
    (10, 3, 6),
    (40, 7, 5),
    (61, 5, 9),
    (120, 20, 30),
    (60, 25, 25),
]


@pytest.mark.parametrize("n, p1, p2", PW_SHAPES)
def test_pwcca_matches_reference(n, p1, p2):
    X, Y = _pair(n, p1, p2, seed=7 * n + p1)
    with _overfit_warning(_overfits(X, Y)):  # (2, 1, 1): p1 + p2 = 2 > n - 1 = 1
        got = pwcca(X, Y)
    _close(got, ref_pwcca(X, Y), what="pwcca(X, Y)")
    with _overfit_warning(_overfits(Y, X)):
        got = pwcca(Y, X)
    _close(got, ref_pwcca(Y, X), what="pwcca(Y, X)")


@pytest.mark.parametrize("f", [cca, svcca, pwcca], ids=["cca", "svcca", "pwcca"])
def test_one_column_each_is_abs_pearson(f):
    """By hand: centred x = (-1.5, -.5, .5, 1.5), y = (-1.5, .5, -.5, 1.5); r = 4 / 5."""
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([[1.0], [3.0], [2.0], [4.0]])
    _close(f(x, y), 0.8, 1e-14)
    _close(f(x, -y + 10), 0.8, 1e-14)  # canonical correlations are >= 0
    if f is cca:
        _close(cca(x, y, statistic="r2"), 0.64, 1e-14)


def test_two_columns_by_hand():
    """X = [a, b], Y = [a, c] with a, b, c centred and mutually orthogonal, except that
    c = (b + d) / sqrt(2) for d orthogonal to a and b: rho = (1, 1/sqrt(2))."""
    a = np.array([1.0, -1, 1, -1, 0, 0])
    b = np.array([1.0, 1, -1, -1, 0, 0])
    d = np.array([1.0, 1, 1, 1, -2, -2])
    assert a @ b == a @ d == b @ d == 0 and a.sum() == b.sum() == d.sum() == 0
    X = np.column_stack([a, b])
    Y = np.column_stack([a, b / np.linalg.norm(b) + d / np.linalg.norm(d)])
    r = 1 / math.sqrt(2)
    _close(cca(X, Y), (1 + r) / 2, 1e-14)
    _close(cca(X, Y, statistic="r2"), (1 + 0.5) / 2, 1e-14)
    _close(svcca(X, Y, variance=1.0), (1 + r) / 2, 1e-14)


def test_kornblith_notebook_value():
    """The notebook of Kornblith et al. (2019) prints ``Mean Squared CCA Correlation: 0.54312``
    for this data; its ``cca`` takes QR bases of the *uncentred* features. Stacking each
    matrix on its negative gives columns of mean exactly 0 with ``X^T Y`` doubled, so the
    centred definition of the spec reproduces the published, uncentred value; on the data
    itself (centred, as the spec requires) the value is 0.54540."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = X + np.random.randn(100, 10)
    published = cca(np.vstack([X, -X]), np.vstack([Y, -Y]), statistic="r2")
    assert round(published, 5) == 0.54312
    centred = cca(X, Y, statistic="r2")
    assert round(centred, 5) == 0.54540
    _close(centred, ref_cca(X, Y, "r2"))


def test_float32_input_same_values():
    X, Y = _pair(50, 6, 4, seed=5)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    for f in (cca, svcca, pwcca):
        _close(f(X32, Y32), f(X64, Y64), 1e-13, what=f.__name__)


# ---------------------------------------------------------------------------------------------
# (2) invariances and identities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["mean", "r2"])
def test_cca_invariant_to_invertible_linear_maps(statistic):
    X, Y = _pair(80, 6, 4, seed=11)
    rng = np.random.default_rng(12)
    base = cca(X, Y, statistic=statistic)
    # A generic map, a badly scaled one (condition number ~1e3) and a triangular one.
    A = rng.standard_normal((6, 6))
    B = np.diag(np.logspace(0, 3, 6)) @ rng.standard_normal((6, 6))
    T = np.triu(rng.standard_normal((4, 4))) + 3 * np.eye(4)
    for Xt, Yt in ((X @ A, Y), (X @ B - 4.0, Y), (X, Y @ T + 1.0), (X @ A, Y @ T)):
        _close(cca(Xt, Yt, statistic=statistic), base, 1e-9)


def test_svcca_variance_one_is_mean_cca():
    """``variance=1`` keeps the whole column space: SVCCA = mean CCA on full-rank data."""
    for n, p1, p2 in [(40, 7, 5), (12, 11, 3), (30, 14, 17)]:
        X, Y = _pair(n, p1, p2, seed=n)
        # Full rank: k_X + k_Y = p1 + p2, over-fitting for the last two shapes.
        with _overfit_warning(_overfits(X, Y, 1.0)):
            sv = svcca(X, Y, variance=1.0)
        with _overfit_warning(_overfits(X, Y)):
            mean_cca = cca(X, Y)
        _close(sv, mean_cca, what=str((n, p1, p2)))


def test_svcca_variance_one_uses_numerical_rank():
    """X = [A, A B] has the column space of A (rank 3 < 5 columns); with ``variance=1``
    SVCCA keeps 3 components, so it equals the mean CCA of A with Y."""
    rng = np.random.default_rng(21)
    A = rng.standard_normal((50, 3))
    X = np.hstack([A, A @ rng.standard_normal((3, 2))]) + 1.0
    Y = np.tanh(A @ rng.standard_normal((3, 4))) + 0.3 * rng.standard_normal((50, 4))
    assert ref_svcca_k(X, 1.0) == 3
    assert mod._prepare_sv(X, 1.0).width == 3
    _close(svcca(X, Y, variance=1.0), cca(A, Y), 1e-12)
    _close(svcca(X, Y, variance=1.0), ref_svcca(X, Y, 1.0))
    _close(svcca(Y, X, variance=1.0), cca(Y, A), 1e-12)


def test_svcca_components_by_hand():
    """Singular values (3, 2, 1): cumulative variance fractions 9/14, 13/14, 1."""
    rng = np.random.default_rng(31)
    U, _ = np.linalg.qr(ref_centre(rng.standard_normal((40, 3))))
    V, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    X = (U * [3.0, 2.0, 1.0]) @ V.T + 7.0
    for variance, k in [(0.1, 1), (0.64, 1), (0.65, 2), (0.92, 2), (0.93, 3), (1.0, 3)]:
        assert ref_svcca_k(X, variance) == k
        assert mod._prepare_sv(X, variance).width == k, variance
    # With k = 1, SVCCA of X with its own first principal component score is 1, and with
    # the second one it is 0.
    pc1, pc2 = U[:, :1], U[:, 1:2]
    _close(svcca(X, pc1 * 5, variance=0.5), 1.0, 1e-12)
    _close(svcca(X, pc2 - 1, variance=0.5), 0.0, 1e-12)


def test_overfitting_gives_correlations_equal_to_one():
    """p1 + p2 > n - 1: at least p1 + p2 - (n - 1) correlations are 1; not an error."""
    n, p1, p2 = 20, 12, 12
    X, Y = _pair(n, p1, p2, seed=41)
    rho = mod._correlations(mod._prepare_full(X, "X", False), mod._prepare_full(Y, "Y", False))
    ref = ref_canonical_correlations(X, Y)
    np.testing.assert_allclose(rho, ref, atol=1e-10)
    ones = p1 + p2 - (n - 1)
    assert np.all(np.abs(rho[:ones] - 1.0) <= 1e-10), rho
    assert np.all(np.abs(ref[:ones] - 1.0) <= 1e-10), ref
    with pytest.warns(DegenerateDataWarning, match=r"12 \+ 12 = 24 > n - 1 = 19.*over-fitting"):
        got = cca(X, Y)
    _close(got, ref_cca(X, Y))
    # p1 = p2 = n - 1: every correlation is 1.
    X, Y = _pair(9, 8, 8, seed=42)
    with pytest.warns(DegenerateDataWarning, match=OVERFIT):
        got = cca(X, Y)
    _close(got, 1.0, 1e-10)
    with pytest.warns(DegenerateDataWarning, match=OVERFIT):
        got = cca(X, Y, statistic="r2")
    _close(got, 1.0, 1e-10)
    with pytest.warns(DegenerateDataWarning, match=r"over-fitting.*so pwcca is inflated"):
        got = pwcca(X, Y)
    assert 0.0 <= got <= 1.0 + 1e-12


def test_pwcca_symmetry_depends_on_widths():
    X, Y = _pair(60, 7, 4, seed=51)
    _close(pwcca(X, Y), pwcca(Y, X), 1e-12)
    X, Y = _pair(60, 5, 5, seed=52)
    assert abs(pwcca(X, Y) - pwcca(Y, X)) > 1e-4
    _close(pwcca(Y, X), ref_pwcca(Y, X))


def test_pwcca_weights_follow_the_seven_steps():
    """The spec's weights (directions Z W without whitening, QR in order, |P^T Z| sums) give
    the reference value; three plausible readings of the paper give different values."""
    X, Y = _pair(80, 4, 6, seed=61)
    alpha, rho = ref_pwcca_weights(X, Y)
    assert alpha.shape == (4,) and abs(alpha.sum() - 1) < 1e-14
    value = pwcca(X, Y)
    _close(value, float(alpha @ rho))

    Xc, Yc = ref_centre(X), ref_centre(Y)
    n = X.shape[0]
    Sxx, Syy, Sxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)

    def inv_sqrt(S):
        w, V = np.linalg.eigh(S)
        return V @ np.diag(w**-0.5) @ V.T

    U, rho2, _ = np.linalg.svd(inv_sqrt(Sxx) @ Sxy @ inv_sqrt(Syy))

    def weighted(D, order=None):
        P, _ = np.linalg.qr(D if order is None else D[:, order])
        a = np.abs(P.T @ Xc).sum(axis=1)
        if order is not None:
            a = a[np.argsort(order)]
        return float((a / a.sum()) @ rho2)

    whitened = weighted(Xc @ inv_sqrt(Sxx) @ U)  # canonical variates as directions
    reversed_qr = weighted(Xc @ U, order=np.arange(4)[::-1])  # Gram-Schmidt from the last
    raw_a = np.abs(Xc @ U).T @ np.abs(Xc)  # no orthonormalisation at all
    unnormalised = float((raw_a.sum(1) / raw_a.sum()) @ rho2)
    for label, other in [
        ("whitened", whitened),
        ("reversed QR", reversed_qr),
        ("no QR", unnormalised),
    ]:
        assert abs(other - value) > 1e-4, f"{label} reading indistinguishable: {other} vs {value}"


# ---------------------------------------------------------------------------------------------
# (3) errors and nan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", [cca, pwcca], ids=["cca", "pwcca"])
def test_width_limit(f):
    rng = np.random.default_rng(71)
    X, Y = rng.standard_normal((10, 10)), rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"X has shape \(10, 10\).*p <= n-1 = 9.*svcca.*cka"):
        f(X, Y)
    with pytest.raises(ValueError, match=r"Y has shape \(10, 12\).*p <= n-1 = 9.*svcca.*cka"):
        f(Y, rng.standard_normal((10, 12)))
    # p = n - 1 is allowed; with Y's 3 columns p1 + p2 = 12 > n - 1 = 9: over-fitting.
    with pytest.warns(DegenerateDataWarning, match=r"p1 \+ p2 = 9 \+ 3 = 12 > n - 1 = 9"):
        got = f(X[:, :9], Y)
    assert 0.0 <= got <= 1.0
    # svcca has no width limit; its k_X + k_Y > n - 1 here too.
    with _overfit_warning(_overfits(X, Y, 0.99)):
        got = svcca(X, Y)
    assert not math.isnan(got)


def _rank_deficient_cases():
    rng = np.random.default_rng(81)
    X = rng.standard_normal((30, 4))
    dup = X.copy()
    dup[:, 3] = X[:, 1]
    collinear = X.copy()
    collinear[:, 3] = X[:, 0] - 2 * X[:, 1] + 5
    return {"duplicate": dup, "collinear": collinear}


# Revision 2 of the convention: constant columns are no longer a rank deficiency (they are
# dropped with a warning, see tests/test_trust_cca_alignment.py); only collinear ones raise.
@pytest.mark.parametrize("f", [cca, pwcca], ids=["cca", "pwcca"])
@pytest.mark.parametrize("case", list(_rank_deficient_cases()))
def test_rank_deficient_raises(f, case):
    bad = _rank_deficient_cases()[case]
    good = np.random.default_rng(82).standard_normal((30, 3))
    msg = r"{} of shape \(30, \d\) does not have full column rank.*collinear.*epsilon.*svcca"
    with pytest.raises(ValueError, match=msg.format("X")):
        f(bad, good)
    with pytest.raises(ValueError, match=msg.format("Y")):
        f(good, bad)


@pytest.mark.parametrize("variance", [0, 0.0, -0.5, 1.0000001, 2, math.nan, math.inf])
def test_svcca_variance_out_of_range(variance):
    X, Y = _pair(20, 3, 3)
    with pytest.raises(ValueError, match=r"variance=.* out of range; expected a value in \(0, 1\]"):
        svcca(X, Y, variance=variance)


@pytest.mark.parametrize("variance", ["0.5", None, True, [0.5]])
def test_svcca_variance_not_a_number(variance):
    X, Y = _pair(20, 3, 3)
    with pytest.raises(ValueError, match=r"variance=.* is invalid; expected a real number"):
        svcca(X, Y, variance=variance)


@pytest.mark.parametrize("statistic", ["median", "R2", None, 2])
def test_cca_statistic_invalid(statistic):
    X, Y = _pair(20, 3, 3)
    with pytest.raises(ValueError, match=r"statistic=.* is invalid; expected one of 'mean', 'r2'"):
        cca(X, Y, statistic=statistic)


@pytest.mark.parametrize("variance", [0.5, 0.99, 1.0])
def test_svcca_nan_for_constant_representation(variance):
    rng = np.random.default_rng(91)
    X = rng.standard_normal((30, 4))
    const = np.tile([0.1, -3.7, 1e8], (30, 1))  # constant columns of several values
    wide_const = np.full((30, 50), 0.3)  # p > n: the SVD route
    for C in (const, wide_const):
        for args in ((C, X), (X, C), (C, C)):
            with pytest.warns(cg.DegenerateDataWarning, match=r"zero variance.*identical"):
                assert math.isnan(svcca(*args, variance=variance))
    assert not math.isnan(svcca(X, X + 1, variance=variance))


# ---------------------------------------------------------------------------------------------
# (4) routes, guard and fallbacks
# ---------------------------------------------------------------------------------------------


def test_gram_and_fallback_routes_agree(monkeypatch):
    """With the guard forcing the QR / SVD fallback for every layer, well-conditioned data
    give the same values as the Gram route."""
    cases = [_pair(n, p1, p2, seed=n) for n, p1, p2 in [(40, 7, 5), (120, 20, 30), (60, 25, 25)]]
    wide = [_pair(n, p1, p2, seed=n) for n, p1, p2 in [(30, 50, 20), (25, 60, 40)]]

    def wide_svcca(X, Y, variance):
        # p > n: over-fitting where k_X + k_Y > n - 1 (at the default 0.99, not at 0.5).
        with _overfit_warning(_overfits(X, Y, variance)):
            return svcca(X, Y, variance=variance)

    def values():
        return (
            [
                (
                    cca(X, Y),
                    cca(X, Y, statistic="r2"),
                    svcca(X, Y),
                    svcca(X, Y, variance=1.0),
                    pwcca(X, Y),
                    pwcca(Y, X),
                )
                for X, Y in cases
            ],
            [(wide_svcca(X, Y, 0.99), wide_svcca(X, Y, 0.5)) for X, Y in wide],
        )

    fast = values()
    monkeypatch.setattr(mod, "_COND_MAX", 1.0)  # no Gram block passes: QR / SVD everywhere
    assert mod._prepare_full(cases[0][0], "X", False).chol is None
    slow = values()
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f, s, rtol=0, atol=1e-12)


def _ill_conditioned(seed=101, n=80, p=3, scale=1e-6):
    """X whose last column is the first plus ``scale`` times noise (cond(Xc^T Xc) ~ 1e12)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X[:, -1] = X[:, 0] + scale * rng.standard_normal(n)
    X += 10.0
    Y = np.tanh(X[:, :2] @ rng.standard_normal((2, 4))) + 0.5 * rng.standard_normal((n, 4))
    return X, Y


def test_ill_conditioned_takes_the_qr_route(monkeypatch):
    X, Y = _ill_conditioned()
    G = ref_centre(X).T @ ref_centre(X)
    assert np.linalg.cond(G) > 1e11
    want_cca = ref_cca(X, Y)  # QR of the centred matrices: accurate to ~eps cond(Xc)
    want_pw = (ref_pwcca_mp(X, Y), ref_pwcca_mp(Y, X))  # 50 digits
    want_sv = ref_svcca(X, Y, 1.0)
    got = (cca(X, Y), cca(Y, X), pwcca(X, Y), pwcca(Y, X), svcca(X, Y, variance=1.0))
    for g, w in zip(got, (want_cca, want_cca) + want_pw + (want_sv,)):
        _close(g, w, 1e-9)
    # Without the guard the Gram route loses about cond(G) * eps: the test above can fail.
    monkeypatch.setattr(mod, "_COND_MAX", math.inf)
    assert abs(cca(X, Y) - want_cca) > 1e-8
    assert abs(svcca(X, Y, variance=1.0) - want_sv) > 1e-8


def _with_condition(cond_gram, seed, n=60, p=6):
    """Centred-column data whose Gram matrix has condition number ``cond_gram`` exactly
    (up to rounding): singular values log-spaced from 1 to ``cond_gram ** -0.5``."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(ref_centre(rng.standard_normal((n, p))))
    V, _ = np.linalg.qr(rng.standard_normal((p, p)))
    return (U * np.logspace(0, -0.5 * math.log10(cond_gram), p)) @ V.T + 2.0


def test_guard_accepts_only_certified_gram_blocks():
    """The shifted-Cholesky guard: accepted blocks have cond < _COND_MAX (checked with exact
    eigenvalues); blocks with cond > _COND_MAX are always rejected; well-conditioned ones
    accepted. Conservative by at most a factor sqrt(p) in between."""
    assert mod._COND_MAX == 1e8
    for seed, cond in enumerate(np.logspace(4, 12, 33)):
        X = _with_condition(cond, seed)
        Xc = ref_centre(X)
        lam = np.linalg.eigvalsh(Xc.T @ Xc)
        exact = lam[-1] / lam[0]
        accepted = mod._guarded_cholesky(Xc.T @ Xc) is not None
        if accepted:
            assert exact < 1e8, (cond, exact)
        if exact > 1e8:
            assert not accepted, (cond, exact)
        if exact < 1e8 / math.sqrt(6):
            assert accepted, (cond, exact)
        # Either way the value is the QR route's.
        Y = np.tanh(X @ np.ones((6, 2))) + np.random.default_rng(seed).standard_normal((60, 2))
        _close(cca(X, Y), ref_cca(X, Y), 1e-9, what=f"cond {cond:.1e}")


def test_near_duplicate_column_is_rank_deficient():
    """A column equal to another up to 1e-15 relative noise is numerically collinear."""
    X, Y = _ill_conditioned(scale=1e-15)
    with pytest.raises(ValueError, match=r"X of shape \(80, 3\).*numerical rank 2 < 3"):
        cca(X, Y)
    with pytest.raises(ValueError, match=r"Y of shape \(80, 3\).*numerical rank 2 < 3"):
        pwcca(Y, X)
    # svcca keeps the 2 numerically independent directions.
    assert mod._prepare_sv(X, 1.0).width == 2


def test_svcca_ill_conditioned_retained_components_fall_back():
    """A retained component with variance 1e-10 of the largest: the SVD route is used."""
    rng = np.random.default_rng(111)
    U, _ = np.linalg.qr(ref_centre(rng.standard_normal((60, 4))))
    X = (U * [1.0, 1e-1, 1e-3, 1e-5]) @ np.linalg.qr(rng.standard_normal((4, 4)))[0]
    Y = U[:, [0, 3]] @ rng.standard_normal((2, 3)) + 0.1 * rng.standard_normal((60, 3))
    for variance in (1.0, 1 - 1e-12):
        assert ref_svcca_k(X, variance) == 4
        _close(svcca(X, Y, variance=variance), ref_svcca(X, Y, variance), 1e-9)


@pytest.mark.parametrize("scale", [1e-160, 1e-30, 1e30, 1e150])
def test_extreme_scales(scale):
    """Gram blocks that would underflow or overflow are not used: the values are the same
    at any scale (isotropic scaling invariance), where QR / SVD scale safely."""
    X, Y = _pair(60, 6, 4, seed=125)
    for f in (cca, svcca, pwcca):
        base = f(X, Y)
        _close(f(scale * X, Y), base, 1e-10, what=f"{f.__name__} x {scale:g}")
        _close(f(X, scale * Y), base, 1e-10, what=f"{f.__name__} y {scale:g}")
    Xw, Yw = _pair(20, 30, 25, seed=126)  # svcca with p > n: k_X + k_Y > n - 1 = 19
    with pytest.warns(DegenerateDataWarning, match=OVERFIT):
        got = svcca(scale * Xw, Yw)
    with pytest.warns(DegenerateDataWarning, match=OVERFIT):
        want = svcca(Xw, Yw)
    _close(got, want, 1e-10)


def test_gesvd_fallback(monkeypatch):
    """When gesdd (NumPy's SVD) raises LinAlgError the SVDs are redone with gesvd (SciPy's)."""
    X, Y = _pair(50, 6, 4, seed=121)
    want = [cca(X, Y), svcca(X, Y), pwcca(X, Y)]
    real_svd = scipy.linalg.svd
    drivers = []

    def failing_gesdd(*args, **kwargs):
        drivers.append("gesdd")
        raise np.linalg.LinAlgError("SVD did not converge")

    def gesvd(a, *args, lapack_driver="gesdd", **kwargs):
        drivers.append(lapack_driver)
        return real_svd(a, *args, lapack_driver=lapack_driver, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", failing_gesdd)
    monkeypatch.setattr(scipy.linalg, "svd", gesvd)
    got = [cca(X, Y), svcca(X, Y), pwcca(X, Y)]
    assert "gesvd" in drivers and "gesdd" in drivers
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# (5) compare_layers
# ---------------------------------------------------------------------------------------------


def _layers(n=70, seed=131):
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((n, 6)) + 1.0
    h2 = np.tanh(h1 @ rng.standard_normal((6, 9)))
    h3 = np.maximum(h2 @ rng.standard_normal((9, 4)), 0) + 0.1 * rng.standard_normal((n, 4))
    h4 = np.tanh(h3 @ rng.standard_normal((4, 6))) + 0.2 * rng.standard_normal((n, 6))
    ill, _ = _ill_conditioned(seed=seed, n=n, p=5)  # takes the QR route
    return {"h1": h1, "h2": h2, "h3": h3, "h4": h4, "ill": ill}


BATCH_PARAMS = [
    ("cca", {}),
    ("cca", {"statistic": "r2"}),
    ("svcca", {}),
    ("svcca", {"variance": 0.5}),
    ("svcca", {"variance": 1.0}),
    ("pwcca", {}),
]


@pytest.mark.parametrize("measure, params", BATCH_PARAMS, ids=[f"{m}-{p}" for m, p in BATCH_PARAMS])
def test_compare_layers_equals_pairwise(measure, params):
    a = _layers()
    b = dict(list(_layers(seed=132).items())[:3])
    if measure == "svcca":
        rng = np.random.default_rng(133)
        a["wide"] = np.tanh(a["h2"] @ rng.standard_normal((9, 90)))  # p > n
        b["const"] = np.full((70, 3), 0.7)  # nan
    f = getattr(mod, measure)
    # The expected warnings: nan (with a warning) against a constant layer; over-fitting for
    # svcca where k_X + k_Y > n - 1 (variance=1 keeps all n - 1 = 69 components of "wide").
    variance = params.get("variance", 0.99) if measure == "svcca" else None

    def constant(x):
        return not np.ptp(x, axis=0).any()

    def overfits(x, y):
        return not constant(x) and not constant(y) and _overfits(x, y, variance)

    def pairwise(x, y):
        if constant(y):
            ctx = pytest.warns(DegenerateDataWarning, match=IDENTICAL)
        else:
            ctx = _overfit_warning(overfits(x, y))
        with ctx:
            return f(x, y, **params)

    for other in (None, b):
        cols = a if other is None else other
        with contextlib.ExitStack() as expected:
            if any(constant(y) for y in cols.values()):
                expected.enter_context(pytest.warns(DegenerateDataWarning, match=IDENTICAL))
            if any(overfits(x, y) for x in a.values() for y in cols.values()):
                expected.enter_context(pytest.warns(DegenerateDataWarning, match=OVERFIT))
            res = cg.compare_layers(a, other, measure, **params)
        want = np.array([[pairwise(x, y) for y in cols.values()] for x in a.values()])
        np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-10)
        assert res.values.shape == (len(a), len(cols))
    if measure == "pwcca":  # h1 and h4 have equal widths: an asymmetric pair
        res = cg.compare_layers(a, None, "pwcca")
        assert abs(res["h1", "h4"] - res["h4", "h1"]) > 1e-6


@pytest.mark.parametrize("measure, params", BATCH_PARAMS, ids=[f"{m}-{p}" for m, p in BATCH_PARAMS])
def test_compare_layers_prepares_each_layer_once(monkeypatch, measure, params):
    calls = []
    for name in ("_prepare_full", "_prepare_sv"):
        real = getattr(mod, name)

        def counted(X, *args, _real=real, **kwargs):
            calls.append(X.shape)
            return _real(X, *args, **kwargs)

        monkeypatch.setattr(mod, name, counted)
    a = _layers()
    b = dict(list(_layers(seed=134).items())[:2])
    cg.compare_layers(a, b, measure, **params)
    assert len(calls) == len(a) + len(b)
    calls.clear()
    cg.compare_layers(a, None, measure, **params)
    assert len(calls) == len(a)


def test_compare_layers_errors_name_the_layer():
    a = _layers()
    a["wide"] = np.random.default_rng(141).standard_normal((70, 80))
    with pytest.raises(ValueError, match=r"a\['wide'\] has shape \(70, 80\).*p <= n-1 = 69"):
        cg.compare_layers(a, None, "cca")
    a = _layers()
    b = {"dup": np.column_stack([a["h1"], a["h1"][:, 0]])}
    with pytest.raises(ValueError, match=r"b\['dup'\] of shape \(70, 7\).*numerical rank 6 < 7"):
        cg.compare_layers(a, b, "pwcca")
    with pytest.raises(ValueError, match=r"statistic='max' is invalid"):
        cg.compare_layers(_layers(), None, "cca", statistic="max")
    with pytest.raises(ValueError, match=r"variance=0 is out of range"):
        cg.compare_layers(_layers(), None, "svcca", variance=0)


# ---------------------------------------------------------------------------------------------
# (6) metadata
# ---------------------------------------------------------------------------------------------


def test_registry_metadata():
    for name in ("cca", "svcca", "pwcca"):
        m = cg.get_measure(name)
        assert m.family == "cca" and m.kind == "similarity" and m.bounds() == (0.0, 1.0)
        assert m.layers.matrix is not None and m.min_rows() == 2
    assert dict(cg.get_measure("cca").params) == {"statistic": "mean", "epsilon": 0.0}
    assert dict(cg.get_measure("svcca").params) == {
        "variance": 0.99,
        "statistic": "mean",
        "epsilon": 0.0,
    }
    assert dict(cg.get_measure("pwcca").params) == {"epsilon": 0.0}
    assert "invertible_linear" in cg.get_measure("cca").invariances()
    assert "invertible_linear" not in cg.get_measure("svcca").invariances()
    assert "invertible_linear" in cg.get_measure("svcca").invariances(variance=1.0)
    assert cg.get_measure("pwcca").invariances() == {
        "isotropic_scaling",
        "translation",
        "permutation",
    }
    assert cg.get_measure("cca").symmetric() and cg.get_measure("svcca").symmetric()
    assert not cg.get_measure("pwcca").symmetric()
