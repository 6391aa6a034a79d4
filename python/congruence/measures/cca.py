r"""CCA-based measures: mean CCA, SVCCA and PWCCA (Raghu et al. 2017; Morcos et al. 2018).

All three reduce to the canonical correlations of two centred representations: the singular
values of :math:`Q_x^T Q_y`, where :math:`Q_x, Q_y` are orthonormal bases of the column spaces
of :math:`X_c, Y_c` (Hotelling 1936). The numerics use NumPy and SciPy (LAPACK): QR, SVD
(``gesdd``, retried with ``gesvd`` if it does not converge), ``eigh`` and Cholesky, all
through :mod:`congruence._linalg` (one retry rule, errors that name the measure, the argument
and the shape, and Ctrl-C for long calls).

Data
----
*Dead units.* Columns that are constant (``congruence._validation.constant_columns``: dead
ReLU units, the common case in real activations) are dropped first, with one
``DegenerateDataWarning`` per call saying how many; the widths and ``m`` count the kept
columns. A representation whose columns are all constant has identical rows: the canonical
correlations are undefined and the value is ``nan`` with a warning.

*Magnitude.* Each representation is first multiplied by a power of two that brings its
largest entry into ``[0.5, 1)``. That is exact, and every measure here is invariant to
isotropic scaling, so the value is bitwise the one of the unscaled data, for entries of any
magnitude (float64 up to ``1e308``, float32 up to ``3.4e38``) without overflow or underflow.

*Over-fitting.* When the kept widths satisfy :math:`p_1 + p_2 > n - 1` (``svcca``:
:math:`k_X + k_Y > n - 1`), at least :math:`p_1 + p_2 - (n - 1)` canonical correlations are 1
by construction; the value is returned with a ``DegenerateDataWarning``.

*Regularisation* (``epsilon > 0``, as the ridge step of Raghu et al.'s ``cca_core``): each
covariance block is divided by its largest absolute entry and ``epsilon I`` is added to the
two within-set blocks, so rank-deficient (and, except for ``pwcca``'s weighting side, wide)
inputs are allowed; the value is then no longer invariant to invertible linear maps (nor to
rotations, which change the largest entry).

Routes
------
*QR route (the straightforward one).* Economic QR of both centred matrices, then the singular
values of :math:`Q_x^T Q_y`: about :math:`8np^2` flops of Householder QR (factor and form
:math:`Q`, both sides) plus :math:`2np_1p_2` for the product.

*Gram route (the default).* The blocks :math:`X_c^TX_c`, :math:`Y_c^TY_c` and
:math:`X_c^TY_c` come from two SYRK and one GEMM (:math:`4np^2` flops, run near the machine's
peak); the rest is :math:`p \times p` work. ``cca`` whitens with Cholesky factors: the
singular values of :math:`L_x^{-1} X_c^TY_c L_y^{-T}` are the canonical correlations, and
``statistic="r2"`` is its squared Frobenius norm over :math:`m` (no SVD). ``pwcca`` needs the
spec's *symmetric* whitening :math:`S^{-1/2}` on the side that supplies the weights, so that
side uses ``eigh``; its directions :math:`ZW` are never formed either: their QR factor
:math:`R` is that of a :math:`p \times p` matrix and :math:`P^TZ = RW^T`. ``svcca`` takes the
principal components from ``eigh`` of the smaller Gram matrix
(:math:`X_c^TX_c = VS^2V^T`, or :math:`X_cX_c^T = US^2U^T` when :math:`p > n`); the canonical
correlations of the scores are the singular values of
:math:`S_k^{-1}V_k^T (X_c^TY_c) W_kT_k^{-1}` (:math:`k_X \times k_Y`), so neither the SVD of
:math:`X_c` nor the scores are formed.

*Guard.* Forming :math:`X_c^TX_c` squares the condition number. Against the QR route, the
canonical correlations of the Gram route differ by about :math:`0.2\,\varepsilon\,\kappa`,
:math:`\kappa = \kappa(X_c^TX_c)` (measured, n=2000, p=200: 3e-13 at :math:`\kappa=10^6`,
2e-11 at :math:`10^8`, 2e-9 at :math:`10^{10}`, 2e-7 at :math:`10^{12}`). A Gram block is
therefore used only if :math:`\kappa < 10^8` is *certain* (``_COND_MAX``); otherwise the layer
falls back to the QR route (``cca``, ``pwcca``; it also applies the spec's rank test to the
singular values of :math:`R`) or to the thin SVD of :math:`X_c` (``svcca``). For ``cca`` the
certificate is a Cholesky factorisation of :math:`G - \tau I`,
:math:`\tau = \lVert G\rVert_1 / 10^8`, which succeeds iff
:math:`\lambda_{min} > \tau \ge \lambda_{max}/10^8`: exact (unlike the LAPACK ``pocon``
estimate, which underestimated :math:`\kappa` by up to 17x on random test matrices) and
cheaper than ``eigvalsh`` (about 0.007 s vs 0.03 s at p=768); it may send blocks with
:math:`10^8/\sqrt p < \kappa < 10^8` to the QR route, which only costs time. ``pwcca``'s
weighting side and ``svcca`` have exact eigenvalues from their ``eigh`` anyway (for ``svcca``
the bound applies to the *kept* components; ``variance=1`` needs all of them). A guarded layer
can be paired with a fallback one: a basis is stored as ``A W`` (``A`` the centred matrix,
:math:`Q` or :math:`U`; ``W`` a whitening or nothing).

*Measured* (benches/bench_cca.py references, float64, 1 BLAS thread, CPU time on a shared
2-core machine, best of 3; ratio = reference / ours): n=5000, p=768: ``cca`` 2.4x,
``svcca`` 4.0x, ``pwcca`` 2.1-2.4x; n=10000, p=512: 3.6x, 6.4x, 2.7x. The ratio grows with
:math:`n/p` since only the :math:`np^2` terms differ (``cca``: :math:`4np^2` in GEMM against
:math:`8np^2` in Householder QR plus the same :math:`2np^2` product). Rejected after
measuring: ``eigvalsh`` for the guard (``cca`` 13% slower), and for ``pwcca`` the
eigenvectors of :math:`MM^T` instead of the SVD of :math:`M` (about 10% faster, but off by
up to 7e-3 on clusters of tiny canonical correlations, where the SVD route stays within 2e-7
of a 60-digit reference).

*Per layer* (``compare_layers``, permutation tests): each layer's dead units are dropped
(one warning naming the layer), it is centred and its Gram block factorised (or its QR / SVD
taken) once, so a pair costs one :math:`p_1 \times p_2` product plus :math:`p \times p`
work: ``L1 + L2`` preparations instead of ``2 L1 L2``. The basis :math:`A W` permutes with
the rows (the Gram block does not change), so a row permutation of one side is a pair step on
:math:`A[\pi]`; a resample with replacement is not (the rows are no longer centred), so these
measures declare no ``reindex``. The over-fitting warning comes once per layer matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional, Sequence, get_args

import numpy as np
import scipy.linalg as _la
from numpy.typing import ArrayLike

from congruence import _linalg
from congruence._layers import fill
from congruence._registry import register
from congruence._validation import check_choice, check_number, check_pair
from congruence.errors import warn_degenerate

__all__ = ["cca", "svcca", "pwcca"]

_EPS = float(np.finfo(np.float64).eps)
#: A Gram block is used (instead of QR / SVD of the n x p matrix) only if its condition
#: number is certainly below _COND_MAX (see the module docstring) ...
_COND_MAX = 1e8
#: ... and its trace lies in this range (no overflow, underflow or subnormal entries).
_GRAM_RANGE = (1e-250, 1e250)
Statistic = Literal["mean", "r2"]
_STATISTICS = get_args(Statistic)

_REF_HOTELLING = "Hotelling (1936). Relations between two sets of variates. Biometrika."
_REF_KORNBLITH = (
    "Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations "
    "Revisited. ICML."
)
_REF_RAGHU = (
    "Raghu, Gilmer, Yosinski, Sohl-Dickstein (2017). SVCCA: Singular Vector Canonical "
    "Correlation Analysis for Deep Learning Dynamics and Interpretability. NeurIPS."
)
_REF_MORCOS = (
    "Morcos, Raghu, Bengio (2018). Insights on representational similarity in neural "
    "networks with canonical correlation. NeurIPS."
)
_REF_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network "
    "Models: A Survey of Functional and Representational Measures. ACM Computing Surveys."
)


def _check_epsilon(epsilon) -> float:
    return check_number("epsilon", epsilon, low=0.0)


# --------------------------------------------------------------------------------------------
# Degenerate data: dead units, identical rows, over-fitting
# --------------------------------------------------------------------------------------------


def _drop_dead(
    arrays: Sequence[np.ndarray], names: Sequence[str], measure: str
) -> list[Optional[np.ndarray]]:
    """Dead units dropped, with the warnings (see :func:`congruence._linalg.drop_dead_units`)."""
    return _linalg.drop_dead_units(arrays, names, measure)


def _warn_overfit(pairs: list[tuple[str, int, int, int]], measure: str, what: str) -> None:
    """One warning for the pairs ``(label, w1, w2, n)`` with ``w1 + w2 > n - 1``."""
    bad = [(lab, a, b, n) for lab, a, b, n in pairs if a + b > n - 1]
    if not bad:
        return
    lab, a, b, n = bad[0]
    more = f" (and {len(bad) - 1} more pair(s) of layers)" if len(bad) > 1 else ""
    warn_degenerate(
        f"{lab}: {what} = {a} + {b} = {a + b} > n - 1 = {n - 1}{more}: at least "
        f"{a + b - (n - 1)} canonical correlation(s) are 1 by construction (over-fitting; "
        f"exactly 1 when epsilon = 0), so {measure} is inflated; use more rows (examples) or "
        "fewer columns"
    )


# --------------------------------------------------------------------------------------------
# Linear algebra helpers
# --------------------------------------------------------------------------------------------


def _centre(X: np.ndarray) -> np.ndarray:
    """``X`` times an exact power of two (largest entry in [0.5, 1)) minus its column means,
    as a new float64 array. The scale is irrelevant: every measure here is invariant to it."""
    Xs, _ = _linalg.pow2_scale(X)
    Xs -= Xs.mean(axis=0)
    return Xs


def _gram(Xc: np.ndarray, measure: str, name: str) -> np.ndarray:
    p = Xc.shape[1]
    _linalg.check_matrix_fits(
        p,
        p,
        f"the {p} x {p} covariance block of {name} in {measure}",
        "reduce the width (drop or project columns, e.g. PCA) or use svcca",
    )
    return _linalg.matmul(Xc.T, Xc)


def _in_range(G: np.ndarray) -> bool:
    """Is the Gram block free of overflow and underflow (its trace bounds every entry)?"""
    return bool(_GRAM_RANGE[0] < float(np.trace(G)) < _GRAM_RANGE[1])


def _well_conditioned(lmin: float, lmax: float) -> bool:
    """The guard: may a Gram block with these extreme eigenvalues be used?"""
    return lmax > 0.0 and lmin * _COND_MAX >= lmax


def _guarded_cholesky(G: np.ndarray) -> Optional[np.ndarray]:
    """The lower Cholesky factor of ``G`` if ``cond(G) < _COND_MAX`` is certain, else None.

    ``G - tau I`` with ``tau = ||G||_1 / _COND_MAX`` is positive definite iff
    ``lambda_min(G) > tau >= lambda_max(G) / _COND_MAX`` (as ``||G||_1 >= ||G||_2``), and a
    Cholesky factorisation decides that exactly up to a backward error of ~p eps ||G||,
    far below ``tau``. This costs one extra Cholesky (p^3/3 flops) instead of an
    eigenvalue decomposition, and is conservative by at most ``||G||_1 / lambda_max <= sqrt(p)``.
    """
    if not _in_range(G):
        return None
    norm1 = float(np.abs(G).sum(axis=0).max())
    tau = norm1 / _COND_MAX
    shifted = G.copy()
    shifted.flat[:: G.shape[0] + 1] -= tau
    try:
        _linalg.cholesky(shifted)
        return _linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return None


def _numerical_rank(s: np.ndarray, n: int, p: int) -> int:
    """Number of singular values above ``s_max * max(n, p) * eps``."""
    if s.size == 0 or s[0] <= 0.0:
        return 0
    return int(np.count_nonzero(s > s[0] * max(n, p) * _EPS))


# --------------------------------------------------------------------------------------------
# Prepared layers
# --------------------------------------------------------------------------------------------


@dataclass
class _Basis:
    """A basis ``A @ W`` of a column space, with what PWCCA needs.

    ``A`` is ``(n, p)`` (the centred matrix, or ``Q`` / ``U`` of a decomposition). The
    whitening ``W`` is either ``None`` (``A`` is orthonormal), the lower Cholesky factor
    ``L`` of ``A^T A`` (``W = L^{-T}``) or a dense ``(p, k)`` matrix. Without ``epsilon``,
    ``A W`` is orthonormal.

    On PWCCA's weighting side, ``polar`` and ``rootp`` describe the centred matrix in the
    basis: ``Xc (Xc^T Xc)^{-1/2} = (A W) @ polar`` (``polar`` orthogonal) and
    ``Xc = (A W) @ rootp @ polar`` (``rootp`` symmetric; a 1-D array means a diagonal).

    With ``epsilon > 0`` (``ridge``): ``A = Xc / sqrt(max|Xc^T Xc|)`` and ``W`` whitens with
    ``(A^T A + epsilon I)`` (its Cholesky factor, or its symmetric inverse square root on
    PWCCA's weighting side). ``shrink`` (svcca with ``epsilon``): the factors
    ``sigma_i / sqrt(sigma_i^2 + epsilon)`` of the kept components, ``sigma_i = s_i / s_1``.
    """

    A: np.ndarray
    name: str = "X"
    W: Optional[np.ndarray] = None
    chol: Optional[np.ndarray] = None
    polar: Optional[np.ndarray] = None
    rootp: Optional[np.ndarray] = None
    ridge: bool = False
    shrink: Optional[np.ndarray] = None

    @property
    def width(self) -> int:
        if self.W is not None:
            return self.W.shape[1]
        return self.A.shape[1]

    @property
    def rows(self) -> int:
        return self.A.shape[0]

    def left(self, C: np.ndarray) -> np.ndarray:
        """``W^T C``."""
        if self.chol is not None:
            return _la.solve_triangular(self.chol, C, lower=True, check_finite=False)
        if self.W is not None:
            return _linalg.matmul(self.W.T, C)
        return C

    def right(self, C: np.ndarray) -> np.ndarray:
        """``C W``."""
        if self.chol is not None:
            return _la.solve_triangular(self.chol, C.T, lower=True, check_finite=False).T
        if self.W is not None:
            return _linalg.matmul(C, self.W)
        return C


def _cross(bx: _Basis, by: _Basis) -> np.ndarray:
    """``(A_x W_x)^T (A_y W_y)``: its singular values are the canonical correlations."""
    M = by.right(bx.left(_linalg.matmul(bx.A.T, by.A)))
    if bx.shrink is not None:
        M = bx.shrink[:, None] * M * by.shrink[None, :]
    return M


def _check_width(X: np.ndarray, name: str, measure: str) -> None:
    n, p = X.shape
    if p > n - 1:
        raise ValueError(
            f"{name} has shape {X.shape}: {measure} needs p <= n-1 = {n - 1} columns (a "
            f"centred matrix of {n} rows has rank at most n-1, so with more columns the "
            "canonical correlations are not defined); use svcca (which keeps the top "
            "principal components) or cka for wide representations, pass epsilon > 0 "
            "(regularised CCA), or reduce the width"
        )


def _rank_error(name: str, shape: tuple, rank: int) -> ValueError:
    return ValueError(
        f"{name} of shape {shape} does not have full column rank after centring: numerical "
        f"rank {rank} < {shape[1]} columns (tolerance s_max * max(n, p) * eps); it has "
        "collinear columns (constant ones are dropped already). Drop the collinear columns "
        "(keep a linearly independent subset), pass epsilon > 0 (regularised CCA), or use "
        "svcca, which keeps only the leading principal components"
    )


def _prepare_ridge(
    X: np.ndarray, name: str, symmetric: bool, epsilon: float, measure: str
) -> _Basis:
    """The regularised basis of ``X`` (``epsilon > 0``): see :class:`_Basis`."""
    Xc = _centre(X)
    G = _gram(Xc, measure, name)
    top = float(np.abs(G).max())
    A = Xc / math.sqrt(top)
    K = G / top
    K.flat[:: K.shape[0] + 1] += epsilon
    small = ValueError(
        f"epsilon={epsilon!r} is too small to regularise {name} of shape {X.shape}: its "
        "normalised covariance block plus epsilon I is not positive definite in float64; "
        "use a larger epsilon (e.g. 1e-10)"
    )
    if symmetric:
        lam, V = _linalg.eigh(K, measure=measure, argument=f"the regularised covariance of {name}")
        if not lam[0] > 0.0:
            raise small
        return _Basis(A=A, name=name, W=_linalg.matmul(V / np.sqrt(lam), V.T), ridge=True)
    try:
        L = _linalg.cholesky(K)
    except np.linalg.LinAlgError:
        raise small from None
    return _Basis(A=A, name=name, chol=L, ridge=True)


def _prepare_full(
    X: np.ndarray, name: str, symmetric: bool, epsilon: float = 0.0, measure: str = "cca"
) -> _Basis:
    """Centre ``X`` (constant columns already dropped) and build a basis of its column space
    (cca / pwcca).

    ``symmetric=True`` also provides ``polar`` and ``rootp`` (PWCCA's weighting side).
    Raises ValueError if the centred matrix is numerically rank deficient (``epsilon = 0``).
    """
    if epsilon > 0.0:
        return _prepare_ridge(X, name, symmetric, epsilon, measure)
    n, p = X.shape
    Xc = _centre(X)
    G = _gram(Xc, measure, name)
    if symmetric:
        lam, V = (
            _linalg.eigh(G, measure=measure, argument=f"the covariance block of {name}")
            if _in_range(G)
            else (None, None)
        )
        if lam is not None and _well_conditioned(float(lam[0]), float(lam[-1])):
            # Xc = U diag(sq) V^T with U = Xc V / sq:  polar = V^T, rootp = diag(sq).
            sq = np.sqrt(lam)
            return _Basis(A=Xc, name=name, W=V / sq, polar=np.ascontiguousarray(V.T), rootp=sq)
    else:
        L = _guarded_cholesky(G)
        if L is not None:
            return _Basis(A=Xc, name=name, chol=L)
    # QR route: ill-conditioned (or rank-deficient) Gram block.
    Q, R = _linalg.qr(Xc)
    what = f"the R factor of the centred {name}"
    if symmetric:
        Ur, s, Vhr = _linalg.svd(R, measure=measure, argument=what)
    else:
        s = _linalg.svd(R, measure=measure, argument=what, compute_uv=False)
    rank = _numerical_rank(s, n, p)
    if rank < p:
        raise _rank_error(name, X.shape, rank)
    if symmetric:
        # R = Ur S Vhr  =>  polar = R (R^T R)^{-1/2} = Ur Vhr, rootp = R polar^T = Ur S Ur^T.
        return _Basis(
            A=Q, name=name, polar=_linalg.matmul(Ur, Vhr), rootp=_linalg.matmul(Ur * s, Ur.T)
        )
    return _Basis(A=Q, name=name)


def _prepare_sv(
    X: np.ndarray, variance: float, epsilon: float = 0.0, name: str = "X"
) -> Optional[_Basis]:
    """Centre ``X`` and return an orthonormal basis of its top ``k`` principal components.

    ``None`` if the centred matrix is all zeros (SVCCA is then nan). The spectrum comes from
    ``eigh`` of the smaller Gram matrix (``Xc^T Xc`` if ``p <= n``, else ``Xc Xc^T``) when the
    kept components pass the guard, else from the thin SVD of ``Xc``.
    """
    n, p = X.shape
    Xc = _centre(X)
    if not Xc.any():
        return None
    wide = p > n
    if wide:
        _linalg.check_matrix_fits(
            n,
            n,
            f"the {n} x {n} Gram matrix of {name} in svcca",
            "subsample the rows, or reduce the width first (e.g. a random projection)",
        )
        G = _linalg.matmul(Xc, Xc.T)
    else:
        G = _gram(Xc, "svcca", name)
    k = 0
    what = f"the Gram matrix of the centred {name}"
    if _in_range(G):
        lam, V = _linalg.eigh(G, measure="svcca", argument=what)
        lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
        k = _kept_gram_components(lam, variance)
    if k:
        s = np.sqrt(lam[:k])
        if wide:  # Xc Xc^T = U S^2 U^T: V holds the left singular vectors themselves
            basis = _Basis(A=np.ascontiguousarray(V[:, :k]), name=name)
        else:
            # Xc^T Xc = V S^2 V^T: the basis U_k = Xc V_k / s_k is kept implicit.
            basis = _Basis(A=Xc, name=name, W=V[:, :k] / s)
    else:
        U, s, _ = _linalg.svd(Xc, measure="svcca", argument=f"the centred {name}")
        if variance >= 1.0:
            k = _numerical_rank(s, n, p)
        else:
            k = _components(s * s, variance)
        s = s[:k]
        basis = _Basis(A=np.ascontiguousarray(U[:, :k]), name=name)
    if epsilon > 0.0:
        sigma = s / s[0]
        basis.shrink = sigma / np.sqrt(sigma * sigma + epsilon)
    return basis


def _kept_gram_components(lam: np.ndarray, variance: float) -> int:
    """``k`` from Gram eigenvalues (descending), or 0 if the guard sends us to the SVD."""
    lmax = float(lam[0])
    if variance >= 1.0:
        # The numerical rank is certain only if every eigenvalue passes the guard (a
        # centred wide matrix never does: its rank is at most n - 1).
        return lam.size if _well_conditioned(float(lam[-1]), lmax) else 0
    k = _components(lam, variance)
    return k if _well_conditioned(float(lam[k - 1]), lmax) else 0


def _components(power: np.ndarray, variance: float) -> int:
    """Smallest ``k`` with ``sum(power[:k]) / sum(power) >= variance`` (power descending)."""
    frac = np.cumsum(power) / np.sum(power)
    hits = np.flatnonzero(frac >= variance)
    return int(hits[0]) + 1 if hits.size else int(power.size)


# --------------------------------------------------------------------------------------------
# Values from prepared layers
# --------------------------------------------------------------------------------------------


def _what(bx: _Basis, by: _Basis) -> str:
    return f"the whitened cross-covariance of {bx.name} and {by.name}"


def _correlations(bx: _Basis, by: _Basis, measure: str = "cca") -> np.ndarray:
    """Canonical correlations (descending, clipped to [0, 1])."""
    s = _linalg.svd(_cross(bx, by), measure=measure, argument=_what(bx, by), compute_uv=False)
    return np.minimum(s, 1.0)


def _cca_value(bx: _Basis, by: _Basis, statistic: str, measure: str = "cca") -> float:
    """Mean canonical correlation, or mean squared one: ``||Qx^T Qy||_F^2 / m`` needs no SVD."""
    if statistic == "r2":
        M = _cross(bx, by)
        return min(float(np.vdot(M, M)) / min(M.shape), 1.0)
    return float(np.mean(_correlations(bx, by, measure)))


def _pw_value(z: _Basis, Wb: np.ndarray, rho: np.ndarray) -> float:
    """PWCCA steps 3-7 from the weighting side ``z`` and its singular vectors in basis
    coordinates ``Wb`` (columns ordered like ``rho``).

    The singular vectors of ``Sxx^{-1/2} Sxy Syy^{-1/2}`` are ``W = polar^T Wb``; the
    directions ``Dir = Zc W = (A W_z) (rootp Wb)`` have the R factor of the small matrix
    ``rootp Wb`` (``A W_z`` is orthonormal), and ``P^T Zc = R W^T = R Wb^T polar``.
    With ``epsilon`` (``z.ridge``), ``Wb`` are the singular vectors themselves and the
    directions ``Zc Wb`` are formed and orthonormalised explicitly.
    """
    if z.ridge:
        P = _linalg.qr(_linalg.matmul(z.A, Wb))[0]
        a = np.abs(_linalg.matmul(P.T, z.A)).sum(axis=1)
    else:
        T = z.rootp[:, None] * Wb if z.rootp.ndim == 1 else _linalg.matmul(z.rootp, Wb)
        R = _linalg.qr(T, mode="r")[0]
        a = np.abs(_linalg.matmul(_linalg.matmul(R, Wb.T), z.polar)).sum(axis=1)
    return float(np.dot(a / a.sum(), rho))


def _pw_pair(bx: _Basis, by: _Basis, both: bool = False) -> tuple[float, float]:
    """``(pwcca(X, Y), pwcca(Y, X))`` from one SVD; the second only if ``both`` (then both
    bases need ``polar`` and ``rootp``), else it is nan."""
    U, s, Vh = _linalg.svd(_cross(bx, by), measure="pwcca", argument=_what(bx, by))
    rho = np.minimum(s, 1.0)
    px, py = bx.width, by.width
    xy = _pw_value(bx, U, rho) if px <= py else _pw_value(by, Vh.T, rho)
    if not both:
        return xy, math.nan
    # Reversed arguments: M^T has the singular vectors swapped; ties (p1 == p2) go to Y.
    yx = _pw_value(by, Vh.T, rho) if py <= px else xy
    return xy, yx


# --------------------------------------------------------------------------------------------
# Public measures
# --------------------------------------------------------------------------------------------


def _prepare_side(
    X: Optional[np.ndarray], name: str, measure: str, symmetric: bool, epsilon: float
) -> Optional[_Basis]:
    """``_prepare_full`` of a representation whose dead units are dropped (``None``: all were)."""
    if X is None:
        return None
    if epsilon == 0.0:
        _check_width(X, name, measure)
    return _prepare_full(X, name, symmetric, epsilon, measure)


def _check_pw_weighting_width(bx: _Basis, by: _Basis) -> None:
    """pwcca with epsilon: the weighting (narrower) side needs at most n - 1 columns."""
    z = bx if bx.width <= by.width else by
    n = z.rows
    if z.width > n - 1:
        raise ValueError(
            f"{z.name} has {z.width} (non-constant) columns: pwcca weights the canonical "
            f"directions of the narrower representation, which needs at most n - 1 = {n - 1} "
            "columns even with epsilon > 0; reduce its width or use cca / svcca"
        )


def _invariances_cca(p) -> tuple[str, ...]:
    if p["epsilon"] > 0:  # the largest-entry normalisation changes under rotations
        return ("isotropic_scaling", "translation", "permutation")
    return ("orthogonal", "isotropic_scaling", "invertible_linear", "translation", "permutation")


# --------------------------------------------------------------------------------------------
# The per-layer contract (compare_layers, permutation tests): each layer prepared once
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """A prepared representation: its basis (``None`` when every row is identical)."""

    basis: Optional[_Basis]


def _prepared_basis(x: np.ndarray, name: str, measure: str, build) -> _Layer:
    """Dead units dropped (one warning naming ``name``), then ``build(kept)``."""
    (kept,) = _drop_dead((x,), (name,), measure)
    return _Layer(None if kept is None else build(kept))


def _cca_prepare(x, *, name: str = "X", statistic: str = "mean", epsilon: float = 0.0) -> _Layer:
    check_choice("statistic", statistic, _STATISTICS)
    epsilon = _check_epsilon(epsilon)
    return _prepared_basis(x, name, "cca", lambda k: _prepare_side(k, name, "cca", False, epsilon))


def _svcca_prepare(
    x, *, name: str = "X", variance: float = 0.99, statistic: str = "mean", epsilon: float = 0.0
) -> _Layer:
    variance = check_number("variance", variance, low=0.0, high=1.0, low_open=True)
    check_choice("statistic", statistic, _STATISTICS)
    epsilon = _check_epsilon(epsilon)
    return _prepared_basis(x, name, "svcca", lambda k: _prepare_sv(k, variance, epsilon, name))


def _pwcca_prepare(x, *, name: str = "X", epsilon: float = 0.0) -> _Layer:
    # Every layer gets the symmetric whitening (its eigendecomposition), so that it can
    # supply the weights in one pair and be the other side in the next; pwcca(X, Y) itself
    # whitens the non-weighting side with a Cholesky factor (equal to round-off).
    epsilon = _check_epsilon(epsilon)
    return _prepared_basis(
        x, name, "pwcca", lambda k: _prepare_side(k, name, "pwcca", True, epsilon)
    )


def _cca_pair(px: _Layer, py: _Layer, statistic: str = "mean", epsilon: float = 0.0) -> float:
    if px.basis is None or py.basis is None:
        return math.nan
    return _cca_value(px.basis, py.basis, statistic)


def _svcca_pair(
    px: _Layer,
    py: _Layer,
    variance: float = 0.99,
    statistic: str = "mean",
    epsilon: float = 0.0,
) -> float:
    if px.basis is None or py.basis is None:
        return math.nan
    return _svcca_value(px.basis, py.basis, statistic)


def _pwcca_both(px: _Layer, py: _Layer, epsilon: float = 0.0, both: bool = False):
    if px.basis is None or py.basis is None:
        return math.nan, math.nan
    if epsilon > 0.0:
        _check_pw_weighting_width(px.basis, py.basis)
    return _pw_pair(px.basis, py.basis, both=both)


def _pwcca_pair(px: _Layer, py: _Layer, epsilon: float = 0.0) -> float:
    return _pwcca_both(px, py, epsilon)[0]


def _layer_overfit(pa, pb, measure: str, what: str) -> None:
    """The over-fitting warning of a layer matrix: once, for every pair of layers at fault."""
    cols = pa if pb is None else pb
    pairs = [
        (f"{x.basis.name} x {y.basis.name}", x.basis.width, y.basis.width, x.basis.rows)
        for i, x in enumerate(pa)
        for j, y in enumerate(cols)
        if x.basis is not None and y.basis is not None and (pb is not None or j >= i)
    ]
    _warn_overfit(pairs, measure, what)


def _cca_matrix(pa, pb, statistic: str = "mean", epsilon: float = 0.0) -> np.ndarray:
    _layer_overfit(pa, pb, "cca", "p1 + p2")
    return fill(pa, pb, lambda x, y: _cca_pair(x, y, statistic))


def _svcca_matrix(
    pa, pb, variance: float = 0.99, statistic: str = "mean", epsilon: float = 0.0
) -> np.ndarray:
    _layer_overfit(pa, pb, "svcca", "k_X + k_Y")
    return fill(pa, pb, lambda x, y: _svcca_pair(x, y, statistic=statistic))


def _pwcca_matrix(pa, pb, epsilon: float = 0.0) -> np.ndarray:
    _layer_overfit(pa, pb, "pwcca", "p1 + p2")
    return fill(
        pa,
        pb,
        lambda x, y: _pwcca_pair(x, y, epsilon),
        symmetric=False,
        both=lambda x, y: _pwcca_both(x, y, epsilon, both=True),
    )


def _permuted_rows(layer: _Layer, perm: np.ndarray) -> _Layer:
    """The layer of ``x[perm]`` for a row permutation ``perm``: the basis ``A W`` of the
    centred columns permutes with the rows (the Gram block, the whitening ``W`` and PWCCA's
    ``polar`` and ``rootp`` do not change), so only ``A`` is reordered."""
    if layer.basis is None:
        return layer
    return _Layer(replace(layer.basis, A=layer.basis.A[perm]))


def _permuted(pair):
    """``values[k] = pair(px, py with its rows permuted by perms[k])``."""

    def permuted(px: _Layer, py: _Layer, perms, **params) -> np.ndarray:
        perms = np.asarray(perms)
        return np.array(
            [pair(px, _permuted_rows(py, perm), **params) for perm in perms], dtype=np.float64
        )

    return permuted


@register(
    family="cca",
    kind="similarity",
    summary="Mean canonical correlation, or mean squared CCA (Yanai's R^2)",
    references=(_REF_HOTELLING, _REF_KORNBLITH, _REF_RAGHU, _REF_SURVEY),
    symmetric=True,
    invariances=_invariances_cca,
    bounds=(0.0, 1.0),
    min_rows=2,
    variants=({}, {"statistic": "r2"}, {"epsilon": 0.1}),
    prepare=_cca_prepare,
    pair=_cca_pair,
    matrix=_cca_matrix,
    permuted=_permuted(_cca_pair),
)
def cca(X: ArrayLike, Y: ArrayLike, statistic: Statistic = "mean", epsilon: float = 0.0) -> float:
    r"""Mean (squared) canonical correlation between two representations of the same inputs.

    With the columns centred, the canonical correlations
    :math:`1 \ge \rho_1 \ge \dots \ge \rho_m \ge 0`, :math:`m = \min(p_1, p_2)`, are the
    singular values of :math:`S_{xx}^{-1/2} S_{xy} S_{yy}^{-1/2}`, i.e. of
    :math:`Q_x^TQ_y` for orthonormal bases :math:`Q_x, Q_y` of the column spaces of
    :math:`X_c, Y_c` (Hotelling 1936). Then

    .. math::

        \bar\rho = \frac1m \sum_{i=1}^m \rho_i \quad(\texttt{"mean"}), \qquad
        R^2_{CCA} = \frac1m \sum_{i=1}^m \rho_i^2 \quad(\texttt{"r2"}).

    All :math:`m` coefficients are used. Constant columns (dead units) are dropped first,
    with a ``DegenerateDataWarning`` saying how many; :math:`p_1, p_2, m` count the kept
    columns. When :math:`p_1 + p_2 > n - 1`, at least :math:`p_1 + p_2 - (n-1)` of the
    coefficients are exactly 1 (over-fitting): the value comes with a warning.

    With ``epsilon > 0`` (the ridge of Raghu et al.'s reference code) each covariance block
    is divided by its largest absolute entry, :math:`S_{xx}' = S_{xx}/\max|S_{xx}|`,
    :math:`S_{yy}'` alike, :math:`S_{xy}' = S_{xy} / \sqrt{\max|S_{xx}| \max|S_{yy}|}`, and
    the :math:`\rho_i` are the singular values of
    :math:`(S_{xx}' + \epsilon I)^{-1/2} S_{xy}' (S_{yy}' + \epsilon I)^{-1/2}`.
    Collinear or wide (:math:`p > n - 1`) inputs are then allowed, and the value is no longer
    invariant to invertible linear maps or rotations.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. Without ``epsilon``, both need
        ``p <= n - 1`` kept columns and full column rank after centring.
    statistic : {"mean", "r2"}
        Mean canonical correlation, or mean squared canonical correlation (Yanai's
        generalized coefficient of determination, Kornblith et al. 2019).
    epsilon : float >= 0
        Ridge regularisation of the normalised within-set covariance blocks (0: none).

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a ``DegenerateDataWarning`` if ``X`` or ``Y`` has
        identical rows (every column constant).

    Raises
    ------
    ValueError
        Without ``epsilon``: if more than ``n - 1`` columns are kept, or if a centred matrix
        is numerically rank deficient (singular values below ``s_max * max(n, p) * eps``:
        collinear columns); pass ``epsilon > 0``, or use :func:`svcca` or ``cka``.

    References
    ----------
    Hotelling (1936), Biometrika; Kornblith et al. (2019), ICML; Raghu et al. (2017),
    NeurIPS (the regularisation).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 5))
    >>> A = rng.standard_normal((5, 5))           # any invertible linear map
    >>> round(cg.cca(X, X @ A + 7), 10)
    1.0
    >>> x = np.array([[1.0], [2.0], [3.0], [4.0]]); y = np.array([[1.0], [3.0], [2.0], [4.0]])
    >>> round(cg.cca(x, y), 10)                   # one column each: |Pearson correlation|
    0.8
    >>> round(cg.cca(X, np.hstack([X, X]), epsilon=1e-3), 4)   # collinear: needs epsilon
    0.999
    """
    statistic = check_choice("statistic", statistic, _STATISTICS)
    epsilon = _check_epsilon(epsilon)
    X, Y = check_pair(X, Y)
    Xk, Yk = _drop_dead((X, Y), ("X", "Y"), "cca")
    bx = _prepare_side(Xk, "X", "cca", False, epsilon)
    by = _prepare_side(Yk, "Y", "cca", False, epsilon)
    if bx is None or by is None:
        return math.nan
    _warn_overfit([("X and Y", bx.width, by.width, X.shape[0])], "cca", "p1 + p2")
    return _cca_value(bx, by, statistic)


def _invariances_svcca(p) -> tuple[str, ...]:
    # variance=1 keeps the whole column space, where SVCCA is the mean CCA, which is
    # invariant to invertible linear maps (unless regularised).
    base = ("orthogonal", "isotropic_scaling", "translation", "permutation")
    if p["variance"] == 1 and p["epsilon"] == 0:
        return base + ("invertible_linear",)
    return base


def _svcca_value(bx: _Basis, by: _Basis, statistic: str) -> float:
    return _cca_value(bx, by, statistic, "svcca")


@register(
    family="cca",
    kind="similarity",
    summary="Singular vector CCA: mean CCA of the top principal components (SVCCA)",
    references=(_REF_RAGHU, _REF_KORNBLITH, _REF_SURVEY),
    symmetric=True,
    invariances=_invariances_svcca,
    bounds=(0.0, 1.0),
    min_rows=2,
    variants=({}, {"variance": 0.5}, {"variance": 1.0}, {"statistic": "r2"}, {"epsilon": 0.1}),
    prepare=_svcca_prepare,
    pair=_svcca_pair,
    matrix=_svcca_matrix,
    permuted=_permuted(_svcca_pair),
)
def svcca(
    X: ArrayLike,
    Y: ArrayLike,
    variance: float = 0.99,
    statistic: Statistic = "mean",
    epsilon: float = 0.0,
) -> float:
    r"""Singular vector CCA: the mean CCA of the leading principal components.

    1. Centre the columns and take the thin SVD :math:`X_c = U S V^T`.
    2. :math:`k_X` is the smallest :math:`k` with
       :math:`\sum_{i\le k} s_i^2 / \sum_i s_i^2 \ge \text{variance}` (for ``variance=1``,
       the numerical rank of :math:`X_c`, tolerance :math:`s_{max}\max(n,p)\,\varepsilon`).
    3. :math:`X' = U_{:, :k_X} S_{:k_X}` (the principal-component scores); :math:`Y'` alike.
    4. .. math::

           \mathrm{SVCCA} = \frac{1}{\min(k_X, k_Y)} \sum_{i=1}^{\min(k_X, k_Y)} \rho_i(X', Y')

       (``statistic="mean"``), or the mean of the :math:`\rho_i^2` (``"r2"``, "SVCCA
       :math:`R^2`" of Kornblith et al. 2019).

    No ridge is added unless ``epsilon > 0``, which regularises the CCA step as in
    :func:`cca`: with :math:`\sigma_i = s_i / s_1`, the :math:`\rho_i` are the singular
    values of :math:`D_X U_{k_X}^T U_{k_Y} D_Y`,
    :math:`D = \mathrm{diag}(\sigma_i / \sqrt{\sigma_i^2 + \epsilon})`.
    Constant columns (dead units) are dropped first, with a warning. If
    :math:`k_X + k_Y > n - 1`, correlations are 1 by construction (over-fitting): the value
    comes with a ``DegenerateDataWarning``.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example; ``p`` may exceed ``n``.
    variance : float in (0, 1]
        Fraction of the variance the kept components explain.
    statistic : {"mean", "r2"}
        Mean canonical correlation of the kept components, or mean squared one.
    epsilon : float >= 0
        Ridge regularisation of the CCA step (0: none).

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a ``DegenerateDataWarning`` if ``X`` or ``Y`` is
        constant (every row identical).

    Raises
    ------
    ValueError
        If ``variance`` is not in (0, 1], ``statistic`` unknown or ``epsilon < 0``.

    References
    ----------
    Raghu, Gilmer, Yosinski, Sohl-Dickstein (2017), NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.standard_normal((200, 3))
    >>> X = np.hstack([10 * Z, 0.01 * rng.standard_normal((200, 5))])   # 3 strong directions
    >>> Y = 5 * Z @ rng.standard_normal((3, 3)) + 1                      # the same 3 directions
    >>> round(cg.svcca(X, Y), 10)                # the 3 kept components of X span Y exactly
    1.0
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     cg.svcca(X, np.ones((200, 2)))       # a constant representation (and a warning)
    nan
    """
    variance = check_number("variance", variance, low=0.0, high=1.0, low_open=True)
    statistic = check_choice("statistic", statistic, _STATISTICS)
    epsilon = _check_epsilon(epsilon)
    X, Y = check_pair(X, Y)
    Xk, Yk = _drop_dead((X, Y), ("X", "Y"), "svcca")
    bx = None if Xk is None else _prepare_sv(Xk, variance, epsilon, "X")
    by = None if Yk is None else _prepare_sv(Yk, variance, epsilon, "Y")
    if bx is None or by is None:
        return math.nan
    _warn_overfit([("X and Y", bx.width, by.width, X.shape[0])], "svcca", "k_X + k_Y")
    return _svcca_value(bx, by, statistic)


@register(
    family="cca",
    kind="similarity",
    summary="Projection-weighted CCA (PWCCA), weights from the narrower representation",
    references=(_REF_MORCOS, _REF_SURVEY),
    # Symmetric only when p1 != p2 (the registry's symmetry depends on parameters, not on
    # the data's shapes, so it is declared not symmetric).
    symmetric=False,
    invariances=("isotropic_scaling", "translation", "permutation"),
    bounds=(0.0, 1.0),
    min_rows=2,
    variants=({}, {"epsilon": 0.1}),
    prepare=_pwcca_prepare,
    pair=_pwcca_pair,
    matrix=_pwcca_matrix,
    permuted=_permuted(_pwcca_pair),
)
def pwcca(X: ArrayLike, Y: ArrayLike, epsilon: float = 0.0) -> float:
    r"""Projection-weighted CCA: canonical correlations weighted by their share of the data.

    With :math:`S_{xx} = X_c^TX_c/(n-1)` etc. and the SVD
    :math:`S_{xx}^{-1/2} S_{xy} S_{yy}^{-1/2} = U\,\mathrm{diag}(\rho)\,V^T`, let
    :math:`(Z, W) = (X_c, U)` if :math:`p_1 \le p_2`, else :math:`(Y_c, V)`. The directions
    :math:`Z W` (singular vectors applied to the centred activations, without whitening) are
    orthonormalised in order, :math:`ZW = PR`, and

    .. math::

        a_i = \sum_j \lvert P_{:,i}^T Z_{:,j} \rvert, \qquad
        \alpha_i = \frac{a_i}{\sum_k a_k}, \qquad
        \mathrm{PWCCA} = \sum_{i=1}^{m} \alpha_i \rho_i .

    Symmetric when :math:`p_1 \ne p_2`; when :math:`p_1 = p_2` the weights come from ``X``.
    If :math:`p_1 + p_2 > n - 1` several :math:`\rho_i` equal 1 and their singular vectors
    are not unique, so the value depends on the LAPACK routine's choice among them (a
    ``DegenerateDataWarning`` says so). Constant columns (dead units) are dropped first, with
    a warning. ``epsilon > 0`` regularises the covariance blocks as in :func:`cca`.

    Notes
    -----
    This definition centres the activations throughout: the directions and the weights use
    :math:`Z = X_c`. The reference code of Morcos et al. (google/svcca) adds the neuron means
    back before weighting and weights against the uncentred activations; on ReLU activations
    (positive means) that moves the value by about 0.01-0.03, so values from that code are
    not reproduced exactly. Centring makes the result independent of the signs of the
    singular vectors and of a translation of the data.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. Without ``epsilon``, both need at most
        ``n - 1`` kept columns and full column rank after centring; with it, the narrower one
        still needs at most ``n - 1``.
    epsilon : float >= 0
        Ridge regularisation of the normalised within-set covariance blocks (0: none).

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a ``DegenerateDataWarning`` if ``X`` or ``Y`` has
        identical rows.

    Raises
    ------
    ValueError
        As :func:`cca`: too many columns or rank-deficient centred data (without
        ``epsilon``).

    References
    ----------
    Morcos, Raghu, Bengio (2018), NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 4))
    >>> round(cg.pwcca(X, 3 * X[:, ::-1] - 2), 10)   # scaled, permuted, translated copy
    1.0
    >>> x = np.array([[1.0], [2.0], [3.0], [4.0]]); y = np.array([[1.0], [3.0], [2.0], [4.0]])
    >>> round(cg.pwcca(x, y), 10)                     # one column: |Pearson correlation|
    0.8
    """
    epsilon = _check_epsilon(epsilon)
    X, Y = check_pair(X, Y)
    Xk, Yk = _drop_dead((X, Y), ("X", "Y"), "pwcca")
    if Xk is not None and Yk is not None:
        x_weights = Xk.shape[1] <= Yk.shape[1]
    else:
        x_weights = True
    bx = _prepare_side(Xk, "X", "pwcca", x_weights, epsilon)
    by = _prepare_side(Yk, "Y", "pwcca", not x_weights, epsilon)
    if bx is None or by is None:
        return math.nan
    if epsilon > 0.0:
        _check_pw_weighting_width(bx, by)
    _warn_overfit([("X and Y", bx.width, by.width, X.shape[0])], "pwcca", "p1 + p2")
    return _pw_pair(bx, by)[0]
