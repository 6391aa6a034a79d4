"""Representational-similarity-matrix (RSM) based measures (Kriegeskorte et al. 2008; Klabunde et al. 2025).

The O(n^2) work runs in the Rust core: Euclidean distances between rows (computed from the
differences, so duplicated rows are exactly at distance 0 and tied distances stay tied), the
RSM triangles and their Spearman ranks for :func:`rsa`, the streamed double centring of
:func:`distance_correlation` (no n x n matrix is held) and the Frobenius norm of
:func:`rsm_norm_diff`. The spectral variant of ``rsm_norm_diff`` and the measures built on
spectra (:func:`eigenspace_overlap`, :func:`gulp`, :func:`normalized_bures`,
:func:`riemannian_distance`) use LAPACK through NumPy; long LAPACK calls run where Ctrl-C
can interrupt them, and their ``n x n`` buffers are checked against the available memory.

Data of any finite magnitude give the value of the formula: scale-invariant computations
first multiply each input by a power of two (exact, so ties and orderings are unchanged),
and the others use their scaling law. Degenerate data (every row the same, a constant row
in a correlation RSM) give ``nan`` or the formula's defined value, always with a
:class:`~congruence.DegenerateDataWarning` naming the argument and the cause.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike

from congruence import _core
from congruence._linalg import (
    eigh,
    identical_rows,
    largest_magnitude,
    pow2_exponent,
    pow2_scaled,
    run,
    scale_back,
    still_defined,
    svd,
    undefined,
)
from congruence._memory import check_fits
from congruence._registry import register
from congruence._validation import check_choice, check_number, check_pair, constant_columns
from congruence.errors import warn_degenerate

__all__ = [
    "distance_correlation",
    "eigenspace_overlap",
    "gulp",
    "normalized_bures",
    "riemannian_distance",
    "rsa",
    "rsm_norm_diff",
]

_EPS = float(np.finfo(np.float64).eps)
_ALL_BUT_LINEAR = ("orthogonal", "isotropic_scaling", "translation", "permutation")
_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network Models: "
    "A Survey of Functional and Representational Measures. ACM Computing Surveys."
)


# ------------------------------------------------------------------------------- helpers


#: Range of ``max |x|`` in which the O(n^2) passes of the core neither overflow nor
#: underflow (squared differences summed over up to ~1e9 features stay within float64).
_SAFE_LOW, _SAFE_HIGH = 2.0**-200, 2.0**200


def _for_core(Z: np.ndarray) -> np.ndarray:
    """``Z`` for a scale-invariant computation of the core: itself when its magnitude is in
    the safe range (always for float32, whose range is narrower), else :func:`pow2_scaled`
    to magnitude about 1 (the same value: the measure is scale-invariant)."""
    if Z.dtype == np.float32:
        return Z
    big = largest_magnitude(Z)
    if big == 0.0 or _SAFE_LOW <= big <= _SAFE_HIGH:
        return Z
    return pow2_scaled(Z, math.frexp(big)[1])


def _centre(Z: np.ndarray) -> np.ndarray:
    """``Z`` scaled by a power of two to magnitude about 1, then column-centred (a new
    float64 array); constant columns become exactly 0.

    The power-of-two scaling is exact and the callers are scale-invariant; it keeps sums,
    means and norms of data of any magnitude finite. The second centring pass removes the
    rounding error of the first mean (offsets of 1e8 and more).
    """
    Zs = pow2_scaled(Z, pow2_exponent(Z))
    Zc = Zs - Zs.mean(axis=0)
    Zc -= Zc.mean(axis=0)
    Zc[:, constant_columns(Zs)] = 0.0
    return Zc


def _svd(Z: np.ndarray, measure: str, argument: str, compute_uv: bool = True):
    """Thin SVD with the package's one retry rule (:func:`congruence._linalg.svd`)."""
    return svd(Z, measure=measure, argument=argument, compute_uv=compute_uv)


def _same_gram(Z: np.ndarray) -> np.ndarray:
    """``Z`` itself when ``p <= n``, else the ``n x n`` matrix ``R^T`` of the thin QR
    factorisation ``Z^T = Q R``.

    ``Z = R^T Q^T`` and ``Q`` has orthonormal columns, so ``R^T (R^T)^T = Z Z^T`` and
    ``R`` keeps every singular value of every product ``Z^T M = Q (R M)``.
    """
    n, p = Z.shape
    if p <= n:
        return Z
    return run(4.0 * p * n * n, np.linalg.qr, Z.T, mode="r").T


# ------------------------------------------------------------------------------- per layer
#
# Each measure declares its per-layer preparation (congruence._layers): what depends on one
# representation only is computed once per layer and reused by every pair, and the measure
# function itself is ``pair(prepare(X), prepare(Y))``, so a layer matrix gives the values of
# the pairwise calls. A preparation keeps the validated array ``x`` (a reference, no copy) for
# resamples with repeated rows and for the lazy form: when the per-layer cache would not fit
# in memory, the preparation holds ``x`` only and the pair step recomputes as the pairwise
# function always did.


class _Prep:
    """A prepared layer: ``x``, its ``name``, the cached data (``None``: lazy), and whether
    the measure is undefined (``nan``, already warned) for it."""

    __slots__ = ("x", "name", "data", "undefined")

    def __init__(self, x, name, data=None, undefined=False):
        self.x, self.name, self.data, self.undefined = x, name, data, undefined

    @property
    def lazy(self) -> bool:
        return self.data is None and not self.undefined


def _fits(nbytes: float, what: str) -> bool:
    """Whether a per-layer cache of ``nbytes`` fits in memory now (else the lazy form)."""
    try:
        check_fits(nbytes, what, "the layer is recomputed for every pair instead")
    except MemoryError:
        return False
    return True


def _is_permutation(idx: np.ndarray, n: int) -> bool:
    return (
        idx.ndim == 1
        and idx.shape[0] == n
        and bool(np.all((idx >= 0) & (idx < n)))
        and bool(np.all(np.bincount(idx, minlength=n) == 1))
    )


def _tri_positions(idx: np.ndarray) -> np.ndarray:
    """Positions in a packed strict lower triangle (entry ``(i, j)``, ``j < i``, at
    ``i (i - 1) / 2 + j``) of the entries of the rows permuted by ``idx``: entry ``(i, j)``
    of the permuted triangle is entry ``(idx[i], idx[j])`` of the original."""
    n = idx.shape[0]
    i, j = np.tril_indices(n, -1)
    a, b = idx[i], idx[j]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return hi * (hi - 1) // 2 + lo


