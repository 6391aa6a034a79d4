"""Alignment-based measures: Procrustes distances, shape metrics, regression, matching (Klabunde et al. 2025, alignment-based measures).

All of them reduce to small ``p1 x p2`` problems after one pass over the data: the cross
product ``A^T B`` (one GEMM), then a singular value / eigenvalue problem or a linear assignment
on that small matrix. Nothing of size ``n x n`` is ever formed.

Nuclear norms ``||A^T B||_*`` are computed from the eigenvalues of the smaller Gram matrix
``M^T M`` of ``M = A^T B`` when an a-posteriori error bound shows that this loses no accuracy
that matters (relative error bound <= 1e-10, see :func:`_nuclear_norm_eig`), and from the
singular values of ``M`` otherwise (rank-deficient or ill-conditioned ``M``).

Every input is first multiplied by an exact power of two that brings its largest entry into
``[0.5, 1)`` (:func:`congruence._linalg.pow2_scale`): the scale-invariant measures then give
bitwise the value of the unscaled data at any magnitude, and the homogeneous distances
(size-and-shape, permutation Procrustes) are computed at a common scale and multiplied back,
``inf`` with a ``DegenerateDataWarning`` only if the distance itself exceeds the float64 range.
The LAPACK calls go through :mod:`congruence._linalg` (gesvd retry, errors with context,
Ctrl-C). A representation whose rows are all identical gets a ``DegenerateDataWarning``: with
``nan`` where the formula divides by zero (normalised Procrustes, shape metric, the target of
``linear_regression``), with the formula's value where it stays defined.

Zero padding of the narrower input is never materialised: padded zero columns add zero rows or
columns to ``A^T B`` and leave its singular values, the Frobenius norms and the optimal
assignments unchanged; where padding does matter (the eigenvalue clip of
:func:`angular_shape_metric`), it is accounted for explicitly.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from congruence import _linalg
from congruence._layers import fill
from congruence._registry import register
from congruence._validation import check_bool, check_number, check_pair, constant_columns
from congruence.errors import warn_degenerate
from congruence.results import layer_label

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
#: Absolute eigenvalue clip of the partial whitening (a convention of the definition, reproduced exactly).
_EIG_CLIP = 1e-7
#: ``alpha`` above this value means "no whitening".
_ALPHA_NO_WHITENING = 1.0 - 1e-7
#: Below this size the singular values are always computed directly (cheap anyway).
_EIG_ROUTE_MIN_K = 48
#: Largest accepted relative error bound of the eigenvalue route of the nuclear norm.
_EIG_ROUTE_RTOL = 1e-10
#: Whitening through ``eigh(Xc^T Xc)`` only when ``lam_min >= this * lam_max`` (else an SVD of Xc).
_WHITEN_EIGH_MIN_RATIO = 1e-6

_REF_SCHOENEMANN = (
    "Schönemann (1966). A generalized solution of the orthogonal Procrustes problem. Psychometrika."
)
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


def _svdvals(
    M: np.ndarray, measure: str = "alignment", argument: str = "the cross product"
) -> np.ndarray:
    """Singular values (gesdd, retried with gesvd; see :func:`congruence._linalg.svd`)."""
    return _linalg.svd(M, measure=measure, argument=argument, compute_uv=False)


def _svd(
    M: np.ndarray, measure: str = "alignment", argument: str = "the cross product"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``M = U diag(s) Vt`` (gesdd, retried with gesvd)."""
    return _linalg.svd(M, measure=measure, argument=argument)


def _cross(A: np.ndarray, B: np.ndarray, measure: str) -> np.ndarray:
    """``A^T B`` (``p1 x p2``), after the memory pre-flight."""
    _linalg.check_matrix_fits(
        A.shape[1],
        B.shape[1],
        f"the {A.shape[1]} x {B.shape[1]} cross product in {measure}",
        "reduce the widths first (e.g. PCA or a random projection)",
    )
    return _linalg.matmul(A.T, B)


def _warn_identical(names: Sequence[str], measure: str, outcome: str) -> None:
    _linalg.warn_identical(names, measure, outcome)


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
    G = _linalg.matmul(M.T, M) if p1 >= p2 else _linalg.matmul(M, M.T)
    try:
        lam = _linalg.eigh(G, measure="alignment", argument="a Gram matrix", eigvals_only=True)
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
    mat: np.ndarray  # Xc * 2**-k (n, p), float64; constant columns exactly zero
    colsq: np.ndarray  # squared norms of the columns of mat
    sq: float  # ||mat||_F^2 (0: every row identical)
    k: int  # the power of two: Xc = 2**k mat


