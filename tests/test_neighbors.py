"""Tests of the neighbourhood measures (docs: neighbourhood page).

Expected values come from the slow references of ``tests/reference_neighbors.py`` (full
``n x n`` distance matrices and stable sorts, written from the specification alone), from
small configurations worked out by hand (axis-aligned rows, whose cosines are exactly 0, 1 or
-1, so ties are exact), and from identities: invariances, symmetry, identical inputs. The
engineering promises are tested too: the result does not depend on the thread count, float32
input is computed on directly, and ``compare_layers`` computes each layer's neighbours once.
The declared properties (symmetry, invariances, bounds, ...) are also checked for every
variant by ``tests/test_common.py``.
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

import congruence as cg
from congruence import DegenerateDataWarning, _core
from congruence.measures import neighbors as nb
from congruence.measures.neighbors import (
    joint_rank_jaccard,
    knn_jaccard,
    mutual_knn,
    rank_similarity,
    second_order_cosine,
)

sys.path.insert(0, os.path.dirname(__file__))
from reference_neighbors import ref_all, ref_cosine_distances, ref_knn  # noqa: E402

MEASURES = {
    "knn_jaccard": knn_jaccard,
    "second_order_cosine": second_order_cosine,
    "rank_similarity": rank_similarity,
    "joint_rank_jaccard": joint_rank_jaccard,
    "mutual_knn": mutual_knn,
}
RTOL = 1e-12


def _pair(n, p1, p2, seed=0, dtype=np.float64):
    """X (n, p1) and a related, non-identical Y (n, p2)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1))
    Y = np.tanh(X @ rng.standard_normal((p1, p2))) + 0.4 * rng.standard_normal((n, p2))
    return X.astype(dtype), Y.astype(dtype)


def _close(got, want, rtol=RTOL):
    assert isinstance(got, float), type(got)
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= rtol * max(abs(want), 1e-300) or got == want


# ---------------------------------------------------------------------------------------------
# (1) agreement with the references
# ---------------------------------------------------------------------------------------------

REF_CASES = [
    (2, 1, 1, 1),  # the smallest n: k = 1 = n - 1
    (3, 2, 3, 2),
    (12, 3, 2, 1),
    (12, 3, 2, 11),  # k = n - 1: every other row is a neighbour
    (40, 5, 5, 4),
    (60, 7, 5, 10),
    (61, 20, 3, 7),  # p > k, odd n
    (150, 6, 9, 25),
]


@pytest.mark.parametrize(
    "n,p1,p2,k", REF_CASES, ids=[f"n{c[0]}-p{c[1]}-p{c[2]}-k{c[3]}" for c in REF_CASES]
)
def test_matches_reference(n, p1, p2, k):
    X, Y = _pair(n, p1, p2, seed=n * 100 + k)
    ref = ref_all(X, Y, k)
    for name, f in MEASURES.items():
        got = f(X, Y, k=k)
        assert _close(got, ref[name]), (name, got, ref[name])
    # The neighbour lists and distances themselves.
    for Z, lists, D in ((X, ref["NX"], ref["DX"]), (Y, ref["NY"], ref["DY"])):
        idx, dist = _core.knn(Z, k)
        assert idx.dtype == np.int64 and idx.shape == (n, k)
        assert idx.tolist() == lists
        np.testing.assert_allclose(dist, np.take_along_axis(D, idx, axis=1), rtol=0, atol=1e-14)


def test_matches_reference_with_zero_rows_and_duplicates():
    X, Y = _pair(50, 4, 6, seed=5)
    X[[3, 17, 40]] = 0.0  # all-zero rows: distance 1 to everything
    Y[8] = 0.0
    X[20] = X[7]  # duplicates: exact ties, broken by the index
    X[33] = X[7]
    Y[21] = Y[2]
    for k in (1, 5, 12):
        ref = ref_all(X, Y, k)
        for name, f in MEASURES.items():
            assert _close(f(X, Y, k=k), ref[name]), (name, k)
        assert _core.knn(X, k)[0].tolist() == ref["NX"]


