"""Slow, obviously-correct NumPy references for the CCA measures (docs: CCA page).

Written directly from the formulas of the specification, with no shortcuts:

* centring with the explicit matrix ``H = I - 1 1^T / n``;
* canonical correlations as the singular values of ``Qx^T Qy`` (``np.linalg.qr`` bases);
* SVCCA from the thin SVD of each centred matrix (``np.linalg.svd``), the principal-component
  scores ``U[:, :k] * s[:k]``, and the canonical correlations of those scores (again by QR);
* PWCCA by its seven steps: ``n-1`` covariance blocks, ``S^{-1/2}`` from the eigendecomposition,
  the full SVD of ``M``, directions ``Z W`` without whitening, ``np.linalg.qr`` of the
  directions (columns in order), and ``alpha`` from the sums of ``|P^T Z|``.

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ref_centre",
    "ref_canonical_correlations",
    "ref_cca",
    "ref_ridge_blocks",
    "ref_ridge_matrix",
    "ref_svcca",
    "ref_svcca_k",
    "ref_pwcca",
    "ref_pwcca_weights",
]


def _as_float64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy, never a view of the input
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def ref_centre(X) -> np.ndarray:
    """``H X`` with ``H = I_n - (1/n) 1 1^T``."""
    X = _as_float64(X)
    n = X.shape[0]
    one = np.ones((n, 1))
    H = np.eye(n) - (one @ one.T) / n
    return H @ X


def ref_canonical_correlations(X, Y) -> np.ndarray:
    """Singular values of ``Qx^T Qy`` for QR bases of the centred matrices (descending)."""
    Qx, _ = np.linalg.qr(ref_centre(X))
    Qy, _ = np.linalg.qr(ref_centre(Y))
    return np.linalg.svd(Qx.T @ Qy, compute_uv=False)


def ref_ridge_blocks(X, Y, epsilon: float):
    """The regularised blocks of the ridge CCA: covariance blocks (``n-1``) each divided by
    the largest absolute entry (``Sxy`` by ``sqrt(max|Sxx| max|Syy|)``), plus ``epsilon I``
    on the within-set blocks."""
    Xc, Yc = ref_centre(X), ref_centre(Y)
    n = Xc.shape[0]
    Sxx, Syy, Sxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)
    cx, cy = np.max(np.abs(Sxx)), np.max(np.abs(Syy))
    Kx = Sxx / cx + epsilon * np.eye(Sxx.shape[0])
    Ky = Syy / cy + epsilon * np.eye(Syy.shape[0])
    return Kx, Ky, Sxy / np.sqrt(cx * cy)


def ref_ridge_matrix(X, Y, epsilon: float) -> np.ndarray:
    """``(Sxx' + eps I)^{-1/2} Sxy' (Syy' + eps I)^{-1/2}`` (symmetric inverse square roots)."""
    Kx, Ky, Sxy = ref_ridge_blocks(X, Y, epsilon)
    return _inv_sqrt(Kx) @ Sxy @ _inv_sqrt(Ky)


def ref_cca(X, Y, statistic: str = "mean", epsilon: float = 0.0) -> float:
    """Mean canonical correlation (``"mean"``) or mean squared one (``"r2"``); with
    ``epsilon > 0`` the correlations of the ridge CCA."""
    if epsilon > 0:
        rho = np.linalg.svd(ref_ridge_matrix(X, Y, epsilon), compute_uv=False)
    else:
        rho = ref_canonical_correlations(X, Y)
    m = min(np.shape(X)[1], np.shape(Y)[1])
    assert rho.size == m
    if statistic == "mean":
        return float(np.sum(rho) / m)
    if statistic == "r2":
        return float(np.sum(rho**2) / m)
    raise ValueError(statistic)


def ref_svcca_k(X, variance: float) -> int:
    """``k``: smallest k with cumulative ``s^2`` fraction >= variance (numerical rank at 1)."""
    Xc = ref_centre(X)
    n, p = Xc.shape
    s = np.linalg.svd(Xc, compute_uv=False)
    if variance == 1.0:
        tol = s.max() * max(n, p) * np.finfo(np.float64).eps
        return int(np.sum(s > tol))
    total = np.sum(s**2)
    acc = 0.0
    for k in range(1, s.size + 1):
        acc += s[k - 1] ** 2
        if acc / total >= variance:
            return k
    return s.size


def _reduced(X, variance: float) -> np.ndarray:
    Xc = ref_centre(X)
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    k = ref_svcca_k(X, variance)
    return U[:, :k] * s[:k]


def ref_svcca(X, Y, variance: float = 0.99, statistic: str = "mean", epsilon: float = 0.0) -> float:
    """Mean (``"r2"``: mean squared) of the ``min(kX, kY)`` canonical correlations of the
    PCA scores (ridge CCA of the scores if ``epsilon > 0``); nan if constant."""
    if not np.any(ref_centre(X)) or not np.any(ref_centre(Y)):
        return float("nan")
    Xr, Yr = _reduced(X, variance), _reduced(Y, variance)
    return ref_cca(Xr, Yr, statistic, epsilon)


def _inv_sqrt(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(S)
    return V @ np.diag(1.0 / np.sqrt(w)) @ V.T


def ref_pwcca_weights(X, Y, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, rho)`` of PWCCA (Morcos et al.), steps 1-6 (ridge blocks if ``epsilon > 0``)."""
    Xc, Yc = ref_centre(X), ref_centre(Y)
    n, p1 = Xc.shape
    p2 = Yc.shape[1]
    # Step 2: covariance blocks with n-1 normalisation, M and its full SVD.
    Sxx = Xc.T @ Xc / (n - 1)
    Syy = Yc.T @ Yc / (n - 1)
    Sxy = Xc.T @ Yc / (n - 1)
    if epsilon > 0:
        M = ref_ridge_matrix(X, Y, epsilon)
    else:
        M = _inv_sqrt(Sxx) @ Sxy @ _inv_sqrt(Syy)
    U, rho, Vt = np.linalg.svd(M, full_matrices=True)
    V = Vt.T
    # Step 3: the side with fewer neurons (X on ties).
    Z, W = (Xc, U) if p1 <= p2 else (Yc, V)
    q = Z.shape[1]
    assert q == min(p1, p2) == rho.size
    # Step 4: directions without whitening.
    Dir = Z @ W
    # Step 5: thin QR, columns in order.
    P, _ = np.linalg.qr(Dir)
    # Step 6: weights.
    a = np.array([sum(abs(P[:, i] @ Z[:, j]) for j in range(q)) for i in range(q)])
    alpha = a / a.sum()
    return alpha, rho


def ref_pwcca(X, Y, epsilon: float = 0.0) -> float:
    """Step 7: ``sum_i alpha_i rho_i``."""
    alpha, rho = ref_pwcca_weights(X, Y, epsilon)
    return float(np.sum(alpha * rho))


def ref_pwcca_mp(X, Y, digits: int = 50) -> float:
    """PWCCA's seven steps in ``digits``-digit arithmetic (mpmath), for ill-conditioned data.

    Same steps as :func:`ref_pwcca`, with ``mpmath.eigsy`` for ``S^{-1/2}``, ``mpmath.svd_r``
    for ``M`` and modified Gram-Schmidt (columns in order) for the QR of the directions; the
    float64 rounding of the eigendecomposition of an ill-conditioned ``Sxx`` is thereby gone.
    Small inputs only (pure Python).
    """
    import mpmath as mp

    with mp.workdps(digits):
        Xc = mp.matrix(ref_centre(X).tolist())
        Yc = mp.matrix(ref_centre(Y).tolist())
        # Centre again in high precision (the float64 centring left ~1e-16 means).
        for A in (Xc, Yc):
            for j in range(A.cols):
                m = mp.fsum(A[i, j] for i in range(A.rows)) / A.rows
                for i in range(A.rows):
                    A[i, j] -= m
        n, p1, p2 = Xc.rows, Xc.cols, Yc.cols

        def inv_sqrt(S):
            E, Q = mp.eigsy(S)
            return Q * mp.diag([1 / mp.sqrt(e) for e in E]) * Q.T

        Sxx = Xc.T * Xc / (n - 1)
        Syy = Yc.T * Yc / (n - 1)
        Sxy = Xc.T * Yc / (n - 1)
        U, S, Vt = mp.svd_r(inv_sqrt(Sxx) * Sxy * inv_sqrt(Syy))
        Z, W = (Xc, U) if p1 <= p2 else (Yc, Vt.T)
        q = Z.cols
        Dir = Z * W
        P = mp.matrix(n, q)
        for i in range(q):
            v = Dir[:, i]
            for k in range(i):
                v = v - (P[:, k].T * v)[0] * P[:, k]
            v = v / mp.norm(v)
            for r in range(n):
                P[r, i] = v[r]
        a = [mp.fsum(abs((P[:, i].T * Z[:, j])[0]) for j in range(q)) for i in range(q)]
        total = mp.fsum(a)
        return float(mp.fsum(a[i] / total * S[i] for i in range(q)))
