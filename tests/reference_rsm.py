"""Slow, obviously-correct NumPy references for the RSM measures (docs: RSM page).

Each function is written directly from the formulas of the specification, with full matrices
and no algebraic shortcuts, and by a different route than the package where one exists:

* distances from explicit row differences; RSM triangles from ``np.triu_indices`` (``i < j``);
* average ranks from their definition, ``#(v < v_i) + (#(v == v_i) + 1) / 2``;
* distance correlation with the explicit centring matrix ``H = I - 1 1^T / n``;
* the eigenspace overlap from ``np.linalg.svd`` and the stated rank rule;
* GULP with the literal ``p x p`` matrices ``Sa, Sb, Sab``, their eigendecompositions, the
  inverse (or pseudo-inverse) ``Ra, Rb`` and the three traces;
* the normalized Bures similarity in its *eigenvalue* form
  ``tr((K^{1/2} L K^{1/2})^{1/2}) / sqrt(tr K tr L)`` (the package uses the nuclear norm);
* the Riemannian distance from the symmetric whitening ``S_X^{-1/2} S_Y S_X^{-1/2}`` (the
  package whitens with ``V diag(w)^{-1/2}`` from the eigenvectors of ``S_X``);
* Kendall's tau-a by counting every pair of triangle entries, ``O(m^2)`` (the package sorts
  and counts inversions by merge sort); the cosine of the triangles from ``np.dot``.

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ref_average_ranks",
    "ref_dcov2",
    "ref_distance_correlation",
    "ref_distance_matrix",
    "ref_eigenspace_overlap",
    "ref_gulp",
    "ref_kendall_tau_a",
    "ref_cosine",
    "ref_normalized_bures",
    "ref_pearson",
    "ref_riemannian_distance",
    "ref_rsa",
    "ref_rsm",
    "ref_rsm_norm_diff",
    "ref_spearman",
]

EPS = np.finfo(np.float64).eps


def _f64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def _centre_columns(X) -> np.ndarray:
    X = _f64(X)
    return X - X.mean(axis=0, keepdims=True)


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix.

    Eigenvalues below ``n eps`` times the largest are round-off of exact zeros (the kernels
    have rank at most p); they are set to 0 before the square root, which would otherwise
    turn each ``1e-16`` into a ``1e-8``.
    """
    w, V = np.linalg.eigh((S + S.T) / 2)
    w = np.where(w > w.max() * S.shape[0] * EPS, w, 0.0)
    return (V * np.sqrt(w)) @ V.T


# --------------------------------------------------------------------------- building blocks


def ref_distance_matrix(X) -> np.ndarray:
    """``D_ij = ||x_i - x_j||_2`` from explicit differences (full matrix, zero diagonal)."""
    X = _f64(X)
    n = X.shape[0]
    D = np.empty((n, n))
    for i in range(n):
        diff = X[i][None, :] - X  # x_i - x_j for every j
        D[i] = np.sqrt(np.sum(diff * diff, axis=1))
    return D


def ref_average_ranks(v) -> np.ndarray:
    """Ranks 1..m, ties averaged: ``rank_i = #(v < v_i) + (#(v == v_i) + 1) / 2``."""
    v = np.asarray(v, dtype=np.float64)
    below = np.sum(v[None, :] < v[:, None], axis=1)
    equal = np.sum(v[None, :] == v[:, None], axis=1)
    return below + (equal + 1) / 2.0


def ref_pearson(a, b) -> float:
    """Pearson correlation; nan if either vector is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    return float(np.sum(da * db) / np.sqrt(np.sum(da * da) * np.sum(db * db)))


def ref_spearman(a, b) -> float:
    """Spearman correlation: Pearson correlation of the average ranks."""
    return ref_pearson(ref_average_ranks(a), ref_average_ranks(b))


def ref_rsm(X, rsm: str):
    """The full n x n RSM of 4.1, or ``None`` when a row has zero variance (correlation)."""
    X = _f64(X)
    if rsm == "euclidean":
        return ref_distance_matrix(X)
    if rsm == "correlation":
        Xr = X - X.mean(axis=1, keepdims=True)  # each row centred by its own mean
        norms = np.sqrt(np.sum(Xr * Xr, axis=1))
        if np.any(np.all(X == X[:, :1], axis=1)):
            return None
        Z = Xr / norms[:, None]
        return Z @ Z.T  # cosine of the centred rows = Pearson correlation
    raise ValueError(rsm)


# --------------------------------------------------------------------------- 4.1 - 4.3


def ref_rsa(X, Y, rsm: str = "correlation", compare: str = "spearman") -> float:
    """RSA of 4.1: correlation of the ``i < j`` entries of the two RSMs."""
    SX, SY = ref_rsm(X, rsm), ref_rsm(Y, rsm)
    if SX is None or SY is None:
        return float("nan")
    iu = np.triu_indices(SX.shape[0], k=1)
    a, b = SX[iu], SY[iu]
    compare_with = {
        "spearman": ref_spearman,
        "pearson": ref_pearson,
        "kendall_tau_a": ref_kendall_tau_a,
        "cosine": ref_cosine,
    }[compare]
    return compare_with(a, b)


def ref_kendall_tau_a(a, b) -> float:
    """Kendall's tau-a of 4.1 by direct count over all pairs of entries: ``(C - D) / (N (N-1)
    / 2)``, a pair tied in ``a`` or in ``b`` counting in neither. ``nan`` for a constant
    vector (the RSA convention)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    N = a.size
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    total = 0
    for i in range(1, N):  # pairs (j, i) with j < i, one row of the pair table at a time
        total += int(np.sum(np.sign(a[i] - a[:i]) * np.sign(b[i] - b[:i])))
    return total / (N * (N - 1) / 2)