def test_ties_across_blocks_match_reference():
    # n = 600 > 256 rows: several blocks in the core. Duplicated rows in different blocks must
    # be exact ties for every other row, ordered by index.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 5))
    for j in (100, 300, 301, 599):
        X[j] = X[3]
    X[450] = 0.0
    D = ref_cosine_distances(X)
    idx, dist = _core.knn(X, 15)
    assert idx.tolist() == ref_knn(X, 15, D)
    np.testing.assert_allclose(dist, np.take_along_axis(D, idx, axis=1), rtol=0, atol=1e-14)
    copies = [3, 100, 300, 301, 599]
    assert idx[3, :4].tolist() == [100, 300, 301, 599]
    rows_seeing_copies = [i for i in range(600) if i not in copies and set(idx[i]) & set(copies)]
    assert len(rows_seeing_copies) > 5
    for i in rows_seeing_copies:
        pos = [c for c in range(15) if idx[i, c] in copies]
        assert pos == list(range(pos[0], pos[0] + len(pos)))  # contiguous
        assert idx[i, pos].tolist() == copies[: len(pos)]  # smallest indices first
        assert len(set(dist[i, pos])) == 1  # one distance, bit for bit


def test_many_exact_ties_match_reference():
    # Axis directions in 20-D, each on 15 rows scaled by powers of two (bitwise-equal unit
    # rows), and 3 zero rows: every row has 14 rows at distance exactly 0 and the other 285 at
    # exactly 1. For float64 input the screening cannot certify such rows (the k-th and the
    # last kept candidate tie), so this exercises the exhaustive float64 pass; the lists must
    # follow the index order within each tie.
    n, p = 303, 20
    X = np.zeros((n, p))
    for i in range(300):
        X[i, i % p] = 2.0 ** (i // p - 7)
    order = np.random.default_rng(18).permutation(n)
    X = X[order]
    _, Y = _pair(n, 4, 6, seed=19)
    for k in (3, 20, 40):
        ref = ref_all(X, Y, k)
        for Z, lists in ((X, ref["NX"]), (X.astype(np.float32), ref["NX"]), (Y, ref["NY"])):
            assert _core.knn(Z, k)[0].tolist() == lists
        for name, f in MEASURES.items():
            assert _close(f(X, Y, k=k), ref[name]), (name, k)


# ---------------------------------------------------------------------------------------------
# (2) small cases worked out by hand
# ---------------------------------------------------------------------------------------------

# Axis-aligned rows: every cosine is exactly 0, 1 or -1, so distances are 0, 1 or 2 and ties
# are exact. Directions of X: +x, +y, -x, -y, +x, zero; of Y: +x, -x, +y, -y, +y, +x.
X_AXES = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, -1.0], [4.0, 0.0], [0.0, 0.0]])
Y_AXES = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 5.0], [2.0, 0.0]])


def test_hand_neighbour_lists_with_ties():
    idx, dist = _core.knn(X_AXES, 5)
    assert idx.tolist() == [
        [4, 1, 3, 5, 2],  # 4 at 0; 1, 3 and the zero row 5 tie at 1; 2 at 2
        [0, 2, 4, 5, 3],
        [1, 3, 5, 0, 4],
        [0, 2, 4, 5, 1],
        [0, 1, 3, 5, 2],
        [0, 1, 2, 3, 4],  # the zero row: everything at distance 1, by index
    ]
    assert dist[0].tolist() == [0.0, 1.0, 1.0, 1.0, 2.0]
    assert dist[5].tolist() == [1.0] * 5
    idx2, _ = _core.knn(X_AXES, 2)
    assert idx2.tolist() == idx[:, :2].tolist()
    idy, _ = _core.knn(Y_AXES, 2)
    assert idy.tolist() == [[5, 2], [2, 3], [4, 0], [0, 1], [2, 0], [0, 2]]


