"""Descriptive-statistics measures: magnitude, concentricity, uniformity (Klabunde et al. 2025, descriptive statistics).

Each measure summarises every representation by one number and reports the absolute
difference of the two summaries. They are cheap diagnostics rather than full comparisons: two
unrelated representations with the same summary are at distance 0.

Their formulas stay defined when every row of a representation is the same; the value is then
returned with a :class:`~congruence.DegenerateDataWarning`. Data of any finite magnitude give
the value of the formula: magnitudes and cosines are computed on inputs multiplied by a power
of two (exact) and scaled back, and ``inf`` (with a warning) is returned only when the value
itself exceeds the float64 range.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist

from congruence._linalg import identical_rows, pow2_exponent, pow2_scaled, scale_back, still_defined
from congruence._registry import register
from congruence._validation import check_pair

__all__ = ["magnitude_diff", "concentricity_diff", "uniformity_diff"]

_REF_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network Models: "
    "A Survey of Functional and Representational Measures. ACM Computing Surveys."
)
_REF_UNIFORMITY = (
    "Wang, Isola (2020). Understanding Contrastive Representation Learning through Alignment "
    "and Uniformity on the Hypersphere. ICML."
)

#: Rows per block of the pairwise computation in :func:`_uniformity` (block x n doubles).
_BLOCK_ELEMENTS = 1 << 20


def _pair64(X, Y, measure: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return float64 copies-or-views (never written to); warn for each input
    whose rows are all the same (``value`` says what the formula gives then)."""
    X, Y = check_pair(X, Y)
    for name, Z in (("X", X), ("Y", Y)):
        if identical_rows(Z):
            still_defined(name, measure, value.format(name=name))
    return np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)


def _magnitude(X: np.ndarray) -> float:
    """``||mean_i x_i||``, of data already at magnitude <= 1 (no overflow)."""
    return float(np.linalg.norm(X.mean(axis=0)))


def _concentricity(X: np.ndarray) -> float:
    # Scale-invariant: a power of two brings the data to magnitude about 1 (exact), so no
    # sum or squared norm overflows or underflows.
    X = pow2_scaled(X, pow2_exponent(X))
    xbar = X.mean(axis=0)
    norms = np.linalg.norm(X, axis=1) * np.linalg.norm(xbar)
    dots = X @ xbar
    # Cosine with an all-zero vector is 0 (the package's convention).
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return float(np.mean(cos))


