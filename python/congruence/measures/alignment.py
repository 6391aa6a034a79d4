"""Alignment-based measures: Procrustes distances, shape metrics, regression, matching (MEASURES.md 3).

All of them reduce to small ``p1 x p2`` problems after one pass over the data: the cross
product ``A^T B`` (one GEMM), then a singular value / eigenvalue problem or a linear assignment
on that small matrix. Nothing of size ``n x n`` is ever formed.

Nuclear norms ``||A^T B||_*`` are computed from the eigenvalues of the smaller Gram matrix
``M^T M`` of ``M = A^T B`` when an a-posteriori error bound shows that this loses no accuracy
that matters (relative error bound <= 1e-10, see :func:`_nuclear_norm_eig`), and from the
singular values of ``M`` otherwise (rank-deficient or ill-conditioned ``M``).

Zero padding (MEASURES.md 0.3) is never materialised: padded zero columns add zero rows or
columns to ``A^T B`` and leave its singular values, the Frobenius norms and the optimal
assignments unchanged; where padding does matter (the eigenvalue clip of
:func:`angular_shape_metric`), it is accounted for explicitly.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment

from congruence._registry import register, set_batch
from congruence._validation import check_bool, check_number, check_pair

__all__ = [
    "orthogonal_procrustes",
    "procrustes_size_and_shape",
    "angular_shape_metric",
    "permutation_procrustes",
    "linear_regression",
    "aligned_cosine",
    "correlation_match",
]

_EPS = float(np.finfo(np.float64).eps)
#: Absolute eigenvalue clip of the partial whitening (MEASURES.md 3.3, reproduced exactly).
_EIG_CLIP = 1e-7
#: ``alpha`` above this value means "no whitening" (MEASURES.md 3.3).
_ALPHA_NO_WHITENING = 1.0 - 1e-7
#: Below this size the singular values are always computed directly (cheap anyway).
_EIG_ROUTE_MIN_K = 48
#: Largest accepted relative error bound of the eigenvalue route of the nuclear norm.
_EIG_ROUTE_RTOL = 1e-10
#: Whitening through ``eigh(Xc^T Xc)`` only when ``lam_min >= this * lam_max`` (else an SVD of Xc).
_WHITEN_EIGH_MIN_RATIO = 1e-6

_REF_SCHOENEMANN = "Schönemann (1966). A generalized solution of the orthogonal Procrustes problem. Psychometrika."
_REF_DING = "Ding, Denain, Steinhardt (2021). Grounding Representation Similarity with Statistical Testing. NeurIPS."
_REF_WILLIAMS = "Williams, Kunz, Kornblith, Linderman (2021). Generalized Shape Metrics on Neural Representations. NeurIPS."
_REF_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network Models: "
    "A Survey of Functional and Representational Measures. ACM Computing Surveys."
)
_REF_KORNBLITH = "Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations Revisited. ICML."
_REF_HAMILTON = (
    "Hamilton, Leskovec, Jurafsky (2016a). Diachronic Word Embeddings Reveal Statistical Laws of "
    "Semantic Change. ACL."
)
_REF_LI = (
    "Li, Yosinski, Clune, Lipson, Hopcroft (2016). Convergent Learning: Do different neural "
    "networks learn the same representations? ICLR."
)


# --------------------------------------------------------------------------------------------
# Small dense linear algebra through SciPy
# --------------------------------------------------------------------------------------------


def _svdvals(M: np.ndarray) -> np.ndarray:
    """Singular values (gesdd, falling back to the slower but more robust gesvd)."""
    try:
        return scipy.linalg.svd(M, compute_uv=False, check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(M, compute_uv=False, check_finite=False, lapack_driver="gesvd")


def _svd(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``M = U diag(s) Vt`` (gesdd, falling back to gesvd)."""
    try:
        return scipy.linalg.svd(M, full_matrices=False, check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(M, full_matrices=False, check_finite=False, lapack_driver="gesvd")


def _nuclear_norm_eig(M: np.ndarray) -> Optional[float]:
    """``||M||_*`` as ``sum_i sqrt(lam_i(G))`` with ``G`` the smaller of ``M^T M``, ``M M^T``.

    A symmetric eigenvalue problem of size ``k = min(p1, p2)`` costs about half of an SVD of
    ``M``. Squaring loses the small singular values, so the result is returned only when it
    is accurate: each computed eigenvalue is within ``delta = (p1 + p2) eps lam_max`` of the
    exact one (the forming of ``G`` plus a backward-stable eigensolver; a pessimistic bound,
    real errors are ~1e3 times smaller), so ``sigma_i`` lies between
    ``sqrt(max(lam_i - delta, 0))`` and ``sqrt(lam_i + delta)``. If the sum of these interval
    widths exceeds ``1e-10`` times the result, ``None`` is returned (the caller then takes the
    singular values): this happens for rank-deficient or ill-conditioned ``M``.
    """
    p1, p2 = M.shape
    G = M.T @ M if p1 >= p2 else M @ M.T
    try:
        lam = scipy.linalg.eigh(G, eigvals_only=True, check_finite=False, driver="evr")
    except np.linalg.LinAlgError:
        return None
    lam_max = float(lam[-1])
    if not lam_max > 0.0:
        return None
    delta = (p1 + p2) * _EPS * lam_max
    lam0 = np.maximum(lam, 0.0)
    value = float(np.sqrt(lam0).sum())
    width = float((np.sqrt(lam0 + delta) - np.sqrt(np.maximum(lam - delta, 0.0))).sum())
    if width > _EIG_ROUTE_RTOL * value:
        return None
    return value


def _nuclear_norm(M: np.ndarray, rank_bound: Optional[int] = None) -> float:
    """``||M||_*``, the sum of the singular values of the small matrix ``M``.

    ``rank_bound``: an upper bound of ``rank(M)`` known from the shapes (``n - 1`` for
    products of centred ``n``-row matrices); below ``min(M.shape)`` the eigenvalue route is
    skipped, since it would be rejected anyway.
    """
    k = min(M.shape)
    if k >= _EIG_ROUTE_MIN_K and (rank_bound is None or rank_bound >= k):
        value = _nuclear_norm_eig(M)
        if value is not None:
            return value
    return float(_svdvals(M).sum())


# --------------------------------------------------------------------------------------------
# Per-representation preparation (shared by the pairwise functions and compare_layers)
# --------------------------------------------------------------------------------------------


class _Centred(NamedTuple):
    mat: np.ndarray  # Xc (n, p), float64; constant columns exactly zero
    colsq: np.ndarray  # squared norms of the columns of Xc
    sq: float  # ||Xc||_F^2


def _centre(A: np.ndarray) -> _Centred:
    """Column-centred float64 copy of ``A`` (one pass), with its column norms.

    A constant column must centre to exactly zero (the nan cases and the zero-variance rule
    of correlation_match depend on it), but ``x - mean(x)`` of a constant column can be a
    round-off residue (``0.1`` repeated). Such a residue is at most ``n eps |mean|`` per entry
    (sequential summation), so only columns below that level are checked for constancy.
    """
    n = A.shape[0]
    mean = A.mean(axis=0, dtype=np.float64)
    Ac = np.subtract(A, mean, dtype=np.float64)
    colsq = np.einsum("ij,ij->j", Ac, Ac)
    suspect = np.flatnonzero(colsq <= n * (2.0 * n * _EPS * np.abs(mean)) ** 2)
    for j in suspect:
        col = A[:, j]
        if col.min() == col.max():
            Ac[:, j] = 0.0
            colsq[j] = 0.0
    return _Centred(Ac, colsq, float(colsq.sum()))


def _f64(A: np.ndarray) -> np.ndarray:
    return np.asarray(A, dtype=np.float64)


def _prepare_pair(prep: Callable[[np.ndarray], Any], X: np.ndarray, Y: np.ndarray) -> tuple[Any, Any]:
    """``(prep(X), prep(Y))``; the same array passed twice is prepared once, exactly as a
    layer compared with itself in :func:`congruence.compare_layers` (so that both give the
    same round-off: ``u.T @ u`` is a symmetric product, ``u.T @ copy(u)`` a general one)."""
    u = prep(X)
    return u, (u if Y is X else prep(Y))


def _layer_matrix(
    pa: Sequence[Any],
    pb: Optional[Sequence[Any]],
    pair: Callable[[Any, Any], float],
    symmetric: bool = True,
) -> np.ndarray:
    """``values[i, j] = pair(pa[i], pb[j])`` from prepared layers; ``pb=None``: ``pa`` with
    itself, each unordered pair computed once when ``symmetric``."""
    cols = pa if pb is None else pb
    out = np.empty((len(pa), len(cols)))
    for i, u in enumerate(pa):
        for j, v in enumerate(cols):
            if pb is None and symmetric and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = pair(u, v)
    return out


# --------------------------------------------------------------------------------------------
# 3.1 / 3.2  Orthogonal Procrustes
# --------------------------------------------------------------------------------------------


def _centred_nuclear(u: _Centred, v: _Centred) -> float:
    n = u.mat.shape[0]
    return _nuclear_norm(u.mat.T @ v.mat, rank_bound=n - 1)


def _orthogonal_procrustes_pair(u: _Centred, v: _Centred) -> float:
    if u.sq == 0.0 or v.sq == 0.0:
        return math.nan
    s = _centred_nuclear(u, v) / math.sqrt(u.sq * v.sq)
    return math.sqrt(max(0.0, 2.0 - 2.0 * s))


def _size_and_shape_pair(u: _Centred, v: _Centred) -> float:
    return math.sqrt(max(0.0, u.sq + v.sq - 2.0 * _centred_nuclear(u, v)))


@register(
    family="alignment",
    kind="distance",
    summary="Orthogonal Procrustes distance between centred, unit-Frobenius-norm representations",
    references=(_REF_SCHOENEMANN, _REF_DING, _REF_WILLIAMS),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    bounds=(0.0, math.sqrt(2.0)),
)
def orthogonal_procrustes(X, Y) -> float:
    r"""Orthogonal Procrustes distance (Schönemann 1966; Ding et al. 2021).

    With :math:`A = X_c / \lVert X_c\rVert_F`, :math:`B = Y_c / \lVert Y_c\rVert_F` (column
    centred, zero-padded to equal width),

    .. math::

        d(X, Y) = \min_{R^T R = I} \lVert A R - B \rVert_F
                = \sqrt{\max\!\big(0,\; 2 - 2\,\lVert A^T B\rVert_*\big)},

    :math:`\lVert\cdot\rVert_*` the nuclear norm (sum of singular values).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example; ``p1 != p2`` is allowed (zero padding).

    Returns
    -------
    float
        Distance in :math:`[0, \sqrt 2]`, a metric; ``nan`` if :math:`X_c` or :math:`Y_c` is
        all zeros (a constant representation). Near 0 the square root amplifies round-off:
        ``d(X, X)`` is about ``1e-8``, not exactly 0.

    References
    ----------
    Schönemann (1966), Psychometrika; Ding, Denain, Steinhardt (2021), NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> R = np.array([[0.0, -1.0], [1.0, 0.0]])          # a rotation by 90 degrees
    >>> cg.orthogonal_procrustes(X, 5 * X @ R + 2) < 1e-7
    True
    >>> round(cg.orthogonal_procrustes(X, X[:, :1]), 6)  # sqrt(2 - 2 / sqrt(2))
    0.765367
    """
    X, Y = check_pair(X, Y)
    return _orthogonal_procrustes_pair(*_prepare_pair(_centre, X, Y))


@register(
    family="alignment",
    kind="distance",
    summary="Procrustes size-and-shape distance (rotation metric on centred, unnormalised data)",
    references=(_REF_WILLIAMS, _REF_SCHOENEMANN),
    symmetric=True,
    invariances=("orthogonal", "translation", "permutation"),
    bounds=(0.0, math.inf),
)
def procrustes_size_and_shape(X, Y) -> float:
    r"""Procrustes size-and-shape distance (Williams et al. 2021).

    :func:`orthogonal_procrustes` without the normalisation: on the column-centred,
    zero-padded representations,

    .. math::

        d(X, Y) = \min_{R^T R = I} \lVert X_c R - Y_c \rVert_F
                = \sqrt{\max\!\big(0,\; \lVert X_c\rVert_F^2 + \lVert Y_c\rVert_F^2
                  - 2\,\lVert X_c^T Y_c\rVert_*\big)}.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Distance in :math:`[0, \infty)`, a metric; it scales with the data (not invariant to
        scaling). Never ``nan``: if one input is constant the value is the Frobenius norm of
        the other, centred.

    References
    ----------
    Williams, Kunz, Kornblith, Linderman (2021), NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])   # ||Xc||_F = 2
    >>> cg.procrustes_size_and_shape(X, np.ones((4, 3)))   # a constant Y: ||Xc||_F
    2.0
    >>> cg.procrustes_size_and_shape(X, 2 * X)   # sqrt(4 + 16 - 2 * 8): scale is not ignored
    2.0
    """
    X, Y = check_pair(X, Y)
    return _size_and_shape_pair(*_prepare_pair(_centre, X, Y))


# --------------------------------------------------------------------------------------------
# 3.3  Angular shape metric with partial whitening
# --------------------------------------------------------------------------------------------


class _Whitened(NamedTuple):
    mat: Optional[np.ndarray]  # P with Xw^T Yw = V_x P_x^T P_y V_y^T (None: constant input)
    sq: float  # ||Xw||_F^2 = ||P||_F^2 (without the variance-preserving factor)


def _whiten(A: np.ndarray, alpha: float) -> _Whitened:
    """Partial whitening of MEASURES.md 3.3, step 2, up to an orthogonal factor and a scale.

    Returns ``P`` (``n x r``) with ``Xw = P W^T`` for a matrix ``W`` with orthonormal columns,
    so that ``||Xw^T Yw||_* = ||P_x^T P_y||_*`` and ``||Xw||_F = ||P||_F``:

    * ``alpha > 1 - 1e-7``: ``P = Xc`` (no whitening).
    * otherwise, with ``Xc^T Xc = V diag(lam) V^T``, ``lam <- max(lam, 1e-7)`` and
      ``d = alpha + (1 - alpha) lam^(-1/2)``: ``P = Xc V diag(d)`` (``W = V``). The
      eigendecomposition is ``eigh(Xc^T Xc)`` when it is well conditioned
      (``lam_min >= 1e-6 lam_max``, ``p <= n - 1``), else it is taken from the thin SVD
      ``Xc = U diag(s) V^T`` (``lam = s^2``, ``Xc v_i = s_i u_i`` exactly, so ``P = U diag(s d)``):
      directions in the null space of ``Xc`` (``p > n - 1``, collinear or padded columns)
      have ``Xc v = 0`` and contribute nothing whatever their clipped ``lam`` is, whereas
      with ``eigh`` they would carry round-off of order ``sqrt(eps) ||Xc||`` amplified by
      ``d ~ 3162``.

    Zero-padded columns only add null directions (``lam = 0``, clipped to ``1e-7``), so they
    change nothing here. The variance-preserving factor ``sqrt(sum(lam) / nv)`` of step 2,
    the only place where padding enters, multiplies ``Xw`` by a positive constant, which
    cancels in the ratio ``||Xw^T Yw||_* / (||Xw||_F ||Yw||_F)``; it is therefore not applied.
    """
    c = _centre(A)
    if c.sq == 0.0:
        return _Whitened(None, 0.0)
    if alpha > _ALPHA_NO_WHITENING:
        return _Whitened(c.mat, c.sq)
    Xc = c.mat
    n, p = Xc.shape
    P = None
    if p <= n - 1:
        try:
            lam, V = scipy.linalg.eigh(Xc.T @ Xc, check_finite=False, driver="evd")
        except np.linalg.LinAlgError:
            lam = None
        if lam is not None and lam[0] >= _WHITEN_EIGH_MIN_RATIO * lam[-1] > 0.0:
            d = alpha + (1.0 - alpha) / np.sqrt(np.maximum(lam, _EIG_CLIP))
            P = (Xc @ V) * d
    if P is None:
        U, s, _ = _svd(Xc)
        d = alpha + (1.0 - alpha) / np.sqrt(np.maximum(s * s, _EIG_CLIP))
        P = U * (s * d)
    return _Whitened(P, float(np.einsum("ij,ij->", P, P)))


def _angular_pair(u: _Whitened, v: _Whitened) -> float:
    if u.mat is None or v.mat is None or u.sq == 0.0 or v.sq == 0.0:
        return math.nan
    n = u.mat.shape[0]
    r = _nuclear_norm(u.mat.T @ v.mat, rank_bound=n - 1) / math.sqrt(u.sq * v.sq)
    return float(math.acos(min(1.0, max(-1.0, r))))


def _check_alpha(alpha: Any) -> float:
    return check_number("alpha", alpha, low=0.0, high=1.0)


def _angular_invariances(params) -> tuple[str, ...]:
    alpha = params["alpha"]
    base = ("orthogonal", "translation", "permutation")
    if alpha == 0.0:
        return base + ("isotropic_scaling", "invertible_linear")
    if alpha > _ALPHA_NO_WHITENING:
        return base + ("isotropic_scaling",)
    return base  # 0 < alpha < 1: the whitening mixes scales, see the Notes of the docstring


@register(
    family="alignment",
    kind="distance",
    summary="Angular generalized shape metric with partial whitening (alpha=1 rotations, 0 linear maps)",
    references=(_REF_WILLIAMS,),
    symmetric=True,
    invariances=_angular_invariances,
    bounds=(0.0, math.pi / 2),
    variants=({}, {"alpha": 0.0}, {"alpha": 0.5}),
)
def angular_shape_metric(X, Y, alpha: float = 1.0) -> float:
    r"""Angular generalized shape metric (Williams, Kunz, Kornblith, Linderman 2021).

    Both inputs are zero-padded to width :math:`p = \max(p_1, p_2)` and column centred, then
    partially whitened: with :math:`X_c^T X_c = V \operatorname{diag}(\lambda) V^T`,
    :math:`\lambda_i \leftarrow \max(\lambda_i, 10^{-7})` (absolute clip),

    .. math::

        X_w = X_c\, V \operatorname{diag}(d)\, V^T, \qquad
        d_i = \alpha + (1 - \alpha)\,\lambda_i^{-1/2}

    (times the variance-preserving constant :math:`\sqrt{\sum\lambda / \sum(\alpha^2\lambda_i
    + 2\alpha(1-\alpha)\lambda_i^{1/2} + (1-\alpha)^2)}`, which cancels below), no whitening
    when :math:`\alpha > 1 - 10^{-7}`; same for :math:`Y`. Then

    .. math::

        \theta = \arccos \frac{\lVert X_w^T Y_w \rVert_*}{\lVert X_w\rVert_F \lVert Y_w\rVert_F}.

    ``alpha=1`` allows only rotations, :math:`\theta = \arccos` of the normalized Bures
    similarity; ``alpha=0`` allows any invertible linear map: for :math:`p \le n - 1` and full
    rank, :math:`\cos\theta = \sum_i \rho_i / \sqrt{p_1 p_2}` with :math:`\rho_i` the
    canonical correlations, the mean canonical correlation when :math:`p_1 = p_2`.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    alpha : float in [0, 1]
        Regularisation of the whitening (1: none, 0: full whitening).

    Returns
    -------
    float
        Angle in :math:`[0, \pi/2]`, a metric on shapes; ``nan`` if a centred input is all
        zeros.

    Raises
    ------
    ValueError
        If ``alpha`` is not in [0, 1].

    Notes
    -----
    The ``1e-7`` clip is absolute (as in the authors' code), so for ``alpha < 1`` the value on
    data with directions of variance below ``1e-7`` depends on the scale of the data. For
    ``0 < alpha < 1`` the value is *not* invariant to isotropic scaling: under
    :math:`X \to aX` the weight of direction :math:`i` becomes proportional to
    :math:`a\alpha s_i + (1-\alpha)` (:math:`s_i = \lambda_i^{1/2}`), which changes the
    relative weights of the directions. It is invariant to scaling for ``alpha`` in {0, 1}
    (with no eigenvalue below the clip).

    References
    ----------
    Williams, Kunz, Kornblith, Linderman (2021). Generalized Shape Metrics on Neural
    Representations. NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 4))
    >>> A = np.array([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [1, 0, 0, 1]])
    >>> cg.angular_shape_metric(X, X @ A, alpha=0.0) < 1e-6   # any invertible map is ignored
    True
    >>> cg.angular_shape_metric(X, X @ A) > 0.1                # alpha=1: only rotations are
    True
    """
    alpha = _check_alpha(alpha)
    X, Y = check_pair(X, Y)
    return _angular_pair(*_prepare_pair(lambda A: _whiten(A, alpha), X, Y))


# --------------------------------------------------------------------------------------------
# 3.4  Permutation Procrustes
# --------------------------------------------------------------------------------------------


class _Plain(NamedTuple):
    mat: np.ndarray  # float64 view or copy of the input
    colsq: np.ndarray  # squared column norms


def _plain(A: np.ndarray) -> _Plain:
    A = _f64(A)
    return _Plain(A, np.einsum("ij,ij->j", A, A))


def _permutation_pair(u: _Plain, v: _Plain) -> float:
    X, Y = u.mat, v.mat
    rows, cols = linear_sum_assignment(X.T @ Y, maximize=True)
    # ||X P - Y||_F^2 summed directly (no cancellation when X P ~ Y): matched column pairs,
    # plus the columns of the wider side that are matched to zero padding.
    diff = X[:, rows] - Y[:, cols]
    total = float(np.einsum("ij,ij->", diff, diff))
    for colsq, matched in ((u.colsq, rows), (v.colsq, cols)):
        if matched.size < colsq.size:
            rest = np.ones(colsq.size, dtype=bool)
            rest[matched] = False
            total += float(colsq[rest].sum())
    return math.sqrt(max(0.0, total))


@register(
    family="alignment",
    kind="distance",
    summary="Distance after the best column permutation (no centring, no scaling)",
    references=(_REF_WILLIAMS, _REF_SURVEY),
    symmetric=True,
    invariances=("permutation",),
    bounds=(0.0, math.inf),
)
def permutation_procrustes(X, Y) -> float:
    r"""Permutation Procrustes distance: the best one-to-one matching of the columns.

    After zero padding to equal width (no centring, no scaling),

    .. math::

        d(X, Y) = \min_{\pi} \lVert X P_\pi - Y \rVert_F
                = \sqrt{\lVert X\rVert_F^2 + \lVert Y\rVert_F^2
                  - 2 \max_\pi \textstyle\sum_j \langle X_{:,j}, Y_{:,\pi(j)}\rangle},

    the maximum found by a linear assignment on :math:`X^T Y`
    (:func:`scipy.optimize.linear_sum_assignment`). The value is summed directly as
    :math:`\lVert X P_\pi - Y\rVert_F^2`, so identical inputs give exactly 0.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Distance in :math:`[0, \infty)`, a metric; invariant to permutations only.

    References
    ----------
    Williams, Kunz, Kornblith, Linderman (2021), NeurIPS; Klabunde et al. (2025), survey.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]])
    >>> cg.permutation_procrustes(X, X[:, [2, 0, 1]])
    0.0
    >>> C = X.T @ X[:, :2]               # [[1, 0], [0, 9], [2, 3]]: best 2 + 9, X[:, 0] unmatched
    >>> round(cg.permutation_procrustes(X, X[:, :2]) ** 2, 12)   # ||X2 - Y0||^2 + 0 + ||X0||^2
    3.0
    """
    X, Y = check_pair(X, Y)
    return _permutation_pair(*_prepare_pair(_plain, X, Y))


# --------------------------------------------------------------------------------------------
# 3.5  Linear regression
# --------------------------------------------------------------------------------------------


def _predictor_basis(B: np.ndarray, name: str = "Y") -> np.ndarray:
    """Orthonormal basis ``Q`` (``n x p2``) of the column space of ``Bc``; ValueError unless
    ``p2 <= n - 1`` and ``Bc`` has full column rank (tolerance ``s_max max(n, p2) eps``)."""
    n, p2 = B.shape
    if p2 > n - 1:
        raise ValueError(
            f"{name} (the predictor) has shape {B.shape}: linear_regression needs at most "
            f"n - 1 = {n - 1} predictor columns (p2 <= n - 1), got p2 = {p2}; reduce the "
            "dimension first (e.g. PCA) or use more samples"
        )
    Bc = _centre(B).mat
    Q, R = scipy.linalg.qr(Bc, mode="economic", check_finite=False)
    s = _svdvals(R)  # the singular values of Bc
    tol = float(s[0]) * max(n, p2) * _EPS
    rank = int(np.count_nonzero(s > tol))
    if rank < p2:
        raise ValueError(
            f"{name} (the predictor) of shape {B.shape} is rank deficient after centring: "
            f"numerical rank {rank} < p2 = {p2} (tolerance s_max * max(n, p2) * eps = "
            f"{tol:.3g}); linear_regression needs a centred predictor of full column rank: "
            "drop constant or collinear columns"
        )
    return Q


def _regression_pair(u: _Centred, Q: np.ndarray) -> float:
    if u.sq == 0.0:
        return math.nan
    proj = Q.T @ u.mat
    return float(np.einsum("ij,ij->", proj, proj)) / u.sq


@register(
    family="alignment",
    kind="similarity",
    summary="R^2 of the best linear predictor of X (target) from Y (predictor); not symmetric",
    references=(_REF_KORNBLITH, _REF_SURVEY),
    symmetric=False,
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    bounds=(0.0, 1.0),
)
def linear_regression(X, Y) -> float:
    r"""Fraction of the variance of ``X`` explained by a linear map (with intercept) of ``Y``.

    .. math::

        R^2 = \frac{\lVert P_Y X_c \rVert_F^2}{\lVert X_c \rVert_F^2}
            = 1 - \frac{\min_{W, b} \lVert X - Y W - 1 b^T\rVert_F^2}{\lVert X_c\rVert_F^2},

    :math:`P_Y` the orthogonal projector onto the column space of :math:`Y_c` (computed with a
    thin QR decomposition of :math:`Y_c`).

    ``X`` is the target and ``Y`` the predictor: **not symmetric**. Invariant to translations
    of both, to invertible linear maps of ``Y``, and to orthogonal maps and isotropic scaling of
    ``X``.

    Parameters
    ----------
    X : array-like of shape (n, p1)
        The target.
    Y : array-like of shape (n, p2)
        The predictor; needs ``p2 <= n - 1`` and a full-column-rank centred ``Y`` (numerical
        rank with tolerance ``s_max * max(n, p2) * eps``).

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` if :math:`X_c` is all zeros.

    Raises
    ------
    ValueError
        If ``p2 > n - 1`` or the centred ``Y`` is rank deficient.

    References
    ----------
    Kornblith, Norouzi, Lee, Hinton (2019), ICML; Klabunde et al. (2025), survey.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> Y = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> X = np.hstack([3 * Y + 1, np.array([[1.0], [-1.0], [-1.0], [1.0]])])
    >>> round(cg.linear_regression(X, Y), 12)   # 45 of the 45 + 4 units of variance
    0.918367346939
    >>> round(cg.linear_regression(Y, X), 12)   # Y is exactly a linear function of X
    1.0
    """
    X, Y = check_pair(X, Y)
    Q = _predictor_basis(Y)
    return _regression_pair(_centre(X), Q)


# --------------------------------------------------------------------------------------------
# 3.6  Aligned cosine
# --------------------------------------------------------------------------------------------


class _Rows(NamedTuple):
    mat: np.ndarray  # float64
    rownorm: np.ndarray


def _rows(A: np.ndarray) -> _Rows:
    A = _f64(A)
    return _Rows(A, np.sqrt(np.einsum("ij,ij->i", A, A)))


def _aligned_cosine_pair(u: _Rows, v: _Rows) -> float:
    keep = (u.rownorm > 0.0) & (v.rownorm > 0.0)
    if not keep.any():
        return math.nan
    X, Y = u.mat, v.mat
    U, _, Vt = _svd(X.T @ Y)
    # Z = X Q with Q = U V^T; for p1 > p2 the padded Q has more columns, but those meet the
    # zero padding of Y, and ||z_i|| = ||x_i|| since Q is orthogonal.
    num = np.einsum("ij,ij->i", X @ (U @ Vt), Y)
    c = num[keep] / (u.rownorm[keep] * v.rownorm[keep])
    return float(c.mean())


@register(
    family="alignment",
    kind="similarity",
    summary="Mean row-wise cosine similarity after orthogonal Procrustes alignment (no centring)",
    references=(_REF_HAMILTON,),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "permutation"),
    bounds=(-1.0, 1.0),
)
def aligned_cosine(X, Y) -> float:
    r"""Mean cosine similarity of the rows after orthogonal alignment (Hamilton et al. 2016a).

    No centring; zero padding to equal width. With the SVD :math:`X^T Y = U S V^T` and the
    Procrustes rotation :math:`Q = U V^T`, :math:`Z = X Q` and

    .. math::

        \mathrm{AC}(X, Y) = \frac{1}{|I|} \sum_{i \in I}
            \frac{\langle z_i, y_i \rangle}{\lVert z_i\rVert\, \lVert y_i\rVert},
        \qquad I = \{ i : x_i \neq 0,\ y_i \neq 0 \}

    (rows where either representation is all zero are skipped; :math:`\lVert z_i\rVert =
    \lVert x_i\rVert`). If :math:`X^T Y` is rank deficient :math:`Q` is not unique, but
    :math:`Z` is whenever :math:`\operatorname{rank}(X^T Y) = \operatorname{rank}(X)`.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Similarity in [-1, 1]; ``nan`` if every row is skipped (in particular if ``X`` or ``Y``
        is all zeros).

    References
    ----------
    Hamilton, Leskovec, Jurafsky (2016a). Diachronic Word Embeddings Reveal Statistical Laws
    of Semantic Change. ACL.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> R = np.array([[0.6, -0.8], [0.8, 0.6]])            # a rotation
    >>> round(cg.aligned_cosine(X, 2 * X @ R), 12)
    1.0
    >>> Xz = np.vstack([X, [[0.0, 0.0]]])                  # a zero row is skipped
    >>> round(cg.aligned_cosine(Xz, np.vstack([X @ R, [[5.0, 5.0]]])), 12)
    1.0
    """
    X, Y = check_pair(X, Y)
    return _aligned_cosine_pair(*_prepare_pair(_rows, X, Y))


