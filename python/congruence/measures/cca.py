r"""CCA-based measures: mean CCA, SVCCA and PWCCA (MEASURES.md section 2).

All three reduce to the canonical correlations of two centred representations: the singular
values of :math:`Q_x^T Q_y`, where :math:`Q_x, Q_y` are orthonormal bases of the column spaces
of :math:`X_c, Y_c` (Hotelling 1936). The numerics use NumPy and SciPy (LAPACK): QR, SVD
(``gesdd``, retried with ``gesvd`` if it raises LinAlgError), ``eigh`` and Cholesky.

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

``compare_layers`` uses the ``_*_batch`` functions: each layer is centred and its Gram block
factorised (or its QR / SVD taken) once, so a pair costs one :math:`p_1 \times p_2` product
plus :math:`p \times p` work: ``L1 + L2`` preparations instead of ``2 L1 L2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.linalg as _la

from congruence._registry import register, set_batch
from congruence._validation import check_choice, check_number, check_pair

__all__ = ["cca", "svcca", "pwcca"]

_EPS = float(np.finfo(np.float64).eps)
#: A Gram block is used (instead of QR / SVD of the n x p matrix) only if its condition
#: number is certainly below _COND_MAX (see the module docstring) ...
_COND_MAX = 1e8
#: ... and its trace lies in this range (no overflow, underflow or subnormal entries).
_GRAM_RANGE = (1e-250, 1e250)
_STATISTICS = ("mean", "r2")

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


# --------------------------------------------------------------------------------------------
# LAPACK wrappers
# --------------------------------------------------------------------------------------------


def _svd(a: np.ndarray, compute_uv: bool = True):
    """Thin SVD (or singular values) with gesdd, falling back to gesvd if gesdd fails."""
    try:
        return _la.svd(a, full_matrices=False, compute_uv=compute_uv, check_finite=False,
                       lapack_driver="gesdd")
    except np.linalg.LinAlgError:
        return _la.svd(a, full_matrices=False, compute_uv=compute_uv, check_finite=False,
                       lapack_driver="gesvd")


def _centre(X: np.ndarray) -> np.ndarray:
    """``X`` minus its column means, in float64; a constant column becomes exactly zero.

    (Subtracting a rounded mean would leave ~1e-17 noise in a constant column, which a rank
    test relative to the other columns might count as a direction.)
    """
    mean = X.mean(axis=0, dtype=np.float64)
    const = X.max(axis=0) == X.min(axis=0)
    if const.any():
        mean[const] = X[0, const]
    return np.subtract(X, mean, dtype=np.float64)


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
        _la.cholesky(shifted, lower=True, overwrite_a=True, check_finite=False)
        return _la.cholesky(G, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None


def _numerical_rank(s: np.ndarray, n: int, p: int) -> int:
    """Number of singular values above ``s_max * max(n, p) * eps`` (MEASURES.md 2.1)."""
    if s.size == 0 or s[0] <= 0.0:
        return 0
    return int(np.count_nonzero(s > s[0] * max(n, p) * _EPS))


# --------------------------------------------------------------------------------------------
# Prepared layers
# --------------------------------------------------------------------------------------------


@dataclass
class _Basis:
    """An orthonormal basis ``A @ W`` of a column space, with what PWCCA needs.

    ``A`` is ``(n, p)`` (the centred matrix, or ``Q`` / ``U`` of a decomposition). The
    whitening ``W`` is either ``None`` (``A`` is orthonormal), the lower Cholesky factor
    ``L`` of ``A^T A`` (``W = L^{-T}``) or a dense ``(p, k)`` matrix.

    On PWCCA's weighting side, ``polar`` and ``rootp`` describe the centred matrix in the
    basis: ``Xc (Xc^T Xc)^{-1/2} = (A W) @ polar`` (``polar`` orthogonal) and
    ``Xc = (A W) @ rootp @ polar`` (``rootp`` symmetric; a 1-D array means a diagonal).
    """

    A: np.ndarray
    W: Optional[np.ndarray] = None
    chol: Optional[np.ndarray] = None
    polar: Optional[np.ndarray] = None
    rootp: Optional[np.ndarray] = None

    @property
    def width(self) -> int:
        if self.W is not None:
            return self.W.shape[1]
        return self.A.shape[1]

    def left(self, C: np.ndarray) -> np.ndarray:
        """``W^T C``."""
        if self.chol is not None:
            return _la.solve_triangular(self.chol, C, lower=True, check_finite=False)
        if self.W is not None:
            return self.W.T @ C
        return C

    def right(self, C: np.ndarray) -> np.ndarray:
        """``C W``."""
        if self.chol is not None:
            return _la.solve_triangular(self.chol, C.T, lower=True, check_finite=False).T
        if self.W is not None:
            return C @ self.W
        return C


def _cross(bx: _Basis, by: _Basis) -> np.ndarray:
    """``(A_x W_x)^T (A_y W_y)``: its singular values are the canonical correlations."""
    return by.right(bx.left(bx.A.T @ by.A))


def _check_width(X: np.ndarray, name: str, measure: str) -> None:
    n, p = X.shape
    if p > n - 1:
        raise ValueError(
            f"{name} has shape {X.shape}: {measure} needs p <= n-1 = {n - 1} columns (a "
            f"centred matrix of {n} rows has rank at most n-1, so with more columns the "
            "canonical correlations are not defined); use svcca (which keeps the top "
            "principal components) or cka for wide representations, or reduce the width"
        )


def _rank_error(name: str, shape: tuple, rank: int) -> ValueError:
    return ValueError(
        f"{name} of shape {shape} does not have full column rank after centring: numerical "
        f"rank {rank} < {shape[1]} columns (tolerance s_max * max(n, p) * eps); it has "
        "constant or collinear columns. Drop the constant/collinear columns (keep a linearly "
        "independent subset) or use svcca, which keeps only the leading principal components"
    )


def _prepare_full(X: np.ndarray, name: str, symmetric: bool) -> _Basis:
    """Centre ``X`` and build an orthonormal basis of its column space (cca / pwcca).

    ``symmetric=True`` also provides ``polar`` and ``rootp`` (PWCCA's weighting side).
    Raises ValueError if the centred matrix is numerically rank deficient.
    """
    n, p = X.shape
    Xc = _centre(X)
    G = Xc.T @ Xc
    if symmetric:
        lam, V = _la.eigh(G, check_finite=False, driver="evd") if _in_range(G) else (None, None)
        if lam is not None and _well_conditioned(float(lam[0]), float(lam[-1])):
            # Xc = U diag(sq) V^T with U = Xc V / sq:  polar = V^T, rootp = diag(sq).
            sq = np.sqrt(lam)
            return _Basis(A=Xc, W=V / sq, polar=np.ascontiguousarray(V.T), rootp=sq)
    else:
        L = _guarded_cholesky(G)
        if L is not None:
            return _Basis(A=Xc, chol=L)
    # QR route: ill-conditioned (or rank-deficient) Gram block.
    Q, R = _la.qr(Xc, mode="economic", check_finite=False)
    if symmetric:
        Ur, s, Vhr = _svd(R)
    else:
        s = _svd(R, compute_uv=False)
    rank = _numerical_rank(s, n, p)
    if rank < p:
        raise _rank_error(name, X.shape, rank)
    if symmetric:
        # R = Ur S Vhr  =>  polar = R (R^T R)^{-1/2} = Ur Vhr, rootp = R polar^T = Ur S Ur^T.
        return _Basis(A=Q, polar=Ur @ Vhr, rootp=(Ur * s) @ Ur.T)
    return _Basis(A=Q)


def _prepare_sv(X: np.ndarray, variance: float) -> Optional[_Basis]:
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
    G = Xc @ Xc.T if wide else Xc.T @ Xc
    k = 0
    if _in_range(G):
        lam, V = _la.eigh(G, check_finite=False, driver="evd")
        lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
        k = _kept_gram_components(lam, variance)
    if k:
        if wide:  # Xc Xc^T = U S^2 U^T: V holds the left singular vectors themselves
            return _Basis(A=np.ascontiguousarray(V[:, :k]))
        # Xc^T Xc = V S^2 V^T: the basis U_k = Xc V_k / s_k is kept implicit.
        return _Basis(A=Xc, W=V[:, :k] / np.sqrt(lam[:k]))
    U, s, _ = _svd(Xc)
    if variance >= 1.0:
        k = _numerical_rank(s, n, p)
    else:
        k = _components(s * s, variance)
    return _Basis(A=np.ascontiguousarray(U[:, :k]))


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


def _correlations(bx: _Basis, by: _Basis) -> np.ndarray:
    """Canonical correlations (descending, clipped to [0, 1])."""
    return np.minimum(_svd(_cross(bx, by), compute_uv=False), 1.0)


def _cca_value(bx: _Basis, by: _Basis, statistic: str) -> float:
    """Mean canonical correlation, or mean squared one: ``||Qx^T Qy||_F^2 / m`` needs no SVD."""
    if statistic == "r2":
        M = _cross(bx, by)
        return min(float(np.vdot(M, M)) / min(M.shape), 1.0)
    return float(np.mean(_correlations(bx, by)))


def _pw_value(z: _Basis, Wb: np.ndarray, rho: np.ndarray) -> float:
    """PWCCA steps 3-7 from the weighting side ``z`` and its singular vectors in basis
    coordinates ``Wb`` (columns ordered like ``rho``).

    The singular vectors of ``Sxx^{-1/2} Sxy Syy^{-1/2}`` are ``W = polar^T Wb``; the
    directions ``Dir = Zc W = (A W_z) (rootp Wb)`` have the R factor of the small matrix
    ``rootp Wb`` (``A W_z`` is orthonormal), and ``P^T Zc = R W^T = R Wb^T polar``.
    """
    T = z.rootp[:, None] * Wb if z.rootp.ndim == 1 else z.rootp @ Wb
    R = _la.qr(T, mode="r", check_finite=False)[0]
    a = np.abs((R @ Wb.T) @ z.polar).sum(axis=1)
    return float(np.dot(a / a.sum(), rho))


def _pw_pair(bx: _Basis, by: _Basis, both: bool = False) -> tuple[float, float]:
    """``(pwcca(X, Y), pwcca(Y, X))`` from one SVD; the second only if ``both`` (then both
    bases need ``polar`` and ``rootp``), else it is nan."""
    U, s, Vh = _svd(_cross(bx, by))
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


@register(
    family="cca",
    kind="similarity",
    summary="Mean canonical correlation, or mean squared CCA (Yanai's R^2)",
    references=(_REF_HOTELLING, _REF_KORNBLITH, _REF_SURVEY),
    symmetric=True,
    invariances=(
        "orthogonal", "isotropic_scaling", "invertible_linear", "translation", "permutation"
    ),
    bounds=(0.0, 1.0),
    min_rows=2,
    variants=({}, {"statistic": "r2"}),
)
def cca(X, Y, statistic: str = "mean") -> float:
    r"""Mean (squared) canonical correlation between two representations of the same inputs.

    With the columns centred, the canonical correlations
    :math:`1 \ge \rho_1 \ge \dots \ge \rho_m \ge 0`, :math:`m = \min(p_1, p_2)`, are the
    singular values of :math:`S_{xx}^{-1/2} S_{xy} S_{yy}^{-1/2}`, i.e. of
    :math:`Q_x^TQ_y` for orthonormal bases :math:`Q_x, Q_y` of the column spaces of
    :math:`X_c, Y_c` (Hotelling 1936). Then

    .. math::

        \bar\rho = \frac1m \sum_{i=1}^m \rho_i \quad(\texttt{"mean"}), \qquad
        R^2_{CCA} = \frac1m \sum_{i=1}^m \rho_i^2 \quad(\texttt{"r2"}).

    All :math:`m` coefficients are used. When :math:`p_1 + p_2 > n - 1`, at least
    :math:`p_1 + p_2 - (n-1)` of them are exactly 1 (over-fitting); this is not an error.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. Both need ``p <= n - 1`` and full
        column rank after centring.
    statistic : {"mean", "r2"}
        Mean canonical correlation, or mean squared canonical correlation (Yanai's
        generalized coefficient of determination, Kornblith et al. 2019).

    Returns
    -------
    float
        Similarity in [0, 1]. Never ``nan``: invalid data raise instead.

    Raises
    ------
    ValueError
        If ``p1 > n - 1`` or ``p2 > n - 1``, or if a centred matrix is numerically rank
        deficient (singular values below ``s_max * max(n, p) * eps``: constant or
        collinear columns); use :func:`svcca` or ``cka`` for such data.

    References
    ----------
    Hotelling (1936), Biometrika; Kornblith et al. (2019), ICML.

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
    """
    statistic = check_choice("statistic", statistic, _STATISTICS)
    X, Y = check_pair(X, Y)
    _check_width(X, "X", "cca")
    _check_width(Y, "Y", "cca")
    bx = _prepare_full(X, "X", symmetric=False)
    by = _prepare_full(Y, "Y", symmetric=False)
    return _cca_value(bx, by, statistic)


@register(
    family="cca",
    kind="similarity",
    summary="Singular vector CCA: mean CCA of the top principal components (SVCCA)",
    references=(_REF_RAGHU, _REF_SURVEY),
    symmetric=True,
    # variance=1 keeps the whole column space, where SVCCA is the mean CCA, which is
    # invariant to invertible linear maps.
    invariances=lambda p: (
        ("orthogonal", "isotropic_scaling", "translation", "permutation")
        + (("invertible_linear",) if p["variance"] == 1 else ())
    ),
    bounds=(0.0, 1.0),
    min_rows=2,
    variants=({}, {"variance": 0.5}, {"variance": 1.0}),
)
def svcca(X, Y, variance: float = 0.99) -> float:
    r"""Singular vector CCA: the mean CCA of the leading principal components.

    1. Centre the columns and take the thin SVD :math:`X_c = U S V^T`.
    2. :math:`k_X` is the smallest :math:`k` with
       :math:`\sum_{i\le k} s_i^2 / \sum_i s_i^2 \ge \text{variance}` (for ``variance=1``,
       the numerical rank of :math:`X_c`, tolerance :math:`s_{max}\max(n,p)\,\varepsilon`).
    3. :math:`X' = U_{:, :k_X} S_{:k_X}` (the principal-component scores); :math:`Y'` alike.
    4. .. math::

           \mathrm{SVCCA} = \frac{1}{\min(k_X, k_Y)} \sum_{i=1}^{\min(k_X, k_Y)} \rho_i(X', Y').

    No ridge is added. If :math:`k_X + k_Y > n - 1`, correlations become trivially 1.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example; ``p`` may exceed ``n``.
    variance : float in (0, 1]
        Fraction of the variance the kept components explain.

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` if ``X`` or ``Y`` is constant (its centred matrix is
        all zeros).

    Raises
    ------
    ValueError
        If ``variance`` is not in (0, 1].

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
    >>> cg.svcca(X, np.ones((200, 2)))           # a constant representation
    nan
    """
    variance = check_number("variance", variance, low=0.0, high=1.0, low_open=True)
    X, Y = check_pair(X, Y)
    bx = _prepare_sv(X, variance)
    by = _prepare_sv(Y, variance)
    if bx is None or by is None:
        return math.nan
    return float(np.mean(_correlations(bx, by)))


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
)
def pwcca(X, Y) -> float:
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
    are not unique, so the value depends on the LAPACK routine's choice among them.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. Both need ``p <= n - 1`` and full
        column rank after centring.

    Returns
    -------
    float
        Similarity in [0, 1]. Never ``nan``: invalid data raise instead.

    Raises
    ------
    ValueError
        As :func:`cca`: ``p > n - 1`` or rank-deficient centred data.

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
    X, Y = check_pair(X, Y)
    _check_width(X, "X", "pwcca")
    _check_width(Y, "Y", "pwcca")
    x_weights = X.shape[1] <= Y.shape[1]
    bx = _prepare_full(X, "X", symmetric=x_weights)
    by = _prepare_full(Y, "Y", symmetric=not x_weights)
    return _pw_pair(bx, by)[0]


# --------------------------------------------------------------------------------------------
# compare_layers: each layer prepared once
# --------------------------------------------------------------------------------------------


def _prepare_layers(prepare, a, b):
    pa = [prepare(x, f"a[{i}]") for i, x in enumerate(a)]
    pb = None if b is None else [prepare(y, f"b[{j}]") for j, y in enumerate(b)]
    return pa, pb


def _matrix(pa, pb, value, symmetric: bool = True) -> np.ndarray:
    """``value(pa[i], pb[j])`` for all pairs; with ``pb=None`` each unordered pair once."""
    if pb is not None:
        return np.array([[value(x, y) for y in pb] for x in pa], dtype=np.float64)
    L = len(pa)
    out = np.empty((L, L))
    for i in range(L):
        for j in range(i, L):
            out[i, j] = out[j, i] = value(pa[i], pa[j])
    return out


def _cca_batch(a: Sequence[np.ndarray], b: Optional[Sequence[np.ndarray]],
               statistic: str = "mean") -> np.ndarray:
    statistic = check_choice("statistic", statistic, _STATISTICS)

    def prepare(x, name):
        _check_width(x, name, "cca")
        return _prepare_full(x, name, symmetric=False)

    pa, pb = _prepare_layers(prepare, a, b)
    return _matrix(pa, pb, lambda x, y: _cca_value(x, y, statistic))


def _svcca_batch(a: Sequence[np.ndarray], b: Optional[Sequence[np.ndarray]],
                 variance: float = 0.99) -> np.ndarray:
    variance = check_number("variance", variance, low=0.0, high=1.0, low_open=True)
    pa, pb = _prepare_layers(lambda x, name: _prepare_sv(x, variance), a, b)

    def value(x, y):
        if x is None or y is None:
            return math.nan
        return float(np.mean(_correlations(x, y)))

    return _matrix(pa, pb, value)


def _pwcca_batch(a: Sequence[np.ndarray], b: Optional[Sequence[np.ndarray]]) -> np.ndarray:
    def prepare(x, name):
        _check_width(x, name, "pwcca")
        return _prepare_full(x, name, symmetric=True)

    pa, pb = _prepare_layers(prepare, a, b)
    if pb is not None:
        return np.array([[_pw_pair(x, y)[0] for y in pb] for x in pa], dtype=np.float64)
    L = len(pa)
    out = np.empty((L, L))
    for i in range(L):
        for j in range(i, L):
            out[i, j], out[j, i] = _pw_pair(pa[i], pa[j], both=True)
    return out


set_batch("cca", _cca_batch)
set_batch("svcca", _svcca_batch)
set_batch("pwcca", _pwcca_batch)