def _stacked(preps_a, preps_b, pair, cross, ready):
    """The layer matrix from preparations: the ``cross`` route over every pair of ``ready``
    preparations at once, ``pair`` for the others (``preps_b=None``: ``a`` with itself)."""
    cols = preps_a if preps_b is None else preps_b
    out = np.empty((len(preps_a), len(cols)))
    ia = [i for i, p in enumerate(preps_a) if ready(p)]
    ib = [j for j, p in enumerate(cols) if ready(p)]
    if ia and ib:
        block = cross([preps_a[i] for i in ia], [cols[j] for j in ib])
        out[np.ix_(ia, ib)] = block
    done_a, done_b = set(ia), set(ib)
    for i, pa in enumerate(preps_a):
        for j, pb in enumerate(cols):
            if i in done_a and j in done_b:
                continue
            if preps_b is None and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = pair(pa, pb)
    return out


# ------------------------------------------------------------------------------- rsa

RsmKind = Literal["correlation", "euclidean"]
CompareKind = Literal["spearman", "pearson", "kendall_tau_a", "cosine"]
NormKind = Literal["fro", "spectral"]
_RSM = get_args(RsmKind)
_COMPARE = get_args(CompareKind)
_NORMS = get_args(NormKind)


def _rsa_prepare(x, *, name="X", rsm="correlation", compare="spearman"):
    """RSA's per-layer part: the RSM triangle of ``x``, ranked once for Spearman, and
    standardised (centred, unit norm; unit norm for cosine) so that the pair step is one dot
    product; raw for Kendall's tau-a. Degenerate layers are warned about here, once, by
    ``name``."""
    rsm = check_choice("rsm", rsm, _RSM)
    compare = check_choice("compare", compare, _COMPARE)
    if identical_rows(x):
        undefined(name, "rsa")
        return _Prep(x, name, undefined=True)
    if rsm == "correlation":
        flat = constant_columns(x.T)
        if flat.any():
            undefined(
                name,
                "rsa",
                f"row {int(np.flatnonzero(flat)[0])} is constant ({int(flat.sum())} "
                "constant row(s)), so its correlation with the other rows is undefined",
                what="has a row of zero variance",
            )
            return _Prep(x, name, undefined=True)
    n = x.shape[0]
    m = n * (n - 1) // 2
    if not _fits(24.0 * m, f"the RSM triangle of {name} ({m} values) in rsa"):
        return _Prep(x, name)
    status, z = _core.rsa_prepare(_for_core(x), rsm, compare)
    if status == 0:
        return _Prep(x, name, z)
    if status == 1:  # pragma: no cover - constant rows are caught above
        undefined(name, "rsa", "a row is constant, so its correlations are undefined")
    else:
        warn_degenerate(
            f"the RSM triangle of {name} is constant (all pairs of rows equally "
            f"{'correlated' if rsm == 'correlation' else 'far apart'}); rsa is undefined (nan)"
        )
    return _Prep(x, name, undefined=True)


def _rsa_direct(px, py, rsm, compare) -> float:
    """RSA of two lazy preparations, both triangles built for this pair only."""
    value = float(_core.rsa(_for_core(px.x), _for_core(py.x), rsm, compare))
    if math.isnan(value):
        warn_degenerate(
            f"the RSM triangle of {px.name} or {py.name} is constant; rsa is undefined (nan)"
        )
    return value


def _clip_corr(v):
    return np.clip(v, -1.0, 1.0)


def _rsa_pair(px, py, rsm="correlation", compare="spearman") -> float:
    """RSA from two preparations: the dot product of the standardised triangles (Kendall's
    tau-a: its exact pair counts on the two triangles)."""
    if px.undefined or py.undefined:
        return math.nan
    if px.lazy or py.lazy:
        return _rsa_direct(px, py, rsm, compare)
    if compare == "kendall_tau_a":
        return float(_core.kendall_tau_a(px.data, py.data))
    return float(_clip_corr(_core.layer_cross([px.data], [py.data], True)[0, 0]))


def _rsa_matrix(preps_a, preps_b, rsm="correlation", compare="spearman"):
    """The RSA layer matrix as one blocked product of the stacked standardised triangles
    (Kendall's tau-a: one exact count per pair)."""

    def pair(u, v):
        return _rsa_pair(u, v, rsm, compare)

    if compare == "kendall_tau_a":
        return _stacked(preps_a, preps_b, pair, None, lambda p: False)

    def cross(a, b):
        return _clip_corr(_core.layer_cross([p.data for p in a], [p.data for p in b], True))

    return _stacked(preps_a, preps_b, pair, cross, lambda p: p.data is not None)


