"""Slow, obviously-correct NumPy references for the kernel measures (docs: kernel page).

Everything is written directly from the formulas of the specification, with full n x n
matrices and no algebraic shortcuts, so that it can be checked by reading:

* Gram matrices (1.1): ``K = X X^T`` (linear); for RBF the squared distances come from explicit
  pairwise differences, ``m`` is ``np.median`` over all ``n^2`` entries (diagonal zeros
  included) and ``K = exp(-D2 / (2 sigma_frac^2 m))``.
* Biased centring with the explicit matrix ``H = I - 1 1^T / n``.
* U-centring exactly as written in 1.2.
* Unbiased HSIC with the trace formula of Song et al. (1.3), written independently of the
  U-centring.

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ref_gram", "ref_cka", "ref_hsic", "ref_centring_matrix", "ref_u_centre"]


def _as_float64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy, never a view of the input
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def ref_centring_matrix(n: int) -> np.ndarray:
    """``H = I_n - (1/n) 1 1^T``."""
    one = np.ones((n, 1))
    return np.eye(n) - (one @ one.T) / n


def ref_gram(X, kernel: str = "linear", sigma_frac: float = 1.0):
    """The Gram matrix of 1.1, or ``None`` when the RBF median squared distance is zero."""
    X = _as_float64(X)
    n = X.shape[0]
    if kernel == "linear":
        return X @ X.T
    if kernel == "rbf":
        D2 = np.empty((n, n))
        for i in range(n):
            diff = X[i][None, :] - X  # row i minus every row j: x_i - x_j
            D2[i, :] = np.sum(diff * diff, axis=1)
        m = np.median(D2)  # over all n^2 ordered pairs, the n diagonal zeros included
        if m == 0:
            return None
        return np.exp(-D2 / (2.0 * sigma_frac**2 * m))
    raise ValueError(f"unknown kernel {kernel!r}")


def ref_u_centre(K: np.ndarray) -> np.ndarray:
    """U-centring exactly as Székely & Rizzo (2014) define it."""
    n = K.shape[0]
    K = np.array(K, dtype=np.float64)
    np.fill_diagonal(K, 0.0)
    r = K.sum(axis=1)
    S = K.sum()
    # Ku_ij = K_ij - (r_i + r_j)/(n-2) + S/((n-1)(n-2)) for i != j, Ku_ii = 0
    Ku = K - (r[:, None] + r[None, :]) / (n - 2) + S / ((n - 1) * (n - 2))
    np.fill_diagonal(Ku, 0.0)
    return Ku


def _centred_pair(X, Y, kernel, sigma_frac, unbiased):
    K = ref_gram(X, kernel, sigma_frac)
    L = ref_gram(Y, kernel, sigma_frac)
    if K is None or L is None:
        return None, None
    if unbiased:
        return ref_u_centre(K), ref_u_centre(L)
    H = ref_centring_matrix(K.shape[0])
    return H @ K @ H, H @ L @ H


def ref_cka(X, Y, kernel: str = "linear", sigma_frac: float = 1.0, debiased: bool = False) -> float:
    """CKA of Kornblith et al. (2019): ``<Kt, Lt> / (||Kt||_F ||Lt||_F)`` (or with ``Ku, Lu``)."""
    Kt, Lt = _centred_pair(X, Y, kernel, sigma_frac, debiased)
    if Kt is None:
        return float("nan")
    nk = np.sqrt(np.sum(Kt * Kt))
    nl = np.sqrt(np.sum(Lt * Lt))
    if nk == 0 or nl == 0:
        return float("nan")
    return float(np.sum(Kt * Lt) / (nk * nl))


def ref_hsic(
    X, Y, kernel: str = "linear", sigma_frac: float = 1.0, unbiased: bool = False
) -> float:
    """HSIC of Gretton et al. (2005) and Song et al. (2012).

    Biased: ``tr(K H L H) / (n-1)^2``. Unbiased: the Song et al. (2012) trace formula with the
    zero-diagonal Gram matrices ``K0, L0`` (independent of :func:`ref_u_centre`).
    """
    K = ref_gram(X, kernel, sigma_frac)
    L = ref_gram(Y, kernel, sigma_frac)
    if K is None or L is None:
        return float("nan")
    n = K.shape[0]
    if not unbiased:
        H = ref_centring_matrix(n)
        return float(np.trace(K @ H @ L @ H) / (n - 1) ** 2)
    K0 = K.copy()
    L0 = L.copy()
    np.fill_diagonal(K0, 0.0)
    np.fill_diagonal(L0, 0.0)
    one = np.ones(n)
    term1 = np.trace(K0 @ L0)
    term2 = (one @ K0 @ one) * (one @ L0 @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ K0 @ L0 @ one)
    return float((term1 + term2 - term3) / (n * (n - 3)))
