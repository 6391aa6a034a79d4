"""Tests of the topology measures ``imd``, ``rtd`` and ``geometry_score`` (docs: topology page).

Expected values come from hand derivations (graph spectra, small Rips and witness complexes
worked out on paper) and from the slow references of ``tests/reference_topology.py``, which
enumerate every simplex and reduce the whole boundary matrix. The generic properties
(symmetry, invariances, bounds, ...) are in ``tests/test_common.py``.
"""

from __future__ import annotations

import itertools
import math
import os
import sys

import numpy as np
import pytest

import congruence as cg
from congruence.measures import topology as topo

sys.path.insert(0, os.path.dirname(__file__))
from reference_topology import (  # noqa: E402
    ref_geometry_score,
    ref_imd,
    ref_knn_adjacency,
    ref_persistence,
    ref_rips_h1_total,
    ref_rlt,
    ref_rtd,
    ref_witness_filtration,
)

try:  # RTD needs the optional persistence engine (the "topology" extra).
    import gudhi.sklearn  # noqa: F401

    HAVE_GUDHI = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_GUDHI = False
needs_gudhi = pytest.mark.skipif(not HAVE_GUDHI, reason='needs pip install "congruence[topology]"')

T = 10.0 ** (-1.0 + 2.0 * np.arange(256) / 255.0)
WEIGHT = np.exp(-2.0 * (T + 1.0 / T))


def _line(n=7):
    return np.arange(float(n))[:, None]


def _wheel():
    """Centre + regular hexagon. 5-NN graph: K7 minus the three long diagonals."""
    t = np.arange(6) * np.pi / 3
    return np.r_[[[0.0, 0.0]], np.c_[np.cos(t), np.sin(t)]]


def _noisy_circle(n, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    return np.c_[np.cos(t), np.sin(t)] + noise * rng.standard_normal((n, 2))


# =============================================================================== IMD


def test_knn_graph_of_line_is_k7_minus_end_edge():
    # On 0..6 every point keeps all but one other point; 0 and 6 drop each other (and 3
    # drops 6 on the tie 0/6 at distance 3), so only {0, 6} is missing.
    A = topo._knn_adjacency(_line())
    want = np.ones((7, 7), dtype=bool) & ~np.eye(7, dtype=bool)
    want[0, 6] = want[6, 0] = False
    assert np.array_equal(A, want)


def test_knn_ties_go_to_the_smaller_index():
    # p = (0, 10) is exactly as far (sqrt 101) from q = (-1, 0) as from q' = (1, 0), and
    # both are its farthest points; q and q' both drop p. p keeps the smaller index of the
    # two, so exactly the edge between p and the larger-indexed one is missing.
    axis = [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0], [0.0, 1.5]]
    p, q, q2 = [0.0, 10.0], [-1.0, 0.0], [1.0, 0.0]
    for pts, (ip, iq, iq2) in (
        ([p] + axis + [q, q2], (0, 5, 6)),
        ([p] + axis + [q2, q], (0, 6, 5)),
        ([q2] + axis + [p, q], (5, 6, 0)),
    ):
        A = topo._knn_adjacency(np.array(pts))
        missing = {tuple(sorted(e)) for e in zip(*np.nonzero(~A)) if e[0] != e[1]}
        assert missing == {tuple(sorted((ip, max(iq, iq2))))}, (pts, missing)
        assert np.array_equal(A, ref_knn_adjacency(pts).astype(bool))


@pytest.mark.parametrize("seed", range(4))
def test_knn_with_many_ties_matches_reference(seed):
    # Integer lattice points (exact squared distances, many equal) with duplicated rows, in
    # random order: rows with more than k points at their k-th distance keep the smallest
    # indices among those at that distance.
    rng = np.random.default_rng(seed)
    pts = np.array([(i, j) for i in range(5) for j in range(4)], dtype=float)
    pts = np.r_[pts, pts[rng.integers(0, len(pts), 6)]][rng.permutation(len(pts) + 6)]
    A = topo._knn_adjacency(pts)
    assert np.array_equal(A, ref_knn_adjacency(pts).astype(bool))


