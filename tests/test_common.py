"""Common tests: every registered measure on representations against its declared properties.

The cases are generated from the registry (:func:`congruence._registry.measures`) and each
measure's ``variants``, so a measure added later is tested here without editing this file.
Each test checks one property the docs' measure pages state (STYLE.md habits 6-7):

* symmetry as declared (and a witness of asymmetry when not declared symmetric);
* every declared invariance, applied to ``X`` only and to ``Y`` only;
* every invariance *not* declared actually fails on random data (catches metadata that
  under-claims), unless it is implied by a declared one;
* values within the declared bounds; a Python float; the declared minimum number of rows;
  inputs left untouched; ``compare(X, Y, name)`` equal to ``congruence.<name>(X, Y)``;
  identical inputs at the maximal similarity / zero distance.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

import congruence as cg
from congruence import DegenerateDataWarning
from congruence._registry import INVARIANCES, measures

N, P1, P2 = 60, 7, 5
SYM_TOL = 1e-10
INV_TOL = 1e-8
CHANGE_TOL = 1e-6
BOUND_SLACK = 1e-12


# --------------------------------------------------------------------------- cases


def _variant_id(name: str, params: dict) -> str:
    if not params:
        return name
    return name + "-" + ",".join(f"{k}={v}" for k, v in params.items())


def _cases():
    out = []
    for m in measures():
        if m.inputs != "representations":
            continue
        for params in m.variants:
            out.append(pytest.param(m, dict(params), id=_variant_id(m.name, dict(params))))
    return out


CASES = _cases()

#: Transformations whose invariance follows from another one: (implied, by any of these).
IMPLIED_BY = {
    "orthogonal": ("invertible_linear",),
    "isotropic_scaling": ("invertible_linear",),
    "permutation": ("orthogonal", "invertible_linear"),
}


def _invariance_cases(declared: bool):
    out = []
    for p in CASES:
        m, params = p.values
        inv = m.invariances(**params)
        for t in INVARIANCES:
            if declared and t in inv:
                out.append(pytest.param(m, params, t, id=f"{p.id}-{t}"))
            elif not declared and t not in inv:
                if any(s in inv for s in IMPLIED_BY.get(t, ())):
                    continue  # implied by a declared invariance: it must hold, not fail
                out.append(pytest.param(m, params, t, id=f"{p.id}-{t}"))
    return out


# --------------------------------------------------------------------------- data


#: Rows for measures that need p >= n (``Measure.wide``): at most the narrowest width used.
N_WIDE = P2 - 1


def _n(m, params) -> int:
    return N_WIDE if m.wide else max(N, m.min_rows(**params))


def _random_pair(seed: int, n: int = N, p1: int = P1, p2: int = P2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p1)), rng.standard_normal((n, p2))


def _correlated_pair(seed: int, n: int = N, p1: int = P1, p2: int = P2):
    """``Y`` a noisy nonlinear function of ``X``: clearly related, not identical."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) @ rng.standard_normal((p1, p1))
    Y = np.tanh(X @ rng.standard_normal((p1, p2)) / math.sqrt(p1))
    Y = Y + 0.3 * rng.standard_normal((n, p2))
    return X, Y


def _orthogonal(rng, p: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((p, p)))
    return Q * np.sign(np.diag(R))


def _well_conditioned(rng, p: int) -> np.ndarray:
    """A random invertible matrix with singular values in [0.5, 2] (and not orthogonal)."""
    s = np.linspace(0.5, 2.0, p)
    rng.shuffle(s)
    return _orthogonal(rng, p) @ np.diag(s) @ _orthogonal(rng, p)


def _transform(name: str, Z: np.ndarray, rng) -> np.ndarray:
    n, p = Z.shape
    if name == "orthogonal":
        return Z @ _orthogonal(rng, p)
    if name == "isotropic_scaling":
        return Z * 3.7
    if name == "invertible_linear":
        return Z @ _well_conditioned(rng, p)
    if name == "translation":
        return Z + 50.0 * rng.standard_normal(p)[None, :]
    if name == "permutation":
        perm = rng.permutation(p)
        while np.array_equal(perm, np.arange(p)):
            perm = rng.permutation(p)
        return Z[:, perm]
    raise AssertionError(f"unknown transformation {name!r}")  # pragma: no cover


def test_transformations_cover_the_vocabulary():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((10, 4))
    for t in INVARIANCES:
        assert not np.allclose(_transform(t, Z, rng), Z), t