def _centre(A: np.ndarray) -> _Centred:
    """Column-centred float64 copy of ``A`` scaled by an exact power of two, with its norms.

    Constant columns (``constant_columns``, the one relative-tolerance rule) centre to exactly
    zero (the nan cases and the zero-variance rule of correlation_match depend on it), not to
    the round-off residue ``x - mean(x)`` can leave (``0.1`` repeated).
    """
    Ac, k = _linalg.pow2_scale(A)
    Ac -= Ac.mean(axis=0)
    const = constant_columns(A)
    if const.any():
        Ac[:, const] = 0.0
    colsq = np.einsum("ij,ij->j", Ac, Ac)
    return _Centred(Ac, colsq, float(colsq.sum()), k)


def _prepare_pair(
    prep: Callable[[np.ndarray], Any], X: np.ndarray, Y: np.ndarray
) -> tuple[Any, Any]:
    """``(prep(X), prep(Y))``; the same array passed twice is prepared once, exactly as a
    layer compared with itself in :func:`congruence.compare_layers` (so that both give the
    same round-off: ``u.T @ u`` is a symmetric product, ``u.T @ copy(u)`` a general one)."""
    u = prep(X)
    return u, (u if Y is X else prep(Y))


# --------------------------------------------------------------------------------------------
# 3.1 / 3.2  Orthogonal Procrustes
# --------------------------------------------------------------------------------------------


def _centred_nuclear(u: _Centred, v: _Centred, measure: str) -> float:
    """``||u.mat^T v.mat||_*`` (the scaled matrices: multiply by ``2**(u.k + v.k)``)."""
    n = u.mat.shape[0]
    return _nuclear_norm(_cross(u.mat, v.mat, measure), rank_bound=n - 1)


#: Below this relative size, ``||A||^2 + ||B||^2 - 2 ||A^T B||_*`` has lost more than four
#: digits to cancellation (near-identical sides; X == Y left about sqrt(eps), 1.5e-8): the
#: distance is then taken from the aligned residual itself (:func:`_aligned_residual_sq`).
_NEAR = 1e-4


def _aligned_residual_sq(A: np.ndarray, B: np.ndarray, measure: str) -> float:
    """``min_Q ||A - B Q||_F^2`` over orthogonal ``Q`` (the narrower side zero-padded, as
    :func:`orthogonal_procrustes` states), summed from the residual's entries: no
    cancellation between the norms and the nuclear norm.

    With ``A^T B = U S V^T`` (thin), the wider side keeps its columns and the narrower one is
    rotated into them: ``A - B V U^T`` if ``A`` is at least as wide, else ``B - A U V^T``.
    Either has squared norm ``||A||^2 + ||B||^2 - 2 tr S`` (the rotated side keeps its norm
    since the square factor of the SVD is orthogonal)."""
    U, _, Vt = _svd(_cross(A, B, measure), measure)
    if A.shape[1] >= B.shape[1]:
        R = A - _linalg.matmul(B, _linalg.matmul(Vt.T, U.T))
    else:
        R = B - _linalg.matmul(A, _linalg.matmul(U, Vt))
    return float(np.einsum("ij,ij->", R, R))


def _same_shape(u: Any, v: Any) -> bool:
    """The two prepared sides hold the same normalised representation (``X`` compared with
    itself, or with a positive power-of-two multiple): every shape distance is exactly 0."""
    return u is v or (u.mat.shape == v.mat.shape and np.array_equal(u.mat, v.mat))


def _orthogonal_procrustes_pair(u: _Centred, v: _Centred) -> float:
    if u.sq == 0.0 or v.sq == 0.0:
        return math.nan
    if _same_shape(u, v):
        return 0.0
    s = _centred_nuclear(u, v, "orthogonal_procrustes") / math.sqrt(u.sq * v.sq)
    if 1.0 - s < _NEAR:
        A, B = u.mat / math.sqrt(u.sq), v.mat / math.sqrt(v.sq)
        return math.sqrt(_aligned_residual_sq(A, B, "orthogonal_procrustes"))
    return math.sqrt(max(0.0, 2.0 - 2.0 * s))


def _size_and_shape_pair(u: _Centred, v: _Centred) -> float:
    # d^2 = 4^ku |u|^2 + 4^kv |v|^2 - 2 2^(ku+kv) nuc(u^T v), computed in units of 4^K,
    # K the larger exponent of a non-constant side: no factor exceeds 1, nothing overflows.
    if u.sq == 0.0 and v.sq == 0.0:
        return 0.0
    if u.k == v.k and _same_shape(u, v):
        return 0.0
    K = max(w.k for w in (u, v) if w.sq > 0.0)
    nuc = 0.0 if u.sq == 0.0 or v.sq == 0.0 else _centred_nuclear(u, v, "procrustes_size_and_shape")
    norms = math.ldexp(u.sq, 2 * (u.k - K)) + math.ldexp(v.sq, 2 * (v.k - K))
    d2 = norms - 2.0 * math.ldexp(nuc, u.k + v.k - 2 * K)
    if d2 < _NEAR * norms:
        A, B = np.ldexp(u.mat, u.k - K), np.ldexp(v.mat, v.k - K)
        d2 = _aligned_residual_sq(A, B, "procrustes_size_and_shape")
    return _linalg.scale_back(math.sqrt(max(0.0, d2)), K, "procrustes_size_and_shape")