def test_heat_trace_of_line_matches_closed_form():
    # K7 minus an edge: eigenvalues 0, 1, 7/6 (x4), 4/3 of the normalized Laplacian.
    h = topo._heat_trace(_line())
    want = 1.0 + np.exp(-T) + 4.0 * np.exp(-7.0 * T / 6.0) + np.exp(-4.0 * T / 3.0)
    assert np.allclose(h, want, rtol=1e-12, atol=0)


def test_imd_line_vs_wheel_closed_form():
    # Wheel graph (K7 minus a perfect matching of the hexagon): eigenvalues 0, 1 (x3),
    # 7/5 (x2), 6/5. IMD = max_t w(t) 1e6/7 |h_line(t) - h_wheel(t)|.
    h_line = 1.0 + np.exp(-T) + 4.0 * np.exp(-7.0 * T / 6.0) + np.exp(-4.0 * T / 3.0)
    h_wheel = 1.0 + 3.0 * np.exp(-T) + 2.0 * np.exp(-7.0 * T / 5.0) + np.exp(-6.0 * T / 5.0)
    want = float(np.max(WEIGHT * 1e6 / 7.0 * np.abs(h_line - h_wheel)))
    got = cg.imd(_line(), _wheel())
    assert type(got) is float
    assert math.isclose(got, want, rel_tol=1e-10)
    assert cg.imd(_wheel(), _line()) == got


def test_imd_of_any_two_six_point_sets_is_zero():
    # With n = 6 and k = 5 every graph is K6: the spectra coincide.
    rng = np.random.default_rng(0)
    assert cg.imd(rng.standard_normal((6, 3)), rng.standard_normal((6, 9))) == 0.0


@pytest.mark.parametrize("n", [6, 7, 10, 23, 40])
def test_imd_matches_reference(n):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 4))
    Y = rng.integers(0, 3, (n, 2)).astype(float)  # a grid with many exact ties
    want = ref_imd(X, Y)
    assert math.isclose(cg.imd(X, Y), want, rel_tol=1e-9, abs_tol=1e-9)


def test_imd_identical_and_row_order():
    X = np.random.default_rng(1).standard_normal((30, 5))
    assert cg.imd(X, X.copy()) == 0.0
    # Only the graphs matter: relabelling the points of one side gives an isomorphic graph.
    perm = np.random.default_rng(2).permutation(30)
    assert cg.imd(X, X[perm]) < 1e-9


def test_imd_float32_input_is_computed_in_float64():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((20, 3)).astype(np.float32), rng.standard_normal((20, 2))
    assert cg.imd(X, Y) == cg.imd(X.astype(np.float64), Y)


def test_imd_needs_six_rows():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match=r"X has shape \(5, 2\).*at least 6 rows"):
        cg.imd(rng.standard_normal((5, 2)), rng.standard_normal((5, 2)))


# =============================================================================== RTD


@needs_gudhi
def test_rips_h1_of_four_cycle():
    # Shortest-path metric of the 4-cycle: the square appears at 1, its diagonals at 2
    # fill it: one interval [1, 2).
    M = np.array([[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]], dtype=float)
    bars = topo._rips_h1(M)
    assert bars.tolist() == [[1.0, 2.0]]
    assert ref_rips_h1_total(M) == 1.0


@needs_gudhi
def test_rtd_hand_computed_triangles():
    # X: equilateral (all normalised distances 1); Y: the same with one side halved. The
    # 0.9-quantiles are 1 for both. R(X, Y): the edge b0-b1 enters at 0.5 and closes the
    # cycle b0-b1-a1-a0 (a's at mutual distance 0, a_i-b_i at 0), filled when every other
    # edge enters at 1: 0.5. R(Y, X): bottom-right block = cross block, every b_i is
    # dominated by a_i, nothing is born: 0. RTD = (0.5 + 0) / 2.
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    Y = np.array([[0.0, 0.0], [0.5, 0.0], [0.25, np.sqrt(15) / 4]])
    assert math.isclose(cg.rtd(X, Y), 0.25, rel_tol=1e-12)
    assert math.isclose(cg.rtd(Y, X), 0.25, rel_tol=1e-12)
    assert math.isclose(ref_rtd(X, Y), 0.25, rel_tol=1e-12)