def _call(m, X, Y, params) -> float:
    return getattr(cg, m.name)(X, Y, **params)


def _close(a: float, b: float, tol: float) -> bool:
    return bool(np.isclose(a, b, rtol=tol, atol=tol))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("m, params", CASES)
def test_symmetry(m, params):
    n = _n(m, params)
    if m.symmetric(**params):
        for seed, (p1, p2) in enumerate([(P1, P2), (P2, P2), (P1, P1)]):
            for X, Y in (_random_pair(seed, n, p1, p2), _correlated_pair(seed, n, p1, p2)):
                xy, yx = _call(m, X, Y, params), _call(m, Y, X, params)
                assert _close(xy, yx, SYM_TOL), (
                    f"declared symmetric but f(X,Y)={xy!r} != f(Y,X)={yx!r} "
                    f"(shapes {X.shape}, {Y.shape})"
                )
    else:
        # Not declared symmetric: some random pair must witness it (equal widths included,
        # since e.g. pwcca is symmetric when p1 != p2 and asymmetric when p1 == p2).
        diffs = []
        for seed, (p1, p2) in enumerate([(P1, P2), (P2, P2), (P1, P1), (P2, P1)]):
            for X, Y in (_random_pair(seed, n, p1, p2), _correlated_pair(seed, n, p1, p2)):
                diffs.append(abs(_call(m, X, Y, params) - _call(m, Y, X, params)))
        assert max(diffs) > CHANGE_TOL, (
            "declared not symmetric, but f(X,Y) == f(Y,X) on every random pair tried; "
            "the metadata under-claims symmetry"
        )


@pytest.mark.parametrize("m, params, transformation", _invariance_cases(declared=True))
def test_declared_invariance_holds(m, params, transformation):
    n = _n(m, params)
    rng = np.random.default_rng(1)
    for X, Y in (_correlated_pair(11, n), _random_pair(12, n)):
        base = _call(m, X, Y, params)
        on_x = _call(m, _transform(transformation, X, rng), Y, params)
        on_y = _call(m, X, _transform(transformation, Y, rng), params)
        assert _close(on_x, base, INV_TOL), (
            f"declared invariant to {transformation}, but f(T(X),Y)={on_x!r} != f(X,Y)={base!r}"
        )
        assert _close(on_y, base, INV_TOL), (
            f"declared invariant to {transformation}, but f(X,T(Y))={on_y!r} != f(X,Y)={base!r}"
        )


@pytest.mark.parametrize("m, params, transformation", _invariance_cases(declared=False))
def test_undeclared_invariance_fails(m, params, transformation):
    n = _n(m, params)
    rng = np.random.default_rng(2)
    changes = []
    for X, Y in (_correlated_pair(21, n), _random_pair(22, n)):
        base = _call(m, X, Y, params)
        changes.append(abs(_call(m, _transform(transformation, X, rng), Y, params) - base))
        changes.append(abs(_call(m, X, _transform(transformation, Y, rng), params) - base))
    assert max(changes) > CHANGE_TOL, (
        f"not declared invariant to {transformation}, but the value never changed on random "
        f"data (max change {max(changes):.2e}); the invariance metadata may under-claim"
    )


@pytest.mark.parametrize("m, params", CASES)
def test_values_within_bounds(m, params):
    lo, hi = m.bounds(**params)
    assert lo <= hi
    n = _n(m, params)
    X, Y = _random_pair(31, n)
    Xc, Yc = _correlated_pair(32, n)
    Xi, Yi = _random_pair(33, n, P2, P1)
    pairs = {
        "random": (X, Y),
        "identical": (X, X.copy()),
        "correlated": (Xc, Yc),
        "identical-correlated": (Yc, Yc.copy()),
        "independent": (Xi, Yi),
    }
    for label, (A, B) in pairs.items():
        v = _call(m, A, B, params)
        assert not math.isnan(v), f"{label}: nan on well-posed data"
        assert lo - BOUND_SLACK <= v <= hi + BOUND_SLACK, (
            f"{label}: value {v!r} outside the declared bounds [{lo}, {hi}]"
        )


@pytest.mark.parametrize("m, params", CASES)
def test_returns_python_float(m, params):
    X, Y = _correlated_pair(41, _n(m, params))
    v = _call(m, X, Y, params)
    assert type(v) is float, type(v)
    assert type(cg.compare(X, Y, m.name, **params)) is float