def _rsa_reindex(prep, idx, rsm="correlation", compare="spearman"):
    """``prepare(x[idx])`` from ``prep``: for a row permutation the RSM entries, and so their
    ranks, move with the rows (entry ``(i, j)`` becomes entry ``(idx[i], idx[j])``): a gather,
    no new triangle and no new ranking (equal to a fresh preparation up to the rounding of
    its mean and norm). Resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    n = prep.x.shape[0]
    if not _is_permutation(idx, n):
        return _rsa_prepare(prep.x[idx], name=prep.name, rsm=rsm, compare=compare)
    x = prep.x[idx]
    if prep.data is None:
        return _Prep(x, prep.name, undefined=prep.undefined)
    return _Prep(x, prep.name, prep.data[_tri_positions(idx)])


def _rsa_permuted(px, py, perms, rsm="correlation", compare="spearman"):
    """``values[k] = pair(px, reindex(py, perms[k]))``: in the core, in parallel over the
    permutations, each one dot product with the gathered triangle (the same bits)."""
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    if px.undefined or py.undefined:
        return np.full(perms.shape[0], math.nan)
    if px.lazy or py.lazy or compare == "kendall_tau_a":
        return np.array(
            [_rsa_pair(px, _rsa_reindex(py, p, rsm, compare), rsm, compare) for p in perms],
            dtype=np.float64,
        )
    n = px.x.shape[0]
    return _clip_corr(_core.permuted_dots(px.data, py.data, n, perms))


@register(
    resampling="a duplicated row adds RSM entries of exact similarity (ties in the ranks, and pairs of entries that are equal by construction)",
    family="rsm",
    kind="similarity",
    summary="Representational similarity analysis: rank (or linear) correlation of the two RSMs",
    references=(
        (
            "Kriegeskorte, Mur, Bandettini (2008). Representational similarity analysis. "
            "Front. Syst. Neurosci."
        ),
    ),
    symmetric=True,
    invariances=lambda p: (
        _ALL_BUT_LINEAR if p["rsm"] == "euclidean" else ("isotropic_scaling", "permutation")
    ),
    bounds=(-1.0, 1.0),
    min_rows=3,
    variants=(
        {},
        {"rsm": "euclidean"},
        {"compare": "pearson"},
        {"rsm": "euclidean", "compare": "pearson"},
        {"compare": "kendall_tau_a"},
        {"rsm": "euclidean", "compare": "cosine"},
    ),
    prepare=_rsa_prepare,
    pair=_rsa_pair,
    reindex=_rsa_reindex,
    matrix=_rsa_matrix,
    permuted=_rsa_permuted,
)
def rsa(
    X: ArrayLike, Y: ArrayLike, rsm: RsmKind = "correlation", compare: CompareKind = "spearman"
) -> float:
    r"""Representational similarity analysis (Kriegeskorte et al. 2008).

    Each representation gets an ``n x n`` representational similarity matrix:

    * ``rsm="correlation"``: :math:`S_{ij} = \mathrm{corr}(x_i, x_j)`, the Pearson correlation
      of rows ``i`` and ``j`` (each row centred by its own mean over the features);
    * ``rsm="euclidean"``: :math:`S_{ij} = \lVert x_i - x_j \rVert_2`.

    The :math:`n(n-1)/2` entries with :math:`i < j` of the two matrices, in the same order,
    are then correlated:

    .. math::

        \mathrm{RSA}(X, Y) = \rho\big(\{S^X_{ij}\}_{i<j},\ \{S^Y_{ij}\}_{i<j}\big),

    with :math:`\rho` one of

    * ``compare="spearman"``: Spearman's rank correlation (tied values get the average of
      their ranks);
    * ``compare="pearson"``: Pearson's correlation;
    * ``compare="kendall_tau_a"``: Kendall's tau-a over all :math:`N(N-1)/2` pairs of the
      :math:`N = n(n-1)/2` entries, :math:`(C - D) / (N(N-1)/2)` with :math:`C` and
      :math:`D` the concordant and discordant pairs; a pair tied in either triangle counts
      in neither (the comparator recommended by Nili et al. 2014 for RSMs with ties);
    * ``compare="cosine"``: :math:`\langle a, b\rangle / (\lVert a\rVert\,\lVert b\rVert)`
      of the two triangles, not centred.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example; ``n >= 3``.
    rsm : {"correlation", "euclidean"}
        How the RSMs are built.
    compare : {"spearman", "pearson", "kendall_tau_a", "cosine"}
        How the two RSM triangles are compared.

    Returns
    -------
    float
        Similarity in [-1, 1]. ``nan``, with a :class:`~congruence.DegenerateDataWarning`,
        if every row of ``X`` or ``Y`` is the same, if a row has zero variance
        (``rsm="correlation"``: its correlations are undefined), or if either triangle is
        constant (for example ``n = 3`` points at the corners of an equilateral triangle).

    Notes
    -----
    Invariances: with ``rsm="euclidean"``, orthogonal maps, isotropic scaling, translation
    and permutation of the features; with ``rsm="correlation"``, isotropic scaling,
    permutation, and adding a constant to all features of a row (not orthogonal maps, not
    general translations). The triangles take ``n(n-1)/2`` float64 values each, plus a sort
    buffer of twice that size for Spearman ranks, or of four times that size for Kendall's
    tau-a, whose concordance counts are exact integers from one sort and one merge-sort
    inversion count (:math:`O(N \log N)`, Knight 1966). Inputs of any finite magnitude give
    the value of the formula: data beyond about :math:`10^{\pm 60}` are first multiplied by
    a power of two (exact, so no tie or order changes).

    References
    ----------
    Kriegeskorte, Mur, Bandettini (2008). Representational similarity analysis -- connecting
    the branches of systems neuroscience. Front. Syst. Neurosci. 2:4.

    Nili, Wingfield, Walther, Su, Marslen-Wilson, Kriegeskorte (2014). A toolbox for
    representational similarity analysis. PLoS Comput. Biol. 10(4): e1003553.

    Knight (1966). A computer method for calculating Kendall's tau with ungrouped data.
    J. Am. Stat. Assoc. 61(314), 436-439.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> round(cg.rsa(X, 5 * X + 1, rsm="euclidean"), 12)   # distances scale, ranks do not
    1.0
    >>> cg.rsa(X, X[:, ::-1] ** 2, rsm="euclidean", compare="pearson") < 1
    True
    >>> # Points 0, 1, 2 and 0, 1, 3 on a line: distances (1, 2, 1) and (1, 3, 2). Of the 3
    >>> # pairs of entries two are concordant and one is tied in the first (counts in neither).
    >>> a, b = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [3.0]])
    >>> round(cg.rsa(a, b, rsm="euclidean", compare="kendall_tau_a"), 12)   # (2 - 0) / 3
    0.666666666667
    """
    rsm = check_choice("rsm", rsm, _RSM)
    compare = check_choice("compare", compare, _COMPARE)
    X, Y = check_pair(X, Y, min_rows=3)
    px = _rsa_prepare(X, name="X", rsm=rsm, compare=compare)
    if px.undefined:
        return math.nan
    return _rsa_pair(px, _rsa_prepare(Y, name="Y", rsm=rsm, compare=compare), rsm, compare)


# ------------------------------------------------------------------------------- rsm_norm_diff


def _norm_prepare(x, *, name="X", norm="fro"):
    """rsm_norm_diff's per-layer part: the packed Euclidean distances of ``x`` (computed
    from ``x 2^-e``, ``e`` its own power of two when its magnitude is outside the safe range
    of the core, else 0), held as ``(e, d)``."""
    check_choice("norm", norm, _NORMS)
    if identical_rows(x):
        still_defined(name, "rsm_norm_diff", f"D_{name} = 0, the norm of the other")
    n = x.shape[0]
    m = n * (n - 1) // 2
    if not _fits(8.0 * m, f"the distances of {name} ({m} values) in rsm_norm_diff"):
        return _Prep(x, name)
    e = 0
    if x.dtype != np.float32:
        big = largest_magnitude(x)
        if big > 0.0 and not _SAFE_LOW <= big <= _SAFE_HIGH:
            e = math.frexp(big)[1]
    d = _core.rsm_lower(pow2_scaled(x, e) if e else x, "euclidean")
    return _Prep(x, name, (e, d))


def _common_scale(px, py):
    """The two distance vectors at one common power of two ``e`` (the larger; the other's
    distances multiplied by an exact power of two), and ``e``."""
    (ex, dx), (ey, dy) = px.data, py.data
    e = max(ex, ey)
    if ex < e:
        dx = np.ldexp(dx, ex - e)
    if ey < e:
        dy = np.ldexp(dy, ey - e)
    return dx, dy, e


def _norm_direct(X, Y, norm):
    """rsm_norm_diff of two arrays, both distance matrices built for this pair only."""
    e = 0
    if X.dtype != np.float32 or Y.dtype != np.float32:
        big = largest_magnitude(X, Y)
        if big > 0.0 and not _SAFE_LOW <= big <= _SAFE_HIGH:
            e = math.frexp(big)[1]
            X, Y = pow2_scaled(X, e), pow2_scaled(Y, e)
    if norm == "fro":
        return scale_back(float(_core.rsm_fro_diff(X, Y)), e, _NORM_WHAT)
    return scale_back(_spectral(_core.distance_difference(X, Y)), e, _NORM_WHAT)


_NORM_WHAT = "the value of rsm_norm_diff on these inputs"


def _spectral(D: np.ndarray) -> float:
    ev = eigh(D, measure="rsm_norm_diff", argument="D_X - D_Y", eigvals_only=True)
    return float(max(abs(ev[0]), abs(ev[-1])))


def _norm_pair(px, py, norm="fro") -> float:
    """rsm_norm_diff from two preparations: ``sqrt(2 sum (d_x - d_y)^2)`` over the packed
    triangles (the differences themselves, never a difference of squares), or the spectral
    norm of the full ``D_X - D_Y`` assembled from them."""
    n = px.x.shape[0]
    if norm == "spectral":
        check_fits(
            24.0 * n * n,
            f"the {n} x {n} matrix D_X - D_Y of rsm_norm_diff(norm='spectral') and its "
            "eigenvalue workspace",
            "use norm='fro' (streamed, no n x n matrix) or subsample the rows",
        )
    if px.lazy or py.lazy:
        return _norm_direct(px.x, py.x, norm)
    dx, dy, e = _common_scale(px, py)
    if norm == "fro":
        sq = float(_core.layer_cross([dx], [dy], False)[0, 0])
        return scale_back(math.sqrt(2.0 * sq), e, _NORM_WHAT)
    diff = dx - dy
    D = np.zeros((n, n))
    for i in range(1, n):
        D[i, :i] = diff[i * (i - 1) // 2 : i * (i + 1) // 2]
    D += D.T
    return scale_back(_spectral(D), e, _NORM_WHAT)


def _norm_matrix(preps_a, preps_b, norm="fro"):
    """The Frobenius layer matrix as one blocked pass over the stacked distance triangles
    (each block of every triangle read once), for layers at a common scale."""

    def pair(u, v):
        return _norm_pair(u, v, norm)

    if norm != "fro":
        return _stacked(preps_a, preps_b, pair, None, lambda p: False)
    every = list(preps_a) + list(preps_b or ())
    scales = {p.data[0] for p in every if p.data is not None}
    e = scales.pop() if len(scales) == 1 else None

    def cross(a, b):
        sq = _core.layer_cross([p.data[1] for p in a], [p.data[1] for p in b], False)
        return np.vectorize(lambda v: scale_back(math.sqrt(2.0 * v), e, _NORM_WHAT))(sq)

    return _stacked(preps_a, preps_b, pair, cross, lambda p: e is not None and p.data is not None)


def _norm_reindex(prep, idx, norm="fro"):
    """``prepare(x[idx])``: for a row permutation the distances move with the rows (a
    gather, the same bits); resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    if not _is_permutation(idx, prep.x.shape[0]):
        return _norm_prepare(prep.x[idx], name=prep.name, norm=norm)
    x = prep.x[idx]
    if prep.data is None:
        return _Prep(x, prep.name)
    e, d = prep.data
    return _Prep(x, prep.name, (e, d[_tri_positions(idx)]))


