"""Neighbourhood-based measures (Klabunde et al. 2025, neighbourhood-based measures).

All five compare, row by row, the ``k`` nearest neighbours ``N_k(i)`` of each input under the
cosine distance ``1 - cos`` in the two representations: self excluded, ordered by increasing
distance, ties broken by the smaller index; an all-zero row has cosine similarity 0 with every
row (distance 1).

The neighbour sets are computed in the Rust core in row blocks: the rows are normalised once,
each block of rows is multiplied against the earlier blocks in float32 and every row keeps a
bounded list of candidates. That pass only screens, with a rigorous error margin; the
neighbours are then decided by float64 distances ``||u_i - u_j||^2 / 2`` of the unit rows
(equal to ``1 - cos``, but accurate also for nearly parallel rows, such as data far from the
origin), exactly as an exhaustive float64 search would. Rows the screening cannot certify
(near-ties, duplicated rows, or a large common offset that float32 cannot resolve) take that
exhaustive search. float32 input gives exactly the neighbour sets, ranks and ties of the same
values in float64, whatever their magnitude or offset.

A representation whose rows all tie (every row identical, or all non-zero rows pointing the
same way) has no neighbourhood structure: the tie rule would pick the neighbours by index
alone, so every measure here returns ``nan`` with a
:class:`~congruence.DegenerateDataWarning` naming the argument. The memory is ``O(n p + n k + block x n)``, never ``n x n``. In
:func:`congruence.compare_layers` each layer's neighbour sets are computed once and reused
for every pair of layers. A row permutation of a layer relabels its neighbour lists, which is
exact when no two of any row's ``k + 1`` nearest rows are at the same distance (checked once;
otherwise the permuted rows are searched again); a resample with replacement duplicates rows
and changes the lists, so these measures declare no ``reindex``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from congruence import _core
from congruence._linalg import PROBE_ROWS, identical_rows
from congruence._registry import register
from congruence._validation import check_number, check_pair
from congruence.errors import ParameterError, warn_degenerate

__all__ = [
    "knn_jaccard",
    "second_order_cosine",
    "rank_similarity",
    "joint_rank_jaccard",
    "mutual_knn",
]

_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network Models: "
    "A Survey of Functional and Representational Measures. ACM Computing Surveys."
)
_HAMILTON = (
    "Hamilton, Leskovec, Jurafsky (2016b). Cultural Shift or Linguistic Drift? Comparing Two "
    "Computational Measures of Semantic Change. EMNLP."
)
_HUH = "Huh, Cheung, Wang, Isola (2024). The Platonic Representation Hypothesis. ICML."
_INVARIANCES = ("orthogonal", "isotropic_scaling", "permutation")
_VARIANTS = ({}, {"k": 3})


def _min_rows(params) -> int:
    k = params["k"]
    ok = isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) and k >= 1
    return int(k) + 1 if ok else 2


def _check_k_type(k: Any) -> int:
    return int(check_number("k", k, low=1, integer=True))


def _check_k_range(k: int, n: int) -> int:
    if k > n - 1:
        raise ParameterError(
            f"k={k!r} is out of range; expected an integer in [1, n-1] = [1, {n - 1}] for "
            f"n = {n} rows (each row has n-1 other rows to choose neighbours from)"
        )
    return k


def _prepare(X, Y, k):
    k = _check_k_type(k)
    X, Y = check_pair(X, Y)
    k = _check_k_range(k, X.shape[0])
    return X, Y, k


def _knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour indices and distances of every row (one call per layer)."""
    return _core.knn(X, k)


#: a gap between two unit rows far above the round-off of the full test (``16 eps``)
_PROBE_GAP = 1e-6


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """The non-zero rows of ``a`` in float64, each divided by its largest magnitude (entries
    in ``[-1, 1]``, so the norms cannot overflow) and then by its norm."""
    b = np.asarray(a, dtype=np.float64)
    peak = np.max(np.abs(b), axis=1)
    nonzero = peak > 0.0
    b = b[nonzero] / peak[nonzero, None]
    return b / np.linalg.norm(b, axis=1, keepdims=True)