@pytest.mark.parametrize("m, params", CASES)
def test_min_rows(m, params):
    k = m.min_rows(**params)
    assert isinstance(k, int) and k >= 1
    rng = np.random.default_rng(51)
    # Narrow inputs, so that p < n style requirements (e.g. CCA) do not interfere.
    w1, w2 = max(1, min(P1, k - 1)), max(1, min(P2, k - 1))
    if m.wide:
        w1, w2 = max(P1, k), max(P2, k)
    # The CCA family (MEASURES.md 2.1-2.3) warns of over-fitting when p1 + p2 > n - 1 (svcca:
    # k_X + k_Y, which equal the widths when these are 1, as at n = 2): at least one canonical
    # correlation is 1 by construction. So few rows make the narrow inputs over-fit.
    overfit = m.family == "cca" and w1 + w2 > k - 1
    ctx = (
        pytest.warns(
            DegenerateDataWarning, match=r"canonical correlation\(s\) are 1 by construction"
        )
        if overfit
        else contextlib.nullcontext()
    )
    with ctx:
        v = _call(m, rng.standard_normal((k, w1)), rng.standard_normal((k, w2)), params)
    assert type(v) is float
    with pytest.raises(ValueError):
        _call(m, rng.standard_normal((k - 1, w1)), rng.standard_normal((k - 1, w2)), params)


@pytest.mark.parametrize("m, params", CASES)
def test_inputs_not_modified(m, params):
    X, Y = _correlated_pair(61, _n(m, params))
    X32 = X.astype(np.float32)
    Xf = np.asfortranarray(Y)
    for A, B in ((X, Y), (X32, Xf), (X[::1, ::-1], Y[:, 1:])):
        A0, B0 = A.copy(), B.copy()
        _call(m, A, B, params)
        assert np.array_equal(A, A0) and A.dtype == A0.dtype
        assert np.array_equal(B, B0) and B.dtype == B0.dtype


@pytest.mark.parametrize("m, params", CASES)
def test_compare_matches_function(m, params):
    X, Y = _correlated_pair(71, _n(m, params))
    direct = getattr(cg, m.name)(X, Y, **params)
    via = cg.compare(X, Y, m.name, **params)
    # Parallel reductions in the core may differ in the last bits between two calls.
    assert _close(via, direct, 1e-12), (via, direct)
    assert _close(m(X, Y, **params), direct, 1e-12)


def _identical_target(m, params):
    """The value of ``f(X, X)``: 1 for a similarity bounded by 1, 0 for a distance >= 0."""
    lo, hi = m.bounds(**params)
    if params.get("epsilon", 0) > 0:
        return None  # a ridge (CCA family, linear_regression) shrinks f(X, X) below 1
    if m.kind == "similarity" and hi == 1.0:
        return 1.0
    if m.kind == "distance" and lo == 0.0:
        return 0.0
    return None  # dependence statistics and other ranges: no canonical value


IDENTICAL_CASES = [p for p in CASES if _identical_target(*p.values) is not None]


@pytest.mark.parametrize("m, params", IDENTICAL_CASES)
def test_identical_inputs_extreme(m, params):
    target = _identical_target(m, params)
    n = _n(m, params)
    for X in (_random_pair(81, n)[0], _correlated_pair(82, n)[1]):
        v = _call(m, X, X.copy(), params)
        # Similarities: the docs allow regularisation changing values by < 1e-8.
        # Distances computed as sqrt(max(0, 2 - 2 s)) amplify round-off in s (1e-12 -> 1e-6).
        tol = 1e-8 if target == 1.0 else 1e-6
        assert abs(v - target) <= tol, f"f(X, X) = {v!r}, expected {target}"


@pytest.mark.parametrize("m, params", CASES)
def test_rejects_invalid_arrays(m, params):
    """The docs' errors and warnings: invalid arrays raise ValueError for every measure."""
    n = _n(m, params)
    X, Y = _correlated_pair(91, n)
    bad = X.copy()
    bad[3, 1] = np.nan
    inf = Y.copy()
    inf[0, 0] = np.inf
    cases = {
        "nan": (bad, Y),
        "inf": (X, inf),
        "1-D": (X[:, 0], Y),
        "3-D": (X, Y[:, :, None]),
        "rows differ": (X, Y[:-1]),
        "complex": (X + 1j, Y),
    }
    for label, (A, B) in cases.items():
        try:
            _call(m, A, B, params)
        except ValueError:
            continue
        pytest.fail(f"{label} input did not raise ValueError")
    with pytest.raises(TypeError):
        cg.compare(X, Y, m.name, **params, not_a_parameter=1)