@register(
    family="rsm",
    kind="distance",
    summary="Norm of the difference of the two Euclidean distance matrices",
    references=(_SURVEY,),
    symmetric=True,
    invariances=("orthogonal", "translation", "permutation"),
    bounds=(0.0, math.inf),
    min_rows=2,
    variants=({}, {"norm": "spectral"}),
    prepare=_norm_prepare,
    pair=_norm_pair,
    reindex=_norm_reindex,
    matrix=_norm_matrix,
)
def rsm_norm_diff(X: ArrayLike, Y: ArrayLike, norm: NormKind = "fro") -> float:
    r"""Norm of the difference of the Euclidean distance matrices of two representations.

    With :math:`(D_X)_{ij} = \lVert x_i - x_j \rVert_2` (full ``n x n``, zero diagonal) and
    :math:`D_Y` likewise,

    .. math::

        d(X, Y) = \lVert D_X - D_Y \rVert,

    the Frobenius norm over the full matrix, both triangles (``norm="fro"``, the survey's
    definition), or the spectral norm, the largest singular value, which for this symmetric
    matrix is its largest absolute eigenvalue (``norm="spectral"``).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    norm : {"fro", "spectral"}

    Returns
    -------
    float
        Distance in [0, inf); a pseudo-metric. Never ``nan`` for valid input. If every row
        of ``X`` (or ``Y``) is the same, :math:`D_X = 0` and the value is the norm of
        :math:`D_Y`, returned with a :class:`~congruence.DegenerateDataWarning`. ``inf``,
        with the same warning, when the value itself exceeds the float64 range.

    Notes
    -----
    Invariant to orthogonal maps, translation and permutation of the features; not to
    scaling: :math:`d(aX, aY) = |a|\, d(X, Y)`, which is how data of any magnitude are
    handled (both are multiplied by one power of two, exactly, and the result scaled back).
    ``"fro"`` is streamed by the Rust core (no ``n x n`` matrix is held); ``"spectral"``
    builds :math:`D_X - D_Y` (one ``n x n`` float64 matrix, checked against the available
    memory first) and computes its eigenvalues with LAPACK, which costs :math:`O(n^3)`;
    Ctrl-C interrupts it.

    References
    ----------
    Klabunde et al. (2025), Similarity of Neural Network Models: A Survey of Functional and
    Representational Measures, ACM Computing Surveys (RSM-based measures).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> cg.rsm_norm_diff(X, 2 * X)   # D_X - D_Y = [[0, -5], [-5, 0]]: sqrt(2 * 25)
    7.0710678118654755
    >>> cg.rsm_norm_diff(X, 2 * X, norm="spectral")
    5.0
    """
    norm = check_choice("norm", norm, _NORMS)
    X, Y = check_pair(X, Y)
    px = _norm_prepare(X, name="X", norm=norm)
    return _norm_pair(px, _norm_prepare(Y, name="Y", norm=norm), norm)


# ------------------------------------------------------------------------------- dCor


def _dcor_prepare(x, *, name="X", lazy=False):
    """distance_correlation's per-layer part: the doubly centred distance matrix
    ``A = H a H`` of ``x`` as the unit vector ``[sqrt 2 A_lower, diag A] / ||A||_F``
    (``n (n + 1) / 2`` values), so that ``dCor^2`` of two layers is one dot product. When
    it does not fit, or with ``lazy`` (one pair: nothing to reuse), the lazy form (the pair
    step streams, holding no ``n x n`` matrix)."""
    if identical_rows(x):
        undefined(name, "distance_correlation")
        return _Prep(x, name, undefined=True)
    n = x.shape[0]
    size = n * (n + 1) // 2
    if lazy or not _fits(8.0 * size, f"the centred distances of {name} ({size} values)"):
        return _Prep(x, name)
    v = _core.dcor_prepare(_for_core(x))
    if v is None:
        warn_degenerate(
            f"the distance covariance of {name} with itself is 0; distance_correlation is "
            "undefined (nan)"
        )
        return _Prep(x, name, undefined=True)
    return _Prep(x, name, v)


def _dcor_value(r):
    return np.minimum(np.sqrt(np.maximum(r, 0.0)), 1.0)