# --------------------------------------------------------------------------------------------
# 3.7  Correlation match
# --------------------------------------------------------------------------------------------


def _unit_columns(A: np.ndarray) -> np.ndarray:
    """Centred columns scaled to unit norm; zero-variance columns stay exactly zero."""
    c = _centre(A)
    norms = np.sqrt(c.colsq)
    norms[norms == 0.0] = 1.0  # those columns are exactly zero: correlation 0 with everything
    return c.mat / norms


def _correlation_match_pair(u: np.ndarray, v: np.ndarray, soft: bool) -> float:
    C = u.T @ v
    if soft:
        return float((C.max(axis=1).mean() + C.max(axis=0).mean()) / 2.0)
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].mean())


@register(
    family="alignment",
    kind="similarity",
    summary="Neuron matching by Pearson correlation (hard one-to-one matching or soft maxima)",
    references=(_REF_LI,),
    symmetric=True,
    invariances=("isotropic_scaling", "translation", "permutation"),
    bounds=(-1.0, 1.0),
    variants=({}, {"soft": True}),
)
def correlation_match(X, Y, soft: bool = False) -> float:
    r"""Mean correlation of matched neurons (Li, Yosinski, Clune, Lipson, Hopcroft 2016).

    :math:`C_{jk}` is the Pearson correlation of column :math:`j` of ``X`` and column
    :math:`k` of ``Y`` (the cosine of the centred columns; a zero-variance column has
    correlation 0 with everything; signed, not absolute).

    * ``soft=False``: maximum-weight one-to-one matching of :math:`\min(p_1, p_2)` pairs
      (linear assignment maximising :math:`\sum C`); the mean of the matched :math:`C_{jk}`.
    * ``soft=True``:

      .. math::

          \tfrac12 \Big( \tfrac{1}{p_1}\textstyle\sum_j \max_k C_{jk}
                       + \tfrac{1}{p_2}\sum_k \max_j C_{jk} \Big).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    soft : bool
        Best match per neuron (many-to-one) instead of a one-to-one matching.

    Returns
    -------
    float
        Similarity in [-1, 1]. Invariant to translation, permutation and any positive scaling
        of individual neurons; not to rotations.

    References
    ----------
    Li, Yosinski, Clune, Lipson, Hopcroft (2016). Convergent Learning. ICLR.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]])
    >>> Y = np.array([[5.0, 1.0], [5.0, 2.0], [5.0, 3.0], [5.0, 4.0]])   # constant, x_1
    >>> cg.correlation_match(X, Y)       # corr(x1, y2) = 1 matched, corr(x2, y1) = 0
    0.5
    >>> round(cg.correlation_match(X, Y, soft=True), 6)   # (1 + 0.447214) / 2 and (0 + 1) / 2
    0.611803
    """
    soft = check_bool("soft", soft)
    X, Y = check_pair(X, Y)
    return _correlation_match_pair(*_prepare_pair(_unit_columns, X, Y), soft)


