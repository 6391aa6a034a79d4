"""Kernel (HSIC-based) measures: CKA and HSIC (MEASURES.md section 1).

The heavy work (centring, Gram matrices, the exact median squared distance, HSIC) runs in the
Rust core, which picks the cheaper route for the linear kernel by itself: the feature space
(``||Xc^T Yc||_F^2``, O(n p1 p2)) when ``p < n``, the Gram matrices otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from congruence import _core
from congruence._registry import register, set_batch
from congruence._validation import check_bool, check_choice, check_number, check_pair

__all__ = ["cka", "hsic"]

_KERNELS = ("linear", "rbf")
_REFS_CKA = (
    "Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations Revisited. ICML.",
    "Cortes, Mohri, Rostamizadeh (2012). Algorithms for learning kernels based on centered alignment. JMLR.",
    "Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence Maximization. JMLR.",
)
_REFS_HSIC = (
    "Gretton, Bousquet, Smola, Schölkopf (2005). Measuring statistical dependence with Hilbert-Schmidt norms. ALT.",
    "Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence Maximization. JMLR.",
)
_VARIANTS_CKA = (
    {},
    {"kernel": "rbf"},
    {"debiased": True},
    {"kernel": "rbf", "sigma_frac": 0.5, "debiased": True},
)
_VARIANTS_HSIC = (
    {},
    {"kernel": "rbf"},
    {"unbiased": True},
    {"kernel": "rbf", "sigma_frac": 0.5, "unbiased": True},
)


def _params(kernel: Any, sigma_frac: Any, flag_name: str, flag: Any) -> tuple[str, float, bool]:
    kernel = check_choice("kernel", kernel, _KERNELS)
    sigma_frac = check_number("sigma_frac", sigma_frac, low=0.0, low_open=True)
    return kernel, sigma_frac, check_bool(flag_name, flag)


@register(
    family="kernel",
    kind="similarity",
    summary="Centered kernel alignment (linear or RBF kernel; biased or debiased HSIC)",
    references=_REFS_CKA,
    symmetric=True,
    invariances=("orthogonal", "isotropic_scaling", "translation", "permutation"),
    bounds=lambda p: (-1.0, 1.0) if p["debiased"] else (0.0, 1.0),
    min_rows=lambda p: 4 if p["debiased"] else 2,
    variants=_VARIANTS_CKA,
)
def cka(X, Y, kernel: str = "linear", sigma_frac: float = 1.0, debiased: bool = False) -> float:
    r"""Centered kernel alignment between two representations of the same inputs.

    .. math::

        \mathrm{CKA}(K, L) = \frac{\langle \tilde K, \tilde L \rangle_F}
                                  {\lVert \tilde K \rVert_F \, \lVert \tilde L \rVert_F}

    with :math:`\tilde K = HKH` (biased) or the U-centred :math:`K` (``debiased=True``,
    Székely & Rizzo 2014), :math:`H = I - \frac1n 11^T`. Kernels: ``"linear"``,
    :math:`K = XX^T`, for which CKA equals
    :math:`\lVert X_c^T Y_c\rVert_F^2 / (\lVert X_c^T X_c\rVert_F \lVert Y_c^T Y_c\rVert_F)`;
    ``"rbf"``, :math:`K_{ij} = \exp(-D^2_{ij} / (2\,\sigma_{frac}^2\, m))` where :math:`m` is
    the median of all :math:`n^2` squared distances (diagonal zeros included).

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
        Row ``i`` of both is the same input example. float32 input is computed on directly,
        with float64 accumulation.
    kernel : {"linear", "rbf"}
    sigma_frac : float > 0
        RBF bandwidth as a fraction of the median distance (ignored for ``"linear"``).
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012); needs ``n >= 4``.

    Returns
    -------
    float
        Similarity in [0, 1] (biased) or [-1, 1] (debiased); ``nan`` if a centred Gram
        matrix is zero (a constant representation) or the RBF median distance is zero.

    References
    ----------
    Kornblith et al. (2019), ICML; Cortes et al. (2012), JMLR.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 16))
    >>> Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    >>> round(cg.cka(X, 3 * X @ Q + 1), 12)   # rotation, scaling, translation
    1.0
    """
    kernel, sigma_frac, debiased = _params(kernel, sigma_frac, "debiased", debiased)
    X, Y = check_pair(X, Y, min_rows=4 if debiased else 2)
    return float(_core.kernel_pair(X, Y, kernel, sigma_frac, debiased, "cka"))


@register(
    family="kernel",
    kind="dependence",
    summary="Hilbert-Schmidt independence criterion (biased or unbiased estimator)",
    references=_REFS_HSIC,
    symmetric=True,
    invariances=lambda p: (
        ("orthogonal", "translation", "permutation")
        + (("isotropic_scaling",) if p["kernel"] == "rbf" else ())
    ),
    bounds=lambda p: (-math.inf, math.inf) if p["unbiased"] else (0.0, math.inf),
    min_rows=lambda p: 4 if p["unbiased"] else 2,
    variants=_VARIANTS_HSIC,
)
def hsic(X, Y, kernel: str = "linear", sigma_frac: float = 1.0, unbiased: bool = False) -> float:
    r"""Hilbert–Schmidt independence criterion between two representations.

    Biased (Gretton et al. 2005): :math:`\mathrm{HSIC}_b = \mathrm{tr}(KHLH)/(n-1)^2`.
    Unbiased (Song et al. 2012), with :math:`K_0, L_0` the Gram matrices with zeroed diagonals:

    .. math::

        \mathrm{HSIC}_u = \frac{1}{n(n-3)}\Big[\mathrm{tr}(K_0L_0)
          + \frac{1^TK_01\;1^TL_01}{(n-1)(n-2)} - \frac{2}{n-2}\,1^TK_0L_01\Big].

    Gram matrices as in :func:`cka`. The value is not normalised: with the linear kernel it
    scales as :math:`a^2b^2` under :math:`X \to aX,\ Y \to bY`.

    Parameters
    ----------
    X : array-like of shape (n, p1)
    Y : array-like of shape (n, p2)
    kernel : {"linear", "rbf"}
    sigma_frac : float > 0
        RBF bandwidth fraction (ignored for ``"linear"``).
    unbiased : bool
        Song et al.'s unbiased estimator; needs ``n >= 4``.

    Returns
    -------
    float
        >= 0 (biased); any real (unbiased). ``nan`` if the RBF median distance is zero.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> cg.hsic(X, X)   # tr(K H K H) / (n-1)^2 = (sum of squared centred values)^2 / 4
    1.0
    """
    kernel, sigma_frac, unbiased = _params(kernel, sigma_frac, "unbiased", unbiased)
    X, Y = check_pair(X, Y, min_rows=4 if unbiased else 2)
    return float(_core.kernel_pair(X, Y, kernel, sigma_frac, unbiased, "hsic"))


def _batch(statistic: str, flag_name: str):
    def batch(
        a: Sequence[np.ndarray],
        b: Optional[Sequence[np.ndarray]],
        kernel: str = "linear",
        sigma_frac: float = 1.0,
        **flag: Any,
    ) -> np.ndarray:
        kernel, sigma_frac, value = _params(kernel, sigma_frac, flag_name, flag.get(flag_name, False))
        return _core.kernel_matrix(list(a), None if b is None else list(b), kernel, sigma_frac, value, statistic)

    return batch


set_batch("cka", _batch("cka", "debiased"))
set_batch("hsic", _batch("hsic", "unbiased"))
