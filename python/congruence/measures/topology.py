"""Topology-based measures: IMD, RTD and the geometry score (Tsitsulin et al. 2020; Barannikov et al. 2022; Khrulkov & Oseledets 2018).

* :func:`imd` needs only SciPy: exact heat traces of k-NN graph Laplacians.
* :func:`rtd` needs a Vietoris-Rips persistence engine for ``2n`` points; it uses the Ripser
  implementation shipped with GUDHI (``pip install "congruence[topology]"``), imported only
  when :func:`rtd` is called.
* :func:`geometry_score` builds the relaxed witness filtration with NumPy and computes its
  degree-1 persistence over Z/2 here (:func:`_h1_intervals`), with no optional dependency.

Pairwise distances always come from explicit coordinate differences
(:func:`scipy.spatial.distance.pdist` / ``cdist``), never from ``|x|^2 + |y|^2 - 2 x.y``, so that
neighbour rankings and filtration values do not move under translations of the data.

All three measures are scale-invariant: each input is first multiplied by a power of two to
magnitude about 1 (exact, so rankings, ties and filtrations are unchanged), and data of any
finite magnitude give the value of the formula. Identical rows (every row the same) make the
neighbour graph and the filtrations arbitrary or empty: the value is ``nan`` with a
:class:`~congruence.DegenerateDataWarning`. The long single calls (the ``n x n``
eigendecomposition of :func:`imd`, GUDHI's persistence in :func:`rtd`) can be interrupted
with Ctrl-C, and the ``n x n`` buffers are checked against the available memory first.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist, pdist, squareform

from congruence._interrupt import interruptible
from congruence._layers import fill
from congruence._linalg import identical_rows, pow2_exponent, pow2_scaled, undefined
from congruence._memory import check_fits
from congruence._registry import register
from congruence._validation import check_number, check_pair
from congruence.errors import warn_degenerate

__all__ = ["imd", "rtd", "geometry_score"]

_REF_IMD = (
    "Tsitsulin et al. (2020). The Shape of Data: Intrinsic Distance for Data Distributions. ICLR.",
)
_REF_RTD = (
    "Barannikov, Trofimov, Balabin, Burnaev (2022). Representation Topology Divergence. ICML.",
)
_REF_GS = (
    "Khrulkov, Oseledets (2018). Geometry Score: A Method for Comparing Generative "
    "Adversarial Networks. ICML.",
)
_INVARIANT = ("orthogonal", "isotropic_scaling", "translation", "permutation")
_INSTALL_HINT = 'pip install "congruence[topology]"'

#: Elements per block in the blocked NumPy passes (about 8 MB of doubles).
_BLOCK = 1 << 20


def _check_seed(seed: Any) -> Any:
    """``None``, a non-negative integer or a :class:`numpy.random.Generator`."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise ValueError(
        f"seed={seed!r} is invalid; expected None, a non-negative integer or a "
        "numpy.random.Generator"
    )


def _pair64(X, Y, min_rows: int, measure: str):
    """Validated float64 inputs, each multiplied by a power of two to magnitude about 1
    (exact; the measures are scale-invariant), or ``None`` after a warning when every row of
    one of them is the same."""
    X, Y = check_pair(X, Y, min_rows=min_rows)
    for name, Z in (("X", X), ("Y", Y)):
        if identical_rows(Z):
            undefined(name, measure)
            return None
    return pow2_scaled(X, pow2_exponent(X)), pow2_scaled(Y, pow2_exponent(Y))


# ============================================================================ 6.1 IMD

_IMD_K = 5
#: The 256 diffusion times ``t_j = 10^(-1 + 2 j / 255)``.
_IMD_T = 10.0 ** (-1.0 + 2.0 * np.arange(256) / 255.0)


def _knn_adjacency(X: np.ndarray, k: int = _IMD_K) -> np.ndarray:
    """Symmetric 0/1 adjacency of the k-NN graph (squared Euclidean, ties to smaller index).

    Row ``i`` keeps every row strictly closer than its ``k``-th smallest distance ``d_k`` and,
    of the rows at exactly ``d_k``, the smallest indices until it has ``k``: the first ``k``
    of a stable sort by distance, found with one partition instead of a sort.
    """
    d2 = squareform(pdist(X, "sqeuclidean"))
    np.fill_diagonal(d2, np.inf)  # a point is not its own neighbour
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1 : k]
    A = d2 <= kth
    over = np.flatnonzero(A.sum(axis=1) > k)  # rows with more than k at distance <= d_k
    if over.size:
        sub = d2[over]
        tie = sub == kth[over]
        need = k - (sub < kth[over]).sum(axis=1, keepdims=True)
        A[over] = (sub < kth[over]) | (tie & (np.cumsum(tie, axis=1) <= need))
    return A | A.T


def _heat_trace(X: np.ndarray) -> np.ndarray:
    """``h(t) = sum_i exp(-t lambda_i)`` of the normalized Laplacian, on the 256 times."""
    A = _knn_adjacency(X).astype(np.float64)
    n = A.shape[0]
    s = 1.0 / np.sqrt(A.sum(axis=1))  # every degree is >= k >= 1
    L = np.eye(n) - s[:, None] * A * s[None, :]
    # NumPy's LAPACK releases the GIL, so Ctrl-C reaches the caller during a long call.
    lam = np.linalg.eigvalsh(L) if n < _LONG_N else interruptible(np.linalg.eigvalsh, L)
    return np.exp(-np.outer(_IMD_T, lam)).sum(axis=1)


#: From this ``n`` on, an ``n x n`` eigendecomposition (or a Rips persistence on ``n``
#: points) may take long and runs where Ctrl-C can interrupt it.
_LONG_N = 600