def _dcor_pair(px, py) -> float:
    """Distance correlation from two preparations: ``sqrt(<v_X, v_Y>)``."""
    if px.undefined or py.undefined:
        return math.nan
    if px.lazy or py.lazy:
        value = float(_core.distance_correlation(_for_core(px.x), _for_core(py.x)))
        if math.isnan(value):  # pragma: no cover - identical rows are caught in prepare
            warn_degenerate("a distance covariance is 0; distance_correlation is nan")
        return value
    return float(_dcor_value(_core.layer_cross([px.data], [py.data], True)[0, 0]))


def _dcor_matrix(preps_a, preps_b):
    """The layer matrix as one blocked product of the stacked centred-distance vectors."""

    def cross(a, b):
        return _dcor_value(_core.layer_cross([p.data for p in a], [p.data for p in b], True))

    return _stacked(preps_a, preps_b, _dcor_pair, cross, lambda p: p.data is not None)


def _dcor_reindex(prep, idx):
    """``prepare(x[idx])``: double centring commutes with a row permutation, so the centred
    distances move with the rows (a gather; equal to a fresh preparation up to the rounding
    of the row means). Resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    n = prep.x.shape[0]
    if not _is_permutation(idx, n):
        return _dcor_prepare(prep.x[idx], name=prep.name)
    x = prep.x[idx]
    if prep.data is None:
        return _Prep(x, prep.name, undefined=prep.undefined)
    m = n * (n - 1) // 2
    v = prep.data
    return _Prep(x, prep.name, np.concatenate([v[:m][_tri_positions(idx)], v[m:][idx]]))


@register(
    resampling="a duplicated row is at distance 0 from its copy (the double-centred distance matrices gain zero entries)",
    family="rsm",
    kind="similarity",
    summary="Distance correlation (V-statistic) of the two representations",
    references=(
        (
            "Székely, Rizzo, Bakirov (2007). Measuring and testing dependence by correlation of "
            "distances. Ann. Stat."
        ),
    ),
    symmetric=True,
    invariances=_ALL_BUT_LINEAR,
    bounds=(0.0, 1.0),
    min_rows=2,
    prepare=_dcor_prepare,
    pair=_dcor_pair,
    reindex=_dcor_reindex,
    matrix=_dcor_matrix,
)
def distance_correlation(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Distance correlation (Székely, Rizzo & Bakirov 2007), V-statistic.

    With :math:`a_{ij} = \lVert x_i - x_j \rVert`, its double centring
    :math:`A = H a H` (subtract row and column means, add the grand mean;
    :math:`H = I - \frac1n 11^T`), and :math:`B` likewise from ``Y``,

    .. math::

        \mathrm{dCov}^2(X, Y) = \frac{1}{n^2}\sum_{ij} A_{ij} B_{ij}, \qquad
        \mathrm{dCor}(X, Y) = \sqrt{\frac{\mathrm{dCov}^2(X, Y)}
                                   {\sqrt{\mathrm{dCov}^2(X, X)\,\mathrm{dCov}^2(Y, Y)}}},

    a tiny negative numerator (round-off) being clipped to 0.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if
        either representation is constant (all its rows equal, so that :math:`A = 0` or
        :math:`B = 0`).

    Notes
    -----
    The Rust core streams over blocks of rows and computes each distance once, holding no
    ``n x n`` matrix. It uses the identity
    :math:`\langle HaH, HbH\rangle = \langle a, b\rangle - \frac2n r_a^Tr_b
    + \frac{S_aS_b}{n^2}` (row sums :math:`r`, totals :math:`S`) on distances shifted by
    estimated row means, :math:`a_{ij} - m_i - m_j + g`, which double centring removes
    exactly; the shift keeps the three terms small, so nothing large cancels. Invariant to
    orthogonal maps, isotropic scaling, translation and permutation of the features.

    References
    ----------
    Székely, Rizzo, Bakirov (2007). Measuring and testing dependence by correlation of
    distances. Annals of Statistics 35(6), 2769-2794.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    >>> Y = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    >>> round(cg.distance_correlation(X, Y) ** 4, 12)   # dCor^2 = 1 / sqrt(10)
    0.1
    """
    X, Y = check_pair(X, Y)
    # One pair: the streamed computation (O(n) memory), not two cached n x n matrices.
    px = _dcor_prepare(X, name="X", lazy=True)
    if px.undefined:
        return math.nan
    return _dcor_pair(px, _dcor_prepare(Y, name="Y", lazy=True))


# ------------------------------------------------------------------------------- EOS


def _left_basis(Z: np.ndarray):
    """Left singular vectors of ``Z`` for its numerically non-zero singular values
    (``None`` if ``Z`` is all zeros). ``Z`` is first multiplied by a power of two to
    magnitude about 1 (exact; the basis does not depend on the scale)."""
    n, p = Z.shape
    e = pow2_exponent(Z)
    if largest_magnitude(Z) == 0.0:
        return None
    U, s, _ = _svd(pow2_scaled(Z, e), "eigenspace_overlap", "a representation")
    rank = int(np.count_nonzero(s > s[0] * max(n, p) * _EPS))
    return U[:, :rank]


def _eos_prepare(x, *, name="X"):
    """eigenspace_overlap's per-layer part: the orthonormal basis of the column space."""
    n = x.shape[0]
    check_fits(
        16.0 * n * min(n, x.shape[1]),
        f"the singular vectors of {name} in eigenspace_overlap",
        "subsample the rows",
    )
    if largest_magnitude(x) == 0.0:
        undefined(name, "eigenspace_overlap", "it is all zeros")
        return _Prep(x, name, undefined=True)
    if identical_rows(x):
        still_defined(name, "eigenspace_overlap", "its column space is spanned by 1")
    return _Prep(x, name, _left_basis(x))


def _eos_pair(px, py) -> float:
    if px.undefined or py.undefined:
        return math.nan
    value = float(np.sum((px.data.T @ py.data) ** 2)) / max(px.x.shape[1], py.x.shape[1])
    return min(max(value, 0.0), 1.0)