def test_hand_values():
    # k = 2. Lists X: [4,1] [0,2] [1,3] [0,2] [0,1] [0,1]; Y: [5,2] [2,3] [4,0] [0,1] [2,0] [0,2].
    # Shared: {}, {2}, {}, {0}, {0}, {0}; each shared set has 1 of 3 in the union.
    # Ranks (X, Y) of the shared neighbour: row 1 (2, 1), row 3 (1, 1), row 4 (1, 2),
    # row 5 (1, 1): s_i = 2 / ((1 + |rx - ry|)(rx + ry)) = 1/3, 1, 1/3, 1.
    k = 2
    assert knn_jaccard(X_AXES, Y_AXES, k=k) == pytest.approx(2 / 9, rel=1e-15)
    assert mutual_knn(X_AXES, Y_AXES, k=k) == pytest.approx(1 / 3, rel=1e-15)
    assert rank_similarity(X_AXES, Y_AXES, k=k) == pytest.approx(4 / 9, rel=1e-15)
    assert joint_rank_jaccard(X_AXES, Y_AXES, k=k) == pytest.approx(4 / 27, rel=1e-15)
    # Second order: per row, a = d_X(i, U_i), b = d_Y(i, U_i) with U_i sorted:
    # row 0, U {1,2,4,5}: a (1,2,0,1), b (2,1,1,0) -> 4/6
    # row 1, U {0,2,3}:   a (1,1,2),   b (2,1,1)   -> 5/6
    # row 2, U {0,1,3,4}: a (2,1,1,2), b (1,1,2,0) -> 5/sqrt(60)
    # row 3, U {0,1,2}:   a (1,2,1),   b (1,1,2)   -> 5/6
    # row 4, U {0,1,2}:   a (0,1,2),   b (1,1,0)   -> 1/sqrt(10)
    # row 5, U {0,1,2}:   a (1,1,1) (zero row), b (0,2,1) -> 3/sqrt(15)
    want = (4 / 6 + 5 / 6 + 5 / math.sqrt(60) + 5 / 6 + 1 / math.sqrt(10) + 3 / math.sqrt(15)) / 6
    assert second_order_cosine(X_AXES, Y_AXES, k=k) == pytest.approx(want, rel=1e-14)
    ref = ref_all(X_AXES, Y_AXES, k)
    for name, f in MEASURES.items():
        assert f(X_AXES, Y_AXES, k=k) == pytest.approx(ref[name], rel=1e-14), name


def test_rank_similarity_reversed_order_by_hand():
    # Three rows on a circle, so every row's 2 neighbours are the other two; only their order
    # can differ. X angles 0, 10, 30 degrees; Y angles 0, 20, 30: row 1's neighbours are
    # (0, 2) in X and (2, 0) in Y, s_1 = (2/(2*3) + 2/(2*3)) / (1 + 1/2) = 4/9.
    def circle(deg):
        a = np.radians(deg)
        return np.c_[np.cos(a), np.sin(a)]

    X, Y = circle([0, 10, 30]), circle([0, 20, 30])
    assert knn_jaccard(X, Y, k=2) == 1.0
    assert mutual_knn(X, Y, k=2) == 1.0
    assert rank_similarity(X, Y, k=2) == pytest.approx((1 + 4 / 9 + 1) / 3, rel=1e-15)
    assert joint_rank_jaccard(X, Y, k=2) == pytest.approx((1 + 4 / 9 + 1) / 3, rel=1e-15)
    # k = 1: row 1's nearest is 0 in X and 2 in Y; rows 0 and 2 agree.
    assert knn_jaccard(X, Y, k=1) == pytest.approx(2 / 3, rel=1e-15)
    assert mutual_knn(X, Y, k=1) == pytest.approx(2 / 3, rel=1e-15)
    assert rank_similarity(X, Y, k=1) == pytest.approx(2 / 3, rel=1e-15)


def test_disjoint_neighbourhoods_give_zero():
    # Two tight clusters, relabelled so that every row's nearest neighbour differs.
    X = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    Y = X[[0, 2, 1, 3]]
    for name in ("knn_jaccard", "mutual_knn", "rank_similarity", "joint_rank_jaccard"):
        assert MEASURES[name](X, Y, k=1) == 0.0, name