def _identical_rows(a: np.ndarray) -> Optional[str]:
    """Why every cosine distance between the rows of ``a`` ties, or None.

    That is the case when every row is identical (all columns constant up to round-off) and,
    for the cosine distance, more generally when all non-zero rows point in the same direction
    (positive multiples of one vector, up to round-off) or at most one row is non-zero: every
    pair is then at distance 0 or 1, and the neighbour sets would be picked by the tie rule
    (by index) alone.

    The first rows are looked at first: when two of their unit rows differ by more than
    ``1e-6`` in some entry, none of the three cases holds (rows equal up to round-off, or
    multiples of one row, have unit rows within a few ``eps`` of each other), so the answer
    is None without the passes over the whole array (one serial pass of NumPy each).
    """
    head = _unit_rows(a[:PROBE_ROWS])
    if head.shape[0] >= 2 and np.max(np.abs(head[1:] - head[0])) > _PROBE_GAP:
        return None
    if identical_rows(a):
        return "has zero variance: every row is identical"
    u = _unit_rows(a)
    if u.shape[0] <= 1:
        return "has at most one non-zero row"
    if np.max(np.abs(u - u[0])) <= 16.0 * np.finfo(np.float64).eps:
        return "has identical rows up to positive factors: every row points the same way"
    return None


def _degenerate(arrays: Sequence[tuple[str, np.ndarray]], name: str) -> bool:
    """Warn for every argument whose rows all tie (MEASURES 0.2); True if there was one."""
    found = False
    for arg, a in arrays:
        why = _identical_rows(a)
        if why is not None:
            warn_degenerate(
                f"{arg} {why}; all its cosine distances tie, so its neighbour sets would be "
                f"picked by index alone: {name} is undefined (nan)"
            )
            found = True
    return found


def _warn_second_order(value: float, names: Sequence[str], dists: Sequence[np.ndarray]) -> None:
    """Warn for a nan of second_order_cosine: a row whose distance vector is all zeros."""
    if not np.isnan(value):
        return
    parts = []
    for arg, d in zip(names, dists):
        rows = np.nonzero(np.all(d == 0.0, axis=1))[0]
        if rows.size:
            parts.append(f"row {int(rows[0])} of {arg} ({rows.size} such rows in all)")
    where = " and ".join(parts) if parts else f"a row of {names[0]} or {names[1]}"
    warn_degenerate(
        f"second_order_cosine is undefined (nan): {where} has all the rows of its neighbour "
        "union at cosine distance 0 (duplicated rows), so its distance vector is all zeros"
    )


def _set_measure(X, Y, k, statistic: str, name: str) -> float:
    X, Y, k = _prepare(X, Y, k)
    if _degenerate((("X", X), ("Y", Y)), name):
        return math.nan
    return float(_core.knn_statistic(_knn(X, k)[0], _knn(Y, k)[0], statistic))


_COMMON: dict[str, Any] = {
    "family": "neighbors",
    "kind": "similarity",
    "symmetric": True,
    "invariances": _INVARIANCES,
    "bounds": (0.0, 1.0),
    "min_rows": _min_rows,
    "variants": _VARIANTS,
}

_NOTES = """
    Neighbours: :math:`N^X_k(i)` are the ``k`` rows nearest to row ``i`` of ``X`` under the
    cosine distance :math:`d(a, b) = 1 - \\langle a, b\\rangle / (\\lVert a\\rVert\\,\\lVert
    b\\rVert)` (an all-zero row has distance 1 to every row), row ``i`` excluded, ordered by
    increasing distance with ties broken by the smaller index."""


# ---------------------------------------------------------------------------------------------
# The per-layer contract (compare_layers, permutation tests): each layer's kNN lists once
# ---------------------------------------------------------------------------------------------


_NAMES = {
    "jaccard": "knn_jaccard",
    "rank": "rank_similarity",
    "joint_rank_jaccard": "joint_rank_jaccard",
    "mutual": "mutual_knn",
}


