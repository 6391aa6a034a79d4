"""Slow, obviously-correct NumPy references for the alignment measures (docs: alignment page).

Each function is written directly from the formulas of the specification, with explicit zero
padding, the explicit centring matrix ``H = I - 1 1^T / n`` and no algebraic shortcuts:

* Procrustes distances by solving for the rotation (``R = U V^T`` from the SVD of ``A^T B``)
  and computing ``||A R - B||_F`` itself, not the nuclear-norm formula.
* The angular shape metric with the whitening matrix ``V diag(d) V^T`` formed explicitly,
  the variance-preserving factor included, on the padded matrices.
* Permutation Procrustes and hard correlation matching by brute force over all permutations
  (small widths only).
* Linear regression by an explicit least-squares fit with an intercept column
  (``R^2 = 1 - SSE / SST``), not by a projector.
* Mean canonical correlation with QR + SVD (Hotelling), the normalized Bures similarity from
  the n x n Gram matrices (fidelity ``tr((K^1/2 L K^1/2)^1/2)``).

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "ref_centre",
    "ref_pad",
    "ref_orthogonal_procrustes",
    "ref_procrustes_size_and_shape",
    "ref_whiten",
    "ref_angular_shape_metric",
    "ref_permutation_procrustes",
    "ref_linear_regression",
    "ref_linear_regression_ridge",
    "ref_aligned_cosine",
    "ref_correlation_matrix",
    "ref_correlation_match",
    "ref_mean_cca",
    "ref_canonical_correlations",
    "ref_normalized_bures",
]


def _as_float64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy, never a view of the input
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def ref_centre(X) -> np.ndarray:
    """``H X`` with the explicit centring matrix ``H = I - (1/n) 1 1^T``."""
    X = _as_float64(X)
    n = X.shape[0]
    one = np.ones((n, 1))
    H = np.eye(n) - (one @ one.T) / n
    return H @ X


def ref_pad(X, Y):
    """Append zero columns to the narrower matrix until both have ``max(p1, p2)`` columns."""
    X, Y = _as_float64(X), _as_float64(Y)
    p = max(X.shape[1], Y.shape[1])
    Xp = np.zeros((X.shape[0], p))
    Yp = np.zeros((Y.shape[0], p))
    Xp[:, : X.shape[1]] = X
    Yp[:, : Y.shape[1]] = Y
    return Xp, Yp


def _procrustes_rotation(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` minimising ``||A R - B||_F``: ``U V^T`` from ``A^T B = U S V^T``."""
    U, _, Vt = np.linalg.svd(A.T @ B)
    return U @ Vt


def ref_orthogonal_procrustes(X, Y) -> float:
    """3.1: ``min_R ||A R - B||_F`` with ``A = Xc/||Xc||_F``, ``B = Yc/||Yc||_F``, padded."""
    Xc, Yc = ref_centre(X), ref_centre(Y)
    nx, ny = np.linalg.norm(Xc), np.linalg.norm(Yc)
    if nx == 0 or ny == 0:
        return float("nan")
    A, B = ref_pad(Xc / nx, Yc / ny)
    R = _procrustes_rotation(A, B)
    return float(np.linalg.norm(A @ R - B))


def ref_procrustes_size_and_shape(X, Y) -> float:
    """3.2: ``min_R ||Xc R - Yc||_F`` on the padded centred matrices."""
    A, B = ref_pad(ref_centre(X), ref_centre(Y))
    R = _procrustes_rotation(A, B)
    return float(np.linalg.norm(A @ R - B))


