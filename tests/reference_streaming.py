"""Slow, obviously-correct NumPy references for the large-data estimators.

* Minibatch CKA (Nguyen, Raghu, Kornblith 2021): for every batch, the linear Gram matrices
  ``K = X X^T``, ``L = Y Y^T`` of that batch's rows, the unbiased HSIC of Song et al. (2012)
  written from the trace formula of Song et al. (2012) (zeroed diagonals, no centring shortcut),
  and the ratio of the batch means. The caller passes the batches explicitly, so the rule for
  the last ragged batch is spelled out in each test.
* Linear CKA / HSIC on all rows, from full ``n x n`` Gram matrices (biased: ``H K H``;
  debiased: U-centring of Székely & Rizzo 2014).
* RBF CKA (Kornblith et al. 2019) for n of a few thousand: squared distances accumulated one
  coordinate at a time from explicit differences, the median over all ``n^2`` entries, the
  double centring by row and column means.

Every Gram matrix is built from features centred in float64 first (column means removed,
then the mean of the residuals): the linear-kernel HSIC, CKA and their unbiased forms are
invariant to translating the features, and centring first keeps the float64 evaluation exact
to round-off when the features carry large offsets (1e4 on unit-scale data would otherwise
lose 8 digits in ``X X^T``).

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ref_hsic_unbiased",
    "ref_minibatch_cka",
    "ref_linear_cka",
    "ref_linear_hsic",
    "ref_rbf_cka",
]


def _f64(X) -> np.ndarray:
    A = np.array(X, dtype=np.float64)  # a private copy
    if A.ndim != 2:
        raise ValueError("reference inputs must be 2-D")
    return A


def _centred(X) -> np.ndarray:
    """float64 copy with its column means removed (two passes, for large offsets)."""
    A = _f64(X)
    A -= A.mean(axis=0)
    A -= A.mean(axis=0)
    return A


def ref_hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC from the trace formula (Song et al. 2012)."""
    n = K.shape[0]
    K0 = np.array(K, dtype=np.float64)
    L0 = np.array(L, dtype=np.float64)
    np.fill_diagonal(K0, 0.0)
    np.fill_diagonal(L0, 0.0)
    one = np.ones(n)
    term1 = np.trace(K0 @ L0)
    term2 = (one @ K0 @ one) * (one @ L0 @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ K0 @ L0 @ one)
    return float((term1 + term2 - term3) / (n * (n - 3)))


def ref_minibatch_cka(batches_x, batches_y) -> float:
    """Minibatch CKA over explicit batches: mean HSIC_u(K,L) / sqrt(mean HSIC_u(K,K) mean HSIC_u(L,L))."""
    kl, kk, ll = [], [], []
    for Xb, Yb in zip(batches_x, batches_y):
        Xb, Yb = _centred(Xb), _centred(Yb)
        K = Xb @ Xb.T
        L = Yb @ Yb.T
        kl.append(ref_hsic_unbiased(K, L))
        kk.append(ref_hsic_unbiased(K, K))
        ll.append(ref_hsic_unbiased(L, L))
    den = np.mean(kk) * np.mean(ll)
    if not den > 0:
        return float("nan")
    return float(np.mean(kl) / np.sqrt(den))


def _centred_grams(X, Y, debiased: bool):
    X, Y = _centred(X), _centred(Y)
    n = X.shape[0]
    K, L = X @ X.T, Y @ Y.T
    if not debiased:
        H = np.eye(n) - np.ones((n, n)) / n
        return H @ K @ H, H @ L @ H

    def u(M):
        M = M.copy()
        np.fill_diagonal(M, 0.0)
        r = M.sum(axis=1)
        S = M.sum()
        Mu = M - (r[:, None] + r[None, :]) / (n - 2) + S / ((n - 1) * (n - 2))
        np.fill_diagonal(Mu, 0.0)
        return Mu

    return u(K), u(L)


def ref_linear_cka(X, Y, debiased: bool = False) -> float:
    """Linear CKA from full n x n centred (or U-centred) Gram matrices."""
    Kt, Lt = _centred_grams(X, Y, debiased)
    den = np.linalg.norm(Kt) * np.linalg.norm(Lt)
    return float("nan") if den == 0 else float(np.sum(Kt * Lt) / den)


def ref_linear_hsic(X, Y, unbiased: bool = False) -> float:
    """Linear HSIC: tr(KHLH)/(n-1)^2, or <Ku, Lu>/(n(n-3))."""
    n = np.shape(X)[0]
    Kt, Lt = _centred_grams(X, Y, unbiased)
    return float(np.sum(Kt * Lt) / ((n * (n - 3)) if unbiased else (n - 1) ** 2))


def _rbf_gram(X, sigma_frac: float):
    X = _f64(X)
    n = X.shape[0]
    D2 = np.zeros((n, n))
    for k in range(X.shape[1]):
        diff = X[:, k][:, None] - X[:, k][None, :]  # x_ik - x_jk for every ordered pair
        D2 += diff * diff
    m = np.median(D2)  # all n^2 entries, the n diagonal zeros included
    if m == 0:
        return None
    return np.exp(-D2 / (2.0 * sigma_frac**2 * m))


def ref_rbf_cka(X, Y, sigma_frac: float = 1.0) -> float:
    """Biased RBF CKA with the median-of-all-squared-distances bandwidth (the ``cka`` docstring)."""
    out = []
    for A in (X, Y):
        K = _rbf_gram(A, sigma_frac)
        if K is None:
            return float("nan")
        # H K H by subtracting row means, column means, adding the grand mean
        Kt = K - K.mean(axis=0, keepdims=True) - K.mean(axis=1, keepdims=True) + K.mean()
        out.append(Kt)
    Kt, Lt = out
    return float(np.sum(Kt * Lt) / (np.linalg.norm(Kt) * np.linalg.norm(Lt)))
