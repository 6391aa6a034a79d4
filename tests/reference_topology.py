"""Slow, obviously-correct references for the topology and descriptive measures (docs: topology, descriptive).

Everything is written directly from the specification, with explicit loops and no pruning:

* distances from explicit coordinate differences, one pair at a time;
* k-NN lists by sorting ``(distance, index)`` tuples (ties to the smaller index, 6.1);
* the quantile by its definition (linear interpolation at position ``q (N - 1)``, 0.3);
* Vietoris-Rips and witness filtrations by enumerating every edge and triangle;
* persistence by the textbook reduction of the whole boundary matrix over Z/2 (every
  dimension, columns as Python sets, no clearing, no cohomology);
* relative living times by walking the consecutive endpoint pairs (6.3 step 5).

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "ref_distance",
    "ref_knn_adjacency",
    "ref_heat_trace",
    "ref_imd",
    "ref_persistence",
    "ref_rips_h1_total",
    "ref_rtd",
    "ref_witness_filtration",
    "ref_rlt",
    "ref_geometry_score",
    "ref_magnitude",
    "ref_concentricity",
    "ref_uniformity",
]

IMD_TIMES = [10.0 ** (-1.0 + 2.0 * j / 255.0) for j in range(256)]


def _rows(X) -> list[list[float]]:
    A = np.array(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A.tolist()


def ref_distance(a, b, squared: bool = False) -> float:
    s = 0.0
    for u, v in zip(a, b):
        s += (u - v) * (u - v)
    return s if squared else math.sqrt(s)


def _quantile(values, q: float) -> float:
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


# ------------------------------------------------------------------------------- 6.1 IMD


def ref_knn_adjacency(X, k: int = 5) -> np.ndarray:
    R = _rows(X)
    n = len(R)
    A = np.zeros((n, n), dtype=int)
    for i in range(n):
        ranked = sorted((ref_distance(R[i], R[j], squared=True), j) for j in range(n) if j != i)
        for _, j in ranked[:k]:
            A[i, j] = 1
            A[j, i] = 1
    return A


def ref_heat_trace(A: np.ndarray) -> list[float]:
    """Heat trace of the normalized Laplacian of the adjacency ``A`` on the 256 IMD times."""
    A = np.asarray(A, dtype=np.float64)
    d = A.sum(axis=1)
    Dm = np.diag(1.0 / np.sqrt(d))
    L = np.eye(len(d)) - Dm @ A @ Dm
    lam = np.linalg.eigvalsh(L)
    return [sum(math.exp(-t * x) for x in lam) for t in IMD_TIMES]


def ref_imd(X, Y, k: int = 5) -> float:
    n = len(_rows(X))
    hx = ref_heat_trace(ref_knn_adjacency(X, k))
    hy = ref_heat_trace(ref_knn_adjacency(Y, k))
    best = 0.0
    for t, a, b in zip(IMD_TIMES, hx, hy):
        best = max(best, math.exp(-2.0 * (t + 1.0 / t)) * abs(1e6 * a / n - 1e6 * b / n))
    return best


# ------------------------------------------------------------------------- persistence


def ref_persistence(filtration: dict, dim: int) -> list[tuple[float, float]]:
    """Persistence intervals in dimension ``dim`` of a filtered simplicial complex, over Z/2.

    ``filtration`` maps simplices (sorted vertex tuples; every face present) to values.
    Simplices are ordered by (value, dimension, vertices); the boundary matrix is reduced
    column by column (standard algorithm). Zero-length intervals are omitted; classes that
    never die have death ``inf``.
    """
    simplices = sorted(filtration, key=lambda s: (filtration[s], len(s), s))
    index = {s: i for i, s in enumerate(simplices)}
    low_owner: dict[int, int] = {}
    killed = set()
    pairs = []
    for j, s in enumerate(simplices):
        col = set()
        if len(s) > 1:
            for f in itertools.combinations(s, len(s) - 1):
                col ^= {index[f]}
        while col and max(col) in low_owner:
            col ^= low_owner[max(col)]
        if col:
            low = max(col)
            low_owner[low] = col
            killed.add(low)
            pairs.append((low, j))
    destroyers = {d for _, d in pairs}
    positive = [j for j in range(len(simplices)) if j not in destroyers]
    out = []
    for b, d in pairs:
        if len(simplices[b]) == dim + 1:
            vb, vd = filtration[simplices[b]], filtration[simplices[d]]
            if vd > vb:
                out.append((vb, vd))
    for j in positive:
        if len(simplices[j]) == dim + 1 and j not in killed:
            out.append((filtration[simplices[j]], math.inf))
    return sorted(out)


# ------------------------------------------------------------------------------- 6.2 RTD


def ref_rips_h1_total(M) -> float:
    """Sum of the finite H1 interval lengths of the Vietoris-Rips filtration of ``M``."""
    M = np.asarray(M, dtype=np.float64)
    m = M.shape[0]
    filt = {(i,): 0.0 for i in range(m)}
    for i, j in itertools.combinations(range(m), 2):
        filt[(i, j)] = M[i, j]
    for i, j, k in itertools.combinations(range(m), 3):
        filt[(i, j, k)] = max(M[i, j], M[i, k], M[j, k])
    return sum(d - b for b, d in ref_persistence(filt, 1) if d != math.inf)


def _normalised_distances(R):
    n = len(R)
    D = [[ref_distance(R[i], R[j]) for j in range(n)] for i in range(n)]
    q = _quantile([x for row in D for x in row], 0.9)
    if q == 0:
        return None
    return [[x / q for x in row] for row in D]


def _rtd_r(DA, DB) -> float:
    n = len(DA)
    M = np.zeros((2 * n, 2 * n))
    for i in range(n):
        for j in range(n):
            M[j, n + i] = DA[i][j]
            M[n + i, j] = DA[i][j]
            M[n + i, n + j] = min(DA[i][j], DB[i][j])
    mean_a = sum(x for row in DA for x in row) / (n * n)
    M[M < 1e-6 * mean_a] = 0.0
    return ref_rips_h1_total(M)


def ref_rtd(X, Y) -> float:
    DX, DY = _normalised_distances(_rows(X)), _normalised_distances(_rows(Y))
    if DX is None or DY is None:
        return math.nan
    return (_rtd_r(DX, DY) + _rtd_r(DY, DX)) / 2.0


# -------------------------------------------------------------------- 6.3 geometry score


def ref_witness_filtration(Dw, alpha_max: float) -> dict:
    """The relaxed witness filtration (6.3 step 3) on landmarks ``0..L-1``, up to dimension 2.

    ``Dw[w][l]`` is the distance from witness ``w`` to landmark ``l``. Returns the present
    simplices (vertex tuples) and their values. A minimum over an empty set of landmarks is
    ``+inf`` (then ``a = 0``).
    """
    Dw = np.asarray(Dw, dtype=np.float64).tolist()
    L = len(Dw[0])

    def min_a(s):
        best = math.inf
        for row in Dw:
            inside = max(row[l] for l in s)
            outside = min((row[l] for l in range(L) if l not in s), default=math.inf)
            best = min(best, max(0.0, inside - outside))
        return best

    filt = {(l,): 0.0 for l in range(L)}
    for size in (2, 3):
        for s in itertools.combinations(range(L), size):
            facets = list(itertools.combinations(s, size - 1))
            if not all(f in filt for f in facets):
                continue
            a = min_a(s)
            if a <= alpha_max:
                filt[s] = max([a] + [filt[f] for f in facets])
    return filt


def ref_rlt(intervals, alpha_max: float, i_max: int) -> list[float]:
    rlt = [0.0] * i_max
    if not intervals:
        rlt[0] = 1.0
        return rlt
    ends = sorted({0.0, alpha_max} | {x for iv in intervals for x in iv})
    for ea, eb in zip(ends[:-1], ends[1:]):
        mid = (ea + eb) / 2.0
        c = sum(1 for b, d in intervals if b <= mid < d)
        if c < i_max:
            rlt[c] += eb - ea
    return [x / alpha_max for x in rlt]


def _mrlt(R, landmarks, gamma: float, i_max: int) -> list[float]:
    total = [0.0] * i_max
    for idx in landmarks:
        Dw = [[ref_distance(w, R[l]) for l in idx] for w in R]
        alpha_max = gamma * max(max(row) for row in Dw)
        bars = ref_persistence(ref_witness_filtration(Dw, alpha_max), 1)
        bars = [(b, alpha_max if d == math.inf else d) for b, d in bars]
        bars = [(b, d) for b, d in bars if d > b]
        total = [t + r for t, r in zip(total, ref_rlt(bars, alpha_max, i_max))]
    return [t / len(landmarks) for t in total]


def ref_geometry_score(X, Y, landmarks_x, landmarks_y, gamma=None, i_max: int = 100) -> float:
    Rx, Ry = _rows(X), _rows(Y)
    n = len(Rx)
    if gamma is None:
        gamma = n / (128 * 5000)
    mx = _mrlt(Rx, np.asarray(landmarks_x).tolist(), gamma, i_max)
    my = _mrlt(Ry, np.asarray(landmarks_y).tolist(), gamma, i_max)
    return sum((a - b) ** 2 for a, b in zip(mx, my))


# ------------------------------------------------------------------ 6.4-6.6 descriptive


def _mean_row(R) -> list[float]:
    n = len(R)
    return [sum(r[c] for r in R) / n for c in range(len(R[0]))]


def ref_magnitude(X) -> float:
    return math.sqrt(sum(v * v for v in _mean_row(_rows(X))))


def ref_concentricity(X) -> float:
    R = _rows(X)
    m = _mean_row(R)
    nm = math.sqrt(sum(v * v for v in m))
    total = 0.0
    for r in R:
        nr = math.sqrt(sum(v * v for v in r))
        if nr > 0 and nm > 0:
            total += sum(a * b for a, b in zip(r, m)) / (nr * nm)
    return total / len(R)


def ref_uniformity(X) -> float:
    R = _rows(X)
    n = len(R)
    s = 0.0
    for i in range(n):
        for j in range(n):
            s += math.exp(-2.0 * ref_distance(R[i], R[j], squared=True))
    return math.log(s / (n * n))