# ---------------------------------------------------------------------------------------------
# (3) all-zero rows and nan
# ---------------------------------------------------------------------------------------------


def test_all_zero_representation():
    # Every distance is 1: each row's neighbours are the smallest other indices.
    n, k = 7, 3
    Z = np.zeros((n, 4))
    idx, dist = _core.knn(Z, k)
    assert idx.tolist() == [[j for j in range(n) if j != i][:k] for i in range(n)]
    assert (dist == 1.0).all()
    _, Y = _pair(n, 2, 3, seed=1)
    # Every row identical (all zero): the tie rule alone would pick the neighbours, so every
    # measure is undefined, with a warning naming the argument (the docs' errors and warnings).
    for name, f in MEASURES.items():
        for args, arg in (((Z, Y), "X"), ((Y, Z), "Y")):
            with pytest.warns(cg.DegenerateDataWarning, match=rf"^{arg} has zero variance"):
                assert math.isnan(f(*args, k=k)), name


def test_second_order_cosine_nan_when_distances_all_zero():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 3))
    X[1:4] = X[0]  # rows 0-3 point the same way: N_3(0) = {1, 2, 3} at distance 0
    Y = X.copy()
    Y[:, 0] += 0.01 * rng.standard_normal(10)  # keep Y's neighbourhood of row 0 the same
    Y[1:4] = 2.0 * Y[0]
    with pytest.warns(DegenerateDataWarning, match=r"row 0 of X .*distance vector is all zeros"):
        assert math.isnan(second_order_cosine(X, Y, k=3))
    assert math.isnan(ref_all(X, Y, 3)["second_order_cosine"])
    # Only b all zeros: X generic, Y with the duplicated rows.
    Xg = rng.standard_normal((10, 3))
    with pytest.warns(DegenerateDataWarning, match=r"^Y has zero variance"):
        assert math.isnan(second_order_cosine(Xg, np.tile(Y[:1], (10, 1)), k=2))
    # A constant representation: every distance is exactly 0.
    C = np.tile([[0.3, -1.7, 2.2]], (10, 1))
    with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance"):
        assert math.isnan(second_order_cosine(C, Xg, k=4))
    with pytest.warns(DegenerateDataWarning, match=r"^Y has zero variance"):
        assert math.isnan(second_order_cosine(Xg, C.astype(np.float32), k=4))
    # With k = 4 the fourth neighbour of row 0 is not a copy: defined again.
    v = second_order_cosine(X, Y, k=4)
    assert _close(v, ref_all(X, Y, 4)["second_order_cosine"])
    # The other measures are defined on the same data.
    for name in ("knn_jaccard", "mutual_knn", "rank_similarity", "joint_rank_jaccard"):
        assert not math.isnan(MEASURES[name](X, Y, k=3))


# ---------------------------------------------------------------------------------------------
# (4) invalid k
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MEASURES))
def test_k_out_of_range(name):
    f = MEASURES[name]
    X, Y = _pair(8, 3, 2)
    for k in (0, -1):
        with pytest.raises(
            ValueError, match=rf"k={k} is out of range; expected a value in \[1, inf\)"
        ):
            f(X, Y, k=k)
    for k in (8, 9, 100):
        with pytest.raises(
            ValueError,
            match=rf"k={k} is out of range; expected an integer in \[1, n-1\] = \[1, 7\] for n = 8 rows",
        ):
            f(X, Y, k=k)
    for k in (2.5, 3.0, "3", None, True, np.float64(2.0)):
        with pytest.raises(ValueError, match=r"k=.* is invalid; expected an integer"):
            f(X, Y, k=k)
    assert type(f(X, Y, k=np.int64(7))) is float  # k = n - 1, as a numpy integer
    # The default k = 10 needs 11 rows.
    with pytest.raises(
        ValueError, match=r"k=10 is out of range; expected an integer in \[1, n-1\] = \[1, 7\]"
    ):
        f(X, Y)
    assert cg.get_measure(name).min_rows() == 11
    assert cg.get_measure(name).min_rows(k=3) == 4
    with pytest.raises(ValueError, match=r"k=0 is out of range"):
        cg.compare_layers([X, Y], measure=name, k=0)
    with pytest.raises(ValueError, match=r"k=2.5 is invalid; expected an integer"):
        cg.compare_layers([X, Y], measure=name, k=2.5)