# ============================================================== the per-layer contract
# compare_layers prepares each layer once: imd its heat-trace descriptor, rtd its normalised
# distance matrices, geometry_score its mean relative living times; a pair is then cheap
# (imd, geometry_score) or one cross-barcode (rtd). None of these survives resampling rows,
# and a row permutation of one side changes nothing but rtd's cross-barcode (the other two
# compare each side separately), so no ``reindex`` or ``permuted`` is declared.


def _scaled_layer(x: np.ndarray, name: str, measure: str) -> Optional[np.ndarray]:
    """``x`` at magnitude about 1 (as ``_pair64``), or ``None`` after a warning naming
    ``name`` when every row is the same."""
    if identical_rows(x):
        undefined(name, measure)
        return None
    return pow2_scaled(x, pow2_exponent(x))


def _imd_prepare(x, *, name: str = "X") -> Optional[np.ndarray]:
    """The descriptor ``phi`` on the 256 times (``None``: identical rows)."""
    xs = _scaled_layer(x, name, "imd")
    if xs is None:
        return None
    n = xs.shape[0]
    check_fits(
        40.0 * n * n,
        f"the {n} x {n} distance, neighbour-order and Laplacian matrices of imd",
        "subsample the rows",
    )
    return 1e6 * _heat_trace(xs) / n


def _imd_pair(phi_x: Optional[np.ndarray], phi_y: Optional[np.ndarray]) -> float:
    if phi_x is None or phi_y is None:
        return math.nan
    return float(np.max(np.exp(-2.0 * (_IMD_T + 1.0 / _IMD_T)) * np.abs(phi_x - phi_y)))


class _RTDLayer:
    """A prepared layer of rtd: its scaled rows, and the distance matrices of its row subsets
    divided by their 0.9-quantiles (one per trial; ``None`` when the subsets are drawn afresh
    for every pair, i.e. ``seed`` is not an integer, or when they would not fit in memory).
    ``nan``: identical rows, or a subset without spread."""

    def __init__(self, xs: Optional[np.ndarray], name: str, dists=None, nan: bool = False):
        self.xs, self.name, self.dists, self.nan = xs, name, dists, nan


def _rtd_subsets(n: int, max_points: int, trials: int, seed: Any) -> Optional[list]:
    """The row subsets of rtd's trials, as rtd draws them (``[None]``: all rows at once);
    ``None`` when they differ from call to call."""
    if n <= max_points:
        return [None]
    if not isinstance(seed, int):
        return None
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=max_points, replace=False)) for _ in range(trials)]


def _rtd_params(max_points: Any, trials: Any, seed: Any) -> tuple[int, int, Any]:
    """rtd's parameters, checked."""
    max_points = check_number("max_points", max_points, low=3, integer=True)
    trials = check_number("trials", trials, low=1, integer=True)
    return max_points, trials, _check_seed(seed)


def _rtd_fits(n: int, max_points: int) -> int:
    """The memory pre-flight of rtd on ``n`` rows; returns the subset size ``m``."""
    m = min(n, max_points)
    check_fits(
        80.0 * m * m,
        f"the {m} x {m} distance matrices and the {2 * m} x {2 * m} cross-barcode matrix of rtd",
        "lower max_points (RTD then averages over random subsets of rows)",
    )
    return m


def _rtd_prepare(
    x, *, name: str = "X", max_points: int = 500, trials: int = 10, seed: Optional[Any] = None
) -> _RTDLayer:
    max_points, trials, seed = _rtd_params(max_points, trials, seed)
    xs = _scaled_layer(x, name, "rtd")
    if xs is None:
        return _RTDLayer(None, name, nan=True)
    n = xs.shape[0]
    m = _rtd_fits(n, max_points)
    subsets = _rtd_subsets(n, max_points, trials, seed)
    if subsets is None:
        return _RTDLayer(xs, name)
    try:  # the cache: one m x m matrix per trial, kept for every pair of this layer
        check_fits(8.0 * m * m * len(subsets), f"the distance matrices of {name} in rtd", "")
    except MemoryError:
        return _RTDLayer(xs, name)
    dists = []
    for rows in subsets:
        D = squareform(pdist(xs if rows is None else xs[rows]))
        q = np.quantile(D, 0.9)
        if q == 0.0:
            warn_degenerate(
                f"{name} has (nearly) no spread: the 0.9-quantile of its {D.shape[0]}^2 "
                "pairwise distances is 0 (duplicated rows); rtd is undefined (nan)"
            )
            return _RTDLayer(xs, name, nan=True)
        D /= q
        dists.append(D)
    return _RTDLayer(xs, name, dists)


def _rtd_layers_pair(
    px: _RTDLayer,
    py: _RTDLayer,
    max_points: int = 500,
    trials: int = 10,
    seed: Optional[Any] = None,
) -> float:
    if px.nan or py.nan:
        return math.nan
    if px.dists is None or py.dists is None:
        return rtd(px.xs, py.xs, max_points=max_points, trials=trials, seed=seed)
    values = [(_rtd_r(DX, DY) + _rtd_r(DY, DX)) / 2.0 for DX, DY in zip(px.dists, py.dists)]
    return float(np.mean(values))  # one value (n <= max_points): itself


class _GSLayer:
    """A prepared layer of geometry_score: its scaled rows and its mean relative living times
    for the landmark sets of each role (``"x"``: ``landmarks_x``, ``"y"``: ``landmarks_y``),
    computed on first use. ``landmarks=None``: drawn afresh for every pair (``seed`` not an
    integer); ``xs=None``: identical rows (nan)."""

    def __init__(self, xs, n: int, landmarks, gamma: float, i_max: int) -> None:
        self.xs, self.n, self.landmarks, self.gamma, self.i_max = xs, n, landmarks, gamma, i_max
        self._mrlt: dict = {}

    def mrlt(self, role: str) -> np.ndarray:
        idx = self.landmarks[role]
        key = "x" if idx is self.landmarks["x"] else role
        if key not in self._mrlt:
            self._mrlt[key] = _mrlt(self.xs, idx, self.gamma, self.i_max)
        return self._mrlt[key]