def _eig_of_gram(Xc: np.ndarray, method: str):
    """Eigenvalues (ascending) and eigenvectors (columns) of ``Xc^T Xc`` (no ``1/n``).

    ``method="eigh"`` diagonalises the p x p matrix literally. ``method="svd"`` takes them
    from the full SVD of ``Xc`` (``lam = s^2``, padded with zeros): the same decomposition,
    computed without squaring, so that exactly-null directions stay null (used for
    rank-deficient inputs, where ``eigh`` leaves round-off of order ``sqrt(eps) ||Xc||``).
    """
    p = Xc.shape[1]
    if method == "eigh":
        return np.linalg.eigh(Xc.T @ Xc)
    if method == "svd":
        _, s, Vt = np.linalg.svd(Xc, full_matrices=True)
        lam = np.zeros(p)
        lam[: s.size] = s**2
        order = np.argsort(lam)
        return lam[order], Vt.T[:, order]
    raise ValueError(method)


def ref_whiten(
    Xc: np.ndarray, alpha: float, clip: float = 1e-7, method: str = "eigh"
) -> np.ndarray:
    """Partial whitening of 3.3 step 2, every line of the specification as written."""
    if alpha > 1 - 1e-7:
        return Xc
    lam, V = _eig_of_gram(Xc, method)
    lam = np.maximum(lam, clip)
    d = alpha + (1 - alpha) * lam ** (-0.5)
    nv = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
    d = d * np.sqrt(np.sum(lam) / nv)
    return Xc @ V @ np.diag(d) @ V.T


def ref_angular_shape_metric(
    X, Y, alpha: float = 1.0, clip: float = 1e-7, method: str = "eigh"
) -> float:
    """3.3: pad, centre, whiten each side, ``arccos(||Xw^T Yw||_* / (||Xw||_F ||Yw||_F))``."""
    Xp, Yp = ref_pad(X, Y)
    Xc, Yc = ref_centre(Xp), ref_centre(Yp)
    if not Xc.any() or not Yc.any():
        return float("nan")
    Xw = ref_whiten(Xc, alpha, clip, method)
    Yw = ref_whiten(Yc, alpha, clip, method)
    nuc = np.linalg.svd(Xw.T @ Yw, compute_uv=False).sum()
    r = nuc / (np.linalg.norm(Xw) * np.linalg.norm(Yw))
    return float(np.arccos(np.clip(r, -1.0, 1.0)))


def ref_permutation_procrustes(X, Y) -> float:
    """3.4 by brute force: ``min over all column permutations P of ||X P - Y||_F`` (padded)."""
    Xp, Yp = ref_pad(X, Y)
    p = Xp.shape[1]
    if p > 7:
        raise ValueError("brute force is for small widths only")
    best = math.inf
    for perm in itertools.permutations(range(p)):
        # (X P)[:, k] = X[:, perm[k]]: column perm[k] of X is sent to position k
        best = min(best, float(np.linalg.norm(Xp[:, list(perm)] - Yp)))
    return best


def ref_linear_regression(X, Y) -> float:
    """3.5: least squares ``X ~ [Y, 1] W``; ``R^2 = 1 - ||residual||_F^2 / ||Xc||_F^2``."""
    X, Y = _as_float64(X), _as_float64(Y)
    n = X.shape[0]
    sst = np.sum(ref_centre(X) ** 2)
    if sst == 0:
        return float("nan")
    D = np.hstack([Y, np.ones((n, 1))])
    W, *_ = np.linalg.lstsq(D, X, rcond=None)
    sse = np.sum((X - D @ W) ** 2)
    return float(1.0 - sse / sst)


def ref_linear_regression_ridge(X, Y, epsilon: float) -> float:
    """3.5 with the ridge of 2.4: the explicit ``n x n`` matrix
    ``P = Yc (Yc^T Yc / c + eps I)^{-1} Yc^T / c``, ``c = max|Yc^T Yc|``, and
    ``R^2 = ||P Xc||_F^2 / ||Xc||_F^2``."""
    Xc, Yc = ref_centre(X), ref_centre(Y)
    G = Yc.T @ Yc
    c = np.max(np.abs(G))
    P = Yc @ np.linalg.inv(G / c + epsilon * np.eye(G.shape[0])) @ Yc.T / c
    return float(np.sum((P @ Xc) ** 2) / np.sum(Xc**2))