# --------------------------------------------------------------------------------------------
# compare_layers: each layer prepared once (L1 + L2 preparations), then only the pair work
# --------------------------------------------------------------------------------------------


def _prepare(prep: Callable[[np.ndarray], Any], a, b) -> tuple[list, Optional[list]]:
    return [prep(x) for x in a], None if b is None else [prep(y) for y in b]


def _batch_orthogonal_procrustes(a, b):
    return _layer_matrix(*_prepare(_centre, a, b), _orthogonal_procrustes_pair)


def _batch_size_and_shape(a, b):
    return _layer_matrix(*_prepare(_centre, a, b), _size_and_shape_pair)


def _batch_angular(a, b, alpha: float = 1.0):
    alpha = _check_alpha(alpha)
    return _layer_matrix(*_prepare(lambda x: _whiten(x, alpha), a, b), _angular_pair)


def _batch_permutation(a, b):
    return _layer_matrix(*_prepare(_plain, a, b), _permutation_pair)


def _batch_linear_regression(a, b):
    # Rows are the targets (centred, with norms), columns the predictors (column-space bases).
    targets = [_centre(x) for x in a]
    side, layers = ("a", a) if b is None else ("b", b)
    bases = [_predictor_basis(y, name=f"layer {j} of {side}") for j, y in enumerate(layers)]
    return _layer_matrix(targets, bases, _regression_pair)


def _batch_aligned_cosine(a, b):
    return _layer_matrix(*_prepare(_rows, a, b), _aligned_cosine_pair)


def _batch_correlation_match(a, b, soft: bool = False):
    soft = check_bool("soft", soft)
    return _layer_matrix(
        *_prepare(_unit_columns, a, b), lambda u, v: _correlation_match_pair(u, v, soft)
    )


set_batch("orthogonal_procrustes", _batch_orthogonal_procrustes)
set_batch("procrustes_size_and_shape", _batch_size_and_shape)
set_batch("angular_shape_metric", _batch_angular)
set_batch("permutation_procrustes", _batch_permutation)
set_batch("linear_regression", _batch_linear_regression)
set_batch("aligned_cosine", _batch_aligned_cosine)
set_batch("correlation_match", _batch_correlation_match)