@needs_gudhi
def test_rtd_identical_is_exactly_zero():
    X = np.random.default_rng(5).standard_normal((40, 6))
    assert cg.rtd(X, X.copy()) == 0.0
    assert cg.rtd(X, 2.0 * X) == 0.0  # exact scaling: the same normalised distances
    assert cg.rtd(X, 3.0 * X - 2.0) < 1e-12  # equal up to rounding


@needs_gudhi
@pytest.mark.parametrize("n, p1, p2", [(3, 2, 2), (4, 3, 1), (5, 2, 4), (6, 3, 3), (8, 5, 2)])
def test_rtd_matches_reference(n, p1, p2):
    rng = np.random.default_rng(100 + n)
    X = rng.standard_normal((n, p1))
    Y = np.tanh(X[:, :1] * rng.standard_normal((1, p2))) + 0.3 * rng.standard_normal((n, p2))
    assert math.isclose(cg.rtd(X, Y), ref_rtd(X, Y), rel_tol=1e-10, abs_tol=1e-12)


@needs_gudhi
def test_rtd_with_ties_matches_reference():
    rng = np.random.default_rng(6)
    X = rng.integers(0, 3, (7, 2)).astype(float)
    X[0] = X[1]  # a duplicated row: a zero distance off the diagonal
    Y = rng.integers(0, 2, (7, 3)).astype(float) + np.eye(7, 3)
    assert math.isclose(cg.rtd(X, Y), ref_rtd(X, Y), rel_tol=1e-10, abs_tol=1e-12)


@needs_gudhi
def test_rtd_nan_when_a_quantile_is_zero():
    rng = np.random.default_rng(7)
    const = np.ones((5, 3))
    with pytest.warns(cg.DegenerateDataWarning, match="X has zero variance: every row"):
        assert math.isnan(cg.rtd(const, rng.standard_normal((5, 2))))
    with pytest.warns(cg.DegenerateDataWarning, match="Y has zero variance: every row"):
        assert math.isnan(cg.rtd(rng.standard_normal((5, 2)), const))
    # 19 of 20 rows equal: 362 of the 400 ordered pairs are at distance 0, more than 90%,
    # so the 0.9-quantile (position 0.9 * 399 = 359.1 of the sorted values) is 0.
    X = np.zeros((20, 2))
    X[0] = 1.0
    with pytest.warns(cg.DegenerateDataWarning, match="X has .* 0.9-quantile .* is 0"):
        assert math.isnan(cg.rtd(X, rng.standard_normal((20, 2))))
    # 9 of 10 equal: 82 of 100 at 0, the quantile (position 89.1) is positive.
    X = np.zeros((10, 2))
    X[0] = 1.0
    Y = rng.standard_normal((10, 2))
    assert math.isfinite(cg.rtd(X, Y))
    assert math.isclose(cg.rtd(X, Y), ref_rtd(X, Y), rel_tol=1e-10, abs_tol=1e-12)


@needs_gudhi
def test_rtd_subsampling_is_the_mean_over_documented_subsets():
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 2))
    got = cg.rtd(X, Y, max_points=6, trials=3, seed=11)
    draw = np.random.default_rng(11)
    subsets = [np.sort(draw.choice(12, size=6, replace=False)) for _ in range(3)]
    want = np.mean([ref_rtd(X[s], Y[s]) for s in subsets])
    assert math.isclose(got, want, rel_tol=1e-10)
    assert cg.rtd(X, Y, max_points=6, trials=3, seed=11) == got  # reproducible
    gen = np.random.default_rng(11)
    assert cg.rtd(X, Y, max_points=6, trials=3, seed=gen) == got
    assert cg.rtd(X, Y, max_points=6, trials=3, seed=12) != got


@needs_gudhi
def test_rtd_parameters_have_no_effect_when_n_fits():
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    base = cg.rtd(X, Y)
    assert cg.rtd(X, Y, max_points=10, trials=1, seed=3) == base
    assert cg.rtd(X, Y, max_points=50, trials=7) == base