class _Neighbours:
    """A prepared layer: its rows, its neighbour indices and distances (``None`` when all
    its distances tie), and whether the order of each row's ``k + 1`` nearest rows is
    decided by the distances alone (computed on first use by :func:`_permuted`)."""

    def __init__(self, x: np.ndarray, name: str, k: int, measure: str) -> None:
        self.x, self.name, self.k = x, name, k
        self.lists = None if _degenerate(((f"layer {name}", x),), measure) else _knn(x, k)
        self._strict: Optional[bool] = None

    def strict(self) -> bool:
        """No two of the ``k + 1`` nearest rows of any row are at the same distance, so the
        neighbour lists of ``x[perm]`` are those of ``x`` relabelled (the tie rule, by index,
        never applies)."""
        if self._strict is None:
            n = self.x.shape[0]
            d = _knn(self.x, self.k + 1)[1] if self.k + 1 <= n - 1 else self.lists[1]
            self._strict = bool(np.all(np.diff(d, axis=1) > 0.0))
        return self._strict

    def permuted(self, perm: np.ndarray) -> "_Neighbours":
        """The layer of ``x[perm]`` for a row permutation ``perm``."""
        out = _Neighbours.__new__(_Neighbours)
        out.x, out.name, out.k, out._strict = self.x[perm], self.name, self.k, self._strict
        if self.lists is None:
            out.lists = None
        elif self.strict():
            inv = np.empty(perm.size, dtype=np.int64)
            inv[perm] = np.arange(perm.size, dtype=np.int64)
            idx, dist = self.lists
            out.lists = (inv[idx[perm]], dist[perm])
        else:  # ties: the index rule depends on the order of the rows, search again
            out.lists = _knn(out.x, self.k)
        return out


def _layer_prepare(statistic: Optional[str]):
    name_of = "second_order_cosine" if statistic is None else _NAMES[statistic]

    def prepare(x, *, name: str = "X", k: int = 10) -> _Neighbours:
        k = _check_k_range(_check_k_type(k), x.shape[0])
        return _Neighbours(x, name, k, name_of)

    return prepare


def _layer_pair(statistic: Optional[str]):
    def pair(px: _Neighbours, py: _Neighbours, k: int = 10) -> float:
        if px.lists is None or py.lists is None:
            return math.nan
        if statistic is not None:
            return float(_core.knn_statistic(px.lists[0], py.lists[0], statistic))
        value = float(_core.second_order_cosine(px.x, py.x, px.lists[0], py.lists[0]))
        names = (f"layer {px.name}", f"layer {py.name}")
        _warn_second_order(value, names, (px.lists[1], py.lists[1]))
        return value

    return pair


def _layer_permuted(statistic: Optional[str]):
    pair = _layer_pair(statistic)

    def permuted(px: _Neighbours, py: _Neighbours, perms, k: int = 10) -> np.ndarray:
        perms = np.asarray(perms, dtype=np.int64)
        return np.array([pair(px, py.permuted(perm)) for perm in perms], dtype=np.float64)

    return permuted


def _contract(statistic: Optional[str]) -> dict[str, Any]:
    return {
        "prepare": _layer_prepare(statistic),
        "pair": _layer_pair(statistic),
        "permuted": _layer_permuted(statistic),
    }


@register(
    resampling="a duplicated row is its own copy's nearest neighbour (distance 0, ties)",
    summary="Mean Jaccard similarity of the k-nearest-neighbour sets (cosine distance)",
    references=(_SURVEY,),
    **_COMMON,
    **_contract("jaccard"),
)
def knn_jaccard(X: ArrayLike, Y: ArrayLike, k: int = 10) -> float:
    r"""k-NN Jaccard similarity: the mean overlap of the two neighbour sets of each input.

    .. math::

        \frac1n \sum_{i=1}^n
        \frac{|N^X_k(i) \cap N^Y_k(i)|}{|N^X_k(i) \cup N^Y_k(i)|}

    {notes}

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. float32 input gives exactly the
        neighbour sets of the same values in float64.
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.

    Returns
    -------
    float
        Similarity in [0, 1]; 1 when every input has the same neighbours in both. ``nan``
        with a :class:`~congruence.DegenerateDataWarning` if the rows of ``X`` or ``Y`` all tie
        (identical rows).

    Raises
    ------
    ValueError
        If ``k`` is not an integer in ``[1, n-1]``, or for invalid arrays.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (neighbourhood-based measures).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])  # close pairs {0,1}, {2,3}
    >>> Y = X[[0, 2, 1, 3]]                                             # close pairs {0,2}, {1,3}
    >>> cg.knn_jaccard(X, X, k=1), cg.knn_jaccard(X, Y, k=1)
    (1.0, 0.0)
    >>> cg.knn_jaccard(X, Y, k=2)   # rows 0-2 share 1 of 3 neighbours, row 3 both: (3/3 + 1)/4
    0.5
    """
    return _set_measure(X, Y, k, "jaccard", "knn_jaccard")