def _gs_prepare(
    x,
    *,
    name: str = "X",
    n_landmarks: int = 64,
    gamma: Optional[float] = None,
    i_max: int = 100,
    n_samples: int = 1000,
    seed: Optional[Any] = None,
    landmarks_x: Any = None,
    landmarks_y: Any = None,
) -> _GSLayer:
    n_landmarks = check_number("n_landmarks", n_landmarks, low=1, integer=True)
    if gamma is not None:
        gamma = check_number("gamma", gamma, low=0.0, low_open=True)
    i_max = check_number("i_max", i_max, low=1, integer=True)
    n_samples = check_number("n_samples", n_samples, low=1, integer=True)
    seed = _check_seed(seed)
    n = x.shape[0]
    if (landmarks_x is None) != (landmarks_y is None):
        given = "landmarks_x" if landmarks_y is None else "landmarks_y"
        raise ValueError(
            f"{given} was given alone; landmarks_x and landmarks_y must be given together "
            "(or neither, to draw landmarks at random)"
        )
    if landmarks_x is not None:
        lx = _check_landmarks("landmarks_x", landmarks_x, n)
        ly = _check_landmarks("landmarks_y", landmarks_y, n)
        landmarks = {"x": lx, "y": lx if np.array_equal(lx, ly) else ly}
    elif isinstance(seed, int):
        idx = np.random.default_rng(seed).integers(0, n, size=(n_samples, n_landmarks))
        landmarks = {"x": idx, "y": idx}
    else:
        landmarks = None
    gamma = n / (128 * 5000) if gamma is None else gamma
    return _GSLayer(_scaled_layer(x, name, "geometry_score"), n, landmarks, gamma, i_max)


def _gs_pair(px: _GSLayer, py: _GSLayer, **params) -> float:
    if px.xs is None or py.xs is None:
        return math.nan
    if px.landmarks is None or py.landmarks is None:
        return geometry_score(px.xs, py.xs, **params)
    diff = px.mrlt("x") - py.mrlt("y")
    return float(np.sum(diff * diff))


def _gs_matrix(pa, pb, **params) -> np.ndarray:
    """The layer matrix; landmarks drawn at random are drawn once for the whole matrix (the
    same sets for every layer, as geometry_score uses the same sets for both sides)."""
    layers = list(pa) + ([] if pb is None else list(pb))
    if any(p.landmarks is None for p in layers):
        full = {**geometry_score.measure.params, **params}
        idx = np.random.default_rng(full["seed"]).integers(
            0, layers[0].n, size=(full["n_samples"], full["n_landmarks"])
        )
        fixed = {"x": idx, "y": idx}
        layers = [_GSLayer(p.xs, p.n, fixed, p.gamma, p.i_max) for p in layers]
        pa, pb = layers[: len(pa)], None if pb is None else layers[len(pa) :]
    return fill(pa, pb, lambda u, v: _gs_pair(u, v, **params))


@register(
    paired=False,
    resampling="a duplicated row is at distance 0 from its copy, which changes the heat-kernel spectra of the kNN graph",
    family="topology",
    kind="distance",
    summary="Multi-scale intrinsic distance: heat traces of k-NN graph Laplacians (exact)",
    references=_REF_IMD,
    symmetric=True,
    invariances=_INVARIANT,
    bounds=(0.0, math.inf),
    min_rows=6,
    prepare=_imd_prepare,
    pair=_imd_pair,
)
def imd(X: ArrayLike, Y: ArrayLike) -> float:
    r"""Multi-scale intrinsic distance (IMD, Tsitsulin et al. 2020), exact heat traces.

    For each representation: the unweighted symmetric 5-NN graph (squared Euclidean ranking,
    the point itself excluded, ties to the smaller index; ``A_ij = 1`` if either point is
    among the other's neighbours), its normalized Laplacian
    :math:`L = I - D^{-1/2} A D^{-1/2}` with eigenvalues :math:`\lambda_i`, and the
    descriptor :math:`\phi(t) = 10^6\, h(t) / n` of the heat trace
    :math:`h(t) = \sum_i e^{-t \lambda_i}`. Then

    .. math::

        \mathrm{IMD}(X, Y) = \max_{t \in T}\; e^{-2 (t + 1/t)}\,
                             \lvert \phi_X(t) - \phi_Y(t) \rvert,
        \qquad T = \{10^{-1 + 2j/255} : j = 0, \dots, 255\}.

    The heat trace is computed exactly from a full eigendecomposition (``O(n^3)`` time,
    ``n x n`` memory); the original method estimates it by stochastic Lanczos quadrature,
    whose values scatter around these by about 1%.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        ``n >= 6``. Only the two graphs matter: rows need not correspond.

    Returns
    -------
    float
        Distance in ``[0, inf)``, 0 when the two graphs have the same Laplacian spectrum;
        invariant to orthogonal transformations, isotropic scaling, translation and column
        permutations. ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if every
        row of ``X`` or ``Y`` is the same (all distances tie: the neighbours would be
        arbitrary).

    References
    ----------
    Tsitsulin et al. (2020), ICLR.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> line = np.arange(7.0)[:, None]       # 5-NN graph: K7 minus the edge {0, 6}
    >>> t = np.arange(6) * np.pi / 3
    >>> wheel = np.r_[[[0.0, 0.0]], np.c_[np.cos(t), np.sin(t)]]  # K7 minus 3 diagonals
    >>> cg.imd(line, 2 * line + 1)
    0.0
    >>> round(cg.imd(line, wheel), 6)
    58.338028
    """
    pair = _pair64(X, Y, min_rows=6, measure="imd")
    if pair is None:
        return math.nan
    X, Y = pair
    n = X.shape[0]
    check_fits(
        40.0 * n * n,
        f"the {n} x {n} distance, neighbour-order and Laplacian matrices of imd",
        "subsample the rows",
    )
    phi_x = 1e6 * _heat_trace(X) / n
    phi_y = 1e6 * _heat_trace(Y) / n
    return float(np.max(np.exp(-2.0 * (_IMD_T + 1.0 / _IMD_T)) * np.abs(phi_x - phi_y)))