def _eos_reindex(prep, idx):
    """A row permutation permutes the basis' rows (an orthonormal basis of the permuted
    column space); resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    if not _is_permutation(idx, prep.x.shape[0]) or prep.data is None:
        return _eos_prepare(prep.x[idx], name=prep.name)
    return _Prep(prep.x[idx], prep.name, prep.data[idx])


@register(
    family="rsm",
    kind="similarity",
    summary="Eigenspace overlap score: overlap of the column spaces (left singular vectors)",
    references=(
        (
            "May, Zhang, Dao, Ré (2019). On the Downstream Performance of Compressed Word "
            "Embeddings. NeurIPS."
        ),
    ),
    symmetric=True,
    invariances=("invertible_linear", "orthogonal", "isotropic_scaling", "permutation"),
    bounds=(0.0, 1.0),
    min_rows=2,
    prepare=_eos_prepare,
    pair=_eos_pair,
    reindex=_eos_reindex,
)
def eigenspace_overlap(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Eigenspace overlap score (May, Zhang, Dao & Ré 2019).

    No centring. :math:`U_X` holds the left singular vectors of ``X`` for its numerically
    non-zero singular values (:math:`s_i > s_{\max} \max(n, p_1)\,\epsilon_{64}`), and
    :math:`U_Y` likewise; then

    .. math::

        \mathrm{EOS}(X, Y) = \frac{\lVert U_X^T U_Y \rVert_F^2}{\max(p_1, p_2)}.

    **Convention**: normalised by the larger number of *columns*, not by rank, so for
    ``p > n`` the largest attainable value is below 1.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if
        either input is all zeros. If every row of an input is the same (and not zero), its
        column space is the line of the all-ones vector and the value is defined; it comes
        with the same warning.

    Notes
    -----
    Invariant to invertible linear maps that keep the width (hence orthogonal maps,
    isotropic scaling and permutations): they do not change the column space. Not invariant
    to translation.

    References
    ----------
    May, Zhang, Dao, Ré (2019). On the Downstream Performance of Compressed Word Embeddings.
    NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> Y = np.array([[2.0], [0.0], [5.0]])
    >>> round(cg.eigenspace_overlap(X, Y), 12)   # |U_X^T u_Y|^2 = 4/29, over max(2, 1) = 2
    0.068965517241
    """
    X, Y = check_pair(X, Y)
    n = X.shape[0]
    k = min(n, X.shape[1]) + min(n, Y.shape[1])
    check_fits(
        16.0 * n * k,
        f"the singular vectors ({n} x {k} in all) of eigenspace_overlap",
        "subsample the rows",
    )
    px = _eos_prepare(X, name="X")
    if px.undefined:
        return math.nan
    return _eos_pair(px, _eos_prepare(Y, name="Y"))


# ------------------------------------------------------------------------------- GULP


def _gulp_factor(Z: np.ndarray, lam: float):
    """``(U, f)`` with ``P = U diag(f) U^T = A (A^T A + n lam I)^+ A^T`` for the rescaled
    centred ``A = sqrt(n) Zc / ||Zc||_F``; ``None`` when ``Zc`` is all zeros.

    ``mu = s^2 / n`` are the eigenvalues of ``Sa = A^T A / n`` (from the singular values of
    ``A``, so never negative); ``f = mu / (mu + lam)``, or for ``lam = 0`` 1. Either way
    ``f = 0`` where ``mu <= mu_max p eps`` (the usual pseudo-inverse rank rule): those are
    round-off of zero eigenvalues, whose exact ``f`` is 0 for every ``lam`` (against a ``lam``
    smaller still, ``mu / (mu + lam)`` would make them about 1: ``lam = 1e-40`` jumped from
    the ``lam = 0`` value by O(1)).
    """
    Zc = _centre(Z)
    n, p = Zc.shape
    scale = np.linalg.norm(Zc)
    if scale == 0.0:
        return None
    A = Zc * (math.sqrt(n) / scale)
    U, s, _ = _svd(A, "gulp", "a centred representation")
    mu = s**2 / n
    kept = mu > mu[0] * p * _EPS
    f = np.where(kept, mu / (mu + lam) if lam > 0.0 else 1.0, 0.0)
    return U, f


def _gulp_prepare(x, *, name="X", lam=0.0):
    """gulp's per-layer part: ``(U sqrt(f), sum f^2)`` with ``P = U diag(f) U^T`` the
    ridge projector of the rescaled centred ``x``."""
    lam = check_number("lam", lam, low=0.0)
    if identical_rows(x):
        undefined(name, "gulp")
        return _Prep(x, name, undefined=True)
    n = x.shape[0]
    k = min(n, x.shape[1])
    check_fits(
        16.0 * n * k + 8.0 * k * k, f"the singular vectors of {name} in gulp", "subsample the rows"
    )
    f = _gulp_factor(x, lam)
    if f is None:  # pragma: no cover - constant columns are caught above
        undefined(name, "gulp")
        return _Prep(x, name, undefined=True)
    U, a = f
    return _Prep(x, name, (U * np.sqrt(a), float(np.sum(a**2))))


def _gulp_pair(px, py, lam=0.0) -> float:
    if px.undefined or py.undefined:
        return math.nan
    (wx, sx), (wy, sy) = px.data, py.data
    cross = wx.T @ wy
    return max(float(sx + sy - 2.0 * np.sum(cross**2)), 0.0)


