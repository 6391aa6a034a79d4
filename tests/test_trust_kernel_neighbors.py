"""Magnitudes, offsets, float32 and degenerate data for the kernel and neighbourhood families.

The contract tested here: finite inputs of any magnitude or offset give the float64 value of
the formula on the values given (float32 up to 3.4e38, float64 up to 1e300); float32 input
agrees with the float64 computation on the same values (1e-6 relative; neighbour sets, ranks
and ties exactly); every ``nan`` comes with a ``DegenerateDataWarning`` naming the argument.

Expected values come from the slow references (``reference.py``, ``reference_neighbors.py``,
the latter with its exact rational neighbour order for data far from the origin), from
invariances (scaling by a power of two is exact, so results must be bitwise unchanged) and
from the scaling law of the linear HSIC (degree 2 in each argument).
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence import _core

sys.path.insert(0, os.path.dirname(__file__))
from reference import ref_cka, ref_hsic  # noqa: E402
from reference_neighbors import ref_all, ref_knn_exact  # noqa: E402

KERNEL_VARIANTS = [
    {"kernel": "linear", "flag": False},
    {"kernel": "linear", "flag": True},
    {"kernel": "rbf", "flag": False},
    {"kernel": "rbf", "flag": True},
]
NEIGHBOUR_MEASURES = {
    "knn_jaccard": cg.knn_jaccard,
    "second_order_cosine": cg.second_order_cosine,
    "rank_similarity": cg.rank_similarity,
    "joint_rank_jaccard": cg.joint_rank_jaccard,
    "mutual_knn": cg.mutual_knn,
}


def _cka(X, Y, v):
    return cg.cka(X, Y, kernel=v["kernel"], debiased=v["flag"])


def _hsic(X, Y, v):
    return cg.hsic(X, Y, kernel=v["kernel"], unbiased=v["flag"])


def _ref_cka(X, Y, v):
    return ref_cka(X, Y, kernel=v["kernel"], debiased=v["flag"])


def _ref_hsic(X, Y, v):
    return ref_hsic(X, Y, kernel=v["kernel"], unbiased=v["flag"])


def _rel(got, want):
    return abs(got - want) / abs(want)


def _data(n=120, p1=8, p2=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1))
    Y = np.tanh(X[:, :p2] @ rng.standard_normal((p2, p2))) + 0.5 * rng.standard_normal((n, p2))
    return X, Y


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------------------------------------
# Kernel family: the reproducer of the issue
# ---------------------------------------------------------------------------------------------


def test_float32_1e20_reproducer(no_warnings):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((200, 8)) * 1e20).astype(np.float32)
    Y = rng.standard_normal((200, 5)).astype(np.float32)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    for v in KERNEL_VARIANTS:
        # The float64 reference on the same numbers (squares of 1e20 are fine in float64).
        c, h = _cka(X, Y, v), _hsic(X, Y, v)
        assert _rel(c, _ref_cka(X64, Y64, v)) <= 1e-9, v
        assert _rel(h, _ref_hsic(X64, Y64, v)) <= 1e-9, v
    assert cg.cka(X, Y) == pytest.approx(0.0281, abs=1e-4)  # was 0.0 on main
    assert np.isfinite(cg.hsic(X, Y))
    # compare_layers takes the layer-matrix route of the core: same values as the pairs.
    for measure, flag in (("cka", "debiased"), ("hsic", "unbiased")):
        for kernel in ("linear", "rbf"):
            res = cg.compare_layers({"x": X, "y": Y}, measure=measure, kernel=kernel)
            f = getattr(cg, measure)
            want = np.array([[f(a, b, kernel=kernel) for b in (X, Y)] for a in (X, Y)])
            np.testing.assert_allclose(res.values, want, rtol=1e-12, atol=0)
            assert np.isfinite(res.values).all()


# ---------------------------------------------------------------------------------------------
# Kernel family: magnitudes
# ---------------------------------------------------------------------------------------------

F32_DECADES = [-30, -20, -10, 10, 20, 30]
F64_DECADES = [-300, -200, -100, -30, 30, 100, 200, 300]


@pytest.mark.parametrize("dtype,decades", [(np.float32, F32_DECADES), (np.float64, F64_DECADES)])
def test_cka_and_rbf_hsic_are_bitwise_invariant_to_power_of_two_scaling(
    dtype, decades, no_warnings
):
    X, Y = _data(seed=1)
    X, Y = X.astype(dtype), Y.astype(dtype)
    for v in KERNEL_VARIANTS:
        base_c, base_h = _cka(X, Y, v), _hsic(X, Y, v)
        for d in decades:
            s = 2.0 ** round(d * math.log2(10))  # exact scaling, about 10^d
            Xs = (X * dtype(s)).astype(dtype)
            assert np.array_equal(Xs / dtype(s), X)  # the scaling is exact
            assert _cka(Xs, Y, v) == base_c, (v, d)
            assert _cka(Y, Xs, v) == _cka(Y, X, v), (v, d)
            if v["kernel"] == "rbf":
                assert _hsic(Xs, Y, v) == base_h, (v, d)


@pytest.mark.parametrize("dtype,decades", [(np.float32, F32_DECADES), (np.float64, F64_DECADES)])
def test_cka_at_decimal_scales_matches_the_reference_on_the_same_values(
    dtype, decades, no_warnings
):
    # 10^d X rounds differently from X: compare with the float64 reference on exactly these
    # values, brought to unit scale by an exact power of two (the reference squares them).
    X, Y = _data(seed=2)
    Y = Y.astype(dtype)
    for d in decades:
        Xs = (X * 10.0**d).astype(dtype)
        back = 2.0 ** -round(d * math.log2(10))
        X_unit = Xs.astype(np.float64) * back
        for v in KERNEL_VARIANTS:
            want = _ref_cka(X_unit, Y, v)
            assert _rel(_cka(Xs, Y, v), want) <= 1e-9, (v, d)
            if v["kernel"] == "rbf":
                assert _rel(_hsic(Xs, Y, v), _ref_hsic(X_unit, Y, v)) <= 1e-9, (v, d)


@pytest.mark.parametrize("dtype,decades", [(np.float32, F32_DECADES), (np.float64, F64_DECADES)])
@pytest.mark.parametrize("unbiased", [False, True])
def test_linear_hsic_scaling_law_at_extreme_magnitudes(dtype, decades, unbiased):
    # HSIC(aX, bY) = a^2 b^2 HSIC(X, Y): exact for powers of two; inf with a warning only when
    # the value itself leaves the float64 range.
    X, Y = _data(seed=3)
    X, Y = X.astype(dtype), Y.astype(dtype)
    base = cg.hsic(X, Y, unbiased=unbiased)
    for d in decades:
        for e in (0, d):
            ka, kb = round(d * math.log2(10)), round(e * math.log2(10))
            Xs, Ys = (X * dtype(2.0**ka)).astype(dtype), (Y * dtype(2.0**kb)).astype(dtype)
            expo = math.frexp(abs(base))[1] + 2 * ka + 2 * kb
            if expo > 1024:
                with pytest.warns(cg.DegenerateDataWarning, match="overflows float64"):
                    got = cg.hsic(Xs, Ys, unbiased=unbiased)
                assert got == math.copysign(math.inf, base), (d, e)
            elif expo < -1021:
                # Below the normal float64 range: gradual underflow, no overflow and no nan.
                assert abs(cg.hsic(Xs, Ys, unbiased=unbiased)) < 2.3e-308
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    got = cg.hsic(Xs, Ys, unbiased=unbiased)
                assert got == math.ldexp(base, 2 * ka + 2 * kb), (d, e)


def test_linear_hsic_at_decimal_scales_follows_the_scaling_law(no_warnings):
    X, Y = _data(seed=4)
    base = cg.hsic(X, Y)
    for a, b in ((1e100, 1e-100), (1e150, 1.0), (1e-150, 1e-3), (1e30, 1e30)):
        got = cg.hsic(a * X, b * Y)
        want = base * a * a * b * b  # in range for these pairs
        assert _rel(got, want) <= 1e-12, (a, b)


def test_hsic_overflow_is_inf_with_a_warning():
    X, Y = _data(seed=5)
    with pytest.warns(cg.DegenerateDataWarning, match="hsic of X and Y overflows float64"):
        assert cg.hsic(1e200 * X, Y) == math.inf
    # Still finite just below the limit: 1e150^2 * 1e4 ...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(cg.hsic(1e150 * X, Y))


# ---------------------------------------------------------------------------------------------
# Kernel family: offsets in float32
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
def test_float32_offsets_match_the_float64_computation(offset, no_warnings):
    rng = np.random.default_rng(6)
    n = 150
    spread = max(1.0, offset * 1e-6)  # keep several float32 levels per unit of spread
    Z = rng.standard_normal((n, 6)) * spread
    X32 = (Z + offset * rng.uniform(0.5, 1.5, 6)).astype(np.float32)
    Y = np.tanh(Z[:, :3] / spread) + 0.3 * rng.standard_normal((n, 3))
    Y32 = (Y * spread - offset).astype(np.float32)
    # The reference gets the float64 values centred first: every statistic here is
    # translation-invariant, and the n x n Gram matrices of uncentred data at an offset of 1e8
    # would cancel the reference's own accuracy away (subtracting a float64 mean moves the
    # values by ~1e-16 of the offset, far below the tolerance).
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    X64, Y64 = X64 - X64.mean(axis=0), Y64 - Y64.mean(axis=0)
    for v in KERNEL_VARIANTS:
        assert _rel(_cka(X32, Y32, v), _ref_cka(X64, Y64, v)) <= 1e-6, (offset, v)
        assert _rel(_hsic(X32, Y32, v), _ref_hsic(X64, Y64, v)) <= 1e-6, (offset, v)


# ---------------------------------------------------------------------------------------------
# Kernel family: degenerate data
# ---------------------------------------------------------------------------------------------


def test_constant_representation_warns_and_names_the_argument():
    rng = np.random.default_rng(7)
    C = np.ones((100, 4))
    Y = rng.standard_normal((100, 3))
    for v in KERNEL_VARIANTS:
        for args, arg in (((C, Y), "X"), ((Y, C), "Y")):
            with pytest.warns(
                cg.DegenerateDataWarning, match=rf"^{arg} has zero variance.*cka is undefined"
            ):
                assert math.isnan(_cka(*args, v))
            if v["kernel"] == "linear":
                with pytest.warns(
                    cg.DegenerateDataWarning, match=rf"^{arg} has zero variance.*hsic is 0"
                ):
                    assert _hsic(*args, v) == 0.0
            else:
                with pytest.warns(cg.DegenerateDataWarning, match=rf"^{arg} .*hsic is undefined"):
                    assert math.isnan(_hsic(*args, v))
    # Constant up to round-off counts as constant (the one relative rule of the package).
    near = np.full((50, 2), 0.1) + np.array([0.0, 1e-17])
    with pytest.warns(cg.DegenerateDataWarning, match="zero variance"):
        assert math.isnan(cg.cka(near, Y[:50]))


def test_rbf_with_more_than_half_duplicated_rows_warns():
    rng = np.random.default_rng(8)
    n = 200
    X = rng.standard_normal((n, 5))
    X[:150] = X[0]  # 150^2 + 50 = 22550 of the 40000 squared distances are 0
    Y = rng.standard_normal((n, 3))
    for flag in (False, True):
        with pytest.warns(cg.DegenerateDataWarning, match=r"^X has duplicated rows.*median"):
            assert math.isnan(cg.cka(X, Y, kernel="rbf", debiased=flag))
        with pytest.warns(cg.DegenerateDataWarning, match=r"^Y has duplicated rows"):
            assert math.isnan(cg.hsic(Y, X, kernel="rbf", unbiased=flag))


def test_partially_duplicated_rows_never_give_an_unwarned_nan():
    rng = np.random.default_rng(9)
    n = 20
    Y = rng.standard_normal((n, 3))
    for dup in range(1, n + 1):
        X = rng.standard_normal((n, 4))
        X[:dup] = X[0]
        for v in KERNEL_VARIANTS:
            for f in (_cka, _hsic):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    val = f(X, Y, v)
                degenerate = [w for w in caught if issubclass(w.category, cg.DegenerateDataWarning)]
                if math.isnan(val):
                    assert degenerate, (dup, v, f.__name__)
                    assert "X" in str(degenerate[0].message)
                else:
                    # Defined values agree with the reference (which has its own nan rule).
                    ref = (_ref_cka if f is _cka else _ref_hsic)(X, Y, v)
                    assert not math.isnan(ref), (dup, v)
                    assert abs(val - ref) <= 1e-9 * max(1.0, abs(ref)), (dup, v, val, ref)
    # The boundary: exactly half of the n^2 entries zero keeps a positive median.
    X = np.vstack([np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2)), np.ones((1, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(cg.cka(X, Y[:4], kernel="rbf"))


def test_debiased_u_centred_zero_warns():
    # All rows but one identical: the U-centred linear Gram matrix is exactly zero.
    rng = np.random.default_rng(10)
    X = np.vstack([np.tile([[1.0, 2.0, 3.0]], (5, 1)), [[0.0, 0.0, 1.0]]])
    Y = rng.standard_normal((6, 2))
    with pytest.warns(cg.DegenerateDataWarning, match=r"^X: the U-centred kernel matrix is zero"):
        assert math.isnan(cg.cka(X, Y, debiased=True))
    with pytest.warns(cg.DegenerateDataWarning, match=r"^Y: the U-centred"):
        assert math.isnan(cg.cka(Y, X, debiased=True))


def test_compare_layers_degenerate_layers_are_named():
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((60, 5)) * 1e20).astype(np.float32)
    C = np.ones((60, 3))
    Y = rng.standard_normal((60, 4))
    with pytest.warns(cg.DegenerateDataWarning, match=r"layer a\['1'\] has zero variance"):
        res = cg.compare_layers([X, C, Y], measure="cka")
    v = res.values
    assert np.isnan(v[1]).all() and np.isnan(v[:, 1]).all()
    assert v[0, 2] == pytest.approx(cg.cka(X, Y), rel=1e-12)
    with pytest.warns(
        cg.DegenerateDataWarning, match=r"layer b\['0'\] has zero variance.*hsic is 0"
    ):
        res = cg.compare_layers([X, Y], [C, Y], measure="hsic")
    assert (res.values[:, 0] == 0.0).all()
    assert res.values[1, 1] == pytest.approx(cg.hsic(Y, Y), rel=1e-12)
    with pytest.warns(cg.DegenerateDataWarning, match="overflows float64"):
        res = cg.compare_layers([1e200 * Y, Y], measure="hsic")
    assert res.values[0, 0] == math.inf and np.isfinite(res.values[1, 1])


# ---------------------------------------------------------------------------------------------
# Neighbourhood family: the reproducer and float32 offsets
# ---------------------------------------------------------------------------------------------


def test_knn_offset_reproducer(no_warnings):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((500, 16))
    W = Z @ rng.standard_normal((16, 16)) + 0.5 * rng.standard_normal((500, 16))
    for offset in (1e3, 1e4):
        A, B = (Z + offset).astype(np.float32), (W + offset).astype(np.float32)
        A64, B64 = A.astype(np.float64), B.astype(np.float64)
        ia, da = _core.knn(A, 10)
        ia64, da64 = _core.knn(A64, 10)
        assert np.array_equal(ia, ia64) and np.array_equal(da, da64)
        for name, f in NEIGHBOUR_MEASURES.items():
            assert f(A, B, k=10) == f(A64, B64, k=10), (offset, name)


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
def test_float32_offsets_give_the_exact_neighbour_sets(offset, no_warnings):
    # Rows far from the origin: every cosine is within ~1e-8..1e-15 of 1. The neighbour lists
    # must be those of the exact order of the distances on these float32 values.
    rng = np.random.default_rng(12)
    n, k = 120, 7
    spread = max(1.0, offset * 1e-5)  # at least ~100 float32 levels per unit of spread
    Z = rng.standard_normal((n, 6))
    X32 = (Z * spread + offset).astype(np.float32)
    Y32 = ((np.tanh(Z[:, :4]) + 0.3 * rng.standard_normal((n, 4))) * spread + offset).astype(
        np.float32
    )
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    for A, A64 in ((X32, X64), (Y32, Y64)):
        idx, dist = _core.knn(A, k)
        idx64, dist64 = _core.knn(A64, k)
        assert np.array_equal(idx, idx64) and np.array_equal(dist, dist64)
        assert idx.tolist() == ref_knn_exact(A64, k)
    want = ref_all(X64, Y64, k, exact=True)
    for name, f in NEIGHBOUR_MEASURES.items():
        got = f(X32, Y32, k=k)
        assert abs(got - want[name]) <= 1e-9 * abs(want[name]), (offset, name, got, want[name])


def test_unit_spread_at_large_offsets_matches_float64(no_warnings):
    # At offset 1e8 float32 holds unit-scale data only as multiples of 8: mostly duplicated
    # rows and exact ties. The float32 call must still equal the float64 call on those values.
    rng = np.random.default_rng(13)
    Z = rng.standard_normal((300, 8)) * 6
    Y = rng.standard_normal((300, 4))
    for offset in (1e6, 1e7, 1e8):
        A = (Z + offset).astype(np.float32)
        for name, f in NEIGHBOUR_MEASURES.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                v32 = f(A, Y, k=5)
                v64 = f(A.astype(np.float64), Y, k=5)
            assert v32 == v64 or (math.isnan(v32) and math.isnan(v64)), (offset, name)
            if math.isnan(v32):
                assert any(issubclass(w.category, cg.DegenerateDataWarning) for w in caught)


# ---------------------------------------------------------------------------------------------
# Neighbourhood family: magnitudes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,decades", [(np.float32, F32_DECADES), (np.float64, F64_DECADES)])
def test_neighbours_are_bitwise_invariant_to_power_of_two_scaling(dtype, decades, no_warnings):
    X, Y = _data(n=90, seed=14)
    X, Y = X.astype(dtype), Y.astype(dtype)
    base_idx, base_dist = _core.knn(X, 6)
    base = {name: f(X, Y, k=6) for name, f in NEIGHBOUR_MEASURES.items()}
    for d in decades:
        s = dtype(2.0 ** round(d * math.log2(10)))
        Xs = (X * s).astype(dtype)
        idx, dist = _core.knn(Xs, 6)
        assert np.array_equal(idx, base_idx) and np.array_equal(dist, base_dist), d
        for name, f in NEIGHBOUR_MEASURES.items():
            assert f(Xs, Y, k=6) == base[name], (d, name)


@pytest.mark.parametrize("dtype,decades", [(np.float32, [-30, 30]), (np.float64, [-300, 300])])
def test_neighbours_at_decimal_scales_match_the_exact_reference(dtype, decades, no_warnings):
    X, Y = _data(n=80, seed=15)
    Y = Y.astype(dtype)
    for d in decades:
        Xs = (X * 10.0**d).astype(dtype)
        idx, _ = _core.knn(Xs, 6)
        assert idx.tolist() == ref_knn_exact(Xs, 6), d
        want = ref_all(Xs, Y, 6, exact=True)
        for name, f in NEIGHBOUR_MEASURES.items():
            assert abs(f(Xs, Y, k=6) - want[name]) <= 1e-12, (d, name)


# ---------------------------------------------------------------------------------------------
# Neighbourhood family: degenerate data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NEIGHBOUR_MEASURES))
def test_identical_rows_give_nan_with_a_warning(name):
    rng = np.random.default_rng(16)
    Y = rng.standard_normal((100, 3))
    f = NEIGHBOUR_MEASURES[name]
    cases = {
        "zero variance": np.ones((100, 4)),
        "zero variance ": np.zeros((100, 4)),
        # Powers of two: still exact multiples of one row after the float32 conversion below.
        "positive factors": np.outer(2.0 ** rng.integers(-20, 20, 100), [1.0, -2.0, 3.0]),
        "positive factors ": np.outer(rng.uniform(0.1, 10.0, 100), [1.0, -2.5, 3.0]),
        "at most one non-zero row": np.vstack([np.zeros((99, 2)), [[1.0, 2.0]]]),
    }
    for why, C in cases.items():
        # float32 rounding of non-power-of-two multiples makes the directions differ by ~1e-8,
        # which the formula on those values resolves: only exact multiples stay degenerate.
        dtype = np.float64 if why == "positive factors " else np.float32
        for args, arg in (((C, Y), "X"), ((Y, C.astype(dtype)), "Y")):
            with pytest.warns(
                cg.DegenerateDataWarning, match=rf"^{arg} has .*{why.strip()}.*{name} is undefined"
            ):
                assert math.isnan(f(*args, k=5)), (why, arg)
    # The reproducer: knn_jaccard(ones, Y) was 0.024 on main.
    with pytest.warns(cg.DegenerateDataWarning):
        assert math.isnan(cg.knn_jaccard(np.ones((100, 4)), Y, k=5))


def _ref_all_ties(a: np.ndarray) -> bool:
    """Every cosine distance between the rows of ``a`` is 0 or 1, from the definition: the
    non-zero rows, each over its Euclidean norm (math.fsum), are one vector up to 1e-12."""
    rows = [[float(v) for v in r] for r in np.asarray(a, dtype=np.float64)]
    units = []
    for r in rows:
        m = max(abs(v) for v in r)
        if m > 0.0:
            r = [v / m for v in r]
            norm = math.sqrt(math.fsum(v * v for v in r))
            units.append([v / norm for v in r])
    return len(units) <= 1 or all(
        max(abs(x - y) for x, y in zip(u, units[0])) <= 1e-12 for u in units
    )


def test_tie_check_of_the_neighbour_family_matches_the_definition_past_its_first_rows():
    """The check looks at the first rows first; rows that tie there but not further down, a
    single non-zero row among them, or leading zero rows, must still get the full answer."""
    from congruence._linalg import PROBE_ROWS
    from congruence.measures.neighbors import _identical_rows

    rng = np.random.default_rng(18)
    n, p, h = 50, 5, PROBE_ROWS
    v = rng.standard_normal(p)
    cases = {
        "random": rng.standard_normal((n, p)),
        "ties in the first rows only": np.vstack(
            [np.tile(v, (h, 1)), rng.standard_normal((n - h, p))]
        ),
        "multiples in the first rows, one row apart at the end": np.vstack(
            [np.outer(rng.uniform(1, 2, n - 1), v), [v + 1e-3]]
        ),
        "one non-zero row first, then others": np.vstack(
            [v, np.zeros((h - 1, p)), rng.standard_normal((n - h, p))]
        ),
        "leading zero rows, then multiples": np.vstack(
            [np.zeros((h + 2, p)), np.outer(2.0 ** rng.integers(-5, 5, n - h - 2), v)]
        ),
        "leading zero rows, then one row": np.vstack([np.zeros((n - 1, p)), [v]]),
        "identical rows": np.tile(v, (n, 1)),
        "two directions, alternating": np.vstack([v, -v] * (n // 2)),
    }
    for why, a in cases.items():
        for dt in (np.float64, np.float32):
            x = a.astype(dt)
            assert (_identical_rows(x) is not None) == _ref_all_ties(x), (why, dt)


def test_partially_duplicated_rows_are_defined_or_warned():
    rng = np.random.default_rng(17)
    n, k = 40, 4
    Y = rng.standard_normal((n, 3))
    for dup in (2, 5, 10, 30, 39):
        X = rng.standard_normal((n, 3))
        X[:dup] = X[0]
        want = ref_all(X, Y, k)
        for name, f in NEIGHBOUR_MEASURES.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = f(X, Y, k=k)
            msgs = [
                str(w.message) for w in caught if issubclass(w.category, cg.DegenerateDataWarning)
            ]
            if math.isnan(got):
                assert name == "second_order_cosine" and math.isnan(want[name])
                assert msgs and "row 0 of X" in msgs[0] and "distance 0" in msgs[0], msgs
            else:
                assert not msgs, (dup, name, msgs)
                assert abs(got - want[name]) <= 1e-12, (dup, name)


def test_compare_layers_with_a_degenerate_neighbour_layer():
    rng = np.random.default_rng(18)
    a = [rng.standard_normal((40, 3)), np.ones((40, 2)), rng.standard_normal((40, 5))]
    for name in NEIGHBOUR_MEASURES:
        with pytest.warns(cg.DegenerateDataWarning, match=r"layer a\['1'\] has zero variance"):
            v = cg.compare_layers(a, measure=name, k=5).values
        assert np.isnan(v[1]).all() and np.isnan(v[:, 1]).all()
        assert v[0, 2] == NEIGHBOUR_MEASURES[name](a[0], a[2], k=5)
    # Rows 0-7 identical in both layers: for row 0, the union of its 5 neighbours holds only
    # copies, at distance 0 in both, so second_order_cosine is nan, with a warning.
    dup = rng.standard_normal((40, 3))
    dup[:8] = dup[0]
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    with pytest.warns(
        cg.DegenerateDataWarning, match=r"row 0 of layer a\['0'\].*row 0 of layer b\['0'\]"
    ):
        v = cg.compare_layers([dup], [dup @ Q], measure="second_order_cosine", k=5).values
    assert math.isnan(v[0, 0])


def test_one_column_rows_of_one_sign_are_at_distance_exactly_zero():
    # With one column every cosine is exactly +1 or -1: distances 0 or 2, never round-off
    # noise, so a second-order cosine over same-signed neighbours is nan with a warning
    # instead of a value computed from noise.
    rng = np.random.default_rng(19)
    X = rng.standard_normal((30, 1)) * rng.uniform(0.1, 100.0, (30, 1))
    idx, dist = _core.knn(X, 4)
    assert set(np.unique(dist)) <= {0.0, 2.0}
    assert idx.tolist() == ref_knn_exact(X, 4)
    Y = X * rng.uniform(1.0, 2.0, (30, 1))
    with pytest.warns(cg.DegenerateDataWarning, match="second_order_cosine is undefined"):
        assert math.isnan(cg.second_order_cosine(X, Y, k=4))
