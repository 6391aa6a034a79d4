"""Slow, obviously-correct references for the functional measures (docs: functional page).

Written directly from the formulas of the specification with plain Python loops over the
inputs and classes; the counting measures use exact rational arithmetic
(:class:`fractions.Fraction`), so their float value is the correctly rounded true value.

Inputs are already-valid model outputs: a 1-D sequence of integer labels (hard predictions) or
a 2-D sequence of rows of scores (soft outputs). No validation happens here.

This module must never import ``congruence``: it is the independent yardstick.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = [
    "ref_argmax",
    "ref_hard",
    "ref_disagreement",
    "ref_error_corrected_disagreement",
    "ref_cohens_kappa",
    "ref_jsd",
    "ref_surrogate_churn",
    "ref_accuracy_diff",
    "ref_prediction_difference",
    "ref_fleiss_kappa",
]


def ref_argmax(row) -> int:
    """Index of the first maximal entry of ``row``."""
    best = 0
    for c in range(1, len(row)):
        if row[c] > row[best]:
            best = c
    return best


def ref_hard(x) -> list[int]:
    """Hard predictions: a 1-D input as ints, a 2-D input by :func:`ref_argmax` of each row."""
    x = np.asarray(x)
    if x.ndim == 1:
        return [int(v) for v in x]
    return [ref_argmax([float(v) for v in row]) for row in x]


def _rows(x) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(x, dtype=np.float64)]


def _error_rate(pred, labels) -> Fraction:
    return Fraction(sum(1 for p, y in zip(pred, labels) if p != y), len(labels))


def ref_disagreement(pred_a, pred_b) -> float:
    """7.1: ``(1/n) sum_i 1[yhat_a(i) != yhat_b(i)]``."""
    a, b = ref_hard(pred_a), ref_hard(pred_b)
    return float(_error_rate(a, b))


def ref_error_corrected_disagreement(pred_a, pred_b, labels, mode="error_rate") -> float:
    """7.2: ``Dis / e_a`` or ``(Dis - |e_a - e_b|) / (min(e_a + e_b, 1) - |e_a - e_b|)``."""
    a, b, y = ref_hard(pred_a), ref_hard(pred_b), ref_hard(labels)
    dis = _error_rate(a, b)
    e_a, e_b = _error_rate(a, y), _error_rate(b, y)
    if mode == "error_rate":
        num, den = dis, e_a
    elif mode == "min_max":
        num = dis - abs(e_a - e_b)
        den = min(e_a + e_b, Fraction(1)) - abs(e_a - e_b)
    else:
        raise ValueError(mode)
    return math.nan if den == 0 else float(num / den)


def ref_cohens_kappa(pred_a, pred_b) -> float:
    """7.3: ``(p_o - p_e) / (1 - p_e)`` with ``p_e = sum_c (n_c^a / n)(n_c^b / n)``."""
    a, b = ref_hard(pred_a), ref_hard(pred_b)
    n = len(a)
    p_o = 1 - _error_rate(a, b)
    p_e = Fraction(0)
    for c in sorted(set(a) | set(b)):  # the classes that occur
        p_e += Fraction(a.count(c), n) * Fraction(b.count(c), n)
    return math.nan if p_e == 1 else float((p_o - p_e) / (1 - p_e))


def ref_jsd(P, Q, base=2.0) -> float:
    """7.4: mean over valid rows of the clipped Jensen-Shannon divergence in base ``base``."""
    values = []
    for p_row, q_row in zip(_rows(P), _rows(Q)):
        sp, sq = sum(p_row), sum(q_row)
        if sp == 0 or sq == 0:
            continue  # nan, ignored
        p = [v / sp for v in p_row]
        q = [v / sq for v in q_row]
        total = 0.0
        for pc, qc in zip(p, q):
            mc = (pc + qc) / 2
            if pc > 0:
                total += pc * math.log(pc / mc)
            if qc > 0:
                total += qc * math.log(qc / mc)
        js = 0.5 * total / math.log(base)
        # Revision 2 of the definition: clipped to the true range, between 0 and log_b 2.
        top = math.log(2.0) / math.log(base)
        values.append(min(max(js, min(0.0, top)), max(0.0, top)))
    return math.nan if not values else sum(values) / len(values)


def ref_surrogate_churn(P, Q, alpha=1.0) -> float:
    """7.5: ``(1/(2n)) sum_i sum_c |(P_ic / max P_i)^alpha - (Q_ic / max Q_i)^alpha|``."""
    P, Q = _rows(P), _rows(Q)
    total = 0.0
    for p_row, q_row in zip(P, Q):
        mp, mq = max(p_row), max(q_row)
        if mp == 0 or mq == 0:
            return math.nan
        for pc, qc in zip(p_row, q_row):
            total += abs((pc / mp) ** alpha - (qc / mq) ** alpha)
    return total / (2 * len(P))


def ref_accuracy_diff(pred_a, pred_b, labels) -> float:
    """7.6: ``|acc_a - acc_b|``."""
    a, b, y = ref_hard(pred_a), ref_hard(pred_b), ref_hard(labels)
    acc_a = 1 - _error_rate(a, y)
    acc_b = 1 - _error_rate(b, y)
    return float(abs(acc_a - acc_b))


def _p_norm(v, p) -> float:
    if p == math.inf:
        return max(abs(x) for x in v)
    return sum(abs(x) ** p for x in v) ** (1.0 / p)


def ref_prediction_difference(*outputs, p=1) -> float:
    """7.7: ``(1/n) sum_i (1/m) sum_l ||O^l_i - Obar_i||_p``."""
    O = [_rows(o) for o in outputs]
    m, n, C = len(O), len(O[0]), len(O[0][0])
    total = 0.0
    for i in range(n):
        mean = [sum(O[l][i][c] for l in range(m)) / m for c in range(C)]
        for l in range(m):
            total += _p_norm([O[l][i][c] - mean[c] for c in range(C)], p)
    return total / (n * m)


def ref_fleiss_kappa(preds) -> float:
    """7.8: Fleiss' kappa from the table ``n_ic`` of the models' votes."""
    hard = [ref_hard(x) for x in preds]
    m, n = len(hard), len(hard[0])
    categories = sorted({c for h in hard for c in h})
    table = [[sum(1 for h in hard if h[i] == c) for c in categories] for i in range(n)]
    P_i = [Fraction(sum(x * x for x in row) - m, m * (m - 1)) for row in table]
    P_bar = sum(P_i) / n
    p_c = [Fraction(sum(table[i][j] for i in range(n)), n * m) for j in range(len(categories))]
    P_e = sum(x * x for x in p_c)
    return math.nan if P_e == 1 else float((P_bar - P_e) / (1 - P_e))
