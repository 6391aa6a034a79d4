"""Kernel (HSIC-based) measures: CKA and HSIC (Gretton et al. 2005; Kornblith et al. 2019).

The heavy work (centring, Gram matrices, the exact median squared distance, HSIC) runs in the
Rust core, which picks the cheaper route for the linear kernel by itself: the feature space
(``||Xc^T Yc||_F^2``, O(n p1 p2)) when ``p < n``, the Gram matrices otherwise.

Magnitudes: each representation is centred in float64 and multiplied by a power of two (an
exact operation) that brings its entries into ``[-1, 1]`` before any product, so data of any
magnitude or offset (float32 up to 3.4e38, float64 up to 1e300) give the value of the formula
on those numbers. CKA and the RBF kernel are scale-invariant; the linear HSIC gets its scale
back exactly at the end, and is ``inf`` (with a :class:`~congruence.DegenerateDataWarning`)
only when the value itself exceeds the float64 range.

Degenerate data: a representation whose rows are all identical makes CKA ``nan`` and the linear
HSIC 0; more than half of the squared distances being 0 (duplicated rows) makes the RBF kernel
undefined (``nan``). Each case comes with a :class:`~congruence.DegenerateDataWarning` naming
the argument and the cause.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Sequence, get_args

import numpy as np
from numpy.typing import ArrayLike

from congruence import _core
from congruence._memory import check_fits
from congruence._registry import register
from congruence._validation import (
    check_bool,
    check_choice,
    check_number,
    check_pair,
    constant_columns,
)
from congruence.errors import warn_degenerate
from congruence.results import layer_label

__all__ = ["cka", "hsic"]

Kernel = Literal["linear", "rbf"]
_KERNELS = get_args(Kernel)
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


def _zero_median(a: np.ndarray) -> bool:
    """Whether the median of the ``n^2`` squared distances between the rows of ``a`` is 0.

    A squared distance is 0 exactly for a pair of equal rows (the ``n`` pairs ``(i, i)``
    included): with ``c`` copies of each distinct row there are ``sum c^2`` zeros, and the
    median (the mean of the two middle entries when ``n^2`` is even) is 0 when more than half
    of the entries are.
    """
    n = a.shape[0]
    # sum c^2 <= c_max n, so a zero median needs one row repeated more than n/2 times, and
    # then its first entry too: one column settles almost every case in O(n log n).
    _, first = np.unique(a[:, 0] + 0.0, return_counts=True)
    if 2 * int(first.max()) <= n:
        return False
    _, counts = np.unique(a + 0.0, axis=0, return_counts=True)  # + 0.0: -0.0 equals 0.0
    zeros = int(np.sum(counts.astype(np.int64) ** 2))
    return zeros >= n * n // 2 + 1


def _every_row_identical(a: np.ndarray) -> bool:
    """Whether every column of ``a`` is constant (up to round-off, see ``constant_columns``).

    A few columns spread over the width are looked at first: one varying column settles it
    (the usual case) without a pass over the whole array.
    """
    few = np.unique(np.linspace(0, a.shape[1] - 1, num=min(8, a.shape[1])).astype(np.intp))
    if not constant_columns(a[:, few]).all():
        return False
    return bool(constant_columns(a).all())


def _layer_issue(a: np.ndarray, kernel: str, statistic: str) -> Optional[str]:
    """Why layer ``a`` makes the statistic degenerate, or None.

    * every row identical (all columns constant, up to round-off): the centred Gram matrix is
      zero, so CKA is nan and the linear HSIC is 0; the RBF bandwidth is 0 (nan);
    * RBF: more than half of the squared distances are 0 (duplicated rows), so the bandwidth
      (their median) is 0 and the kernel is undefined (nan).
    """
    if _every_row_identical(a):
        return "has zero variance: every row is identical"
    if kernel == "rbf" and _zero_median(a):
        return (
            "has duplicated rows: more than half of its n^2 squared distances are 0, so the RBF "
            "bandwidth (their median) is 0"
        )
    return None


def _outcome(statistic: str, kernel: str) -> str:
    if statistic == "hsic" and kernel == "linear":
        return "hsic is 0"
    return f"{statistic} is undefined (nan)"


def _check_value(value: float, statistic: str, spec: tuple, names: Sequence[str], arrays) -> None:
    """Warn for a nan or an infinity that the layer checks did not explain (never silent).

    ``spec`` is ``(kernel, sigma_frac, flag)``. A nan means a (U-)centred kernel matrix is
    zero to float64 precision (its own inner product ``<K., K.>`` is not above the round-off of
    the terms it is computed from); the culprit is the side whose CKA with itself is nan.
    """
    kernel, sigma_frac, flag = spec
    if np.isinf(value):
        warn_degenerate(
            f"{statistic} of {names[0]} and {names[1]} overflows float64 (|value| > 1.8e308): "
            f"the linear HSIC grows with the fourth power of the data's magnitude; "
            f"{statistic} is {value}"
        )
    elif np.isnan(value):
        which = [
            nm
            for nm, a in zip(names, arrays)
            if math.isnan(_core.kernel_pair(a, a, kernel, sigma_frac, flag, "cka"))
        ] or list(names)
        centring = "U-centred" if flag else "centred"
        warn_degenerate(
            f"{' and '.join(which)}: the {centring} kernel matrix is zero to float64 precision "
            "(with the debiased estimator, e.g. all rows but one identical); "
            f"{statistic} is undefined (nan)"
        )


def _pair_value(X, Y, kernel: str, sigma_frac: float, flag: bool, statistic: str) -> float:
    """The statistic of one pair, with the degenerate cases of MEASURES 0.2 warned about."""
    issues = [(nm, _layer_issue(a, kernel, statistic)) for nm, a in (("X", X), ("Y", Y))]
    issues = [(nm, why) for nm, why in issues if why is not None]
    if issues:
        for nm, why in issues:
            warn_degenerate(f"{nm} {why}; {_outcome(statistic, kernel)}")
        return 0.0 if statistic == "hsic" and kernel == "linear" else math.nan
    value = float(_core.kernel_pair(X, Y, kernel, sigma_frac, flag, statistic))
    if not np.isfinite(value):
        _check_value(value, statistic, (kernel, sigma_frac, flag), ("X", "Y"), (X, Y))
    return value


class KernelLayer:
    """A kernel-family preparation: the validated ``(n, p)`` array and, computed on first use
    by a permutation test and kept, its centred (or U-centred) kernel matrix for each
    ``(kernel, sigma_frac, unbiased)`` asked for."""

    __slots__ = ("x", "name", "_centred")

    def __init__(self, x: np.ndarray, name: str = "X") -> None:
        self.x = x
        self.name = name
        self._centred: dict = {}

    def centred(self, kernel: str, sigma_frac: float, unbiased: bool):
        """``(matrix, exp)`` from the core (the kernel of the features times ``2^-exp``), or
        None when the kernel is undefined."""
        key = (kernel, sigma_frac, unbiased)
        if key not in self._centred:
            self._centred[key] = _core.centred_kernel(self.x, kernel, sigma_frac, unbiased)
        return self._centred[key]

    def has(self, kernel: str, sigma_frac: float, unbiased: bool) -> bool:
        return (kernel, sigma_frac, unbiased) in self._centred


def _prepare(x: np.ndarray, *, name: str = "X", **params: Any) -> KernelLayer:
    return KernelLayer(x, name)


def _reindex(prep: KernelLayer, idx: Any, **params: Any) -> KernelLayer:
    return KernelLayer(prep.x[idx], prep.name)


def _pair(statistic: str):
    def pair(px: KernelLayer, py: KernelLayer, **params: Any) -> float:
        return globals()[statistic](px.x, py.x, **params)

    return pair


#: Seconds per multiply-add of the permutation gather and per flop of the feature-space
#: product: rough figures that pick the cheaper linear route (the RBF kernel always gathers).
_GATHER_COST, _FLOP_COST, _CALL_COST = 1e-9, 5e-11, 4e-5


def _permuted(statistic: str, flag_name: str):
    """The permutation fast path of cka / hsic (see ``congruence_core::permutation``): each
    side's centred kernel matrix computed once (kept in its preparation) and re-indexed by
    every permutation, in parallel in the core. Falls back to one value per permutation when
    the two ``n x n`` matrices do not fit in memory, or (linear kernel, narrow layers) when the
    feature-space product is cheaper."""

    def permuted(px: KernelLayer, py: KernelLayer, perms: np.ndarray, **params: Any):
        func = globals()[statistic]
        kernel, sigma_frac, flag = _params(
            params.get("kernel", "linear"),
            params.get("sigma_frac", 1.0),
            flag_name,
            params.get(flag_name, False),
        )
        perms = np.ascontiguousarray(perms, dtype=np.int64)
        x, y = px.x, py.x
        n = x.shape[0]

        def generic() -> np.ndarray:
            return np.array([func(x, y[idx], **params) for idx in perms], dtype=np.float64).reshape(
                len(perms)
            )

        if any(_layer_issue(a, kernel, statistic) is not None for a in (x, y)):
            # A constant layer, or an undefined RBF bandwidth, stays so under any permutation:
            # every value is the observed one (warned about once).
            return np.full(len(perms), func(x, y, **params))
        if kernel == "linear":
            width = x.shape[1] + y.shape[1]
            gather = 0.5 * n * n * _GATHER_COST
            if gather > n * width * width * _FLOP_COST + _CALL_COST:
                return generic()
        missing = sum(not p.has(kernel, sigma_frac, flag) for p in (px, py))
        try:
            check_fits(
                8.0 * n * n * (missing + 1),
                f"the {n} x {n} centred kernel matrices of a {statistic} permutation test",
                "the generic path is used instead",
            )
        except MemoryError:
            return generic()
        kx = px.centred(kernel, sigma_frac, flag)
        ky = py.centred(kernel, sigma_frac, flag)
        if kx is None or ky is None:
            return generic()
        return np.asarray(
            _core.kernel_permuted(
                kx[0], ky[0], kx[1] + ky[1], perms, kernel, sigma_frac, flag, statistic
            ),
            dtype=np.float64,
        )

    return permuted


def _resampling(flag_name: str):
    def reason(p: Any) -> Optional[str]:
        why = []
        if p[flag_name]:
            why.append("the unbiased estimator's U-statistic pairs a row with its own duplicate")
        else:
            why.append(
                "a duplicated row and its copy are a pair with the kernel's diagonal values in "
                "both X and Y, like the diagonal terms behind the biased estimator's upward bias"
            )
        if p["kernel"] == "rbf":
            why.append(
                "duplicated rows add zero squared distances, which lower the median that sets "
                "the RBF bandwidth"
            )
        return "; ".join(why)

    return reason


def _batch(statistic: str, flag_name: str):
    def batch(
        a: Sequence[Any],
        b: Optional[Sequence[Any]],
        kernel: str = "linear",
        sigma_frac: float = 1.0,
        **flag: Any,
    ) -> np.ndarray:
        a = [p.x if isinstance(p, KernelLayer) else p for p in a]
        if b is not None:
            b = [p.x if isinstance(p, KernelLayer) else p for p in b]
        kernel, sigma_frac, value = _params(
            kernel, sigma_frac, flag_name, flag.get(flag_name, False)
        )
        out = np.array(
            _core.kernel_matrix(
                list(a), None if b is None else list(b), kernel, sigma_frac, value, statistic
            ),
            dtype=np.float64,
        )
        # Degenerate layers (MEASURES 0.2): warned about once each, their rows/columns set to
        # the defined value (linear HSIC: 0) or nan, whatever round-off left in them.
        sides = [("a", list(a))] + ([] if b is None else [("b", list(b))])
        fill = 0.0 if statistic == "hsic" and kernel == "linear" else math.nan
        bad = {}
        for side, layers in sides:
            for i, x in enumerate(layers):
                why = _layer_issue(x, kernel, statistic)
                if why is not None:
                    warn_degenerate(
                        f"layer {layer_label(side, i)} {why}; {_outcome(statistic, kernel)}"
                    )
                    bad[(side, i)] = True
        for side, i in bad:
            if side == "a":
                out[i, :] = fill
                if b is None:
                    out[:, i] = fill
            else:
                out[:, i] = fill
        cols = "a" if b is None else "b"
        for i, j in zip(*np.nonzero(~np.isfinite(out))):
            if ("a", i) in bad or (cols, j) in bad or (b is None and j < i):
                continue
            _check_value(
                float(out[i, j]),
                statistic,
                (kernel, sigma_frac, value),
                (f"layer {layer_label('a', i)}", f"layer {layer_label(cols, j)}"),
                (a[i], (a if b is None else b)[j]),
            )
        return out

    return batch


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
    prepare=_prepare,
    pair=_pair("cka"),
    reindex=_reindex,
    matrix=_batch("cka", "debiased"),
    permuted=_permuted("cka", "debiased"),
    resampling=_resampling("debiased"),
)
def cka(
    X: ArrayLike,
    Y: ArrayLike,
    kernel: Kernel = "linear",
    sigma_frac: float = 1.0,
    debiased: bool = False,
) -> float:
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
        Row ``i`` of both is the same input example. float32 input is read in place and
        centred into float64; when every input is float32 and the linear kernel takes the
        Gram route, the Gram tiles are float32 products of the centred values, and each value
        is kept only if an estimate of its rounding error is within 1e-6 relative of the
        float64 computation on the same values (otherwise it is computed in float64). On the
        linear Gram route a layer whose column means are small beside its spread
        (:math:`\lVert\mu\rVert^2 \le 4` times the mean squared norm of the centred rows) is
        not copied: its Gram tiles are formed from the rows and centred entry by entry
        (float64: within about 1e-13 relative of the centred copy; float32 rows on the
        float32 route, checked as above); other layers are centred into a copy.
    kernel : {"linear", "rbf"}
    sigma_frac : float > 0
        RBF bandwidth as a fraction of the median distance (ignored for ``"linear"``).
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012); needs ``n >= 4``.

    Returns
    -------
    float
        Similarity in [0, 1] (biased) or [-1, 1] (debiased); ``nan`` with a
        :class:`~congruence.DegenerateDataWarning` if a centred Gram matrix is zero (a constant
        representation) or the RBF median squared distance is zero (duplicated rows).

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
    return _pair_value(X, Y, kernel, sigma_frac, debiased, "cka")


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
    prepare=_prepare,
    pair=_pair("hsic"),
    reindex=_reindex,
    matrix=_batch("hsic", "unbiased"),
    permuted=_permuted("hsic", "unbiased"),
    resampling=_resampling("unbiased"),
)
def hsic(
    X: ArrayLike,
    Y: ArrayLike,
    kernel: Kernel = "linear",
    sigma_frac: float = 1.0,
    unbiased: bool = False,
) -> float:
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
        >= 0 (biased); any real (unbiased). With a
        :class:`~congruence.DegenerateDataWarning`: 0 for a constant representation (linear
        kernel), ``nan`` if the RBF median squared distance is zero, ``inf`` if the value
        exceeds the float64 range (e.g. linear HSIC of data of magnitude 1e100).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> cg.hsic(X, X)   # tr(K H K H) / (n-1)^2 = (sum of squared centred values)^2 / 4
    1.0
    """
    kernel, sigma_frac, unbiased = _params(kernel, sigma_frac, "unbiased", unbiased)
    X, Y = check_pair(X, Y, min_rows=4 if unbiased else 2)
    return _pair_value(X, Y, kernel, sigma_frac, unbiased, "hsic")