def _gulp_reindex(prep, idx, lam=0.0):
    """Centring and the singular vectors commute with a row permutation: the factor's rows
    move with the rows. Resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    if not _is_permutation(idx, prep.x.shape[0]) or prep.data is None:
        return _gulp_prepare(prep.x[idx], name=prep.name, lam=lam)
    w, s2 = prep.data
    return _Prep(prep.x[idx], prep.name, (w[idx], s2))


@register(
    family="rsm",
    kind="distance",
    summary="GULP: distance between the ridge predictors built on each representation (squared)",
    references=(
        (
            "Boix-Adserà, Lawrence, Stepaniants, Rigollet (2022). GULP: a prediction-based "
            "metric between representations. NeurIPS."
        ),
    ),
    symmetric=True,
    invariances=lambda p: _ALL_BUT_LINEAR + (("invertible_linear",) if p["lam"] == 0 else ()),
    bounds=(0.0, math.inf),
    min_rows=2,
    variants=({}, {"lam": 0.1}),
    prepare=_gulp_prepare,
    pair=_gulp_pair,
    reindex=_gulp_reindex,
)
def gulp(X: ArrayLike, Y: ArrayLike, lam: float = 0.0) -> float:
    r"""GULP distance (Boix-Adserà, Lawrence, Stepaniants & Rigollet 2022), **squared**.

    Centre the columns and rescale to :math:`\lVert\cdot\rVert_F^2 = n`:
    :math:`A = \sqrt n\, X_c / \lVert X_c \rVert_F`, :math:`B` likewise. With
    :math:`S_a = A^TA/n`, :math:`S_b = B^TB/n`, :math:`S_{ab} = A^TB/n` and
    :math:`R_a = (S_a + \lambda I)^{-1}` (the pseudo-inverse :math:`S_a^+` for
    :math:`\lambda = 0`, eigenvalues :math:`\le \mu_{\max}\, p\, \epsilon_{64}` counting as
    zero), :math:`R_b` likewise,

    .. math::

        \mathrm{GULP}^2 = \mathrm{tr}(S_aR_aS_aR_a) + \mathrm{tr}(S_bR_bS_bR_b)
                          - 2\,\mathrm{tr}(R_aS_{ab}R_bS_{ab}^T).

    It is computed as :math:`\lVert P_a - P_b \rVert_F^2` with
    :math:`P_a = A R_a A^T / n = U_a\,\mathrm{diag}(\mu/(\mu+\lambda))\,U_a^T` from the thin
    SVD of :math:`A` (the ``n x n`` form only when ``p > n``), never forming an inverse.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    lam : float >= 0
        Ridge penalty :math:`\lambda`.

    Returns
    -------
    float
        The squared distance, in [0, inf) (in [0, rank(Xc) + rank(Yc)] for ``lam=0``); a
        round-off negative is returned as 0. ``nan``, with a
        :class:`~congruence.DegenerateDataWarning`, if a centred input is all zeros (every
        row the same).

    Notes
    -----
    Invariant to orthogonal maps, isotropic scaling, translation and permutation, and for
    ``lam=0`` to every invertible linear map.

    References
    ----------
    Boix-Adserà, Lawrence, Stepaniants, Rigollet (2022). GULP: a prediction-based metric
    between representations. NeurIPS.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> round(cg.gulp(X, X @ np.array([[2.0, 1.0], [0.0, 3.0]])), 12)   # same column space
    0.0
    >>> round(cg.gulp(X, X[:, :1]), 12)   # projectors of rank 2 and 1, one dimension apart
    1.0
    """
    lam = check_number("lam", lam, low=0.0)
    X, Y = check_pair(X, Y)
    n = X.shape[0]
    k = min(n, X.shape[1]) + min(n, Y.shape[1])
    check_fits(
        16.0 * n * k + 8.0 * k * k,
        f"the singular vectors ({n} x {k} in all) of gulp",
        "subsample the rows",
    )
    px = _gulp_prepare(X, name="X", lam=lam)
    if px.undefined:
        return math.nan
    return _gulp_pair(px, _gulp_prepare(Y, name="Y", lam=lam), lam)


# ------------------------------------------------------------------------------- Bures


def _bures_prepare(x, *, name="X"):
    """normalized_bures' per-layer part: ``G`` with ``G G^T = X_c X_c^T / ||X_c||_F^2``
    (the centred, unit-norm ``x`` itself, or its ``n x n`` triangular QR factor when wider
    than ``n``)."""
    if identical_rows(x):
        undefined(name, "normalized_bures")
        return _Prep(x, name, undefined=True)
    n = x.shape[0]
    k = min(n, x.shape[1])
    check_fits(16.0 * n * k, f"the centred {name} in normalized_bures", "subsample the rows")
    xc = _centre(x)
    nx = np.linalg.norm(xc)
    if nx == 0.0:  # pragma: no cover - constant columns are caught above
        undefined(name, "normalized_bures")
        return _Prep(x, name, undefined=True)
    return _Prep(x, name, _same_gram(xc / nx))


def _bures_pair(px, py) -> float:
    if px.undefined or py.undefined:
        return math.nan
    M = px.data.T @ py.data
    value = float(np.sum(_svd(M, "normalized_bures", "Xc^T Yc", compute_uv=False)))
    return min(max(value, 0.0), 1.0)


def _bures_reindex(prep, idx):
    """Centring commutes with a row permutation and ``Z = G Q^T`` row by row, so the rows of
    ``G`` move with the rows. Resamples with repeated rows are prepared afresh."""
    idx = np.asarray(idx, dtype=np.intp)
    if not _is_permutation(idx, prep.x.shape[0]) or prep.data is None:
        return _bures_prepare(prep.x[idx], name=prep.name)
    return _Prep(prep.x[idx], prep.name, prep.data[idx])


@register(
    family="rsm",
    kind="similarity",
    summary="Normalized Bures similarity of the centred linear kernels (nuclear-norm form)",
    references=(
        (
            "Tang, Maddox, Dickens, Diethe, Damianou (2020). Similarity of Neural Networks with "
            "Gradients. arXiv:2003.11498."
        ),
    ),
    symmetric=True,
    invariances=_ALL_BUT_LINEAR,
    bounds=(0.0, 1.0),
    min_rows=2,
    prepare=_bures_prepare,
    pair=_bures_pair,
    reindex=_bures_reindex,
)
def normalized_bures(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Normalized Bures similarity (Tang et al. 2020) of the centred linear kernels.

    With :math:`K = X_cX_c^T` and :math:`L = Y_cY_c^T`,

    .. math::

        \mathrm{NBS}(X, Y) = \frac{\mathrm{tr}\big((K^{1/2} L K^{1/2})^{1/2}\big)}
                                  {\sqrt{\mathrm{tr} K\, \mathrm{tr} L}}
                           = \frac{\lVert X_c^T Y_c \rVert_*}
                                  {\lVert X_c \rVert_F\, \lVert Y_c \rVert_F},

    computed with the nuclear-norm form (singular values of :math:`X_c^TY_c`; a side wider
    than ``n`` is first replaced by the ``n x n`` triangular factor of its QR
    decomposition, which keeps those singular values).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Similarity in [0, 1]; equals ``cos(angular_shape_metric(X, Y, alpha=1))``. ``nan``,
        with a :class:`~congruence.DegenerateDataWarning`, if a centred input is all zeros
        (every row the same).

    Notes
    -----
    Invariant to orthogonal maps, isotropic scaling, translation and permutation.

    References
    ----------
    Tang, Maddox, Dickens, Diethe, Damianou (2020). Similarity of Neural Networks with
    Gradients. arXiv:2003.11498.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> round(cg.normalized_bures(X, X[:, :1]), 12)   # ||Xc^T Yc||_* = 2, norms 2 and sqrt 2
    0.707106781187
    """
    X, Y = check_pair(X, Y)
    n = X.shape[0]
    k1, k2 = min(n, X.shape[1]), min(n, Y.shape[1])
    check_fits(
        8.0 * (2 * n * (k1 + k2) + k1 * k2),
        f"the centred inputs and their {k1} x {k2} cross product in normalized_bures",
        "subsample the rows",
    )
    px = _bures_prepare(X, name="X")
    if px.undefined:
        return math.nan
    return _bures_pair(px, _bures_prepare(Y, name="Y"))


# ------------------------------------------------------------------------------- Riemannian


def _spectrum_floor(w: np.ndarray, n: int) -> bool:
    """Ascending eigenvalues ``w`` of an ``n x n`` symmetric matrix are numerically positive
    definite: the smallest is above ``n eps`` times the largest."""
    return bool(w[-1] > 0.0 and w[0] > w[-1] * n * _EPS)


def _not_positive_definite(name: str, identical: bool) -> float:
    if identical:
        return undefined(name, "riemannian_distance")
    warn_degenerate(
        f"{name} {name}^T / p is not numerically positive definite (its smallest eigenvalue "
        "is not above n * eps times its largest: the rows are linearly dependent up to "
        "round-off); riemannian_distance is undefined (nan)"
    )
    return math.nan


