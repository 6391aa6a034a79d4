"""Representational-similarity-matrix (RSM) based measures (MEASURES.md section 4).

The O(n^2) work runs in the Rust core: Euclidean distances between rows (computed from the
differences, so duplicated rows are exactly at distance 0 and tied distances stay tied), the
RSM triangles and their Spearman ranks for :func:`rsa`, the streamed double centring of
:func:`distance_correlation` (no n x n matrix is held) and the Frobenius norm of
:func:`rsm_norm_diff`. The spectral variant of ``rsm_norm_diff`` and the measures built on
spectra (:func:`eigenspace_overlap`, :func:`gulp`, :func:`normalized_bures`,
:func:`riemannian_distance`) use LAPACK through NumPy and SciPy.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from congruence import _core
from congruence._registry import register
from congruence._validation import check_choice, check_number, check_pair

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


def _float64(Z: np.ndarray) -> np.ndarray:
    return np.asarray(Z, dtype=np.float64)


def _centre(Z: np.ndarray) -> np.ndarray:
    """Columns minus their means (a new float64 array); constant columns become exactly 0."""
    Z = _float64(Z)
    Zc = Z - Z.mean(axis=0)
    Zc[:, np.ptp(Z, axis=0) == 0] = 0.0
    return Zc


def _same_gram(Z: np.ndarray) -> np.ndarray:
    """``Z`` itself when ``p <= n``, else the ``n x n`` matrix ``R^T`` of the thin QR
    factorisation ``Z^T = Q R``.

    ``Z = R^T Q^T`` and ``Q`` has orthonormal columns, so ``R^T (R^T)^T = Z Z^T`` and
    ``R`` keeps every singular value of every product ``Z^T M = Q (R M)``.
    """
    n, p = Z.shape
    if p <= n:
        return Z
    return np.linalg.qr(Z.T, mode="r").T


# ------------------------------------------------------------------------------- rsa


@register(
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
    ),
)
def rsa(X, Y, rsm: str = "correlation", compare: str = "spearman") -> float:
    r"""Representational similarity analysis (Kriegeskorte et al. 2008).

    Each representation gets an ``n x n`` representational similarity matrix:

    * ``rsm="correlation"``: :math:`S_{ij} = \mathrm{corr}(x_i, x_j)`, the Pearson correlation
      of rows ``i`` and ``j`` (each row centred by its own mean over the features);
    * ``rsm="euclidean"``: :math:`S_{ij} = \lVert x_i - x_j \rVert_2`.

    The :math:`n(n-1)/2` entries with :math:`i < j` of the two matrices, in the same order,
    are then correlated:

    .. math::

        \mathrm{RSA}(X, Y) = \rho\big(\{S^X_{ij}\}_{i<j},\ \{S^Y_{ij}\}_{i<j}\big),

    with :math:`\rho` Spearman's rank correlation (``compare="spearman"``; tied values get
    the average of their ranks) or Pearson's correlation (``compare="pearson"``).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example; ``n >= 3``.
    rsm : {"correlation", "euclidean"}
        How the RSMs are built.
    compare : {"spearman", "pearson"}
        How the two RSM triangles are compared.

    Returns
    -------
    float
        Similarity in [-1, 1]. ``nan`` if a row has zero variance (``rsm="correlation"``) or
        either triangle is constant (for example all rows equal, or ``n = 3`` points at the
        corners of an equilateral triangle).

    Notes
    -----
    Invariances: with ``rsm="euclidean"``, orthogonal maps, isotropic scaling, translation
    and permutation of the features; with ``rsm="correlation"``, isotropic scaling,
    permutation, and adding a constant to all features of a row (not orthogonal maps, not
    general translations). The triangles take ``n(n-1)/2`` float64 values each, plus a sort
    buffer of twice that size for Spearman ranks.

    References
    ----------
    Kriegeskorte, Mur, Bandettini (2008). Representational similarity analysis -- connecting
    the branches of systems neuroscience. Front. Syst. Neurosci. 2:4.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> round(cg.rsa(X, 5 * X + 1, rsm="euclidean"), 12)   # distances scale, ranks do not
    1.0
    >>> cg.rsa(X, X[:, ::-1] ** 2, rsm="euclidean", compare="pearson") < 1
    True
    """
    rsm = check_choice("rsm", rsm, ("correlation", "euclidean"))
    compare = check_choice("compare", compare, ("spearman", "pearson"))
    X, Y = check_pair(X, Y, min_rows=3)
    return float(_core.rsa(X, Y, rsm, compare))


# ------------------------------------------------------------------------------- rsm_norm_diff


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
)
def rsm_norm_diff(X, Y, norm: str = "fro") -> float:
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
        Distance in [0, inf); a pseudo-metric. Never ``nan`` for valid input.

    Notes
    -----
    Invariant to orthogonal maps, translation and permutation of the features; not to
    scaling. ``"fro"`` is streamed by the Rust core (no ``n x n`` matrix is held);
    ``"spectral"`` builds :math:`D_X - D_Y` (one ``n x n`` float64 matrix) and computes its
    eigenvalues with LAPACK, which costs :math:`O(n^3)`.

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
    norm = check_choice("norm", norm, ("fro", "spectral"))
    X, Y = check_pair(X, Y)
    if norm == "fro":
        return float(_core.rsm_fro_diff(X, Y))
    D = _core.distance_difference(X, Y)
    ev = scipy.linalg.eigvalsh(D, overwrite_a=True, check_finite=False)
    return float(max(abs(ev[0]), abs(ev[-1])))


# ------------------------------------------------------------------------------- dCor


@register(
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
)
def distance_correlation(X, Y) -> float:
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
        Similarity in [0, 1]; ``nan`` if either representation is constant (all its rows
        equal, so that :math:`A = 0` or :math:`B = 0`).

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
    return float(_core.distance_correlation(X, Y))


# ------------------------------------------------------------------------------- EOS


def _left_basis(Z: np.ndarray):
    """Left singular vectors of ``Z`` for its numerically non-zero singular values."""
    Z = _float64(Z)
    n, p = Z.shape
    U, s, _ = np.linalg.svd(Z, full_matrices=False)
    if s[0] == 0.0:
        return None
    rank = int(np.count_nonzero(s > s[0] * max(n, p) * _EPS))
    return U[:, :rank]


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
)
def eigenspace_overlap(X, Y) -> float:
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
        Similarity in [0, 1]; ``nan`` if either input is all zeros.

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
    Ux, Uy = _left_basis(X), _left_basis(Y)
    if Ux is None or Uy is None:
        return math.nan
    value = float(np.sum((Ux.T @ Uy) ** 2)) / max(X.shape[1], Y.shape[1])
    return min(max(value, 0.0), 1.0)


# ------------------------------------------------------------------------------- GULP


def _gulp_factor(Z: np.ndarray, lam: float):
    """``(U, f)`` with ``P = U diag(f) U^T = A (A^T A + n lam I)^+ A^T`` for the rescaled
    centred ``A = sqrt(n) Zc / ||Zc||_F``; ``None`` when ``Zc`` is all zeros.

    ``mu = s^2 / n`` are the eigenvalues of ``Sa = A^T A / n`` (from the singular values of
    ``A``, so never negative); ``f = mu / (mu + lam)``, or for ``lam = 0`` the indicator of
    ``mu > mu_max p eps`` (the pseudo-inverse rule of MEASURES.md 4.5).
    """
    Zc = _centre(Z)
    n, p = Zc.shape
    scale = np.linalg.norm(Zc)
    if scale == 0.0:
        return None
    A = Zc * (math.sqrt(n) / scale)
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    mu = s**2 / n
    if lam > 0.0:
        f = mu / (mu + lam)
    else:
        f = (mu > mu[0] * p * _EPS).astype(np.float64)
    return U, f


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
)
def gulp(X, Y, lam: float = 0.0) -> float:
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
        round-off negative is returned as 0. ``nan`` if a centred input is all zeros.

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
    fx, fy = _gulp_factor(X, lam), _gulp_factor(Y, lam)
    if fx is None or fy is None:
        return math.nan
    (Ux, ax), (Uy, ay) = fx, fy
    cross = (Ux * np.sqrt(ax)).T @ (Uy * np.sqrt(ay))
    value = float(np.sum(ax**2) + np.sum(ay**2) - 2.0 * np.sum(cross**2))
    return max(value, 0.0)


# ------------------------------------------------------------------------------- Bures


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
)
def normalized_bures(X, Y) -> float:
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
        Similarity in [0, 1]; equals ``cos(angular_shape_metric(X, Y, alpha=1))``. ``nan`` if
        a centred input is all zeros.

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
    Xc, Yc = _centre(X), _centre(Y)
    nx, ny = np.linalg.norm(Xc), np.linalg.norm(Yc)
    if nx == 0.0 or ny == 0.0:
        return math.nan
    M = _same_gram(Xc / nx).T @ _same_gram(Yc / ny)
    value = float(np.sum(np.linalg.svd(M, compute_uv=False)))
    return min(max(value, 0.0), 1.0)


# ------------------------------------------------------------------------------- Riemannian


def _positive_definite(S: np.ndarray) -> bool:
    """Numerically positive definite: smallest eigenvalue above ``n eps`` times the largest."""
    w = scipy.linalg.eigvalsh(S, check_finite=False)
    return bool(w[-1] > 0.0 and w[0] > w[-1] * S.shape[0] * _EPS)


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
)
def riemannian_distance(X, Y) -> float:
    r"""Affine-invariant Riemannian distance between RSMs (Shahbazi et al. 2021).

    With :math:`S_X = XX^T/p_1` and :math:`S_Y = YY^T/p_2` (``n x n``, **no centring**),

    .. math::

        d(X, Y) = \sqrt{\sum_i \log^2 \lambda_i},

    :math:`\lambda_i` the eigenvalues of :math:`S_X^{-1}S_Y`, from the generalized symmetric
    eigenproblem :math:`S_Y v = \lambda S_X v` (``scipy.linalg.eigh``).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Both need at least as many columns as rows (``p1 >= n``, ``p2 >= n``), else the
        matrices are singular and a ``ValueError`` is raised.

    Returns
    -------
    float
        Distance in [0, inf), a metric on positive definite matrices. ``nan`` if ``S_X`` or
        ``S_Y`` is not numerically positive definite: its smallest eigenvalue is not above
        ``n * eps`` times its largest (for example rank-deficient rows), or the Cholesky
        factorisation inside the generalized eigensolver fails.

    Notes
    -----
    Invariant to orthogonal maps and permutations of the features; not to translation, and
    not to scaling (``X -> aX`` shifts every :math:`\log\lambda_i` by :math:`-2\log a`).

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
    X, Y = _float64(X), _float64(Y)
    Sx = (X @ X.T) / X.shape[1]
    Sy = (Y @ Y.T) / Y.shape[1]
    if not (_positive_definite(Sx) and _positive_definite(Sy)):
        return math.nan
    try:
        lam = scipy.linalg.eigh(Sy, Sx, eigvals_only=True, check_finite=False)
    except np.linalg.LinAlgError:
        return math.nan
    if not lam[0] > 0.0:
        return math.nan
    return float(math.sqrt(float(np.sum(np.log(lam) ** 2))))