def _uniformity(X: np.ndarray) -> float:
    """``log((1/n^2) sum_ij exp(-2 ||x_i - x_j||^2))``, in row blocks of the pair matrix.

    The ``n`` diagonal terms are ``exp(0) = 1``, so the sum is at least ``n``: terms that
    underflow to zero are below the rounding of that sum, and ``log`` never sees 0.
    """
    n = X.shape[0]
    rows = max(1, _BLOCK_ELEMENTS // n)
    total = 0.0
    for start in range(0, n, rows):
        d2 = cdist(X[start : start + rows], X, "sqeuclidean")  # explicit differences
        total += float(np.exp(-2.0 * d2).sum())
    return math.log(total) - 2.0 * math.log(n)


# The per-layer contract (compare_layers): each layer's summary once, a pair is a difference.
# The summaries do not survive resampling, and a row permutation leaves them unchanged (these
# measures compare each side separately), so neither ``reindex`` nor ``permuted`` is declared.


def _summary_prepare(summary, measure: str, value: str):
    """``prepare(x, *, name)``: ``summary(x)`` of the float64 values, with the warning for
    identical rows naming ``name`` (``value``: what the formula gives then)."""

    def prepare(x, *, name: str = "X") -> float:
        if identical_rows(x):
            still_defined(name, measure, value.format(name=name))
        return summary(np.asarray(x, dtype=np.float64))

    return prepare


def _difference(px: float, py: float) -> float:
    return abs(px - py)


def _magnitude_layer(X: np.ndarray) -> tuple[float, int, bool]:
    """``(m, k, nonzero)``: the magnitude of ``X * 2**-k`` at ``X``'s own exponent ``k``."""
    k = pow2_exponent(X)
    return _magnitude(pow2_scaled(X, k)), k, bool(np.any(X))


def _magnitude_pair(px: tuple[float, int, bool], py: tuple[float, int, bool]) -> float:
    """The two magnitudes at the common exponent of both inputs, as magnitude_diff takes them
    (a power of two: exact), then the difference scaled back."""
    exps = [k for _, k, nonzero in (px, py) if nonzero]
    e = max(exps) if exps else 0
    value = abs(math.ldexp(px[0], px[1] - e) - math.ldexp(py[0], py[1] - e))
    return scale_back(value, e, "the value of magnitude_diff on these inputs")


@register(
    paired=False,
    family="descriptive",
    kind="distance",
    summary="Absolute difference of the norms of the mean instances",
    references=(_REF_SURVEY,),
    symmetric=True,
    invariances=("orthogonal", "permutation"),
    bounds=(0.0, math.inf),
    prepare=_summary_prepare(
        _magnitude_layer, "magnitude_diff", "the norm of its one distinct row"
    ),
    pair=_magnitude_pair,
)
def magnitude_diff(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Difference of magnitudes: the norm of each representation's mean instance.

    .. math::

        d(X, Y) = \Big|\, \big\lVert \tfrac1n \textstyle\sum_i x_i \big\rVert_2
                       - \big\lVert \tfrac1n \textstyle\sum_i y_i \big\rVert_2 \Big|

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example.

    Returns
    -------
    float
        Distance in ``[0, inf)``; invariant to orthogonal transformations and permutations
        of the columns, not to translation or scaling (:math:`d(aX, aY) = |a|\, d(X, Y)`,
        the law used for data of any magnitude). Never ``nan`` for valid input; ``inf``,
        with a :class:`~congruence.DegenerateDataWarning`, only if the value exceeds the
        float64 range.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (descriptive statistics).

    Examples
    --------
    >>> import congruence as cg
    >>> X = [[3.0, 0.0], [3.0, 8.0]]   # mean (3, 4): magnitude 5
    >>> Y = [[0.0], [2.0]]             # mean (1,):   magnitude 1
    >>> cg.magnitude_diff(X, Y)
    4.0
    """
    X, Y = _pair64(X, Y, "magnitude_diff", "the norm of its one distinct row")
    e = pow2_exponent(X, Y)  # one power of two for both: d(aX, aY) = a d(X, Y)
    value = abs(_magnitude(pow2_scaled(X, e)) - _magnitude(pow2_scaled(Y, e)))
    return scale_back(value, e, "the value of magnitude_diff on these inputs")


@register(
    paired=False,
    family="descriptive",
    kind="distance",
    summary="Absolute difference of the mean cosine between instances and their mean",
    references=(_REF_SURVEY,),
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "permutation"),
    bounds=(0.0, 2.0),
    prepare=_summary_prepare(
        _concentricity, "concentricity_diff", "c({name}) = 1, or 0 if that row is zero"
    ),
    pair=_difference,
)
def concentricity_diff(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Difference of concentricities: the mean cosine of the instances with their mean.

    .. math::

        c(X) = \frac1n \sum_i \cos(x_i, \bar x), \qquad
        \bar x = \frac1n \sum_i x_i, \qquad d(X, Y) = |c(X) - c(Y)|

    The cosine with an all-zero vector (an all-zero row, or :math:`\bar x = 0`) is 0.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Distance in ``[0, 2]``; invariant to orthogonal transformations, isotropic scaling
        and column permutations, not to translation. Never ``nan`` for valid input (rows all
        the same give their defined value with a
        :class:`~congruence.DegenerateDataWarning`).

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (descriptive statistics).

    Examples
    --------
    >>> import congruence as cg
    >>> X = [[1.0, 0.0], [2.0, 0.0]]   # every instance along its mean: c = 1
    >>> Y = [[1.0, 0.0], [-1.0, 0.0]]  # mean is zero: every cosine is 0, c = 0
    >>> cg.concentricity_diff(X, Y)
    1.0
    """
    X, Y = _pair64(X, Y, "concentricity_diff", "c({name}) = 1, or 0 if that row is zero")
    return abs(_concentricity(X) - _concentricity(Y))


@register(
    paired=False,
    resampling="a duplicated row is at distance 0 from its copy, the largest possible Gaussian potential",
    family="descriptive",
    kind="distance",
    summary="Absolute difference of the uniformities (Gaussian potential, t = 2)",
    references=(_REF_UNIFORMITY, _REF_SURVEY),
    symmetric=True,
    invariances=("orthogonal", "translation", "permutation"),
    bounds=(0.0, math.inf),
    prepare=_summary_prepare(
        _uniformity, "uniformity_diff", "u({name}) = 0: every pair is at distance 0"
    ),
    pair=_difference,
)
def uniformity_diff(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Difference of uniformities (Wang & Isola 2020) with :math:`t = 2`.

    .. math::

        u(X) = \log\Big(\frac1{n^2} \sum_{i=1}^n \sum_{j=1}^n
               e^{-2 \lVert x_i - x_j \rVert_2^2}\Big), \qquad d(X, Y) = |u(X) - u(Y)|

    over all ordered pairs, the ``n`` pairs ``i = j`` included, so
    :math:`-\log n \le u \le 0`. Meant for unit-norm embeddings: for widely spread data both
    uniformities are close to :math:`-\log n` and the difference to 0. Computed in row
    blocks (no ``n x n`` matrix is held), with squared distances from explicit differences.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)

    Returns
    -------
    float
        Distance in ``[0, log n]`` (the registry records ``[0, inf)`` since the bound depends
        on ``n``); invariant to orthogonal transformations, translation and column
        permutations, not to scaling. Never ``nan`` for valid input (rows all the same give
        ``u = 0``, with a :class:`~congruence.DegenerateDataWarning`). Squared distances
        beyond the float64 range give ``exp(-inf) = 0``, the float64 value of those terms,
        so data of any magnitude are handled.

    References
    ----------
    Wang & Isola (2020), ICML.

    Examples
    --------
    >>> import math, congruence as cg
    >>> X = [[0.0], [0.0], [100.0]]    # 5 of the 9 pairs at distance 0: u = log(5 / 9)
    >>> Y = [[0.0], [100.0], [200.0]]  # only the diagonal: u = log(3 / 9)
    >>> math.isclose(cg.uniformity_diff(X, Y), math.log(5 / 3))
    True
    """
    X, Y = _pair64(X, Y, "uniformity_diff", "u({name}) = 0: every pair is at distance 0")
    return abs(_uniformity(X) - _uniformity(Y))