@register(
    resampling="a duplicated row is its own copy's nearest neighbour (distance 0, ties)",
    summary="Second-order cosine similarity: cosine of the distance vectors to the union of the kNN sets",
    references=(_HAMILTON, _SURVEY),
    **_COMMON,
    **_contract(None),
)
def second_order_cosine(X: ArrayLike, Y: ArrayLike, k: int = 10) -> float:
    r"""Second-order cosine similarity (Hamilton et al. 2016b), on cosine distances.

    For each input ``i``, with :math:`U_i = N^X_k(i) \cup N^Y_k(i)` (a set) and the vectors of
    cosine distances :math:`a = (d_X(i, j))_{j \in U_i}`, :math:`b = (d_Y(i, j))_{j \in U_i}`:

    .. math::

        \frac1n \sum_{i=1}^n \frac{\langle a, b\rangle}{\lVert a\rVert\,\lVert b\rVert}

    {notes}

    Every distance in ``a`` and ``b`` is computed from the rows themselves (also for a ``j``
    that is a neighbour in only one representation), in float64.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.

    Returns
    -------
    float
        Similarity in [0, 1]. ``nan`` with a :class:`~congruence.DegenerateDataWarning` if
        for some input ``a`` or ``b`` is all zeros (all of ``U_i`` lies in the direction of
        row ``i``, e.g. duplicated rows), or if the rows of ``X`` or ``Y`` all tie.

    Raises
    ------
    ValueError
        If ``k`` is not an integer in ``[1, n-1]``, or for invalid arrays.

    References
    ----------
    Hamilton, Leskovec, Jurafsky (2016b), EMNLP; Klabunde et al. (2025).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 8))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> round(cg.second_order_cosine(X, 3 * X @ Q, k=5), 12)   # rotation and scaling
    1.0
    >>> import warnings
    >>> C = np.tile([[1.0, 2.0]], (6, 1))   # all rows alike: every distance is 0
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", cg.DegenerateDataWarning)
    ...     cg.second_order_cosine(C, X[:6], k=2)
    nan
    """
    X, Y, k = _prepare(X, Y, k)
    if _degenerate((("X", X), ("Y", Y)), "second_order_cosine"):
        return math.nan
    (nx, dx), (ny, dy) = _knn(X, k), _knn(Y, k)
    value = float(_core.second_order_cosine(X, Y, nx, ny))
    _warn_second_order(value, ("X", "Y"), (dx, dy))
    return value


@register(
    resampling="a duplicated row is its own copy's nearest neighbour (distance 0, ties)",
    summary="Rank similarity of the shared k nearest neighbours",
    references=(_SURVEY,),
    **_COMMON,
    **_contract("rank"),
)
def rank_similarity(X: ArrayLike, Y: ArrayLike, k: int = 10) -> float:
    r"""Rank similarity: agreement of the ranks of the neighbours the two sets share.

    With :math:`J_i = N^X_k(i) \cap N^Y_k(i)`, ranks :math:`r^X_i(j), r^Y_i(j) \in 1..k` (the
    1-based positions in the ordered neighbour lists) and :math:`v_i = \sum_{t=1}^{|J_i|} 1/t`:

    .. math::

        s_i = \frac{1}{v_i} \sum_{j \in J_i}
        \frac{2}{(1 + |r^X_i(j) - r^Y_i(j)|)\,(r^X_i(j) + r^Y_i(j))},
        \qquad \text{result} = \frac1n \sum_i s_i,

    with :math:`s_i = 0` when :math:`J_i` is empty.

    {notes}

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a :class:`~congruence.DegenerateDataWarning` if
        the rows of ``X`` or ``Y`` all tie (identical rows).

    Raises
    ------
    ValueError
        If ``k`` is not an integer in ``[1, n-1]``, or for invalid arrays.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (neighbourhood-based measures).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> def circle(degrees):
    ...     a = np.radians(degrees)
    ...     return np.c_[np.cos(a), np.sin(a)]
    >>> X, Y = circle([0, 10, 30]), circle([0, 20, 30])
    >>> # Row 1's neighbours are (0, 2) in X and (2, 0) in Y: s_1 = (1/3 + 1/3) / (1 + 1/2)
    >>> round(cg.rank_similarity(X, Y, k=2), 12) == round((1 + 4 / 9 + 1) / 3, 12)
    True
    """
    return _set_measure(X, Y, k, "rank", "rank_similarity")