# ============================================================================ 6.2 RTD


def _rips_h1(M: np.ndarray) -> np.ndarray:
    """Degree-1 Vietoris-Rips persistence (Z/2) of the distance matrix ``M``: (k, 2) array."""
    try:
        from gudhi.sklearn import RipsPersistence
    except ImportError as exc:
        raise ImportError(
            "rtd needs a Vietoris-Rips persistence engine (GUDHI, with scikit-learn); "
            f"install it with: {_INSTALL_HINT}"
        ) from exc
    rips = RipsPersistence(
        homology_dimensions=1,
        input_type="full distance matrix",
        homology_coeff_field=2,
        num_collapses=0,
    )
    # GUDHI releases the GIL, so a long persistence computation can be interrupted.
    call = (
        rips.fit_transform
        if M.shape[0] < _LONG_N
        else (lambda ms: interruptible(rips.fit_transform, ms))
    )
    return np.asarray(call([M])[0], dtype=np.float64).reshape(-1, 2)


def _rtd_r(DA: np.ndarray, DB: np.ndarray) -> float:
    """``R(A, B)``: H1 of the Rips filtration of the ``2n x 2n`` matrix ``M`` of 6.2."""
    n = DA.shape[0]
    M = np.zeros((2 * n, 2 * n))
    M[:n, n:] = DA.T  # M[j, n + i] = D_A[i, j]
    M[n:, :n] = DA  # M[n + i, j] = D_A[i, j]
    M[n:, n:] = np.minimum(DA, DB)
    M[M < 1e-6 * DA.mean()] = 0.0
    bars = _rips_h1(M)
    bars = bars[np.isfinite(bars[:, 1])]
    return math.fsum(bars[:, 1] - bars[:, 0])


def _rtd_once(X: np.ndarray, Y: np.ndarray) -> float:
    DX = squareform(pdist(X))
    DY = squareform(pdist(Y))
    qx, qy = np.quantile(DX, 0.9), np.quantile(DY, 0.9)
    if qx == 0.0 or qy == 0.0:
        # About 90% or more of the n^2 distances are 0: no scale to normalise by.
        warn_degenerate(
            f"{'X' if qx == 0.0 else 'Y'} has (nearly) no spread: the 0.9-quantile of its "
            f"{X.shape[0]}^2 pairwise distances is 0 (duplicated rows); rtd is undefined (nan)"
        )
        return math.nan
    DX /= qx
    DY /= qy
    return (_rtd_r(DX, DY) + _rtd_r(DY, DX)) / 2.0


@register(
    resampling="a duplicated row is at distance 0 from its copy, which merges points at filtration value 0",
    family="topology",
    kind="distance",
    summary="Representation topology divergence: H1 of the cross-barcode Rips filtration",
    references=_REF_RTD,
    symmetric=True,
    invariances=_INVARIANT,
    bounds=(0.0, math.inf),
    min_rows=3,
    variants=({}, {"max_points": 40, "trials": 2, "seed": 0}),
    prepare=_rtd_prepare,
    pair=_rtd_layers_pair,
)
def rtd(
    X: ArrayLike, Y: ArrayLike, max_points: int = 500, trials: int = 10, seed: Optional[Any] = None
) -> float:
    r"""Representation topology divergence (RTD, Barannikov et al. 2022).

    :math:`\mathrm{RTD} = (R(X, Y) + R(Y, X)) / 2`. For :math:`R(A, B)`: the Euclidean
    distance matrices :math:`D_A, D_B`, each divided by its 0.9-quantile over all
    :math:`n^2` entries; the symmetric :math:`2n \times 2n` matrix

    .. math::

        M = \begin{pmatrix} 0 & D_A^T \\ D_A & \min(D_A, D_B) \end{pmatrix}

    with entries below :math:`10^{-6}\,\mathrm{mean}(D_A)` set to 0; and
    :math:`R(A, B) = \sum (\mathrm{death} - \mathrm{birth})` over the degree-1 intervals of the
    Vietoris-Rips persistence of :math:`M` (coefficients Z/2). The persistence is computed
    in double precision by the Ripser implementation of GUDHI.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        ``n >= 3``; row ``i`` of both is the same input example.
    max_points : int >= 3
        For ``n <= max_points`` the value is deterministic (computed on all rows) and
        ``trials`` and ``seed`` have no effect. For ``n > max_points`` it is the mean of
        ``trials`` RTDs on random subsets of ``max_points`` rows (the same rows of ``X`` and
        ``Y``), each drawn as ``rng.choice(n, max_points, replace=False)`` with
        ``rng = numpy.random.default_rng(seed)``.
    trials : int >= 1
    seed : None, int >= 0 or numpy.random.Generator
        Random stream for the subsets (``n > max_points`` only).

    Returns
    -------
    float
        Distance in ``[0, inf)``, 0 for identical inputs; invariant to orthogonal
        transformations, isotropic scaling, translation and column permutations.
        ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if a 0.9-quantile of
        distances is 0 (about 90% or more of a representation's ``n^2`` ordered pairs,
        diagonal included, at distance 0; e.g. every row the same).

    Raises
    ------
    ImportError
        If GUDHI (or scikit-learn, which its Rips interface uses) is not installed:
        ``pip install "congruence[topology]"``.

    References
    ----------
    Barannikov et al. (2022), ICML.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])   # equilateral
    >>> Y = np.array([[0.0, 0.0], [0.5, 0.0], [0.25, np.sqrt(15) / 4]]) # one side halved
    >>> cg.rtd(X, 2 * X + 1)
    0.0
    >>> round(cg.rtd(X, Y), 12)   # R(X, Y): one cycle alive on [0.5, 1); R(Y, X) = 0
    0.25
    """
    max_points, trials, seed = _rtd_params(max_points, trials, seed)
    pair = _pair64(X, Y, min_rows=3, measure="rtd")
    if pair is None:
        return math.nan
    X, Y = pair
    n = X.shape[0]
    _rtd_fits(n, max_points)
    if n <= max_points:
        return float(_rtd_once(X, Y))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(trials):
        rows = np.sort(rng.choice(n, size=max_points, replace=False))
        values.append(_rtd_once(X[rows], Y[rows]))
    return float(np.mean(values))