RTD_ERRORS = [
    ({"max_points": 2}, r"max_points=2 is out of range; expected a value in \[3, inf\)"),
    ({"max_points": 10.5}, r"max_points=10.5 is invalid; expected an integer"),
    ({"trials": 0}, r"trials=0 is out of range; expected a value in \[1, inf\)"),
    ({"seed": -1}, r"seed=-1 is invalid; expected None, a non-negative integer"),
    ({"seed": "a"}, r"seed='a' is invalid; expected None"),
]


@pytest.mark.parametrize("kwargs, message", RTD_ERRORS)
def test_rtd_parameter_errors(kwargs, message):
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=message):
        cg.rtd(rng.standard_normal((6, 2)), rng.standard_normal((6, 2)), **kwargs)


def test_rtd_needs_three_rows():
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=r"X has shape \(2, 2\).*at least 3 rows"):
        cg.rtd(rng.standard_normal((2, 2)), rng.standard_normal((2, 2)))


def test_rtd_without_persistence_engine(monkeypatch):
    monkeypatch.setitem(sys.modules, "gudhi", None)
    monkeypatch.setitem(sys.modules, "gudhi.sklearn", None)
    X = np.random.default_rng(11).standard_normal((5, 2))
    with pytest.raises(ImportError, match=r'pip install "congruence\[topology\]"'):
        cg.rtd(X, X + 1.0)


# ==================================================================== geometry score


def _circle8():
    t = np.arange(8) * np.pi / 4
    return np.c_[np.cos(t), np.sin(t)]


def test_geometry_score_square_of_landmarks_by_hand():
    # Landmarks at 0, 90, 180, 270 degrees of the unit circle, witnesses every 45 degrees.
    # The square's sides are witnessed at 0 (by the midpoints), the diagonals first at
    # 2 - sqrt 2 (by the landmarks on the other diagonal) together with the four triangles.
    # max Dw = 2 and gamma = 0.5 give alpha_max = 1. One interval [0, 2 - sqrt 2):
    # RLT = (sqrt 2 - 1, 2 - sqrt 2, 0, ...). Four copies of one landmark: a full complex at
    # 0, no interval, RLT = (1, 0, ...). GS = 2 (2 - sqrt 2)^2.
    C = _circle8()
    r = 2.0 - math.sqrt(2.0)
    got = cg.geometry_score(C, C, gamma=0.5, landmarks_x=[[0, 2, 4, 6]], landmarks_y=[[0, 0, 0, 0]])
    assert math.isclose(got, 2.0 * r * r, rel_tol=1e-12)
    # Mean over two landmark sets: MRLT_X = ((sqrt2-1+1)/2, r/2, 0...), MRLT_Y = (1, 0, ...)
    got2 = cg.geometry_score(
        C, C, gamma=0.5, landmarks_x=[[0, 2, 4, 6], [1, 1, 1, 1]], landmarks_y=[[3, 3, 3, 3]]
    )
    assert math.isclose(got2, 2.0 * (r / 2) ** 2, rel_tol=1e-12)
    # i_max = 1 keeps only the time with no interval alive.
    got3 = cg.geometry_score(
        C, C, gamma=0.5, i_max=1, landmarks_x=[[0, 2, 4, 6]], landmarks_y=[[0, 0, 0, 0]]
    )
    assert math.isclose(got3, r * r, rel_tol=1e-12)


