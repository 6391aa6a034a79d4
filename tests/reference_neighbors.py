"""Slow, obviously-correct NumPy references for the neighbourhood measures (docs: neighbourhood page).

Everything is written directly from the formulas of the specification, with full ``n x n``
cosine-distance matrices and explicit loops:

* ``D[i, j] = 1 - <x_i, x_j> / sqrt(<x_i, x_i> <x_j, x_j>)``; a pair with an all-zero row has
  cosine similarity 0 (distance 1), as the docs' neighbourhood page says. Every inner product is the
  correctly rounded sum ``math.fsum`` of the elementwise products, computed once per unordered
  pair, so equal rows give bitwise equal distances (ties in the data are ties here) and two
  rows pointing the same way have distance exactly 0.
* ``N_k(i)``: the other rows sorted by ``(D[i, j], j)`` (a stable sort by distance, ties to the
  smaller index), the first ``k``; ranks are 1-based positions.
* Each measure of 5.1-5.5 as a Python loop over the rows.

With ``exact=True`` (:func:`ref_knn_exact`, :func:`ref_cosine_distances_exact`) the order is
decided in exact rational arithmetic instead: float inputs are dyadic rationals, so with a
common power-of-two denominator every row becomes a vector of Python integers, every inner
product an exact integer, and ``cos(i, j) > cos(i, l)`` an exact comparison of
``s_ij |s_ij| / N_j`` with ``s_il |s_il| / N_l`` (``N`` the squared norms); the distances
themselves are evaluated with 60-digit decimals. This is the reference for data far from the
origin, where ``1 - cos`` in float64 cancels to a few significant digits.

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np

__all__ = [
    "ref_cosine_distances",
    "ref_cosine_distances_exact",
    "ref_knn",
    "ref_knn_exact",
    "ref_knn_jaccard",
    "ref_second_order_cosine",
    "ref_rank_similarity",
    "ref_joint_rank_jaccard",
    "ref_mutual_knn",
    "ref_all",
]


def _as_float64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy, never a view of the input
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def ref_cosine_distances(X) -> np.ndarray:
    """The full ``n x n`` matrix of cosine distances between the rows of ``X``."""
    X = _as_float64(X)
    n = X.shape[0]
    rows = [list(map(float, X[i])) for i in range(n)]
    G = np.empty((n, n))
    for i in range(n):
        for j in range(i + 1):
            G[i, j] = G[j, i] = math.fsum(a * b for a, b in zip(rows[i], rows[j]))
    D = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if G[i, i] == 0.0 or G[j, j] == 0.0:
                D[i, j] = 1.0  # an all-zero row: cosine similarity 0
            else:
                D[i, j] = 1.0 - G[i, j] / math.sqrt(G[i, i] * G[j, j])
    return D


def ref_knn(X, k: int, D: np.ndarray | None = None) -> list[list[int]]:
    """``N_k(i)`` for every row: indices by increasing distance, ties to the smaller index."""
    if D is None:
        D = ref_cosine_distances(X)
    n = D.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError("k out of range")
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        others.sort(key=lambda j: (D[i, j], j))
        out.append(others[:k])
    return out


def _lists(X, Y, k):
    return ref_knn(X, k), ref_knn(Y, k)


def _exact_gram(X) -> list[list[int]]:
    """Inner products of the rows of ``X`` scaled by a common power of two, as exact ints."""
    A = _as_float64(X)
    ratios = [[float(v).as_integer_ratio() for v in row] for row in A]
    den = max(d for row in ratios for _, d in row)
    M = [[num * (den // d) for num, d in row] for row in ratios]
    n = len(M)
    G = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            G[i][j] = G[j][i] = sum(a * b for a, b in zip(M[i], M[j]))
    return G


def ref_knn_exact(X, k: int, G: list[list[int]] | None = None) -> list[list[int]]:
    """``N_k(i)`` for every row from the exact order of the cosine distances (ties exact)."""
    if G is None:
        G = _exact_gram(X)
    n = len(G)
    if not 1 <= k <= n - 1:
        raise ValueError("k out of range")
    out = []
    for i in range(n):

        def key(j):
            s, nj = G[i][j], G[j][j]
            if G[i][i] == 0 or nj == 0:
                cos = Fraction(0)  # an all-zero row: cosine similarity 0
            else:
                cos = Fraction(s * abs(s), nj)  # increasing with s / sqrt(N_j)
            return (-cos, j)

        others = sorted((j for j in range(n) if j != i), key=key)
        out.append(others[:k])
    return out


def ref_cosine_distances_exact(X, G: list[list[int]] | None = None) -> np.ndarray:
    """Cosine distances from the exact inner products, evaluated with 60-digit decimals."""
    if G is None:
        G = _exact_gram(X)
    n = len(G)
    D = np.empty((n, n))
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        for i in range(n):
            for j in range(n):
                if G[i][i] == 0 or G[j][j] == 0:
                    D[i, j] = 1.0
                else:
                    q = decimal.Decimal(G[i][i]) * decimal.Decimal(G[j][j])
                    D[i, j] = float(1 - decimal.Decimal(G[i][j]) / q.sqrt())
    return D


def ref_knn_jaccard(X, Y, k: int = 10) -> float:
    """5.1: mean over rows of ``|A & B| / |A | B|``."""
    NX, NY = _lists(X, Y, k)
    vals = [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(NX, NY)]
    return float(np.mean(vals))


def ref_mutual_knn(X, Y, k: int = 10) -> float:
    """5.5: mean over rows of ``|A & B| / k``."""
    NX, NY = _lists(X, Y, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(NX, NY)]))


def _rank_terms(a: list[int], b: list[int]) -> float:
    """``s_i`` of 5.3 for the ordered lists ``a`` (X) and ``b`` (Y)."""
    shared = set(a) & set(b)
    if not shared:
        return 0.0
    rx = {j: r + 1 for r, j in enumerate(a)}
    ry = {j: r + 1 for r, j in enumerate(b)}
    total = sum(2.0 / ((1 + abs(rx[j] - ry[j])) * (rx[j] + ry[j])) for j in shared)
    v = sum(1.0 / t for t in range(1, len(shared) + 1))
    return total / v


def ref_rank_similarity(X, Y, k: int = 10) -> float:
    """5.3: mean over rows of the rank similarity of the shared neighbours."""
    NX, NY = _lists(X, Y, k)
    return float(np.mean([_rank_terms(a, b) for a, b in zip(NX, NY)]))


def ref_joint_rank_jaccard(X, Y, k: int = 10) -> float:
    """5.4: mean over rows of Jaccard times rank similarity."""
    NX, NY = _lists(X, Y, k)
    vals = [len(set(a) & set(b)) / len(set(a) | set(b)) * _rank_terms(a, b) for a, b in zip(NX, NY)]
    return float(np.mean(vals))


def ref_second_order_cosine(X, Y, k: int = 10) -> float:
    """5.2: mean over rows of the cosine between the distance vectors on ``U_i``; nan if some
    distance vector is all zeros."""
    DX, DY = ref_cosine_distances(X), ref_cosine_distances(Y)
    NX, NY = ref_knn(X, k, DX), ref_knn(Y, k, DY)
    vals = []
    for i, (a_list, b_list) in enumerate(zip(NX, NY)):
        U = sorted(set(a_list) | set(b_list))
        a = np.array([DX[i, j] for j in U])
        b = np.array([DY[i, j] for j in U])
        if not a.any() or not b.any():
            return math.nan
        vals.append(float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.mean(vals))


def ref_all(X, Y, k: int = 10, exact: bool = False) -> dict:
    """All five measures of one pair, from one pair of distance matrices (for speed); with
    ``exact``, from the exact neighbour order and the 60-digit distances."""
    if exact:
        GX, GY = _exact_gram(X), _exact_gram(Y)
        DX, DY = ref_cosine_distances_exact(X, GX), ref_cosine_distances_exact(Y, GY)
        NX, NY = ref_knn_exact(X, k, GX), ref_knn_exact(Y, k, GY)
    else:
        DX, DY = ref_cosine_distances(X), ref_cosine_distances(Y)
        NX, NY = ref_knn(X, k, DX), ref_knn(Y, k, DY)
    jac, mut, rank, joint, second = [], [], [], [], []
    for i, (a, b) in enumerate(zip(NX, NY)):
        shared, union = set(a) & set(b), set(a) | set(b)
        jac.append(len(shared) / len(union))
        mut.append(len(shared) / k)
        rank.append(_rank_terms(a, b))
        joint.append(jac[-1] * rank[-1])
        U = sorted(union)
        va = np.array([DX[i, j] for j in U])
        vb = np.array([DY[i, j] for j in U])
        if not va.any() or not vb.any():
            second.append(math.nan)
        else:
            second.append(float(va @ vb) / (np.linalg.norm(va) * np.linalg.norm(vb)))
    return {
        "knn_jaccard": float(np.mean(jac)),
        "mutual_knn": float(np.mean(mut)),
        "rank_similarity": float(np.mean(rank)),
        "joint_rank_jaccard": float(np.mean(joint)),
        "second_order_cosine": float(np.mean(second)),
        "NX": NX,
        "NY": NY,
        "DX": DX,
        "DY": DY,
    }