_SIZE_SHAPE_OUTCOME = (
    "stays defined: the distance to a constant is the Frobenius norm of the other, centred"
)


_UNCENTRED_OUTCOME = "stays defined (it does not centre the data)"


def _identical(preps: Sequence[Any], names: Sequence[str]) -> list[str]:
    """The names of the prepared representations whose rows are all identical."""
    return [name for u, name in zip(preps, names) if u.sq == 0.0]


# --------------------------------------------------------------------------------------------
# The per-layer contract (compare_layers, permutation tests): each layer prepared once
# (L1 + L2 preparations), then only the pair work. Row permutations of one side permute its
# prepared matrix (the norms, Gram blocks and whitening do not change), so ``permuted`` is
# the pair step on reordered rows; a resample with replacement would need re-centring, so
# no ``reindex`` is declared.
# --------------------------------------------------------------------------------------------


_NAN = "is undefined (nan)"


def _prepare_named(build: Callable[..., Any], measure: str, outcome: str):
    """``prepare(x, *, name, **params)``: ``build(x, **params)``, with one warning naming
    ``name`` when every row of ``x`` is identical (``outcome``: what the measure gives)."""

    def prepare(x, *, name: str = "X", **params):
        u = build(x, **params)
        _warn_identical(_identical((u,), (name,)), measure, outcome)
        return u

    return prepare


def _permuted(pair: Callable[..., float], rows: Callable[[Any, np.ndarray], Any]):
    """``values[k] = pair(px, rows(py, perms[k]))``: ``rows(prep, perm)`` is the preparation
    of ``y[perm]`` for a row permutation ``perm``."""

    def permuted(px, py, perms, **params) -> np.ndarray:
        return np.array(
            [pair(px, rows(py, perm), **params) for perm in np.asarray(perms)], dtype=np.float64
        )

    return permuted


def _mat_rows(u, perm: np.ndarray):
    """A prepared tuple with its matrix ``mat`` reordered (``None``: a constant input)."""
    return u if u.mat is None else u._replace(mat=u.mat[perm])


def _centre_prepared(x) -> _Centred:
    return _centre(x)


def _whiten_prepared(x, alpha: float = 1.0) -> _Whitened:
    return _whiten(x, _check_alpha(alpha))


def _plain_prepared(x) -> _Plain:
    return _plain(x)


def _unit_prepared(x, soft: bool = False) -> _Unit:
    check_bool("soft", soft)
    return _unit_columns(x)


def _rows_prepare(x, *, name: str = "X") -> _Rows:
    u = _rows(x)
    _aligned_cosine_warnings((u,), (name,))
    return u


def _rows_permuted(u: _Rows, perm: np.ndarray) -> _Rows:
    return u._replace(mat=u.mat[perm], rownorm=u.rownorm[perm])


def _aligned_cosine_matrix(pa, pb) -> np.ndarray:
    """The layer matrix, with one warning for the pairs that share no non-zero row."""
    out = fill(pa, pb, _aligned_cosine_pair)
    cols = pa if pb is None else pb
    skipped = [
        (i, j)
        for i, u in enumerate(pa)
        for j, v in enumerate(cols)
        if math.isnan(out[i, j]) and not (u.zero or v.zero)
    ]
    if skipped:
        i, j = skipped[0]
        _warn_all_rows_skipped(
            len(skipped), f"{layer_label('a', i)} and {layer_label('a' if pb is None else 'b', j)}"
        )
    return out


class _Regression:
    """A prepared layer of ``linear_regression``, as a target (row) and as a predictor
    (column): each role is prepared on first use, once, with its warnings naming the layer.
    A predictor that cannot be prepared (too wide, rank deficient) raises its ValueError,
    naming it ``Y`` (the pair's argument), at every use."""

    def __init__(self, x: np.ndarray, name: str, epsilon: float) -> None:
        self.x, self.name, self.epsilon = x, name, epsilon
        self._target: Optional[_Centred] = None
        self._predictor: Optional[_Predictor] = None
        self._error: Optional[str] = None

    def target(self) -> _Centred:
        if self._target is None:
            u = _centre(self.x)
            names = (f"{self.name} (the target)",)
            _warn_identical(_identical((u,), names), "linear_regression", _NAN)
            self._target = u
        return self._target

    def predictor(self) -> _Predictor:
        if self._error is not None:
            raise ValueError(self._error)
        if self._predictor is None:
            (kept,) = _linalg.drop_dead_units(
                (self.x,), (f"{self.name} (the predictor)",), "linear_regression", _NO_PREDICTOR
            )
            try:
                self._predictor = _predictor_basis(kept, "Y", self.epsilon)
            except ValueError as exc:
                self._error = str(exc)
                raise
        return self._predictor

    def permuted(self, perm: np.ndarray) -> "_Regression":
        """The layer of ``x[perm]`` as a predictor (its basis permutes with the rows)."""
        pred = self.predictor()
        out = _Regression(self.x[perm], self.name, self.epsilon)
        out._predictor = pred if pred.basis is None else pred._replace(basis=pred.basis[perm])
        return out