def test_square_filtration_by_hand():
    C = _circle8()
    Dw = np.linalg.norm(C[:, None, :] - C[None, [0, 2, 4, 6], :], axis=2)
    edges, ev, tris, tv = topo._witness_filtration(Dw, 1.0)
    got = {tuple(e): v for e, v in zip(edges.tolist(), ev.tolist())}
    r = 2.0 - math.sqrt(2.0)
    assert set(got) == {(0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (1, 3)}
    for e in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert got[e] == 0.0
    for e in [(0, 2), (1, 3)]:
        assert math.isclose(got[e], r, rel_tol=1e-12)
    assert tris.tolist() == [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]
    assert np.allclose(tv, r, rtol=1e-12)
    bars = topo._h1_intervals(4, edges, ev, tris, tv)
    assert bars.shape == (1, 2) and bars[0, 0] == 0.0 and math.isclose(bars[0, 1], r)


def test_rlt_by_hand():
    # [0, .5) and [.25, 1) on [0, 1]: one alive on [0,.25) and [.5,1), two on [.25,.5).
    bars = np.array([[0.0, 0.5], [0.25, 1.0]])
    assert np.allclose(topo._rlt(bars, 1.0, 4), [0.0, 0.75, 0.25, 0.0])
    assert np.allclose(topo._rlt(bars, 1.0, 2), [0.0, 0.75])  # c >= i_max is not counted
    assert np.allclose(topo._rlt(bars, 2.0, 3), [0.5, 0.375, 0.125])  # [1, 2] has none
    assert np.array_equal(topo._rlt(np.empty((0, 2)), 1.0, 3), [1.0, 0.0, 0.0])
    assert np.allclose(ref_rlt([(0.0, 0.5), (0.25, 1.0)], 2.0, 3), [0.5, 0.375, 0.125])


def _random_dw(seed, n=12, L=6, dup=True):
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((n, 2))
    idx = rng.integers(0, n, L)
    if dup:
        idx[1] = idx[0]  # duplicated landmark: two vertices at the same point
    return np.linalg.norm(P[:, None, :] - P[None, idx, :], axis=2)


@pytest.mark.parametrize("path", ["auto", "dense", "sparse"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("frac", [0.0, 0.05, 0.2, 0.6])
def test_witness_filtration_matches_reference(monkeypatch, path, seed, frac):
    monkeypatch.setattr(topo, "_SPARSE_COST", {"auto": 4.0, "dense": math.inf, "sparse": 0.0}[path])
    Dw = _random_dw(seed, L=3 + seed)  # L = 3 exercises a triangle holding every landmark
    alpha = frac * Dw.max()
    edges, ev, tris, tv = topo._witness_filtration(Dw, alpha)
    got = {tuple(e): v for e, v in zip(edges.tolist(), ev.tolist())}
    got.update({tuple(t): v for t, v in zip(tris.tolist(), tv.tolist())})
    want = {s: v for s, v in ref_witness_filtration(Dw, alpha).items() if len(s) > 1}
    assert got.keys() == want.keys()
    for s in want:
        assert math.isclose(got[s], want[s], rel_tol=1e-12, abs_tol=1e-15), s


@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_witness_filtration_triangle_witnessed_by_third_nearest(monkeypatch, path):
    # Landmarks 0..3 and four witnesses (distances below). Witnesses 1-3 give the edges of
    # {0, 1, 2} at 0 but the triangle only at 9; witness 0 sees 0 and 1 at 0, 2 at 5 and 3 at
    # 6: its nearest landmark outside {0, 1, 2} is farther than all three, a = 0. So the
    # triangle enters at 0 although its vertex 2 is 5 beyond the 2nd-nearest of witness 0.
    monkeypatch.setattr(topo, "_SPARSE_COST", math.inf if path == "dense" else 0.0)
    Dw = np.array([[0, 0, 5, 6], [0, 0, 10, 1], [0, 10, 0, 1], [10, 0, 0, 1]], dtype=float)
    edges, ev, tris, tv = topo._witness_filtration(Dw, 1.0)
    assert [0, 1, 2] in tris.tolist()
    assert tv[tris.tolist().index([0, 1, 2])] == 0.0
    assert ref_witness_filtration(Dw, 1.0)[(0, 1, 2)] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_h1_intervals_match_reference_reduction(seed):
    Dw = _random_dw(seed, n=15, L=9)
    alpha = 0.4 * Dw.max()
    edges, ev, tris, tv = topo._witness_filtration(Dw, alpha)
    got = sorted(map(tuple, topo._h1_intervals(9, edges, ev, tris, tv).tolist()))
    want = ref_persistence(ref_witness_filtration(Dw, alpha), 1)
    assert len(got) == len(want)
    for (b1, d1), (b2, d2) in zip(got, want):
        assert math.isclose(b1, b2, rel_tol=1e-12) and (d1 == d2 or math.isclose(d1, d2))


def _random_2_complex(rng, L):
    """A random filtered 2-complex: some edges of K_L, some of the triangles on them."""
    filt = {(v,): 0.0 for v in range(L)}
    for e in itertools.combinations(range(L), 2):
        if rng.random() < 0.8:
            filt[e] = float(rng.integers(0, 6))  # few distinct values: many ties
    for t in itertools.combinations(range(L), 3):
        facets = [f for f in itertools.combinations(t, 2)]
        if all(f in filt for f in facets) and rng.random() < 0.5:
            filt[t] = max(filt[f] for f in facets) + float(rng.integers(0, 3))
    return filt


@pytest.mark.parametrize("seed", range(40))
def test_h1_intervals_of_random_complexes_match_reference(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(3, 9))
    filt = _random_2_complex(rng, L)
    edges = np.array([s for s in filt if len(s) == 2], dtype=np.intp).reshape(-1, 2)
    tris = np.array([s for s in filt if len(s) == 3], dtype=np.intp).reshape(-1, 3)
    ev = np.array([filt[tuple(e)] for e in edges.tolist()])
    tv = np.array([filt[tuple(t)] for t in tris.tolist()])
    got = sorted(map(tuple, topo._h1_intervals(L, edges, ev, tris, tv).tolist()))
    assert got == ref_persistence(filt, 1)


def test_h1_of_hollow_and_filled_complexes():
    # Two squares sharing the edge (1, 2); the left one filled at 3 by two triangles, the
    # right one never filled: [1, 3) and [2, inf).
    edges = np.array([[0, 1], [0, 3], [1, 2], [2, 3], [1, 4], [2, 5], [4, 5], [1, 3]])
    ev = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 3.0])
    tris = np.array([[0, 1, 3], [1, 2, 3]])
    tv = np.array([3.0, 3.0])
    bars = topo._h1_intervals(6, edges, ev, tris, tv)
    assert sorted(map(tuple, bars.tolist())) == [(1.0, 3.0), (2.0, math.inf)]


@pytest.mark.parametrize("gamma", [None, 0.1, 0.3, 0.6])
def test_geometry_score_matches_reference_on_circles(gamma):
    C = _noisy_circle(16, seed=1)
    Z = np.c_[_noisy_circle(16, seed=2, noise=0.3), np.zeros(16)] * [1.0, 0.3, 0.0]
    rng = np.random.default_rng(3)
    lx, ly = rng.integers(0, 16, (3, 6)), rng.integers(0, 16, (2, 5))
    got = cg.geometry_score(C, Z, gamma=gamma, i_max=5, landmarks_x=lx, landmarks_y=ly)
    want = ref_geometry_score(C, Z, lx, ly, gamma=gamma, i_max=5)
    assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15)