@register(
    resampling="a duplicated row is its own copy's nearest neighbour (distance 0, ties)",
    summary="Joint rank and Jaccard similarity of the kNN sets (their per-input product)",
    references=(_SURVEY,),
    **_COMMON,
    **_contract("joint_rank_jaccard"),
)
def joint_rank_jaccard(X: ArrayLike, Y: ArrayLike, k: int = 10) -> float:
    r"""Joint rank and Jaccard similarity: per input, k-NN Jaccard times rank similarity.

    .. math::

        \frac1n \sum_{i=1}^n J_i\, s_i, \qquad
        J_i = \frac{|N^X_k(i) \cap N^Y_k(i)|}{|N^X_k(i) \cup N^Y_k(i)|},

    with :math:`s_i` the rank similarity of :func:`rank_similarity`.

    {notes}

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a :class:`~congruence.DegenerateDataWarning` if
        the rows of ``X`` or ``Y`` all tie (identical rows).

    Raises
    ------
    ValueError
        If ``k`` is not an integer in ``[1, n-1]``, or for invalid arrays.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (neighbourhood-based measures).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> Y = X[[0, 2, 1, 3]]
    >>> cg.joint_rank_jaccard(X, X, k=2)
    1.0
    >>> # J_i s_i = 1/3 * 1/2, 1/3 * 1/3, 1/3 * 1/3 and 1 * 4/9 for the four rows
    >>> round(cg.joint_rank_jaccard(X, Y, k=2), 12) == round(5 / 24, 12)
    True
    """
    return _set_measure(X, Y, k, "joint_rank_jaccard", "joint_rank_jaccard")


@register(
    resampling="a duplicated row is its own copy's nearest neighbour (distance 0, ties)",
    summary="Mutual k-nearest-neighbour alignment: mean shared fraction of the kNN sets",
    references=(_HUH,),
    **_COMMON,
    **_contract("mutual"),
)
def mutual_knn(X: ArrayLike, Y: ArrayLike, k: int = 10) -> float:
    r"""Mutual nearest-neighbour alignment (Huh et al. 2024).

    .. math::

        \frac1n \sum_{i=1}^n \frac{|N^X_k(i) \cap N^Y_k(i)|}{k}

    {notes}

    These neighbours equal the inner-product neighbours of the L2-normalised rows.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.

    Returns
    -------
    float
        Similarity in [0, 1]; ``nan`` with a :class:`~congruence.DegenerateDataWarning` if
        the rows of ``X`` or ``Y`` all tie (identical rows).

    Raises
    ------
    ValueError
        If ``k`` is not an integer in ``[1, n-1]``, or for invalid arrays.

    References
    ----------
    Huh, Cheung, Wang, Isola (2024), ICML.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> Y = X[[0, 2, 1, 3]]
    >>> cg.mutual_knn(X, Y, k=2)   # rows 0-2 share 1 of their 2 neighbours, row 3 both
    0.625
    """
    return _set_measure(X, Y, k, "mutual", "mutual_knn")


for _f in (knn_jaccard, second_order_cosine, rank_similarity, joint_rank_jaccard, mutual_knn):
    _f.__doc__ = _f.__doc__.replace("    {notes}", _NOTES.lstrip("\n"))
del _f