def _regression_prepare(x, *, name: str = "X", epsilon: float = 0.0) -> _Regression:
    return _Regression(x, name, _check_epsilon(epsilon))


def _regression_layers_pair(px: _Regression, py: _Regression, epsilon: float = 0.0) -> float:
    return _regression_pair(px.target(), py.predictor())


@register(
    family="alignment",
    kind="distance",
    summary="Orthogonal Procrustes distance between centred, unit-Frobenius-norm representations",
    references=(_REF_SCHOENEMANN, _REF_DING, _REF_WILLIAMS),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    bounds=(0.0, math.sqrt(2.0)),
    prepare=_prepare_named(_centre_prepared, "orthogonal_procrustes", _NAN),
    pair=lambda u, v: _orthogonal_procrustes_pair(u, v),
    permuted=_permuted(lambda u, v: _orthogonal_procrustes_pair(u, v), _mat_rows),
)
def orthogonal_procrustes(X: ArrayLike, Y: ArrayLike) -> float:
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
        all zeros (a constant representation). ``d(X, X) = 0`` exactly; for near-identical
        sides (``2 - 2 ||A^T B||_* < 2e-4``, where the difference would lose more than four
        digits) the distance is the norm of the aligned residual ``A R - B`` itself, so it
        stays accurate down to round-off of the entries (about ``1e-16``).

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
    u, v = _prepare_pair(_centre, X, Y)
    _warn_identical(_identical((u, v), ("X", "Y")), "orthogonal_procrustes", "is undefined (nan)")
    return _orthogonal_procrustes_pair(u, v)


@register(
    family="alignment",
    kind="distance",
    summary="Procrustes size-and-shape distance (rotation metric on centred, unnormalised data)",
    references=(_REF_WILLIAMS, _REF_SCHOENEMANN),
    symmetric=True,
    invariances=("orthogonal", "translation", "permutation"),
    bounds=(0.0, math.inf),
    prepare=_prepare_named(_centre_prepared, "procrustes_size_and_shape", _SIZE_SHAPE_OUTCOME),
    pair=lambda u, v: _size_and_shape_pair(u, v),
    permuted=_permuted(lambda u, v: _size_and_shape_pair(u, v), _mat_rows),
)
def procrustes_size_and_shape(X: ArrayLike, Y: ArrayLike) -> float:
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
        the other, centred. ``d(X, X) = 0`` exactly; near-identical sides are measured on
        the aligned residual, as in :func:`orthogonal_procrustes`.

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
    u, v = _prepare_pair(_centre, X, Y)
    _warn_identical(
        _identical((u, v), ("X", "Y")), "procrustes_size_and_shape", _SIZE_SHAPE_OUTCOME
    )
    return _size_and_shape_pair(u, v)


# --------------------------------------------------------------------------------------------
# 3.3  Angular shape metric with partial whitening
# --------------------------------------------------------------------------------------------


class _Whitened(NamedTuple):
    mat: Optional[np.ndarray]  # P with Xw^T Yw = V_x P_x^T P_y V_y^T (None: constant input)
    sq: float  # ||Xw||_F^2 = ||P||_F^2 (without the variance-preserving factor)