def ref_cosine(a, b) -> float:
    """Cosine of the two triangles, not centred; ``nan`` for a constant vector (4.1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_rsm_norm_diff(X, Y, norm: str = "fro") -> float:
    """4.2: Frobenius norm (full matrix) or largest singular value of ``D_X - D_Y``."""
    M = ref_distance_matrix(X) - ref_distance_matrix(Y)
    if norm == "fro":
        return float(np.sqrt(np.sum(M * M)))
    return float(np.linalg.svd(M, compute_uv=False)[0])


def _double_centred_distances(X) -> np.ndarray:
    a = ref_distance_matrix(X)
    n = a.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return H @ a @ H


def ref_dcov2(X, Y) -> float:
    """``dCov^2(X, Y) = mean_ij(A_ij B_ij)`` with ``A = H a H``, ``B = H b H``."""
    A, B = _double_centred_distances(X), _double_centred_distances(Y)
    return float(np.mean(A * B))


def ref_distance_correlation(X, Y) -> float:
    """4.3: ``sqrt(dCov2(X,Y) / sqrt(dCov2(X,X) dCov2(Y,Y)))``; nan for a constant input."""
    vx, vy = ref_dcov2(X, X), ref_dcov2(Y, Y)
    if vx == 0 or vy == 0:
        return float("nan")
    return float(np.sqrt(max(ref_dcov2(X, Y), 0.0) / np.sqrt(vx * vy)))


# --------------------------------------------------------------------------- 4.4 - 4.7


def ref_eigenspace_overlap(X, Y) -> float:
    """4.4: ``||U_X^T U_Y||_F^2 / max(p1, p2)`` with the stated rank rule, no centring."""
    X, Y = _f64(X), _f64(Y)

    def basis(Z):
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        keep = s > s.max() * max(Z.shape) * EPS
        return U[:, keep]

    if not X.any() or not Y.any():
        return float("nan")
    M = basis(X).T @ basis(Y)
    return float(np.sum(M * M) / max(X.shape[1], Y.shape[1]))


def ref_gulp(X, Y, lam: float = 0.0) -> float:
    """4.5, literally: ``T1 + T2 - 2 T3`` with ``p x p`` matrices and explicit inverses."""
    n = _f64(X).shape[0]
    Xc, Yc = _centre_columns(X), _centre_columns(Y)
    if not Xc.any() or not Yc.any():
        return float("nan")
    A = np.sqrt(n) * Xc / np.linalg.norm(Xc)
    B = np.sqrt(n) * Yc / np.linalg.norm(Yc)
    Sa, Sb, Sab = A.T @ A / n, B.T @ B / n, A.T @ B / n

    def inverse(S):
        p = S.shape[0]
        mu, V = np.linalg.eigh((S + S.T) / 2)
        mu = np.clip(mu, 0.0, None)  # negative round-off set to 0
        if lam > 0:
            return np.linalg.inv(S + lam * np.eye(p))
        keep = mu > mu.max() * p * EPS
        return (V[:, keep] / mu[keep]) @ V[:, keep].T  # pseudo-inverse

    Ra, Rb = inverse(Sa), inverse(Sb)
    T1 = np.trace(Sa @ Ra @ Sa @ Ra)
    T2 = np.trace(Sb @ Rb @ Sb @ Rb)
    T3 = np.trace(Ra @ Sab @ Rb @ Sab.T)
    return float(T1 + T2 - 2 * T3)


def ref_normalized_bures(X, Y) -> float:
    """4.6 in the eigenvalue form ``tr((K^1/2 L K^1/2)^1/2) / sqrt(tr K tr L)``."""
    Xc, Yc = _centre_columns(X), _centre_columns(Y)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    if np.trace(K) == 0 or np.trace(L) == 0:
        return float("nan")
    Kh = _psd_sqrt(K)
    return float(np.trace(_psd_sqrt(Kh @ L @ Kh)) / np.sqrt(np.trace(K) * np.trace(L)))


def ref_riemannian_distance(X, Y) -> float:
    """4.7: ``sqrt(sum log^2 lambda_i)``, eigenvalues of ``S_X^{-1/2} S_Y S_X^{-1/2}``."""
    X, Y = _f64(X), _f64(Y)
    SX, SY = X @ X.T / X.shape[1], Y @ Y.T / Y.shape[1]
    w, V = np.linalg.eigh(SX)
    W = (V / np.sqrt(w)) @ V.T  # S_X^{-1/2}
    lam = np.linalg.eigvalsh(W @ SY @ W)
    return float(np.sqrt(np.sum(np.log(lam) ** 2)))