def test_geometry_score_default_gamma():
    # A far witness makes max Dw = 71111, so with n = 9 the default gamma n / 640000 gives
    # alpha_max ~ 1 and the square's cycle [0, 2 - sqrt 2) is seen; gamma 10x larger
    # would give a different value.
    X = np.r_[_circle8(), [[71110.0, 0.0]]]
    lx, ly = [[0, 2, 4, 6]], [[0, 0, 0, 0]]
    got = cg.geometry_score(X, X, landmarks_x=lx, landmarks_y=ly)
    assert math.isclose(got, ref_geometry_score(X, X, lx, ly), rel_tol=1e-9)
    alpha = 9 / (128 * 5000) * 71111.0
    assert math.isclose(got, 2.0 * ((2.0 - math.sqrt(2.0)) / alpha) ** 2, rel_tol=1e-9)
    ten_times = cg.geometry_score(X, X, gamma=90 / 640000, landmarks_x=lx, landmarks_y=ly)
    assert not math.isclose(got, ten_times)


def test_geometry_score_seed_draws_shared_landmarks():
    X, Y = _noisy_circle(20, seed=4), np.random.default_rng(5).standard_normal((20, 3))
    got = cg.geometry_score(X, Y, n_landmarks=7, n_samples=4, gamma=0.3, seed=9)
    idx = np.random.default_rng(9).integers(0, 20, size=(4, 7))
    assert got == cg.geometry_score(X, Y, gamma=0.3, landmarks_x=idx, landmarks_y=idx)
    assert got == cg.geometry_score(X, Y, n_landmarks=7, n_samples=4, gamma=0.3, seed=9)
    assert got == cg.geometry_score(
        Y, X, n_landmarks=7, n_samples=4, gamma=0.3, seed=np.random.default_rng(9)
    )
    assert got != cg.geometry_score(X, Y, n_landmarks=7, n_samples=4, gamma=0.3, seed=10)
    assert cg.geometry_score(X, X.copy(), n_landmarks=7, n_samples=4, seed=9) == 0.0
    # Given landmarks override n_samples, n_landmarks and seed.
    assert got == cg.geometry_score(
        X, Y, n_landmarks=2, n_samples=50, gamma=0.3, seed=1, landmarks_x=idx, landmarks_y=idx
    )