def _whiten(A: np.ndarray, alpha: float) -> _Whitened:
    """Partial whitening of Williams et al. (2021), up to an orthogonal factor and a scale.

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
        _linalg.check_matrix_fits(
            p,
            p,
            f"the {p} x {p} Gram matrix in angular_shape_metric",
            "reduce the width first (e.g. PCA)",
        )
        try:
            lam, V = _linalg.eigh(
                _linalg.matmul(Xc.T, Xc),
                measure="angular_shape_metric",
                argument="a centred representation's Gram matrix",
            )
        except np.linalg.LinAlgError:
            lam = None
        if lam is not None and lam[0] >= _WHITEN_EIGH_MIN_RATIO * lam[-1] > 0.0:
            P = _linalg.matmul(Xc, V) * _whitening(lam, c.k, alpha)
    if P is None:
        U, s, _ = _svd(Xc, "angular_shape_metric", "a centred representation")
        P = U * (s * _whitening(s * s, c.k, alpha))
    return _Whitened(P, float(np.einsum("ij,ij->", P, P)))


def _whitening(lam: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """``d_i = alpha + (1 - alpha) / sqrt(max(lam_i 4**k, 1e-7))`` up to a common positive
    factor, for eigenvalues ``lam`` of the scaled ``(Xc 2**-k)^T (Xc 2**-k)``.

    The clip applies to the eigenvalues of the data as given (``4**k lam``). The factors are
    normalised so that the largest is 1 (the common factor cancels in the angle, and the
    whitened matrix then neither overflows nor underflows); when ``4**k lam`` overflows
    float64 they are formed from logarithms instead.
    """
    lam = np.maximum(lam, 0.0)
    with np.errstate(over="ignore"):  # an overflow is detected just below
        true_lam = np.ldexp(lam, 2 * k)
    if np.all(np.isfinite(true_lam)):
        d = alpha + (1.0 - alpha) / np.sqrt(np.maximum(true_lam, _EIG_CLIP))
        return d / d.max()
    with np.errstate(divide="ignore"):
        log_lam = np.log(lam) + 2 * k * math.log(2.0)
    log_g = -0.5 * np.maximum(log_lam, math.log(_EIG_CLIP))
    if alpha == 0.0:
        log_d = log_g
    else:
        log_d = np.logaddexp(math.log(alpha), math.log1p(-alpha) + log_g)
    return np.exp(log_d - log_d.max())


def _angular_pair(u: _Whitened, v: _Whitened) -> float:
    if u.mat is None or v.mat is None or u.sq == 0.0 or v.sq == 0.0:
        return math.nan
    if _same_shape(u, v):
        return 0.0
    n = u.mat.shape[0]
    M = _cross(u.mat, v.mat, "angular_shape_metric")
    r = _nuclear_norm(M, rank_bound=n - 1) / (math.sqrt(u.sq) * math.sqrt(v.sq))
    if 1.0 - r < _NEAR:  # arccos near 1 from the chord: theta = 2 arcsin(d / 2)
        A, B = u.mat / math.sqrt(u.sq), v.mat / math.sqrt(v.sq)
        d = math.sqrt(_aligned_residual_sq(A, B, "angular_shape_metric"))
        return 2.0 * math.asin(min(1.0, d / 2.0))
    return float(math.acos(min(1.0, max(-1.0, r))))


def _check_epsilon(epsilon: Any) -> float:
    return check_number("epsilon", epsilon, low=0.0)


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
    prepare=_prepare_named(_whiten_prepared, "angular_shape_metric", _NAN),
    pair=lambda u, v, alpha=1.0: _angular_pair(u, v),
    permuted=_permuted(lambda u, v, alpha=1.0: _angular_pair(u, v), _mat_rows),
)
def angular_shape_metric(X: ArrayLike, Y: ArrayLike, alpha: float = 1.0) -> float:
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
        zeros. ``theta(X, X) = 0`` exactly; near 0 (``1 - cos theta < 1e-4``) the angle is
        ``2 arcsin(d / 2)`` with ``d`` the aligned residual's norm, not the arccos of a
        number next to 1 (which would floor it near ``1.5e-8``).

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
    (with no eigenvalue below the clip). At extreme magnitudes the weights reach their
    limits: far above the clip (``alpha > 0``) they become proportional to :math:`s_i`, as
    without whitening; far below it (every :math:`\lambda_i < 10^{-7}`) all directions are
    clipped and the value is again the one of ``alpha=1``. The clip is applied to the
    eigenvalues of the data as given, at any magnitude, without overflow.

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
    u, v = _prepare_pair(lambda A: _whiten(A, alpha), X, Y)
    _warn_identical(_identical((u, v), ("X", "Y")), "angular_shape_metric", "is undefined (nan)")
    return _angular_pair(u, v)


# --------------------------------------------------------------------------------------------
# 3.4  Permutation Procrustes
# --------------------------------------------------------------------------------------------


class _Plain(NamedTuple):
    mat: np.ndarray  # the input times 2**-k, float64
    colsq: np.ndarray  # squared column norms of mat
    k: int
    sq: float  # 0 if every row is identical (then the value is defined, with a warning)


def _plain(A: np.ndarray) -> _Plain:
    M, k = _linalg.pow2_scale(A)
    identical = bool(constant_columns(A).all())
    colsq = np.einsum("ij,ij->j", M, M)
    return _Plain(M, colsq, k, 0.0 if identical else 1.0)


def _permutation_pair(u: _Plain, v: _Plain) -> float:
    X, Y = u.mat, v.mat
    # The assignment on the scaled product is the one of X^T Y (a positive multiple of it).
    rows, cols = linear_sum_assignment(_cross(X, Y, "permutation_procrustes"), maximize=True)
    # Everything at the common scale 2**K (K of the larger non-zero input), so that no
    # factor exceeds 1: ||X P - Y||_F^2 summed directly (no cancellation when X P ~ Y),
    # matched column pairs plus the columns of the wider side matched to zero padding.
    nonzero = [w.k for w in (u, v) if w.colsq.any()]
    if not nonzero:
        return 0.0
    K = max(nonzero)
    diff = np.ldexp(X[:, rows], u.k - K) - np.ldexp(Y[:, cols], v.k - K)
    total = float(np.einsum("ij,ij->", diff, diff))
    for w, matched in ((u, rows), (v, cols)):
        if matched.size < w.colsq.size:
            rest = np.ones(w.colsq.size, dtype=bool)
            rest[matched] = False
            total += math.ldexp(float(w.colsq[rest].sum()), 2 * (w.k - K))
    return _linalg.scale_back(math.sqrt(max(0.0, total)), K, "permutation_procrustes")


@register(
    family="alignment",
    kind="distance",
    summary="Distance after the best column permutation (no centring, no scaling)",
    references=(_REF_WILLIAMS, _REF_SURVEY),
    symmetric=True,
    invariances=("permutation",),
    bounds=(0.0, math.inf),
    prepare=_prepare_named(_plain_prepared, "permutation_procrustes", _UNCENTRED_OUTCOME),
    pair=lambda u, v: _permutation_pair(u, v),
    permuted=_permuted(lambda u, v: _permutation_pair(u, v), _mat_rows),
)
def permutation_procrustes(X: ArrayLike, Y: ArrayLike) -> float:
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
    u, v = _prepare_pair(_plain, X, Y)
    _warn_identical(_identical((u, v), ("X", "Y")), "permutation_procrustes", _UNCENTRED_OUTCOME)
    return _permutation_pair(u, v)


# --------------------------------------------------------------------------------------------
# 3.5  Linear regression
# --------------------------------------------------------------------------------------------


class _Predictor(NamedTuple):
    """The predictor side: ``basis`` is an orthonormal basis ``Q`` of the column space of
    ``Yc`` (``epsilon = 0``), or ``A = Yc / sqrt(max|Yc^T Yc|)`` with ``chol`` the Cholesky
    factor of ``A^T A + epsilon I`` and ``gram = A^T A`` (``epsilon > 0``). ``basis=None``:
    every column of ``Y`` is constant (it explains nothing, R^2 = 0)."""

    basis: Optional[np.ndarray]
    chol: Optional[np.ndarray] = None
    gram: Optional[np.ndarray] = None


def _predictor_basis(B: Optional[np.ndarray], name: str = "Y", epsilon: float = 0.0) -> _Predictor:
    """The prepared predictor (constant columns already dropped: ``B=None`` if all were).

    ``epsilon = 0``: ValueError unless ``p2 <= n - 1`` and ``Bc`` has full column rank
    (tolerance ``s_max max(n, p2) eps``)."""
    if B is None:
        return _Predictor(None)
    n, p2 = B.shape
    if epsilon > 0.0:
        Bc = _centre(B).mat
        _linalg.check_matrix_fits(
            p2,
            p2,
            f"the {p2} x {p2} Gram matrix of {name} in linear_regression",
            "reduce the predictor's width first",
        )
        G = _linalg.matmul(Bc.T, Bc)
        top = float(np.abs(G).max())
        A = Bc / math.sqrt(top)
        gram = G / top
        K = gram.copy()
        K.flat[:: p2 + 1] += epsilon
        try:
            L = _linalg.cholesky(K)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"epsilon={epsilon!r} is too small to regularise {name} (the predictor) of "
                f"shape {B.shape}: its normalised Gram matrix plus epsilon I is not positive "
                "definite in float64; use a larger epsilon (e.g. 1e-10)"
            ) from None
        return _Predictor(A, L, gram)
    if p2 > n - 1:
        raise ValueError(
            f"{name} (the predictor) has shape {B.shape}: linear_regression needs at most "
            f"n - 1 = {n - 1} predictor columns (p2 <= n - 1, constant columns not "
            f"counted), got p2 = {p2}; reduce the dimension first (e.g. PCA), use more "
            "samples, or pass epsilon > 0 (ridge)"
        )
    Bc = _centre(B).mat
    Q, R = _linalg.qr(Bc)
    s = _svdvals(R, "linear_regression", f"the R factor of the centred {name}")
    tol = float(s[0]) * max(n, p2) * _EPS
    rank = int(np.count_nonzero(s > tol))
    if rank < p2:
        raise ValueError(
            f"{name} (the predictor) of shape {B.shape} is rank deficient after centring: "
            f"numerical rank {rank} < p2 = {p2} (tolerance s_max * max(n, p2) * eps = "
            f"{tol:.3g}); linear_regression needs a centred predictor of full column rank: "
            "drop collinear columns or pass epsilon > 0 (ridge)"
        )
    return _Predictor(Q)


def _regression_pair(u: _Centred, pred: _Predictor) -> float:
    if u.sq == 0.0:
        return math.nan
    if pred.basis is None:
        return 0.0
    C = _cross(pred.basis, u.mat, "linear_regression")
    if pred.chol is None:
        return float(np.einsum("ij,ij->", C, C)) / u.sq
    # ||A (A^T A + eps I)^{-1} A^T Xc||_F^2 = <B, (A^T A) B>, B = (A^T A + eps I)^{-1} C.
    B = scipy.linalg.cho_solve((pred.chol, True), C, check_finite=False)
    return float(np.einsum("ij,ij->", B, _linalg.matmul(pred.gram, B))) / u.sq


def _regression_invariances(params) -> tuple[str, ...]:
    if params["epsilon"] > 0:  # the ridge breaks the predictor's rotation invariance
        return ("isotropic_scaling", "translation", "permutation")
    return ("orthogonal", "isotropic_scaling", "translation", "permutation")


_NO_PREDICTOR = "explains none of the variance: R^2 = 0"


@register(
    family="alignment",
    kind="similarity",
    summary="R^2 of the best linear predictor of X (target) from Y (predictor); not symmetric",
    references=(_REF_KORNBLITH, _REF_SURVEY),
    symmetric=False,
    invariances=_regression_invariances,
    bounds=(0.0, 1.0),
    variants=({}, {"epsilon": 0.1}),
    prepare=_regression_prepare,
    pair=_regression_layers_pair,
    permuted=_permuted(_regression_layers_pair, lambda p, perm: p.permuted(perm)),
)
def linear_regression(X: ArrayLike, Y: ArrayLike, epsilon: float = 0.0) -> float:
    r"""Fraction of the variance of ``X`` explained by a linear map (with intercept) of ``Y``.

    .. math::

        R^2 = \frac{\lVert P_Y X_c \rVert_F^2}{\lVert X_c \rVert_F^2}
            = 1 - \frac{\min_{W, b} \lVert X - Y W - 1 b^T\rVert_F^2}{\lVert X_c\rVert_F^2},

    :math:`P_Y` the orthogonal projector onto the column space of :math:`Y_c` (computed with a
    thin QR decomposition of :math:`Y_c`). Constant columns of ``Y`` (dead units) are dropped
    first, with a ``DegenerateDataWarning``; if every column of ``Y`` is constant it explains
    nothing and :math:`R^2 = 0` (with a warning).

    With ``epsilon > 0`` (ridge, as in Raghu et al.'s reference code) the projector becomes
    :math:`Y_c (Y_c^TY_c/c + \epsilon I)^{-1} Y_c^T / c`, :math:`c = \max|Y_c^TY_c|`; wide or
    collinear predictors are then allowed, and the value is no longer invariant to invertible
    linear maps or rotations of ``Y``.

    ``X`` is the target and ``Y`` the predictor: **not symmetric**. Invariant to translations
    of both, to invertible linear maps of ``Y``, and to orthogonal maps and isotropic scaling of
    ``X``.

    Parameters
    ----------
    X : array-like of shape (n, p1)
        The target.
    Y : array-like of shape (n, p2)
        The predictor; without ``epsilon`` it needs ``p2 <= n - 1`` non-constant columns and
        a full-column-rank centred ``Y`` (numerical rank with tolerance
        ``s_max * max(n, p2) * eps``).
    epsilon : float >= 0
        Ridge regularisation of the normalised Gram matrix of ``Y`` (0: none).

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a ``DegenerateDataWarning`` if every row of ``X``
        is identical (:math:`X_c = 0`).

    Raises
    ------
    ValueError
        Without ``epsilon``: if ``p2 > n - 1`` or the centred ``Y`` is rank deficient.

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
    epsilon = _check_epsilon(epsilon)
    X, Y = check_pair(X, Y)
    (Yk,) = _linalg.drop_dead_units(
        (Y,), ("Y (the predictor)",), "linear_regression", _NO_PREDICTOR
    )
    pred = _predictor_basis(Yk, "Y", epsilon)
    u = _centre(X)
    _warn_identical(
        _identical((u,), ("X (the target)",)), "linear_regression", "is undefined (nan)"
    )
    return _regression_pair(u, pred)


# --------------------------------------------------------------------------------------------
# 3.6  Aligned cosine
# --------------------------------------------------------------------------------------------


class _Rows(NamedTuple):
    mat: np.ndarray  # the input times 2**-k, float64
    rownorm: np.ndarray
    sq: float  # 0 if every row is identical (the value stays defined, with a warning)
    zero: bool  # all zeros: every row is skipped


def _rows(A: np.ndarray) -> _Rows:
    M, _ = _linalg.pow2_scale(A)
    rownorm = np.sqrt(np.einsum("ij,ij->i", M, M))
    identical = bool(constant_columns(A).all())
    return _Rows(M, rownorm, 0.0 if identical else 1.0, not rownorm.any())


def _aligned_cosine_pair(u: _Rows, v: _Rows) -> float:
    keep = (u.rownorm > 0.0) & (v.rownorm > 0.0)
    if not keep.any():
        return math.nan
    X, Y = u.mat, v.mat
    U, _, Vt = _svd(_cross(X, Y, "aligned_cosine"), "aligned_cosine", "X^T Y")
    # Z = X Q with Q = U V^T; for p1 > p2 the padded Q has more columns, but those meet the
    # zero padding of Y, and ||z_i|| = ||x_i|| since Q is orthogonal.
    num = np.einsum("ij,ij->i", _linalg.matmul(X, _linalg.matmul(U, Vt)), Y)
    c = num[keep] / (u.rownorm[keep] * v.rownorm[keep])
    return float(c.mean())


def _aligned_cosine_warnings(preps: Sequence[_Rows], names: Sequence[str]) -> None:
    zero = [name for u, name in zip(preps, names) if u.zero]
    if zero:
        verb = "is" if len(zero) == 1 else "are"
        warn_degenerate(
            f"{' and '.join(zero)} {verb} all zeros: every row is skipped; aligned_cosine is "
            "undefined (nan)"
        )
    _warn_identical(
        [name for u, name in zip(preps, names) if u.sq == 0.0 and not u.zero],
        "aligned_cosine",
        _UNCENTRED_OUTCOME,
    )


def _warn_all_rows_skipped(count: int, where: str) -> None:
    warn_degenerate(
        f"{where}: no row where both representations are non-zero (every row is skipped); "
        f"aligned_cosine is undefined (nan){f' for {count} pairs' if count > 1 else ''}"
    )


@register(
    family="alignment",
    kind="similarity",
    summary="Mean row-wise cosine similarity after orthogonal Procrustes alignment (no centring)",
    references=(_REF_HAMILTON,),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "permutation"),
    bounds=(-1.0, 1.0),
    prepare=_rows_prepare,
    pair=lambda u, v: _aligned_cosine_pair(u, v),
    matrix=_aligned_cosine_matrix,
    permuted=_permuted(lambda u, v: _aligned_cosine_pair(u, v), _rows_permuted),
)
def aligned_cosine(X: ArrayLike, Y: ArrayLike) -> float:
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
    u, v = _prepare_pair(_rows, X, Y)
    _aligned_cosine_warnings((u, v), ("X", "Y"))
    value = _aligned_cosine_pair(u, v)
    if math.isnan(value) and not (u.zero or v.zero):
        _warn_all_rows_skipped(1, "X and Y")
    return value


