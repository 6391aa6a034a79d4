r"""Inference for every measure: permutation tests and bootstrap intervals.

**Permutation test** (:func:`permutation_test`). Under the null hypothesis that the rows of
``Y`` carry no information about the matching rows of ``X``, every pairing of the rows is as
likely as the observed one. The null distribution is the measure between ``X`` and ``Y`` with
its rows shuffled by ``N`` random permutations ``pi_k`` (``Y[pi_k]``), and the p-value is

.. math::

    p = \frac{1 + \#\{k : T_k \text{ at least as extreme as } T\}}{1 + N}

(Phipson & Smyth 2010): never 0, and exact (valid) for random permutations drawn with
replacement. "Extreme" means, for ``alternative="greater"``, ``T_k >= T``; for ``"less"``,
``T_k <= T``; ``"two-sided"`` is ``min(1, 2 min(p_less, p_greater))``; the default
(``None``) tests for "more alike than chance": ``"greater"`` for similarities and dependence
statistics, ``"less"`` for distances.

*Ties.* A permuted value equal to the observed one counts as at least as extreme. Values
that are equal mathematically may differ by round-off (the identity permutation computed by a
fast path, a permutation that only swaps identical rows), so "equal" means within
``64 eps |T|`` (about ``1.4e-14`` relative). A ``nan`` permuted value counts as extreme (the
conservative choice); a ``nan`` statistic gives a ``nan`` p-value.

*Reproducibility.* The ``N`` permutations are drawn up front from
``numpy.random.default_rng(seed)`` (:func:`permutations`), so a seed gives the same null
whatever the number of threads. For measures that take their own ``seed`` (``rtd``),
``SeedSequence(seed).spawn(2)`` seeds the permutations (first child) and the measure (second
child), which then uses the same randomness for the statistic and every permuted value.

*Functional measures* (model outputs): the rows of the second output are permuted; ``labels``
stay aligned with the first argument. Measures that compare each side separately
(``Measure.paired`` is False: e.g. ``imd``, ``accuracy_diff``, ``fleiss_kappa``) have no null
of this kind and are refused.

**Bootstrap** (:func:`bootstrap`). Rows are resampled with replacement, the same rows for
``X`` and ``Y`` (and for ``labels``), ``B`` times; the interval is the percentile interval of
the replicates or the bias-corrected and accelerated (BCa) interval of Efron (1987), with the
acceleration from the jackknife. A resample contains about 37% duplicated rows: measures whose
estimate is biased by duplicates (HSIC and CKA, where a row and its copy form a pair with the
kernel's diagonal values or a U-statistic pairs them, RBF bandwidths from the median
distance, nearest neighbours, ranks with ties, distance-based measures where a duplicated row
is at distance 0 from its copy) declare it, and
:func:`bootstrap` issues a :class:`~congruence.errors.ResamplingBiasWarning` for them (see
:meth:`congruence.Measure.resampling_bias`).

References
----------
Phipson, Smyth (2010). Permutation P-values Should Never Be Zero. Stat. Appl. Genet. Mol. Biol.
Efron (1987). Better Bootstrap Confidence Intervals. JASA 82(397).
Efron, Tibshirani (1993). An Introduction to the Bootstrap. Chapman & Hall.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal, Mapping, Optional, get_args

import numpy as np

from congruence._memory import check_fits
from congruence._registry import Measure, get_measure
from congruence._validation import (
    as_matrix,
    as_outputs,
    check_choice,
    check_number,
    check_same_length,
)
from congruence.errors import warn_degenerate, warn_resampling_bias

__all__ = [
    "PermutationTest",
    "BootstrapResult",
    "permutation_test",
    "bootstrap",
    "permutations",
    "pvalue",
    "ALTERNATIVES",
]

#: The alternatives of a permutation test.
Alternative = Literal["greater", "less", "two-sided"]
ALTERNATIVES = get_args(Alternative)
#: Relative tolerance within which a permuted value ties with the statistic.
TIE_TOLERANCE = 64 * np.finfo(np.float64).eps
Method = Literal["percentile", "bca"]
_METHODS = get_args(Method)


@dataclass(frozen=True)
class PermutationTest:
    """The result of :func:`permutation_test`.

    Attributes
    ----------
    statistic : float
        The measure between ``X`` and ``Y``.
    pvalue : float
        ``(1 + #{null at least as extreme}) / (1 + n_permutations)``.
    null : ndarray of shape (n_permutations,)
        The measure between ``X`` and ``Y`` with its rows permuted.
    n_permutations : int
    seed : int or None
    alternative : str
        ``"greater"``, ``"less"`` or ``"two-sided"`` (the default resolved by the measure's
        kind).
    measure : str
    params : dict
        The measure's parameters, defaults completed (with the measure's own ``seed`` when it
        takes one).
    """

    statistic: float
    pvalue: float
    null: np.ndarray = field(repr=False)
    n_permutations: int
    seed: Optional[int]
    alternative: str
    measure: str
    params: Mapping[str, Any]

    def plot(self, ax: Any = None) -> Any:
        """The null histogram with the observed value (needs matplotlib, the ``plot`` extra);
        returns the matplotlib Axes (see :func:`congruence.plot.plot_null`)."""
        from congruence.plot import plot_null

        return plot_null(self.statistic, self.null, ax=ax, pvalue=self.pvalue)


@dataclass(frozen=True)
class BootstrapResult:
    """The result of :func:`bootstrap`.

    Attributes
    ----------
    statistic : float
        The measure on the original rows.
    low, high : float
        The ends of the ``ci`` interval.
    distribution : ndarray of shape (n_boot,)
        The bootstrap replicates (``nan`` where a resample is degenerate).
    method : str
        ``"percentile"`` or ``"bca"``.
    ci : float
    n_boot : int
    seed : int or None
    measure : str
    params : dict
    """

    statistic: float
    low: float
    high: float
    distribution: np.ndarray = field(repr=False)
    method: str
    ci: float
    n_boot: int
    seed: Optional[int]
    measure: str
    params: Mapping[str, Any]


# -------------------------------------------------------------------------------- helpers


def check_count(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} is invalid; expected a positive integer")
    if value < 1:
        raise ValueError(f"{name}={value!r} is out of range; expected an integer >= 1")
    return int(value)


def check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid; expected None or an integer >= 0")
    return int(seed)


def check_paired(m: Measure) -> None:
    """ValueError unless ``m`` pairs the rows of its two sides (``Measure.paired``): only then
    does permuting the rows of one side give a null distribution."""
    if not m.paired:
        raise ValueError(
            f"measure {m.name!r} compares each side separately (rows of X and Y are not "
            "paired), so permuting the rows of Y leaves nothing to test; a permutation test "
            "needs a measure whose sides are paired by rows"
        )


def resolve_alternative(alternative: Any, kind: str) -> str:
    """``alternative`` checked, ``None`` resolved to "more alike" for a measure of ``kind``.

    >>> resolve_alternative(None, "similarity"), resolve_alternative(None, "distance")
    ('greater', 'less')
    """
    if alternative is None:
        return "less" if kind == "distance" else "greater"
    return check_choice("alternative", alternative, ALTERNATIVES)


def pvalue(statistic: float, null: np.ndarray, alternative: str) -> float:
    """The permutation p-value of ``statistic`` against the ``null`` values (Phipson & Smyth
    2010), ties within :data:`TIE_TOLERANCE` relative counted as at least as extreme.

    >>> pvalue(3.0, np.array([1.0, 3.0, 5.0, 2.0]), "greater")   # (1 + 2) / (1 + 4)
    0.6
    >>> pvalue(3.0, np.array([1.0, 3.0, 5.0, 2.0]), "less")      # (1 + 3) / 5
    0.8
    >>> pvalue(3.0, np.array([1.0, 3.0, 5.0, 2.0]), "two-sided")  # min(1, 2 * 0.6)
    1.0
    """
    null = np.asarray(null, dtype=np.float64).reshape(-1)
    if not np.isfinite(statistic):
        return float("nan")
    tol = TIE_TOLERANCE * abs(statistic)
    bad = np.isnan(null)
    total = null.size + 1.0
    greater = (np.count_nonzero(null >= statistic - tol) + np.count_nonzero(bad) + 1) / total
    less = (np.count_nonzero(null <= statistic + tol) + np.count_nonzero(bad) + 1) / total
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2.0 * min(greater, less)))


def permutations(n: int, n_permutations: int, seed: Any = None) -> np.ndarray:
    """The ``(n_permutations, n)`` row permutations a test with this ``seed`` uses (for a
    measure without its own seed), drawn up front from ``numpy.random.default_rng(seed)``.

    >>> permutations(5, 2, seed=0).shape
    (2, 5)
    >>> bool((np.sort(permutations(5, 3, seed=1), axis=1) == np.arange(5)).all())
    True
    """
    return draw_permutations(np.random.default_rng(check_seed(seed)), int(n), int(n_permutations))


def draw_permutations(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    check_fits(
        8.0 * n * count,
        f"the {count} x {n} row permutations of a permutation test",
        "use fewer permutations or fewer rows",
    )
    return rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (count, n)), axis=1)


def generators(m: Measure, seed: Optional[int], params: dict) -> tuple[np.random.Generator, dict]:
    """The resampling generator, and ``params`` with the measure's own seed when it takes
    one (both from ``SeedSequence(seed).spawn(2)``)."""
    if "seed" not in m.accepts:
        return np.random.default_rng(seed), params
    resample, own = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(resample), {
        **params,
        "seed": int(own.generate_state(1, np.uint32)[0]),
    }


def inputs(m: Measure, X: Any, Y: Any, params: Mapping[str, Any]) -> tuple[Any, Any]:
    """``X`` and ``Y`` validated as the measure's inputs (representations or outputs) with the
    same number of rows."""
    min_rows = m.min_rows(**params)
    if m.inputs == "outputs":
        a = as_outputs(X, "X", min_rows=min_rows)
        b = as_outputs(Y, "Y", min_rows=min_rows)
        check_same_length([a, b], ["X", "Y"])
        return a, b
    a = as_matrix(X, "X", min_rows=min_rows)
    b = as_matrix(Y, "Y", min_rows=min_rows)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"X has shape {a.shape} and Y has shape {b.shape}: a permutation test or a "
            "bootstrap needs the same rows (row i of both is the same input example)"
        )
    return a, b


def _start(measure: str, params: dict) -> tuple[Measure, dict]:
    m = get_measure(measure)
    if "seed" in params:  # cannot happen through the keyword, only through a dict
        raise TypeError("seed seeds the resampling; the measure's own seed is derived from it")
    full = m.check_params(params)
    return m, full


# ---------------------------------------------------------------------- permutation test


def permutation_test(
    X: Any,
    Y: Any,
    measure: str = "cka",
    *,
    n_permutations: int = 1000,
    seed: Optional[int] = None,
    alternative: Optional[Alternative] = None,
    **params: Any,
) -> PermutationTest:
    """Permutation test of the registered ``measure`` between ``X`` and ``Y``.

    The null distribution is the measure between ``X`` and ``Y[pi]`` for ``n_permutations``
    random row permutations ``pi``; the p-value is
    ``(1 + #{null at least as extreme}) / (1 + n_permutations)`` (Phipson & Smyth 2010). See
    :mod:`congruence.inference` for ties, seeds and functional measures.

    Parameters
    ----------
    X, Y : array-like
        Representations ``(n, p1)``, ``(n, p2)`` of the same ``n`` inputs, or two models'
        outputs for a functional measure (``labels`` stay aligned with ``X``).
    measure : str
        A registered measure whose sides are paired by rows (``Measure.paired``).
    n_permutations : int >= 1
    seed : None or int >= 0
        Seeds the permutations (and the measure's own randomness, if it has any).
    alternative : {None, "greater", "less", "two-sided"}
        ``None``: "more alike than chance" (``"greater"`` for similarities and dependence
        statistics, ``"less"`` for distances).
    **params
        The measure's parameters.

    Returns
    -------
    PermutationTest

    Raises
    ------
    ValueError
        For a measure that compares each side separately, inputs with different row counts,
        or an invalid option. TypeError for an unknown parameter of the measure.

    Notes
    -----
    Kernel measures (CKA, HSIC; linear and RBF, biased and debiased) compute each side's
    centred kernel matrix once and re-index it per permutation, in parallel in the core;
    other measures prepare each side once and re-index the prepared second side.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 5))
    >>> res = cg.permutation_test(X, X @ rng.standard_normal((5, 3)), n_permutations=99, seed=1)
    >>> res.pvalue, res.alternative   # 1 / (1 + 99): no permutation is as alike
    (0.01, 'greater')
    """
    m, full = _start(measure, params)
    check_paired(m)
    n_permutations = check_count("n_permutations", n_permutations)
    seed = check_seed(seed)
    alternative = resolve_alternative(alternative, m.kind)
    X, Y = inputs(m, X, Y, params)
    rng, params = generators(m, seed, dict(params))
    perms = draw_permutations(rng, len(X), n_permutations)
    px = m.prepare(X, name="X", **params)
    py = m.prepare(Y, name="Y", **params)
    statistic = float(m.pair(px, py, **params))
    null = np.asarray(m.permuted(px, py, perms, y=Y, **params), dtype=np.float64).reshape(-1)
    return PermutationTest(
        statistic=statistic,
        pvalue=pvalue(statistic, null, alternative),
        null=null,
        n_permutations=n_permutations,
        seed=seed,
        alternative=alternative,
        measure=m.name,
        params={**full, **params},
    )


# ------------------------------------------------------------------------------ bootstrap


def _resampler(m: Measure, X: Any, Y: Any, params: dict):
    """``value(idx)``: the measure on rows ``idx`` of both sides (``labels`` too), through
    ``reindex`` of the prepared sides when the measure allows it."""
    px = m.prepare(X, name="X", **params)
    py = m.prepare(Y, name="Y", **params)
    labels = params.get("labels")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim < 1 or labels.shape[0] != len(X):
            raise ValueError(
                f"labels has shape {labels.shape}; expected one label per row of X ({len(X)})"
            )

    def value(idx: Optional[np.ndarray]) -> float:
        if idx is None:
            return float(m.pair(px, py, **params))
        p = params if labels is None else {**params, "labels": labels[idx]}
        if m.reindexable:
            return float(m.pair(m.reindex(px, idx, **p), m.reindex(py, idx, **p), **p))
        return float(
            m.pair(m.prepare(X[idx], name="X", **p), m.prepare(Y[idx], name="Y", **p), **p)
        )

    return value


def _quantiles(values: np.ndarray, probs: list[float]) -> tuple[float, float]:
    low, high = np.quantile(values, probs)
    return float(low), float(high)


def bca_interval(
    statistic: float, replicates: np.ndarray, jackknife: np.ndarray, ci: float
) -> tuple[float, float]:
    r"""The BCa interval (Efron 1987) from the bootstrap replicates and the leave-one-out
    (jackknife) values.

    With :math:`\Phi` the standard normal CDF,
    :math:`z_0 = \Phi^{-1}(\#\{\theta^*_b < \hat\theta\} / B)`,
    :math:`a = \sum_i d_i^3 / (6 (\sum_i d_i^2)^{3/2})` with
    :math:`d_i = \bar\theta_{(\cdot)} - \theta_{(i)}`, and for each end
    :math:`\alpha' = \Phi(z_0 + (z_0 + z_\alpha) / (1 - a (z_0 + z_\alpha)))`, the interval is
    the :math:`\alpha'` quantiles of the replicates (``numpy.quantile``'s default
    interpolation), :math:`\alpha = (1 \mp ci) / 2`. Undefined (``nan``) when no replicate, or
    every replicate, lies below the statistic.
    """
    nd = NormalDist()
    below = np.count_nonzero(replicates < statistic) / replicates.size
    if not 0.0 < below < 1.0:
        return float("nan"), float("nan")
    z0 = nd.inv_cdf(below)
    d = jackknife.mean() - jackknife
    denom = 6.0 * float(np.sum(d * d)) ** 1.5
    a = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    probs = []
    for alpha in ((1.0 - ci) / 2.0, (1.0 + ci) / 2.0):
        z = z0 + nd.inv_cdf(alpha)
        probs.append(nd.cdf(z0 + z / (1.0 - a * z)))
    return _quantiles(replicates, probs)


def bootstrap(
    X: Any,
    Y: Any,
    measure: str = "cka",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    method: Method = "percentile",
    seed: Optional[int] = None,
    **params: Any,
) -> BootstrapResult:
    """Bootstrap confidence interval of the registered ``measure`` between ``X`` and ``Y``.

    Each of the ``n_boot`` replicates is the measure on ``n`` rows drawn with replacement,
    the same rows of ``X`` and ``Y`` (and of ``labels``).

    Parameters
    ----------
    X, Y : array-like
        Representations or model outputs of the same ``n`` inputs.
    measure : str
    n_boot : int >= 1
    ci : float in (0, 1)
        Coverage of the interval.
    method : {"percentile", "bca"}
        ``"percentile"``: the ``(1 - ci)/2`` and ``(1 + ci)/2`` quantiles of the replicates
        (``numpy.quantile``). ``"bca"``: bias-corrected and accelerated (Efron 1987; see
        :func:`bca_interval`), which also evaluates the measure ``n`` times, leaving out one
        row at a time.
    seed : None or int >= 0
    **params
        The measure's parameters.

    Returns
    -------
    BootstrapResult

    Warns
    -----
    ResamplingBiasWarning
        For measures whose estimate duplicated rows bias (their reason is given): HSIC and
        CKA (every kernel and estimator: a row and its copy form a pair with the kernel's
        diagonal values, or a U-statistic pairs them), nearest-neighbour measures, RSA,
        distance correlation, topological measures, uniformity
        (:meth:`congruence.Measure.resampling_bias` says which). Read their interval with
        care, or use a subsampling scheme (rows drawn without replacement) instead.
    DegenerateDataWarning
        When replicates are ``nan`` (degenerate resamples); the interval uses the others.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((80, 4)); Y = X + rng.standard_normal((80, 4))
    >>> res = cg.bootstrap(X, Y, n_boot=200, seed=0)
    >>> bool(res.low < res.statistic < res.high), res.distribution.shape
    (True, (200,))
    """
    m, full = _start(measure, params)
    n_boot = check_count("n_boot", n_boot)
    ci = check_number("ci", ci, low=0.0, high=1.0, low_open=True, high_open=True)
    method = check_choice("method", method, _METHODS)
    seed = check_seed(seed)
    X, Y = inputs(m, X, Y, params)
    reason = m.resampling_bias(**params)
    if reason is not None:
        warn_resampling_bias(
            f"{m.name}: a bootstrap resample duplicates rows, which biases this estimate "
            f"({reason}); its interval is shifted accordingly"
        )
    rng, params = generators(m, seed, dict(params))
    n = len(X)
    check_fits(8.0 * n * n_boot, f"the {n_boot} x {n} bootstrap indices", "use fewer resamples")
    idx = rng.integers(0, n, size=(n_boot, n))
    value = _resampler(m, X, Y, params)
    statistic = value(None)
    dist = np.array([value(i) for i in idx], dtype=np.float64)
    finite = dist[np.isfinite(dist)]
    if finite.size < dist.size:
        warn_degenerate(
            f"{dist.size - finite.size} of {dist.size} bootstrap replicates of {m.name} are "
            "not finite (degenerate resamples); the interval uses the others"
        )
    if finite.size and np.isfinite(statistic):
        above = int(np.count_nonzero(finite > statistic))
        if above in (0, finite.size) or not finite.min() <= statistic <= finite.max():
            warn_resampling_bias(
                f"{m.name}: {above} of {finite.size} bootstrap replicates exceed the statistic "
                f"{statistic!r}: the bootstrap distribution lies on one side of the estimate "
                "(the resamples' duplicated rows bias it), so its interval does not cover the "
                "estimate; prefer a permutation test, or subsampling without replacement"
            )
    if finite.size == 0 or not np.isfinite(statistic):
        low = high = float("nan")
    elif method == "percentile":
        low, high = _quantiles(finite, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    else:
        rows = np.arange(n)
        jack = np.array([value(np.delete(rows, i)) for i in range(n)], dtype=np.float64)
        low, high = bca_interval(statistic, finite, jack[np.isfinite(jack)], ci)
        if math.isnan(low):
            warn_degenerate(
                f"{m.name}: the BCa interval is undefined (nan): its bias correction needs "
                "replicates on both sides of the statistic; use method='percentile' or a "
                "permutation test"
            )
    return BootstrapResult(
        statistic=statistic,
        low=low,
        high=high,
        distribution=dist,
        method=method,
        ci=ci,
        n_boot=n_boot,
        seed=seed,
        measure=m.name,
        params={**full, **params},
    )