def test_geometry_score_identical_rows_give_nan_with_a_warning():
    # Revision 2 of the definition (degenerate data): identical rows give nan with a
    # DegenerateDataWarning for the topology measures (formerly the formula's value: with
    # alpha_max = 0 the RLT was (1, 0, ...)).
    const = np.ones((10, 3))
    C = _noisy_circle(10, seed=6)
    lm = [[0, 3, 5, 7], [1, 2, 8, 9]]
    with pytest.warns(cg.DegenerateDataWarning, match="X has zero variance: every row"):
        assert math.isnan(cg.geometry_score(const, const * 2, n_landmarks=4, n_samples=2))
    with pytest.warns(cg.DegenerateDataWarning, match="Y has zero variance: every row"):
        got = cg.geometry_score(C, const, gamma=0.5, landmarks_x=lm, landmarks_y=lm)
    assert math.isnan(got)


def test_geometry_score_large_n_uses_per_sample_distances(monkeypatch):
    X, Y = _noisy_circle(30, seed=7), _noisy_circle(30, seed=8, noise=0.2)
    base = cg.geometry_score(X, Y, n_landmarks=8, n_samples=3, gamma=0.4, seed=2)
    monkeypatch.setattr(topo, "_FULL_DISTANCES_MAX_N", 10)
    assert math.isclose(
        cg.geometry_score(X, Y, n_landmarks=8, n_samples=3, gamma=0.4, seed=2), base, rel_tol=1e-12
    )


_OK = [[0, 1, 2]]
GS_ERRORS = [
    (
        {"landmarks_x": _OK},
        "landmarks_x was given alone; landmarks_x and landmarks_y must be given together",
    ),
    ({"landmarks_y": _OK}, "landmarks_y was given alone"),
    (
        {"landmarks_x": _OK, "landmarks_y": [[0, 10]]},
        r"landmarks_y holds indices from 0 to 10; expected row indices in \[0, 10\)",
    ),
    (
        {"landmarks_x": [[-1, 2]], "landmarks_y": _OK},
        r"landmarks_x holds indices from -1 to 2; expected row indices in \[0, 10\)",
    ),
    (
        {"landmarks_x": [[0.0, 1.0]], "landmarks_y": _OK},
        r"landmarks_x has dtype float64; expected an integer array",
    ),
    (
        {"landmarks_x": [0, 1, 2], "landmarks_y": _OK},
        r"landmarks_x has shape \(3,\); expected a non-empty integer array of shape "
        r"\(n_samples, n_landmarks\)",
    ),
    ({"n_landmarks": 0}, r"n_landmarks=0 is out of range; expected a value in \[1, inf\)"),
    ({"n_samples": 0}, r"n_samples=0 is out of range; expected a value in \[1, inf\)"),
    ({"i_max": 0}, r"i_max=0 is out of range; expected a value in \[1, inf\)"),
    ({"i_max": 2.0}, r"i_max=2.0 is invalid; expected an integer"),
    ({"gamma": 0.0}, r"gamma=0.0 is out of range; expected a value in \(0, inf\)"),
    ({"seed": 1.5}, r"seed=1.5 is invalid; expected None, a non-negative integer"),
]


@pytest.mark.parametrize("kwargs, message", GS_ERRORS)
def test_geometry_score_parameter_errors(kwargs, message):
    X = _noisy_circle(10, seed=9)
    with pytest.raises(ValueError, match=message):
        cg.geometry_score(X, X, **kwargs)


def test_geometry_score_needs_two_rows():
    X = _noisy_circle(10, seed=9)
    with pytest.raises(ValueError, match=r"X has shape \(1, 2\).*at least 2 rows"):
        cg.geometry_score(X[:1], X[:1])