# --------------------------------------------------------------------------------------------
# 3.7  Correlation match
# --------------------------------------------------------------------------------------------


class _Unit(NamedTuple):
    mat: np.ndarray  # centred columns scaled to unit norm; zero-variance columns exactly 0
    sq: float  # 0 if every column has zero variance (every row identical)


def _unit_columns(A: np.ndarray) -> _Unit:
    """Centred columns scaled to unit norm; zero-variance columns stay exactly zero.

    Each column is first brought to its own power-of-two scale (exact), so that a column far
    smaller than the others (1e-160 of them) keeps its squared norm out of the subnormal
    range: correlations do not depend on the columns' scales."""
    c = _centre(A)
    big = np.max(np.abs(c.mat), axis=0)
    exps = np.frexp(np.where(big > 0.0, big, 1.0))[1]
    mat = np.ldexp(c.mat, -exps)
    norms = np.sqrt(np.einsum("ij,ij->j", mat, mat))
    norms[norms == 0.0] = 1.0  # those columns are exactly zero: correlation 0 with everything
    return _Unit(mat / norms, c.sq)


def _correlation_match_pair(u: _Unit, v: _Unit, soft: bool) -> float:
    # correlations of unit columns: round-off may leave |C| a unit above 1
    C = np.clip(_cross(u.mat, v.mat, "correlation_match"), -1.0, 1.0)
    if soft:
        return float((C.max(axis=1).mean() + C.max(axis=0).mean()) / 2.0)
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].mean())


_ZERO_CORRELATION = "stays defined (its columns have correlation 0 with every column)"


@register(
    family="alignment",
    kind="similarity",
    summary="Neuron matching by Pearson correlation (hard one-to-one matching or soft maxima)",
    references=(_REF_LI,),
    symmetric=True,
    invariances=("isotropic_scaling", "translation", "permutation"),
    bounds=(-1.0, 1.0),
    variants=({}, {"soft": True}),
    prepare=_prepare_named(_unit_prepared, "correlation_match", _ZERO_CORRELATION),
    pair=lambda u, v, soft=False: _correlation_match_pair(u, v, soft),
    permuted=_permuted(lambda u, v, soft=False: _correlation_match_pair(u, v, soft), _mat_rows),
)
def correlation_match(X: ArrayLike, Y: ArrayLike, soft: bool = False) -> float:
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
    u, v = _prepare_pair(_unit_columns, X, Y)
    _warn_identical(_identical((u, v), ("X", "Y")), "correlation_match", _ZERO_CORRELATION)
    return _correlation_match_pair(u, v, soft)