def test_core_rejects_invalid_arguments():
    X = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(ValueError, match=r"k=0 is invalid; expected an integer in \[1, n-1\]"):
        _core.knn(X, 0)
    with pytest.raises(ValueError, match=r"k=-2 is invalid; expected an integer >= 1"):
        _core.knn(X, -2)
    with pytest.raises(
        ValueError, match=r"k=5 is invalid; expected an integer in \[1, n-1\] = \[1, 4\]"
    ):
        _core.knn(X, 5)
    nx = _core.knn(X, 2)[0]
    with pytest.raises(ValueError, match="shapes"):
        _core.knn_statistic(nx, nx[:, :1], "jaccard")
    bad = nx.copy()
    bad[2, 0] = 2  # the row itself
    with pytest.raises(ValueError, match="exclude the row itself"):
        _core.knn_statistic(bad, nx, "jaccard")
    bad[2, 0] = 5  # out of range
    with pytest.raises(ValueError, match=r"indices in \[0, n\)"):
        _core.knn_statistic(nx, bad, "rank")
    bad[2] = [1, 1]  # repeated
    with pytest.raises(ValueError, match="distinct"):
        _core.second_order_cosine(X, X, bad, nx)
    with pytest.raises(ValueError, match="statistic=.nope. is invalid"):
        _core.knn_statistic(nx, nx, "nope")
    with pytest.raises(ValueError, match="rows"):
        _core.second_order_cosine(X, X[:4], nx, nx)


# ---------------------------------------------------------------------------------------------
# (5) invariances and symmetry beyond the common tests
# ---------------------------------------------------------------------------------------------


def test_symmetric_to_the_bit():
    X, Y = _pair(80, 6, 4, seed=8)
    for name, f in MEASURES.items():
        assert f(X, Y, k=6) == f(Y, X, k=6), name


def test_invariant_to_positive_row_scaling():
    # Cosine neighbourhoods: invariant to any positive rescaling of individual rows.
    X, Y = _pair(70, 5, 4, seed=9)
    rng = np.random.default_rng(10)
    scales = np.exp(rng.uniform(-5, 5, size=(70, 1)))
    for name, f in MEASURES.items():
        assert _close(f(X * scales, Y, k=7), f(X, Y, k=7), 1e-10), name
    # Powers of two leave the unit rows bitwise unchanged, even at extreme magnitudes: the
    # results are identical to the bit.
    pow2 = 2.0 ** rng.integers(-900, 900, size=(70, 1)).astype(float)
    assert np.isfinite(X * pow2).all() and (X * pow2 != 0).all()
    for name, f in MEASURES.items():
        assert f(X * pow2, Y, k=7) == f(X, Y, k=7), name
    assert np.array_equal(_core.knn(X * pow2, 7)[0], _core.knn(X, 7)[0])


def test_identical_inputs_and_orthogonal_transform_give_one():
    X, _ = _pair(90, 8, 3, seed=12)
    Q, _ = np.linalg.qr(np.random.default_rng(13).standard_normal((8, 8)))
    for name, f in MEASURES.items():
        assert f(X, X, k=9) == 1.0, name
        assert f(X, 2.5 * X @ Q, k=9) == pytest.approx(1.0, abs=1e-12), name


def test_layout_and_container_do_not_matter():
    X, Y = _pair(45, 6, 5, seed=14)
    base = {name: f(X, Y, k=5) for name, f in MEASURES.items()}
    wide = np.zeros((45, 12))
    wide[:, ::2] = X
    for A, B in (
        (np.asfortranarray(X), Y),
        (wide[:, ::2], Y),  # a strided view
        (X[::-1][::-1], np.asfortranarray(Y)),
        (X.tolist(), Y.tolist()),
    ):
        for name, f in MEASURES.items():
            assert f(A, B, k=5) == base[name], name