def _riemann_prepare(x, *, name="X", basis=True):
    """riemannian_distance's per-layer part: ``S = x' x'^T / p`` of ``x' = x 2^-e`` (``e``
    its power of two) and, with ``basis``, ``W = V diag(w)^-1/2`` from the eigendecomposition
    ``S = V diag(w) V^T`` (the side whose ``S^-1/2`` the pair step applies)."""
    n, p = x.shape
    if p < n:
        raise ValueError(
            f"{name} has shape {x.shape}: riemannian_distance needs at least as many "
            f"columns as rows (p >= n = {n}), so that {name} {name}^T / p can be positive "
            "definite"
        )
    check_fits(
        8.0 * (4 * n * n + n * p),
        f"the {n} x {n} matrix {name} {name}^T / p and its eigendecomposition in "
        "riemannian_distance",
        "subsample the rows",
    )
    e = pow2_exponent(x)
    xs = pow2_scaled(x, e)
    # The product is a single long BLAS call too (NumPy releases the GIL in it).
    S = run(2.0 * n * n * p, np.matmul, xs, xs.T) / p
    if basis:
        w, V = eigh(S, measure="riemannian_distance", argument=f"S of {name}")
    else:
        w = eigh(S, measure="riemannian_distance", argument=f"S of {name}", eigvals_only=True)
    if not _spectrum_floor(w, n):
        _not_positive_definite(name, identical_rows(x))
        return _Prep(x, name, undefined=True)
    return _Prep(x, name, (S, e, V / np.sqrt(w) if basis else None))


def _riemann_pair(px, py) -> float:
    """The distance from two preparations: the eigenvalues of ``W_X^T S_Y W_X``."""
    if px.undefined or py.undefined:
        return math.nan
    (_, ex, W), (Sy, ey, _) = px.data, py.data
    if W is None:  # pragma: no cover - every caller prepares the first side with its basis
        raise ValueError("the first preparation of riemannian_distance needs its basis")
    n = Sy.shape[0]
    C = run(4.0 * n**3, np.linalg.multi_dot, [W.T, Sy, W])
    lam = eigh(
        (C + C.T) / 2.0,
        measure="riemannian_distance",
        argument="S_X^-1/2 S_Y S_X^-1/2",
        eigvals_only=True,
    )
    if not lam[0] > 0.0:  # pragma: no cover - excluded by the two checks in prepare
        warn_degenerate("S_X^-1 S_Y has a non-positive eigenvalue; riemannian_distance is nan")
        return math.nan
    # S_X, S_Y were computed at the scales 2**-2ex, 2**-2ey: lambda = lambda' 2**(2(ey - ex)).
    logs = np.log(lam) + 2.0 * (ey - ex) * math.log(2.0)
    return float(math.sqrt(float(np.sum(logs**2))))


def _riemann_reindex(prep, idx):
    """A row permutation ``P`` maps ``S`` to ``P S P^T`` and ``W`` to ``P W``; resamples
    with repeated rows are prepared afresh (and are singular)."""
    idx = np.asarray(idx, dtype=np.intp)
    if not _is_permutation(idx, prep.x.shape[0]) or prep.data is None:
        return _riemann_prepare(prep.x[idx], name=prep.name)
    S, e, W = prep.data
    return _Prep(prep.x[idx], prep.name, (S[np.ix_(idx, idx)], e, None if W is None else W[idx]))


@register(
    family="rsm",
    kind="distance",
    summary="Affine-invariant Riemannian distance between the RSMs X X^T / p (needs p >= n)",
    references=(
        (
            "Shahbazi, Shirali, Aghajan, Nili (2021). Using distance on the Riemannian manifold "
            "to compare representations in brain and in models. NeuroImage."
        ),
    ),
    symmetric=True,
    invariances=("orthogonal", "permutation"),
    bounds=(0.0, math.inf),
    min_rows=2,
    wide=True,
    prepare=_riemann_prepare,
    pair=_riemann_pair,
    reindex=_riemann_reindex,
)
def riemannian_distance(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Affine-invariant Riemannian distance between RSMs (Shahbazi et al. 2021).

    With :math:`S_X = XX^T/p_1` and :math:`S_Y = YY^T/p_2` (``n x n``, **no centring**),

    .. math::

        d(X, Y) = \sqrt{\sum_i \log^2 \lambda_i},

    :math:`\lambda_i` the eigenvalues of :math:`S_X^{-1}S_Y`, from the generalized symmetric
    eigenproblem :math:`S_Y v = \lambda S_X v`, solved as the eigenvalues of
    :math:`W^T S_Y W` with :math:`W = V \mathrm{diag}(w)^{-1/2}` from the eigendecomposition
    :math:`S_X = V \mathrm{diag}(w) V^T` (the same eigenvalues).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Both need at least as many columns as rows (``p1 >= n``, ``p2 >= n``), else the
        matrices are singular and a ``ValueError`` is raised.

    Returns
    -------
    float
        Distance in [0, inf), a metric on positive definite matrices. ``nan``, with a
        :class:`~congruence.DegenerateDataWarning`, if ``S_X`` or ``S_Y`` is not numerically
        positive definite: its smallest eigenvalue is not above ``n * eps`` times its
        largest (for example identical or linearly dependent rows).

    Notes
    -----
    Invariant to orthogonal maps and permutations of the features; not to translation, and
    not to scaling: ``X -> aX`` shifts every :math:`\log\lambda_i` by :math:`-2\log a`.
    That law makes inputs of any finite magnitude safe: each input is multiplied by a power
    of two to magnitude about 1 (exact) and the logarithms shifted back, so ``1e300 * X``
    gives the value of the formula, not an overflow. The ``n x n`` eigendecompositions
    (``O(n^3)``) can be interrupted with Ctrl-C.

    References
    ----------
    Shahbazi, Shirali, Aghajan, Nili (2021). Using distance on the Riemannian manifold to
    compare representations in brain and in models. NeuroImage 239, 118271.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.eye(3)
    >>> Y = np.diag([1.0, 2.0, 4.0])   # S_Y = diag(1, 4, 16) / 3, S_X = I / 3
    >>> round(cg.riemannian_distance(X, Y), 12) == round(float(np.log(4) * np.sqrt(5)), 12)
    True
    """
    X, Y = check_pair(X, Y)
    for name, Z in (("X", X), ("Y", Y)):
        n, p = Z.shape
        if p < n:
            raise ValueError(
                f"{name} has shape {Z.shape}: riemannian_distance needs at least as many "
                f"columns as rows (p >= n = {n}), so that {name} {name}^T / p can be positive "
                "definite"
            )
    n = X.shape[0]
    check_fits(
        8.0 * (6 * n * n + n * (X.shape[1] + Y.shape[1])),
        f"the {n} x {n} matrices X X^T / p1, Y Y^T / p2 and their eigendecompositions in "
        "riemannian_distance",
        "subsample the rows",
    )
    px = _riemann_prepare(X, name="X")
    if px.undefined:
        return math.nan
    return _riemann_pair(px, _riemann_prepare(Y, name="Y", basis=False))