# ============================================================================ 6.3 geometry score


#: ``_MEX[mask]``: the smallest ``j`` in 0..4 whose bit is not set in ``mask`` (4 bits).
_MEX = np.array([next(j for j in range(5) if not (m >> j) & 1) for m in range(16)], dtype=np.intp)


def _group_min(key: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (ascending) and the minimum of ``a`` over each."""
    order = np.argsort(key, kind="stable")
    key, a = key[order], a[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[starts], np.minimum.reduceat(a, starts)


def _a_values(Dw, rank, vals, w, s) -> np.ndarray:
    """``a(w, s) = max(0, max_{l in s} Dw(w,l) - min_{l' not in s} Dw(w,l'))`` per pair.

    ``rank[w, l]`` is the position (0-3) of landmark ``l`` among the 4 nearest to ``w``, or 4;
    ``vals[w, j]`` the ``j``-th smallest distance (``+inf`` past the last landmark). A
    simplex has at most 3 vertices, so the nearest landmark outside ``s`` sits at the first
    position not taken by a vertex of ``s``: the mex of their ranks. If every landmark is in
    ``s`` that minimum is over an empty set, ``+inf``, and ``a = 0`` (vacuous condition).
    """
    far = Dw[w[:, None], s].max(axis=1)
    mask = np.bitwise_or.reduce(np.left_shift(np.uint8(1), rank[w[:, None], s]), axis=1) & 15
    return np.maximum(0.0, far - vals[w, _MEX[mask]])


#: Work ratio of one (witness, simplex) pair in the sparse pass to one in the dense pass.
_SPARSE_COST = 4.0


def _witness_values(Dw, rank, vals, close, candidates) -> np.ndarray:
    """``min_w a(w, s)`` for each candidate simplex (rows of ``candidates``, k vertices).

    Only witnesses for which every vertex of ``s`` is ``close`` can give
    ``a(w, s) <= alpha_max`` (see :func:`_witness_filtration`); the others are skipped, and
    a simplex none can witness gets ``+inf``. The minimum is exact whenever it is
    ``<= alpha_max``. Two equivalent passes, chosen by estimated work: *dense* evaluates
    every (witness, candidate) pair in blocks; *sparse* enumerates, for each witness, the
    k-subsets of its close landmarks that are candidates.
    """
    n, L = Dw.shape
    m, k = candidates.shape
    out = np.full(m, np.inf)
    if m == 0:
        return out
    count = close.sum(axis=1)
    # Number of (witness, k-subset of its close landmarks) pairs: sum_w C(count_w, k).
    pairs = float(np.prod([count - i for i in range(k)], axis=0, dtype=np.float64).sum())
    pairs /= math.factorial(k)
    if _SPARSE_COST * pairs > float(n) * m:
        # Dense, landmark-major (witnesses along the last axis: contiguous gathers).
        DwT, rankT = np.ascontiguousarray(Dw.T), np.ascontiguousarray(rank.T)
        valsT = np.ascontiguousarray(vals.T)
        cols = np.arange(n)
        step = max(1, _BLOCK // (n * k))
        for start in range(0, m, step):
            sb = candidates[start : start + step]
            far = DwT[sb].max(axis=1)  # (block, n)
            mask = np.bitwise_or.reduce(np.left_shift(np.uint8(1), rankT[sb]), axis=1) & 15
            a = np.maximum(0.0, far - valsT[_MEX[mask], cols])
            out[start : start + step] = a.min(axis=1)
        return out
    # Sparse: per witness, its close landmarks first (ascending; the sentinel L sorts last),
    # then every k-subset of them through the combinations of slot positions.
    cmax = int(count.max())
    if cmax < k:
        return out
    cand_key = np.ravel_multi_index(tuple(candidates.T), (L,) * k)
    srt = np.argsort(cand_key)
    sorted_key = cand_key[srt]
    w_at, l_at = np.nonzero(close)  # row-major: by witness, landmarks ascending
    P = np.full((n, cmax), L, dtype=np.intp)
    P[w_at, np.arange(w_at.size) - np.repeat(np.cumsum(count) - count, count)] = l_at
    slots = np.array(list(itertools.combinations(range(cmax), k)), dtype=np.intp)
    step = max(1, _BLOCK // slots.shape[0])
    keys, mins = [], []
    for start in range(0, n, step):
        w_local, slot = np.nonzero(slots[None, :, -1] < count[start : start + step, None])
        w = w_local + start
        s = P[w[:, None], slots[slot]]
        key = np.ravel_multi_index(tuple(s.T), (L,) * k)
        at = np.minimum(np.searchsorted(sorted_key, key), m - 1)
        ok = sorted_key[at] == key
        if ok.any():
            w, s, key = w[ok], s[ok], key[ok]
            uk, mk = _group_min(key, _a_values(Dw, rank, vals, w, s))
            keys.append(uk)
            mins.append(mk)
    if keys:
        uk, mk = _group_min(np.concatenate(keys), np.concatenate(mins))
        out[srt[np.searchsorted(sorted_key, uk)]] = mk  # every uk is a candidate key
    return out


def _witness_filtration(Dw: np.ndarray, alpha_max: float):
    """The relaxed witness filtration of 6.3 step 3 on ``L`` landmarks, up to dimension 2.

    Returns ``(edges, edge_values, triangles, triangle_values)`` for the present simplices
    only, vertices as landmark positions ``0..L-1`` (duplicate indices are distinct vertices),
    each simplex's vertices ascending and the simplices in lexicographic order.

    Pruning (exact): let ``s`` have ``k`` vertices and ``l`` in ``s`` be farther from ``w`` than
    the ``k``-th smallest distance ``d_k(w)``. The ``k`` nearest landmarks of ``w`` then exclude
    ``l``, so at least one of them is outside ``s`` and ``min_{l' not in s} Dw(w,l') <= d_k(w)``:
    ``a(w, s) >= Dw(w, l) - d_k(w)``. Hence ``w`` can witness ``s`` within ``alpha_max`` only if
    ``Dw(w, l) - d_k(w) <= alpha_max`` for every vertex (rounding is monotone, so this also
    holds in floating point). Candidate edges are pairs close to a common witness;
    candidate triangles those whose three edges are present.
    """
    n, L = Dw.shape
    k = min(4, L)
    # The k nearest landmarks of each witness in increasing order. Which of several landmarks
    # at one distance gets which position does not matter: ``vals`` holds the values, and the
    # mex of _a_values finds the nearest landmark outside s for any order consistent with them.
    near = np.argpartition(Dw, k - 1, axis=1)[:, :k] if k < L else np.tile(np.arange(L), (n, 1))
    vk = np.take_along_axis(Dw, near, axis=1)
    by = np.argsort(vk, axis=1, kind="stable")
    order = np.take_along_axis(near, by, axis=1)
    vals = np.full((n, 5), np.inf)
    vals[:, :k] = np.take_along_axis(vk, by, axis=1)
    rank = np.full((n, L), 4, dtype=np.uint8)
    rank[np.arange(n)[:, None], order] = np.arange(k, dtype=np.uint8)[None, :]

    close2 = (Dw - vals[:, 1:2]) <= alpha_max
    c2 = close2.astype(np.float64)
    iu, ju = np.triu_indices(L, k=1)
    shared = (c2.T @ c2)[iu, ju] > 0
    edges = np.stack([iu[shared], ju[shared]], axis=1)
    ev = _witness_values(Dw, rank, vals, close2, edges)
    keep = ev <= alpha_max
    edges, ev = edges[keep], ev[keep]

    adj = np.zeros((L, L), dtype=bool)
    adj[edges[:, 0], edges[:, 1]] = True  # upper triangle: i < j
    # Triangles i < j < k whose three edges are present: each present edge (i, j) with every
    # k adjacent to both (then k > j), in lexicographic order since the edges are.
    e_at, kk = np.nonzero(adj[edges[:, 0]] & adj[edges[:, 1]])
    tris = np.stack([edges[e_at, 0], edges[e_at, 1], kk], axis=1)
    tw = _witness_values(Dw, rank, vals, (Dw - vals[:, 2:3]) <= alpha_max, tris)
    keep = tw <= alpha_max
    tris, tw = tris[keep], tw[keep]
    fe = np.zeros((L, L))
    fe[edges[:, 0], edges[:, 1]] = ev
    tv = np.maximum.reduce(
        [tw, fe[tris[:, 0], tris[:, 1]], fe[tris[:, 0], tris[:, 2]], fe[tris[:, 1], tris[:, 2]]]
    )
    return edges, ev, tris, tv


def _h1_intervals(L: int, edges, ev, tris, tv) -> np.ndarray:
    """Degree-1 persistence over Z/2 of a filtered 2-complex whose vertices all enter at 0.

    Persistent cohomology with clearing (the pairs are those of homology): edges sorted by
    value (ties by position, a valid filtration order since triangles come after their
    edges); the negative edges (those merging two components, paired with vertices) are the
    edges of the minimum spanning forest in that order (Kruskal's choice), and their
    coboundary columns, which would reduce to zero, are skipped (clearing).
    The coboundary columns of the positive edges (the triangles containing them, the
    earliest triangle as pivot) are reduced over Z/2 in reverse filtration order, as Python
    integers used as bit sets (XOR is addition). A column with pivot triangle ``t`` gives the
    interval ``[f(e), f(t))``; a column reduced to zero an essential class ``[f(e), inf)``.
    Returns an (m, 2) array of (birth, death) with ``death > birth`` (zero-length pairs
    dropped) or ``death = inf``.
    """
    eorder = np.argsort(ev, kind="stable")
    ev_s = ev[eorder]
    n_e, n_t = eorder.size, tris.shape[0]
    pos = np.full((L, L), -1, dtype=np.int64)
    pos[edges[eorder, 0], edges[eorder, 1]] = np.arange(n_e)

    # The negative edges are those Kruskal's algorithm takes in the filtration order: the
    # minimum spanning forest for the weights 1, 2, ... (distinct, so the forest is unique).
    positive = np.ones(n_e, dtype=bool)
    if n_e:
        es = edges[eorder]
        forest = minimum_spanning_tree(
            csr_matrix((np.arange(1.0, n_e + 1.0), (es[:, 0], es[:, 1])), shape=(L, L))
        )
        positive[forest.data.astype(np.intp) - 1] = False
    positive = np.flatnonzero(positive).tolist()

    torder = np.argsort(tv, kind="stable")
    t_s, tv_s = tris[torder], tv[torder]
    # Incidences (edge position, triangle position); triangle q is bit n_t - 1 - q, so the
    # highest set bit of a column is its earliest triangle.
    inc_e = np.concatenate(
        [pos[t_s[:, 0], t_s[:, 1]], pos[t_s[:, 0], t_s[:, 2]], pos[t_s[:, 1], t_s[:, 2]]]
    )
    inc_bit = np.tile(n_t - 1 - np.arange(n_t), 3)
    row_of = np.full(n_e, -1, dtype=np.int64)
    row_of[positive] = np.arange(len(positive))
    sel = row_of[inc_e] >= 0
    inc_row, inc_bit = row_of[inc_e[sel]], inc_bit[sel]
    cols: list[int] = []
    step = max(1, (8 * _BLOCK) // max(n_t, 1))
    for start in range(0, len(positive), step):
        stop = min(start + step, len(positive))
        block = np.zeros((stop - start, max(n_t, 1)), dtype=bool)
        here = (inc_row >= start) & (inc_row < stop)
        block[inc_row[here] - start, inc_bit[here]] = True
        packed = np.packbits(block, axis=1, bitorder="little")
        cols.extend(int.from_bytes(row.tobytes(), "little") for row in packed)

    out = []
    owner: dict[int, int] = {}
    for r in range(len(positive) - 1, -1, -1):  # reverse filtration order
        p, col = positive[r], cols[r]
        while col:
            low = col.bit_length() - 1
            other = owner.get(low)
            if other is None:
                owner[low] = col
                death = float(tv_s[n_t - 1 - low])
                if death > ev_s[p]:
                    out.append((float(ev_s[p]), death))
                break
            col ^= other
        else:
            out.append((float(ev_s[p]), math.inf))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _rlt(intervals: np.ndarray, alpha_max: float, i_max: int) -> np.ndarray:
    """Relative living times (6.3 step 5) of intervals already cut at ``alpha_max``."""
    rlt = np.zeros(i_max)
    if intervals.shape[0] == 0:
        rlt[0] = 1.0
        return rlt
    b, d = intervals[:, 0], intervals[:, 1]
    ends = np.unique(np.concatenate([b, d, [0.0, alpha_max]]))
    mids = (ends[:-1] + ends[1:]) / 2.0
    counts = ((b[None, :] <= mids[:, None]) & (mids[:, None] < d[None, :])).sum(axis=1)
    ok = counts < i_max
    rlt += np.bincount(counts[ok], weights=np.diff(ends)[ok], minlength=i_max)[:i_max]
    return rlt / alpha_max


def _sample_rlt(Dw: np.ndarray, gamma: float, i_max: int) -> np.ndarray:
    alpha_max = gamma * float(Dw.max())
    edges, ev, tris, tv = _witness_filtration(Dw, alpha_max)
    bars = _h1_intervals(Dw.shape[1], edges, ev, tris, tv)
    bars[np.isinf(bars[:, 1]), 1] = alpha_max
    bars = bars[bars[:, 1] > bars[:, 0]]  # zero-length intervals are dropped
    return _rlt(bars, alpha_max, i_max)


#: Largest ``n`` for which the full ``n x n`` distance matrix is computed once and reused.
_FULL_DISTANCES_MAX_N = 4096


def _mrlt(R: np.ndarray, landmarks: np.ndarray, gamma: float, i_max: int) -> np.ndarray:
    """Mean relative living times over the landmark sets (rows of ``landmarks``)."""
    n = R.shape[0]
    full = None
    if n <= _FULL_DISTANCES_MAX_N:
        try:
            check_fits(12.0 * n * n, "the full distance matrix of geometry_score", "")
            full = squareform(pdist(R))
        except MemoryError:
            full = None  # a cache that does not fit: compute each landmark set's distances
    total = np.zeros(i_max)
    for idx in landmarks:
        Dw = full[:, idx] if full is not None else cdist(R, R[idx])
        total += _sample_rlt(Dw, gamma, i_max)
    return total / landmarks.shape[0]


def _check_landmarks(name: str, value: Any, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"{name} has dtype {a.dtype}; expected an integer array of row indices of shape "
            "(n_samples, n_landmarks)"
        )
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"{name} has shape {a.shape}; expected a non-empty integer array of shape "
            "(n_samples, n_landmarks)"
        )
    if a.min() < 0 or a.max() >= n:
        raise ValueError(
            f"{name} holds indices from {a.min()} to {a.max()}; expected row indices in "
            f"[0, {n}) (n = {n} rows)"
        )
    return a.astype(np.intp)


@register(
    paired=False,
    resampling="a duplicated row is at distance 0 from its copy, which changes the witness complexes",
    family="topology",
    kind="distance",
    summary="Geometry score: mean relative living times of H1 in witness complexes",
    references=_REF_GS,
    symmetric=True,
    invariances=_INVARIANT,
    bounds=(0.0, 2.0),
    # The defaults (seed=None, 1000 landmark sets) are stochastic and slow, so the common
    # tests run a seeded small setting instead, with gamma large enough to see H1 at n = 60.
    variants=({"n_landmarks": 24, "gamma": 0.25, "n_samples": 5, "seed": 0},),
    prepare=_gs_prepare,
    pair=_gs_pair,
    matrix=_gs_matrix,
)
def geometry_score(
    X: ArrayLike,
    Y: ArrayLike,
    n_landmarks: int = 64,
    gamma: Optional[float] = None,
    i_max: int = 100,
    n_samples: int = 1000,
    seed: Optional[Any] = None,
    landmarks_x: Optional[Any] = None,
    landmarks_y: Optional[Any] = None,
) -> float:
    r"""Geometry score (Khrulkov & Oseledets 2018).

    For each representation :math:`R` (witnesses = all ``n`` rows) and each of
    ``n_samples`` landmark sets of ``n_landmarks`` rows drawn uniformly with replacement
    (duplicates are distinct vertices): with :math:`D_w(w, l)` the witness-landmark distances
    and :math:`\alpha_{max} = \gamma \max_{w,l} D_w(w,l)`, the relaxed witness filtration
    up to dimension 2 (vertices at 0)

    .. math::

        a(w, s) = \max\big(0,\ \max_{l \in s} D_w(w,l) - \min_{l' \notin s} D_w(w,l')\big),
        \qquad f(s) = \max\big(\min_w a(w,s),\ \max_{t \subset s} f(t)\big),

    a simplex present iff :math:`\min_w a(w,s) \le \alpha_{max}` and its facets are present;
    its degree-1 persistence over Z/2 (zero-length intervals dropped, infinite deaths set to
    :math:`\alpha_{max}`); the relative living times :math:`\mathrm{RLT}[c]` = fraction of
    :math:`[0, \alpha_{max}]` during which exactly :math:`c` intervals are alive
    (:math:`c < i_{max}`; ``(1, 0, ..., 0)`` without intervals). With
    :math:`\mathrm{MRLT}_R` the mean over the landmark sets,

    .. math::

        \mathrm{GS}(X, Y) = \sum_{c=0}^{i_{max}-1} (\mathrm{MRLT}_X[c] - \mathrm{MRLT}_Y[c])^2 .

    Drawn landmark indices, ``numpy.random.default_rng(seed).integers(0, n, size=(n_samples,
    n_landmarks))``, are shared by ``X`` and ``Y`` (row ``i`` is the same input in both), so
    that a fixed ``seed`` gives a symmetric value and ``GS(X, X) = 0``. If the
    minimum over :math:`l' \notin s` is over an empty set (``s`` holds every landmark) the
    condition is vacuous and :math:`a(w, s) = 0`.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    n_landmarks : int >= 1
    gamma : float > 0 or None
        Relative filtration range; ``None`` means ``n / (128 * 5000)``.
    i_max : int >= 1
        Length of the RLT vectors.
    n_samples : int >= 1
        Number of landmark sets.
    seed : None, int >= 0 or numpy.random.Generator
        Random stream of the landmark indices; values are reproducible only within this
        implementation.
    landmarks_x, landmarks_y : integer array-like of shape (n_samples, n_landmarks) or None
        Landmark row indices in ``[0, n)`` (one set per row), given together; they override
        ``n_landmarks``, ``n_samples`` and ``seed`` (the two may have different shapes).

    Returns
    -------
    float
        Distance in ``[0, 2]``; invariant to orthogonal transformations, isotropic scaling,
        translation and column permutations. Stochastic unless ``seed`` or the landmarks are
        given. ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if every row of
        ``X`` or ``Y`` is the same (``alpha_max = 0``: the filtration is empty).

    References
    ----------
    Khrulkov & Oseledets (2018), ICML.

    Examples
    --------
    >>> import math, numpy as np, congruence as cg
    >>> t = np.arange(8) * np.pi / 4
    >>> circle = np.c_[np.cos(t), np.sin(t)]
    >>> # Square of landmarks: a cycle alive on [0, 2 - sqrt 2) of [0, alpha_max = 1];
    >>> # four copies of one point: no cycle. GS = 2 (2 - sqrt 2)^2 = 12 - 8 sqrt 2.
    >>> gs = cg.geometry_score(circle, circle, gamma=0.5,
    ...                        landmarks_x=[[0, 2, 4, 6]], landmarks_y=[[0, 0, 0, 0]])
    >>> math.isclose(gs, 12 - 8 * math.sqrt(2), rel_tol=1e-12)
    True
    """
    n_landmarks = check_number("n_landmarks", n_landmarks, low=1, integer=True)
    if gamma is not None:
        gamma = check_number("gamma", gamma, low=0.0, low_open=True)
    i_max = check_number("i_max", i_max, low=1, integer=True)
    n_samples = check_number("n_samples", n_samples, low=1, integer=True)
    seed = _check_seed(seed)
    X, Y = check_pair(X, Y)
    n = X.shape[0]
    if (landmarks_x is None) != (landmarks_y is None):
        given = "landmarks_x" if landmarks_y is None else "landmarks_y"
        raise ValueError(
            f"{given} was given alone; landmarks_x and landmarks_y must be given together "
            "(or neither, to draw landmarks at random)"
        )
    if landmarks_x is None:
        idx_x = idx_y = np.random.default_rng(seed).integers(0, n, size=(n_samples, n_landmarks))
    else:
        idx_x = _check_landmarks("landmarks_x", landmarks_x, n)
        idx_y = _check_landmarks("landmarks_y", landmarks_y, n)
    if gamma is None:
        gamma = n / (128 * 5000)
    pair = _pair64(X, Y, min_rows=2, measure="geometry_score")
    if pair is None:
        return math.nan
    X, Y = pair
    diff = _mrlt(X, idx_x, gamma, i_max) - _mrlt(Y, idx_y, gamma, i_max)
    return float(np.sum(diff * diff))