# ---------------------------------------------------------------------------------------------
# (6) float32 input
# ---------------------------------------------------------------------------------------------


def test_float32_matches_float64_of_the_same_values():
    # float32 input is converted exactly and searched like float64 input: the neighbour lists,
    # their distances and every measure are those of the same values in float64, to the bit.
    X32, Y32 = _pair(300, 12, 7, seed=15, dtype=np.float32)
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    k = 10
    i32, d32 = _core.knn(X32, k)
    i64, d64 = _core.knn(X64, k)
    assert np.array_equal(i32, i64) and np.array_equal(d32, d64)
    assert i32.tolist() == ref_knn(X64, k)
    for name, f in MEASURES.items():
        assert f(X32, Y32, k=k) == f(X64, Y64, k=k), name
        assert type(f(X32, Y64, k=k)) is float  # mixed precisions


def test_float32_extreme_magnitudes():
    # The rows are normalised in float64 before the float32 products: entries near the
    # float32 limits neither overflow nor underflow.
    X32, _ = _pair(60, 5, 2, seed=16, dtype=np.float32)
    for scale in (np.float32(1e30), np.float32(1e-30)):
        Xs = X32 * scale
        assert np.isfinite(Xs).all() and (Xs != 0).all()
        i_s, d_s = _core.knn(Xs, 6)
        i_1, d_1 = _core.knn(X32, 6)
        assert np.mean(i_s != i_1) < 0.02
        np.testing.assert_allclose(d_s, d_1, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# (7) thread count does not change results
# ---------------------------------------------------------------------------------------------

_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, numpy as np
    from congruence import _core
    from congruence.measures import neighbors as nb
    rng = np.random.default_rng(2024)
    out = []
    X = rng.standard_normal((700, 40)); Y = np.tanh(X[:, :20]) + rng.standard_normal((700, 20))
    X[5] = X[600]; X[6] = 0.0
    X[100:160] = X[100]  # 60 identical rows: they take the exhaustive float64 pass
    for A in (X, Y, X.astype(np.float32)):
        i, d = _core.knn(A, 12)
        out.append(hashlib.sha256(i.tobytes() + d.tobytes()).hexdigest())
    for name in nb.__all__:
        out.append(repr(getattr(nb, name)(X, Y, k=12)))
        out.append(repr(getattr(nb, name)(X.astype(np.float32), Y, k=3)))
    print(json.dumps(out))
    """
)


def _run_with_threads(t):
    env = dict(os.environ, RAYON_NUM_THREADS=str(t))
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
    assert len(one) == len(two) == 13
    assert one == two
    assert "nan" not in one


# ---------------------------------------------------------------------------------------------
# (8) compare_layers reuses each layer's neighbour sets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MEASURES))
def test_compare_layers_matches_pairs_and_computes_each_layer_once(name, monkeypatch):
    rng = np.random.default_rng(17)
    a = [rng.standard_normal((40, p)) for p in (3, 6, 9)]
    b = {"u": rng.standard_normal((40, 4)), "v": np.tanh(a[1]), "w": a[2].astype(np.float32)}
    f = MEASURES[name]
    calls = []
    real = nb._knn

    def counting(X, k):
        calls.append(X.shape)
        return real(X, k)

    monkeypatch.setattr(nb, "_knn", counting)
    res = cg.compare_layers(a, b, measure=name, k=5)
    assert len(calls) == len(a) + len(b)
    want = np.array([[f(x, y, k=5) for y in b.values()] for x in a])
    assert np.array_equal(res.values, want)
    calls.clear()
    res = cg.compare_layers(a, measure=name, k=5)
    assert len(calls) == len(a)
    want = np.array([[f(x, y, k=5) for y in a] for x in a])
    assert np.array_equal(res.values, want)
    assert np.array_equal(res.values, res.values.T)
    assert (np.diag(res.values) == 1.0).all()