def ref_aligned_cosine(X, Y) -> float:
    """3.6: padded, uncentred; ``Q = U V^T`` from the full SVD of ``X^T Y``; mean row cosine
    of ``Z = X Q`` and ``Y`` over the rows where neither is all zero."""
    Xp, Yp = ref_pad(X, Y)
    U, _, Vt = np.linalg.svd(Xp.T @ Yp)
    Z = Xp @ (U @ Vt)
    cos = []
    for i in range(Xp.shape[0]):
        if not Xp[i].any() or not Yp[i].any():
            continue
        cos.append(Z[i] @ Yp[i] / (np.linalg.norm(Z[i]) * np.linalg.norm(Yp[i])))
    return float(np.mean(cos)) if cos else float("nan")


def ref_correlation_matrix(X, Y) -> np.ndarray:
    """``C[j, k]`` = Pearson correlation of ``X[:, j]`` and ``Y[:, k]``, entry by entry
    (0 when either column is constant)."""
    X, Y = _as_float64(X), _as_float64(Y)
    C = np.zeros((X.shape[1], Y.shape[1]))
    for j in range(X.shape[1]):
        x = X[:, j]
        for k in range(Y.shape[1]):
            y = Y[:, k]
            if np.all(x == x[0]) or np.all(y == y[0]):
                continue
            xc, yc = x - x.mean(), y - y.mean()
            C[j, k] = np.sum(xc * yc) / math.sqrt(np.sum(xc * xc) * np.sum(yc * yc))
    return C


def ref_correlation_match(X, Y, soft: bool = False) -> float:
    """3.7: hard = best one-to-one matching by brute force; soft = mean of the row and
    column maxima, averaged."""
    C = ref_correlation_matrix(X, Y)
    p1, p2 = C.shape
    if soft:
        return float(
            (np.mean([C[j].max() for j in range(p1)]) + np.mean([C[:, k].max() for k in range(p2)]))
            / 2
        )
    m = min(p1, p2)
    best = -math.inf
    if p1 <= p2:
        for cols in itertools.permutations(range(p2), m):
            best = max(best, sum(C[j, cols[j]] for j in range(m)))
    else:
        for rows in itertools.permutations(range(p1), m):
            best = max(best, sum(C[rows[k], k] for k in range(m)))
    return float(best / m)


def ref_canonical_correlations(X, Y) -> np.ndarray:
    """Singular values of ``Qx^T Qy`` with ``Qx``, ``Qy`` from QR of the centred inputs."""
    Qx, _ = np.linalg.qr(ref_centre(X))
    Qy, _ = np.linalg.qr(ref_centre(Y))
    return np.linalg.svd(Qx.T @ Qy, compute_uv=False)


def ref_mean_cca(X, Y) -> float:
    """Mean canonical correlation (inputs of full column rank with ``p <= n - 1``)."""
    return float(np.mean(ref_canonical_correlations(X, Y)))


def _psd_eigvals(K: np.ndarray):
    """Eigen-decomposition of a symmetric PSD matrix with the eigenvalues below the round-off
    level ``n eps lam_max`` set to zero (they are zero in exact arithmetic for these
    rank-deficient Gram matrices; their square roots would otherwise add ~sqrt(eps) each)."""
    lam, V = np.linalg.eigh((K + K.T) / 2)
    lam[lam < K.shape[0] * np.finfo(float).eps * max(lam.max(), 0.0)] = 0.0
    return lam, V


def ref_normalized_bures(X, Y) -> float:
    """``tr((K^1/2 L K^1/2)^1/2) / sqrt(tr K tr L)`` with ``K = Xc Xc^T``, ``L = Yc Yc^T``."""
    Xc, Yc = ref_centre(X), ref_centre(Y)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    lam, V = _psd_eigvals(K)
    Ks = (V * np.sqrt(lam)) @ V.T
    mu, _ = _psd_eigvals(Ks @ L @ Ks)
    fidelity = np.sum(np.sqrt(mu))
    return float(fidelity / math.sqrt(np.trace(K) * np.trace(L)))
