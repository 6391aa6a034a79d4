"""Functional (output-based) measures: how alike two or more models' outputs are (Klabunde et al. 2025, functional measures).

Outputs come in two forms, validated by :func:`congruence._validation.as_outputs`:

* **hard predictions**, a 1-D integer array ``(n,)`` of class labels;
* **soft outputs**, a 2-D array ``(n, C)`` of scores or probabilities.

Measures on hard predictions take the ``argmax`` of a soft input over its classes (the first
maximal index on ties), so the two forms may be mixed. Measures on probabilities (:func:`jsd`,
:func:`surrogate_churn`, :func:`prediction_difference`) need 2-D non-negative inputs of equal
shape. The counting measures are computed with exact integer arithmetic, so their symmetries and
their ``nan`` cases hold exactly. Every ``nan`` (a zero denominator: a model without errors, a
single predicted class, an all-zero output row) comes with a
:class:`~congruence.DegenerateDataWarning` naming the argument and the cause.

These measures compare outputs, not layers: ``congruence.compare_layers`` refuses them (their
registry records have ``inputs="outputs"``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, Sequence, get_args

import numpy as np
from numpy.typing import ArrayLike

from congruence._linalg import scale_back
from congruence._registry import register
from congruence._validation import (
    as_labels,
    as_outputs,
    check_choice,
    check_class_counts,
    check_number,
    check_probabilities,
    check_same_length,
)
from congruence.errors import warn_degenerate

__all__ = [
    "accuracy_diff",
    "cohens_kappa",
    "disagreement",
    "error_corrected_disagreement",
    "fleiss_kappa",
    "jsd",
    "prediction_difference",
    "surrogate_churn",
]

_FAMILY = "functional"
_MIN_ROWS = 2  # the smallest n of every functional measure
Mode = Literal["error_rate", "min_max"]
_MODES = get_args(Mode)

_REF_SURVEY = (
    "Klabunde, Schumacher, Strohmaier, Lemmerich (2025). Similarity of Neural Network Models: "
    "A Survey of Functional and Representational Measures. ACM Computing Surveys."
)
_REF_FORT = (
    "Fort, Hu, Lakshminarayanan (2020). Deep Ensembles: A Loss Landscape Perspective. "
    "arXiv:1912.02757."
)
_REF_KLABUNDE = (
    "Klabunde, Lemmerich (2023). On the Prediction Instability of Graph Neural Networks. ECML-PKDD."
)
_REF_COHEN = "Cohen (1960). A coefficient of agreement for nominal scales. Educ. Psychol. Meas."
_REF_LIN = "Lin (1991). Divergence measures based on the Shannon entropy. IEEE Trans. Inf. Theory."
_REF_BHOJANAPALLI = (
    "Bhojanapalli et al. (2021). On the Reproducibility and Stability of Deep Learning. ICCV."
)
_REF_SHAMIR = (
    "Shamir, Coviello (2020). Anti-Distillation: Improving Reproducibility of Deep Networks. "
    "arXiv:2010.09923."
)
_REF_FLEISS = "Fleiss (1971). Measuring nominal scale agreement among many raters. Psychol. Bull."


# --------------------------------------------------------------------------- helpers


def _hard(a: np.ndarray) -> np.ndarray:
    """Hard predictions of validated outputs: 1-D as is, 2-D by argmax (first maximum)."""
    return a if a.ndim == 1 else np.argmax(a, axis=1)


def _hard_outputs(arrays: Sequence[Any], names: Sequence[str], n_labels: int = 0):
    """Validate outputs (the last ``n_labels`` of them are label vectors) and arg-max them."""
    k = len(arrays) - n_labels
    out = [as_outputs(a, name, min_rows=_MIN_ROWS) for a, name in zip(arrays[:k], names[:k])]
    out += [as_labels(a, name, min_rows=_MIN_ROWS) for a, name in zip(arrays[k:], names[k:])]
    check_same_length(out, names)
    check_class_counts(out, names)
    return [_hard(a) for a in out]


def _check_p(p: Any) -> float:
    if isinstance(p, numbers.Real) and not isinstance(p, (bool, np.bool_)) and p == math.inf:
        return math.inf
    try:
        return check_number("p", p, low=1.0)
    except ValueError as exc:
        raise ValueError(f"{exc} or math.inf (the max norm)") from None


def _check_base(base: Any) -> float:
    base = check_number("base", base, low=0.0, low_open=True)
    if base == 1.0:
        raise ValueError("base=1 is invalid; expected a logarithm base > 0 and != 1")
    return base


def _jsd_range(base: float) -> tuple[float, float]:
    """The true range of one row's JSD in base ``b``: between 0 and ``log_b 2 = ln 2 / ln b``
    (``[0, log_b 2]`` for ``b > 1``; ``[log_b 2, 0]`` for ``0 < b < 1``, where the logarithm
    is negative and so is every divergence)."""
    c = math.log(2.0) / math.log(base)
    return (min(0.0, c), max(0.0, c))


def _jsd_bounds(params) -> tuple[float, float]:
    try:
        return _jsd_range(float(params["base"]))
    except (TypeError, ValueError, ZeroDivisionError):
        return (0.0, 1.0)  # invalid base: the call raises anyway


def _nan(message: str) -> float:
    warn_degenerate(message)
    return math.nan


# --------------------------------------------------------------------------- measures


@register(
    family=_FAMILY,
    kind="distance",
    summary="Disagreement (churn): fraction of inputs on which the hard predictions differ",
    references=(_REF_SURVEY,),
    symmetric=True,
    invariances=(),
    bounds=(0.0, 1.0),
    min_rows=_MIN_ROWS,
    inputs="outputs",
)
def disagreement(pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    r"""Disagreement (churn) of two models' hard predictions.

    .. math::

        \mathrm{Dis} = \frac1n \sum_{i=1}^n \mathbb 1\big[\hat y_a(i) \ne \hat y_b(i)\big]

    Parameters
    ----------
    pred_a, pred_b : array-like of shape (n,) or (n, C)
        Hard predictions (integer class labels) or soft outputs (scores), arg-maxed over the
        classes (first maximal index on ties). Entry ``i`` of both is the same input.

    Returns
    -------
    float
        Distance in [0, 1]; 0 when the predictions agree everywhere.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (hard-prediction measures).

    Examples
    --------
    >>> from congruence.measures.functional import disagreement
    >>> disagreement([0, 1, 2, 1], [0, 2, 2, 0])   # differ on inputs 1 and 3: 2 / 4
    0.5
    >>> disagreement([[0.9, 0.1], [0.2, 0.8]], [0, 0])   # argmax of the scores: [0, 1]
    0.5
    """
    a, b = _hard_outputs([pred_a, pred_b], ["pred_a", "pred_b"])
    return int(np.count_nonzero(a != b)) / a.shape[0]


@register(
    family=_FAMILY,
    kind="distance",
    summary="Disagreement normalised by the error rate (Fort et al.) or between its attainable "
    "bounds (min_max)",
    references=(_REF_FORT, _REF_KLABUNDE, _REF_SURVEY),
    symmetric=lambda p: p["mode"] == "min_max",
    invariances=(),
    bounds=lambda p: (0.0, 1.0) if p["mode"] == "min_max" else (0.0, math.inf),
    min_rows=_MIN_ROWS,
    inputs="outputs",
    variants=({}, {"mode": "min_max"}),
)
def error_corrected_disagreement(
    pred_a: ArrayLike, pred_b: ArrayLike, labels: ArrayLike, mode: Mode = "error_rate"
) -> float:
    r"""Disagreement corrected for the models' error rates.

    With :math:`\mathrm{Dis}` the :func:`disagreement` and :math:`e_a, e_b` the error rates
    of the two models on ``labels``:

    .. math::

        \text{error\_rate:}\quad \frac{\mathrm{Dis}}{e_a}
        \qquad
        \text{min\_max:}\quad
        \frac{\mathrm{Dis} - |e_a - e_b|}{\min(e_a + e_b, 1) - |e_a - e_b|}

    ``"error_rate"`` (Fort et al. 2020) is normalised by the first model's error, so it is not
    symmetric; its range is :math:`[0, \min(e_a + e_b, 1) / e_a]`. ``"min_max"`` (Klabunde &
    Lemmerich 2023) rescales the disagreement between its attainable bounds
    :math:`|e_a - e_b| \le \mathrm{Dis} \le \min(e_a + e_b, 1)`: symmetric, in [0, 1].

    Parameters
    ----------
    pred_a, pred_b : array-like of shape (n,) or (n, C)
        Hard predictions or soft outputs (arg-maxed).
    labels : array-like of shape (n,)
        The true integer class labels.
    mode : {"error_rate", "min_max"}

    Returns
    -------
    float
        Distance; ``nan``, with a :class:`~congruence.DegenerateDataWarning`, when the
        denominator is 0: ``e_a = 0`` for ``"error_rate"``; for ``"min_max"`` whenever one
        model makes no error (the attainable range is a point).

    References
    ----------
    Fort, Hu, Lakshminarayanan (2020), arXiv:1912.02757; Klabunde & Lemmerich (2023),
    ECML-PKDD.

    Examples
    --------
    >>> from congruence.measures.functional import error_corrected_disagreement as ecd
    >>> y = [0, 0, 1, 1]
    >>> a, b = [0, 1, 1, 0], [0, 0, 1, 0]   # e_a = 2/4, e_b = 1/4, Dis = 1/4
    >>> ecd(a, b, y)                        # (1/4) / (2/4)
    0.5
    >>> ecd(a, b, y, mode="min_max")        # (1/4 - 1/4) / (3/4 - 1/4)
    0.0
    """
    mode = check_choice("mode", mode, _MODES)
    a, b, y = _hard_outputs([pred_a, pred_b, labels], ["pred_a", "pred_b", "labels"], 1)
    n = a.shape[0]
    dis = int(np.count_nonzero(a != b))
    err_a = int(np.count_nonzero(a != y))
    err_b = int(np.count_nonzero(b != y))
    if mode == "error_rate":
        if not err_a:
            return _nan(
                "pred_a makes no error on labels (error rate 0); "
                "error_corrected_disagreement(mode='error_rate') divides by it and is "
                "undefined (nan)"
            )
        return dis / err_a
    gap = abs(err_a - err_b)
    den = min(err_a + err_b, n) - gap  # in counts: the 1/n factors cancel
    if not den:
        who = "pred_a and pred_b" if not (err_a or err_b) else "pred_a" if not err_a else "pred_b"
        return _nan(
            f"{who} make(s) no error on labels, so the attainable range of the disagreement "
            "is a single point; "
            "error_corrected_disagreement(mode='min_max') is undefined (nan)"
        )
    return (dis - gap) / den


@register(
    family=_FAMILY,
    kind="similarity",
    summary="Cohen's kappa: agreement of two models' hard predictions beyond chance",
    references=(_REF_COHEN, _REF_SURVEY),
    symmetric=True,
    invariances=(),
    bounds=(-1.0, 1.0),
    min_rows=_MIN_ROWS,
    inputs="outputs",
)
def cohens_kappa(pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    r"""Cohen's kappa between two models' hard predictions.

    .. math::

        p_o = 1 - \mathrm{Dis}, \qquad
        p_e = \sum_c \frac{n^a_c}{n}\,\frac{n^b_c}{n}, \qquad
        \kappa = \frac{p_o - p_e}{1 - p_e}

    with :math:`n^a_c` the number of inputs model ``a`` assigns to class ``c`` (over the
    classes that occur). Computed exactly in integers as
    :math:`(n\,(n - d) - S) / (n^2 - S)`, :math:`d` the number of disagreements and
    :math:`S = \sum_c n^a_c n^b_c`.

    Parameters
    ----------
    pred_a, pred_b : array-like of shape (n,) or (n, C)
        Hard predictions or soft outputs (arg-maxed).

    Returns
    -------
    float
        Similarity in [-1, 1]; 1 for identical predictions, 0 at chance agreement. ``nan``,
        with a :class:`~congruence.DegenerateDataWarning`, if :math:`p_e = 1` (both models
        predict one and the same class everywhere).

    References
    ----------
    Cohen (1960), Educ. Psychol. Meas.

    Examples
    --------
    >>> from congruence.measures.functional import cohens_kappa
    >>> # p_o = 3/4; classes 0, 1: p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2
    >>> cohens_kappa([0, 0, 1, 1], [0, 1, 1, 1])   # (3/4 - 1/2) / (1 - 1/2)
    0.5
    """
    a, b = _hard_outputs([pred_a, pred_b], ["pred_a", "pred_b"])
    n = a.shape[0]
    _, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = int(inverse.max()) + 1
    count_a = np.bincount(inverse[:n], minlength=k)
    count_b = np.bincount(inverse[n:], minlength=k)
    s = sum(int(x) * int(y) for x, y in zip(count_a, count_b) if x and y)
    agree = n - int(np.count_nonzero(a != b))
    den = n * n - s
    if not den:
        return _nan(
            "pred_a and pred_b predict one and the same class for every input, so the "
            "chance agreement p_e is 1; cohens_kappa is undefined (nan)"
        )
    return (n * agree - s) / den


@register(
    family=_FAMILY,
    kind="distance",
    summary="Mean Jensen-Shannon divergence between the two models' output distributions",
    references=(_REF_LIN, _REF_SURVEY),
    symmetric=True,
    invariances=(),
    bounds=_jsd_bounds,
    min_rows=_MIN_ROWS,
    inputs="outputs",
    variants=({}, {"base": math.e}),
)
def jsd(P: ArrayLike, Q: ArrayLike, base: float = 2.0) -> float:
    r"""Mean Jensen–Shannon divergence between corresponding rows of two probability outputs.

    Each row is renormalised to sum 1, :math:`M = (P_i + Q_i)/2`, and

    .. math::

        \mathrm{JS}_i = \frac{1}{2 \log b} \sum_c \Big[ P_{ic} \log\frac{P_{ic}}{M_c}
                        + Q_{ic} \log\frac{Q_{ic}}{M_c} \Big]

    with :math:`0 \log 0 = 0`, clipped to its true range, between 0 and
    :math:`\log_b 2` (only round-off can leave it); the result is the mean of
    :math:`\mathrm{JS}_i` over the rows.

    Parameters
    ----------
    P, Q : array-like of shape (n, C)
        Non-negative class probabilities (or unnormalised non-negative weights) of the two
        models. For raw logits apply a softmax first.
    base : float > 0, != 1
        Logarithm base: with the default 2 the range is [0, 1]; with ``math.e`` it is
        [0, ln 2]; in general it is :math:`[0, \log_b 2]` (above 1 for ``1 < base < 2``).
        For ``0 < base < 1`` the logarithm is negative, and so is every divergence: the
        range is :math:`[\log_b 2, 0]`.

    Returns
    -------
    float
        Distance; 0 for identical distributions. Rows that are all-zero in either input are
        ignored (their divergence is undefined), with a
        :class:`~congruence.DegenerateDataWarning`; ``nan`` with that warning if every row
        is. Each row is first divided by a power of two near its largest entry (exact), so
        outputs of any finite magnitude are renormalised without overflow.

    References
    ----------
    Lin (1991), IEEE Trans. Inf. Theory.

    Examples
    --------
    >>> import math
    >>> from congruence.measures.functional import jsd
    >>> # row 0: disjoint supports, JS = log 2 (1 bit); row 1: identical, JS = 0
    >>> jsd([[1, 0], [1, 1]], [[0, 1], [2, 2]])
    0.5
    >>> abs(jsd([[1, 0], [1, 1]], [[0, 1], [2, 2]], base=math.e) - math.log(2) / 2) < 1e-15
    True
    """
    base = _check_base(base)
    P, Q = check_probabilities([P, Q], ["P", "Q"], min_rows=_MIN_ROWS)
    P, Q = _rows_to_unit_scale(P), _rows_to_unit_scale(Q)
    sp, sq = P.sum(axis=1), Q.sum(axis=1)
    valid = (sp > 0) & (sq > 0)
    if not valid.all():
        bad = [name for name, s_ in (("P", sp), ("Q", sq)) if not (s_ > 0).all()]
        count = int(P.shape[0] - np.count_nonzero(valid))
        if not valid.any():
            return _nan(
                f"every row is all zeros in {' or in '.join(bad)} (no pair of distributions "
                "to compare); jsd is undefined (nan)"
            )
        warn_degenerate(
            f"{count} of {P.shape[0]} rows are all zeros in {' or '.join(bad)}; their "
            "divergence is undefined and jsd is the mean over the other rows"
        )
    p = P[valid] / sp[valid, None]
    q = Q[valid] / sq[valid, None]
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        # p > 0 implies m > 0; where p == 0 the term is 0 (0 log 0 = 0).
        tp = np.where(p > 0, p * np.log(p / m), 0.0)
        tq = np.where(q > 0, q * np.log(q / m), 0.0)
    js = 0.5 * (tp.sum(axis=1) + tq.sum(axis=1)) / math.log(base)
    low, high = _jsd_range(base)
    return float(np.clip(js, low, high).mean()) + 0.0  # + 0.0: no negative zero


def _rows_to_unit_scale(A: np.ndarray) -> np.ndarray:
    """Each row multiplied by the power of two that brings its largest entry into [0.5, 1)
    (all-zero rows unchanged): exact, and the row sums can no longer overflow."""
    e = np.frexp(A.max(axis=1))[1]
    return np.ldexp(A, -e[:, None])


@register(
    family=_FAMILY,
    kind="distance",
    summary="Surrogate churn: L1 difference of the outputs scaled by their row maxima",
    references=(_REF_BHOJANAPALLI, _REF_SURVEY),
    symmetric=True,
    invariances=(),
    bounds=(0.0, math.inf),
    min_rows=_MIN_ROWS,
    inputs="outputs",
    variants=({}, {"alpha": 0.5}, {"alpha": 3.0}),
)
def surrogate_churn(P: ArrayLike, Q: ArrayLike, alpha: float = 1.0) -> float:
    r"""Surrogate churn, a smooth stand-in for the disagreement of two models.

    .. math::

        \mathrm{SChurn} = \frac{1}{2n} \sum_{i=1}^n \sum_c \left|
            \Big(\frac{P_{ic}}{\max_{c'} P_{ic'}}\Big)^{\alpha}
          - \Big(\frac{Q_{ic}}{\max_{c'} Q_{ic'}}\Big)^{\alpha} \right|

    Parameters
    ----------
    P, Q : array-like of shape (n, C)
        Non-negative class probabilities of the two models.
    alpha : float > 0
        Sharpness: as ``alpha`` grows, the scaled outputs tend to one-hot argmax indicators.

    Returns
    -------
    float
        Distance in [0, C/2] (the registry records [0, inf), the bound depending on ``C``).
        ``nan``, with a :class:`~congruence.DegenerateDataWarning`, if a row maximum of ``P``
        or ``Q`` is 0 (an all-zero row).

    References
    ----------
    Bhojanapalli et al. (2021), ICCV.

    Examples
    --------
    >>> from congruence.measures.functional import surrogate_churn
    >>> # scaled rows: [1, 0.5] vs [0.5, 1] -> 1.0; [1, 0] vs [1, 0] -> 0; / (2 * 2)
    >>> surrogate_churn([[0.6, 0.3], [1.0, 0.0]], [[0.3, 0.6], [0.5, 0.0]])
    0.25
    """
    alpha = check_number("alpha", alpha, low=0.0, low_open=True)
    P, Q = check_probabilities([P, Q], ["P", "Q"], min_rows=_MIN_ROWS)
    mp, mq = P.max(axis=1), Q.max(axis=1)
    for name, mx in (("P", mp), ("Q", mq)):
        if not (mx > 0).all():
            return _nan(
                f"{name} has {int(np.count_nonzero(mx <= 0))} all-zero row(s) (row "
                f"{int(np.flatnonzero(mx <= 0)[0])} first), which cannot be scaled by their "
                "maximum; surrogate_churn is undefined (nan)"
            )
    A = (P / mp[:, None]) ** alpha
    B = (Q / mq[:, None]) ** alpha
    return float(np.abs(A - B).sum() / (2 * P.shape[0]))


@register(
    paired=False,
    family=_FAMILY,
    kind="distance",
    summary="Absolute difference of the two models' accuracies",
    references=(_REF_SURVEY,),
    symmetric=True,
    invariances=(),
    bounds=(0.0, 1.0),
    min_rows=_MIN_ROWS,
    inputs="outputs",
)
def accuracy_diff(pred_a: ArrayLike, pred_b: ArrayLike, labels: ArrayLike) -> float:
    r"""Absolute difference of the accuracies of two models.

    .. math::

        |\mathrm{acc}_a - \mathrm{acc}_b|, \qquad
        \mathrm{acc} = \frac1n \sum_{i=1}^n \mathbb 1\big[\hat y(i) = \mathrm{label}(i)\big]

    Parameters
    ----------
    pred_a, pred_b : array-like of shape (n,) or (n, C)
        Hard predictions or soft outputs (arg-maxed).
    labels : array-like of shape (n,)
        The true integer class labels.

    Returns
    -------
    float
        Distance in [0, 1]. Models with equal accuracy score 0 even if they never agree.

    References
    ----------
    Klabunde et al. (2025), ACM Computing Surveys (performance-based measures).

    Examples
    --------
    >>> from congruence.measures.functional import accuracy_diff
    >>> # acc_a = 3/4 (wrong on input 3), acc_b = 1/4 (right on input 0 only)
    >>> accuracy_diff([0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1])
    0.5
    """
    a, b, y = _hard_outputs([pred_a, pred_b, labels], ["pred_a", "pred_b", "labels"], 1)
    right_a = int(np.count_nonzero(a == y))
    right_b = int(np.count_nonzero(b == y))
    return abs(right_a - right_b) / a.shape[0]


@register(
    family=_FAMILY,
    kind="distance",
    summary="Prediction difference: mean p-norm deviation of m >= 2 models' outputs from "
    "their average",
    references=(_REF_SHAMIR, _REF_SURVEY),
    symmetric=True,
    invariances=(),
    bounds=(0.0, math.inf),
    min_rows=_MIN_ROWS,
    inputs="outputs",
    variants=({}, {"p": 2}, {"p": math.inf}),
)
def prediction_difference(P: ArrayLike, Q: ArrayLike, *more: ArrayLike, p: float = 1) -> float:
    r"""Prediction difference of two or more models' outputs.

    With the outputs :math:`O^1, \dots, O^m` (each ``(n, C)``) and their mean
    :math:`\bar O_i = \frac1m \sum_l O^l_i`:

    .. math::

        \mathrm{PD} = \frac1n \sum_{i=1}^n \frac1m \sum_{l=1}^m
                      \big\lVert O^l_i - \bar O_i \big\rVert_p

    For two models this is :math:`\frac{1}{2n} \sum_i \lVert P_i - Q_i \rVert_p`.

    Parameters
    ----------
    P, Q, *more : array-like of shape (n, C)
        Non-negative outputs (probabilities) of ``m >= 2`` models, all of the same shape.
    p : float >= 1 or math.inf
        The norm (``math.inf``: the max norm). Keyword only.

    Returns
    -------
    float
        Distance in [0, inf), 0 when all models agree; symmetric in the models. Outputs of
        any finite magnitude are first multiplied by one power of two (exact) and the result
        scaled back (:math:`\mathrm{PD}(aO) = a\,\mathrm{PD}(O)`); ``inf``, with a
        :class:`~congruence.DegenerateDataWarning`, only if the value exceeds the float64
        range.

    References
    ----------
    Shamir & Coviello (2020), as stated in Klabunde et al. (2025).

    Examples
    --------
    >>> from congruence.measures.functional import prediction_difference
    >>> P = [[1.0, 0.0], [0.5, 0.5]]
    >>> Q = [[0.0, 1.0], [0.5, 0.5]]
    >>> prediction_difference(P, Q)   # (||(1, -1)||_1 + 0) / (2 * 2)
    0.5
    >>> # three models P, Q, Q: row 0 mean (1/3, 2/3), deviations 4/3, 2/3, 2/3 in L1
    >>> round(prediction_difference(P, Q, Q), 12)   # (8/9 + 0) / 2 = 4/9
    0.444444444444
    """
    p = _check_p(p)
    arrays = [P, Q, *more]
    names = ["P", "Q"] + [f"more[{i}]" for i in range(len(more))]
    O = np.stack(check_probabilities(arrays, names, min_rows=_MIN_ROWS))  # (m, n, C)
    # PD(aO) = a PD(O): one power of two for all models (exact) keeps every sum finite.
    big = float(O.max())
    e = math.frexp(big)[1] if big > 0.0 else 0
    O = np.ldexp(O, -e)
    D = np.abs(O - O.mean(axis=0))
    if p == 1.0:
        norms = D.sum(axis=2)
    elif p == math.inf:
        norms = D.max(axis=2)
    else:
        # Scaled by the largest entry so that |x|^p neither overflows nor underflows.
        scale = D.max(axis=2, keepdims=True)
        safe = np.where(scale > 0, scale, 1.0)
        norms = ((D / safe) ** p).sum(axis=2) ** (1.0 / p) * safe[..., 0]
    return scale_back(float(norms.mean()), e, "the value of prediction_difference on these outputs")


@register(
    paired=False,
    family=_FAMILY,
    kind="similarity",
    summary="Fleiss' kappa: agreement beyond chance of m >= 2 models' hard predictions",
    references=(_REF_FLEISS, _REF_SURVEY),
    symmetric=True,
    invariances=(),
    bounds=(-1.0, 1.0),
    min_rows=_MIN_ROWS,
    inputs="outputs",
)
def fleiss_kappa(preds: ArrayLike) -> float:
    r"""Fleiss' kappa of the hard predictions of ``m >= 2`` models.

    Categories are all values that occur; :math:`n_{ic}` is the number of models assigning
    input ``i`` to category ``c``:

    .. math::

        P_i = \frac{\sum_c n_{ic}^2 - m}{m(m-1)}, \quad
        \bar P = \frac1n \sum_i P_i, \quad
        p_c = \frac{\sum_i n_{ic}}{nm}, \quad
        P_e = \sum_c p_c^2, \quad
        \kappa = \frac{\bar P - P_e}{1 - P_e}

    Computed exactly in integers (:math:`\sum_c n_{ic}^2` from the pairs of models that
    agree on input ``i``). Invariant to the order of the models.

    Parameters
    ----------
    preds : list of array-like, each of shape (n,) or (n, C)
        The ``m >= 2`` models' hard predictions or soft outputs (arg-maxed); forms may be mixed.

    Returns
    -------
    float
        Similarity in [-1, 1]; 1 when all models agree everywhere. ``nan``, with a
        :class:`~congruence.DegenerateDataWarning`, if :math:`P_e = 1` (every model predicts
        one and the same category everywhere).

    References
    ----------
    Fleiss (1971), Psychol. Bull.

    Examples
    --------
    >>> from congruence.measures.functional import fleiss_kappa
    >>> # n_i1 = (2, 1) -> P = 1/3, 1/3 ; p = (1/2, 1/2) -> P_e = 1/2
    >>> round(fleiss_kappa([[0, 1], [0, 1], [1, 0]]), 12)   # (1/3 - 1/2) / (1/2)
    -0.333333333333
    """
    if not isinstance(preds, (list, tuple)):
        raise ValueError(
            f"preds must be a list of m >= 2 prediction arrays (one per model, each (n,) or "
            f"(n, C)); got {type(preds).__name__}"
        )
    m = len(preds)
    if m < 2:
        raise ValueError(
            f"preds holds {m} prediction array(s); expected a list of m >= 2 (one per model)"
        )
    names = [f"preds[{i}]" for i in range(m)]
    hard = _hard_outputs(list(preds), names)
    n = hard[0].shape[0]
    # sum_i sum_c n_ic^2 counts the ordered pairs (l, l') of models that agree on input i.
    agreeing_pairs = sum(
        int(np.count_nonzero(hard[l] == hard[k])) for l in range(m) for k in range(l + 1, m)
    )
    s2 = n * m + 2 * agreeing_pairs
    _, totals = np.unique(np.concatenate(hard), return_counts=True)
    t2 = sum(int(t) * int(t) for t in totals)  # sum_c (sum_i n_ic)^2
    nm = n * m
    den = (m - 1) * (nm * nm - t2)
    if not den:
        return _nan(
            "every model in preds predicts one and the same category for every input, so the "
            "chance agreement P_e is 1; fleiss_kappa is undefined (nan)"
        )
    return ((s2 - nm) * nm - (m - 1) * t2) / den
