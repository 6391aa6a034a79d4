"""Tests of the functional (output-based) measures (docs: functional page).

* hand-computed small cases for every measure and mode (the arithmetic is in the comments);
* agreement with the slow references of ``tests/reference_functional.py`` on random inputs
  (hard, soft, mixed, with argmax ties and all-zero rows);
* properties: symmetry, bounds, invariance of ``fleiss_kappa`` to the order of the models and
  of every measure to a consistent relabelling of the classes, the JSD ranges;
* every ValueError of the specification, with a message naming the argument;
* a registry-driven check of every measure with ``inputs == "outputs"`` (tests/test_common.py
  only covers representations): Python float, declared symmetry, declared bounds.

The measures are imported from their module (not ``congruence.<name>``) so that this file does
not depend on the package's export list.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import os
import sys

import numpy as np
import pytest

import congruence as cg
from congruence import DegenerateDataWarning
from congruence._registry import measures
from congruence.measures.functional import (
    accuracy_diff,
    cohens_kappa,
    disagreement,
    error_corrected_disagreement,
    fleiss_kappa,
    jsd,
    prediction_difference,
    surrogate_churn,
)

sys.path.insert(0, os.path.dirname(__file__))
from reference_functional import (  # noqa: E402
    ref_accuracy_diff,
    ref_cohens_kappa,
    ref_disagreement,
    ref_error_corrected_disagreement,
    ref_fleiss_kappa,
    ref_jsd,
    ref_prediction_difference,
    ref_surrogate_churn,
)

LN2 = math.log(2.0)
OUTPUT_MEASURES = [m for m in measures() if m.inputs == "outputs"]
EXPECTED = {
    "accuracy_diff",
    "cohens_kappa",
    "disagreement",
    "error_corrected_disagreement",
    "fleiss_kappa",
    "jsd",
    "prediction_difference",
    "surrogate_churn",
}


def _close(got, want, tol=1e-12):
    assert type(got) is float, f"returned {type(got).__name__}, not float"
    if math.isnan(want):
        assert math.isnan(got), f"got {got!r}, want nan"
    else:
        assert got == pytest.approx(want, rel=tol, abs=tol), f"got {got!r}, want {want!r}"


def _degenerate_if(condition, match):
    """``pytest.warns(DegenerateDataWarning, match=match)`` when ``condition``, else nothing:
    the docs' convention is that every degenerate ``nan`` comes with that warning."""
    if condition:
        return pytest.warns(DegenerateDataWarning, match=match)
    return contextlib.nullcontext()


def _as_hard(x):
    """Hard predictions: 2-D outputs arg-maxed (first maximal index), 1-D ones as they are."""
    return np.argmax(x, 1) if np.ndim(x) == 2 else np.asarray(x)


#: Short patterns of the DegenerateDataWarning messages of the functional measures.
NO_ERROR_A = r"pred_a makes no error on labels"
NO_ERROR_MIN_MAX = r"make\(s\) no error on labels"
P_E_ONE = r"chance agreement p_e is 1"
FLEISS_P_E_ONE = r"chance agreement P_e is 1"


# --------------------------------------------------------------------------- random data


def _probs(rng, n, C, zero_frac=0.0):
    """Random probability rows (Dirichlet), some entries set to exactly 0."""
    P = rng.dirichlet(np.ones(C), size=n)
    if zero_frac:
        P[rng.random((n, C)) < zero_frac] = 0.0
        P[np.arange(n), rng.integers(0, C, n)] += 0.1  # keep every row non-zero
    return P


def _tied_scores(rng, n, C):
    """Integer-valued scores in 0..2: many rows have tied maxima (argmax takes the first)."""
    return rng.integers(0, 3, size=(n, C)).astype(np.float64)


def _hard(rng, n, C):
    return rng.integers(0, C, size=n)


def _noisy_copy(rng, pred, C, flip=0.3):
    """``pred`` with a fraction ``flip`` of its entries replaced by random classes."""
    out = np.array(pred, copy=True)
    idx = rng.random(len(out)) < flip
    out[idx] = rng.integers(0, C, size=int(idx.sum()))
    return out


# --------------------------------------------------------------------------- hand-computed


class TestDisagreement:
    def test_hard(self):
        # a = 0 1 2 1 0, b = 0 2 2 0 0: differ on inputs 1 and 3 -> 2/5
        _close(disagreement([0, 1, 2, 1, 0], [0, 2, 2, 0, 0]), 2 / 5)

    def test_identical_and_opposite(self):
        _close(disagreement([3, 1, 4], [3, 1, 4]), 0.0)
        _close(disagreement([0, 0, 1], [1, 1, 0]), 1.0)

    def test_soft_and_mixed(self):
        # argmax rows: [0.7, 0.2, 0.1] -> 0, [0.1, 0.1, 0.8] -> 2, [0.3, 0.5, 0.2] -> 1
        soft = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.5, 0.2]]
        # vs hard [0, 1, 1]: differ on input 1 only -> 1/3
        _close(disagreement(soft, [0, 1, 1]), 1 / 3)
        _close(disagreement([0, 1, 1], soft), 1 / 3)
        # soft vs soft, logits (negative scores are fine): argmax [1, 2, 1] vs [0, 2, 1] -> 1/3
        logits = [[-1.0, 2.0, 0.0], [-5.0, -4.0, -3.0], [0.0, 1.0, -1.0]]
        _close(disagreement(logits, soft), 1 / 3)

    def test_argmax_ties_take_the_first_maximum(self):
        # rows [0.5, 0.5] -> 0, [0.2, 0.4, 0.4] style ties -> first maximal index
        tied = [[0.4, 0.4, 0.2], [0.1, 0.45, 0.45], [1.0, 1.0, 1.0]]  # -> 0, 1, 0
        _close(disagreement(tied, [0, 1, 0]), 0.0)
        _close(disagreement(tied, [1, 2, 2]), 1.0)

    def test_integral_floats_and_bools_are_labels(self):
        _close(disagreement(np.array([0.0, 1.0, 2.0]), [0, 1, 1]), 1 / 3)
        _close(disagreement(np.array([True, False, True]), [1, 0, 0]), 1 / 3)
        # labels need not be 0..C-1 when no soft output is involved
        _close(disagreement([-7, 10**12, 5], [-7, 10**12, 6]), 1 / 3)


class TestErrorCorrectedDisagreement:
    # y = 0 0 1 1 2 2
    # a = 0 1 1 0 2 2  wrong on inputs 1, 3           -> e_a = 2/6
    # b = 0 0 1 2 1 2  wrong on inputs 3, 4           -> e_b = 2/6
    # a vs b differ on 1 (1/0), 3 (0/2), 4 (2/1)      -> Dis = 3/6
    Y = [0, 0, 1, 1, 2, 2]
    A = [0, 1, 1, 0, 2, 2]
    B = [0, 0, 1, 2, 1, 2]

    def test_error_rate(self):
        _close(error_corrected_disagreement(self.A, self.B, self.Y), (3 / 6) / (2 / 6))  # 1.5
        _close(error_corrected_disagreement(self.A, self.B, self.Y), 1.5)

    def test_min_max(self):
        # (Dis - |e_a - e_b|) / (min(e_a + e_b, 1) - |e_a - e_b|) = (3/6 - 0) / (4/6 - 0) = 3/4
        _close(error_corrected_disagreement(self.A, self.B, self.Y, mode="min_max"), 0.75)

    def test_asymmetric_error_rate(self):
        # a = 1 1 1 1: e_a = 2/4; b = 0 0 1 1 = y: e_b = 0; Dis = 2/4 (inputs 0, 1)
        y, a, b = [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]
        _close(error_corrected_disagreement(a, b, y), 1.0)  # (2/4) / (2/4)
        with pytest.warns(DegenerateDataWarning, match=NO_ERROR_A):
            _close(error_corrected_disagreement(b, a, y), math.nan)  # e_b = 0: nan
        # min_max: one model has no error -> min(2/4, 1) - 2/4 = 0: nan either way round
        with pytest.warns(DegenerateDataWarning, match=r"pred_b make\(s\) no error on labels"):
            _close(error_corrected_disagreement(a, b, y, mode="min_max"), math.nan)
        with pytest.warns(DegenerateDataWarning, match=r"pred_a make\(s\) no error on labels"):
            _close(error_corrected_disagreement(b, a, y, mode="min_max"), math.nan)

    def test_min_max_at_both_attainable_bounds(self):
        y = [0, 0, 0, 0]
        # a wrong on 0, 1; b wrong on 0, 1 with the same wrong class: Dis = 0 = |e_a - e_b|
        _close(error_corrected_disagreement([1, 1, 0, 0], [1, 1, 0, 0], y, mode="min_max"), 0.0)
        # a wrong on 0, 1; b wrong on 2, 3: Dis = 4/4 = min(e_a + e_b, 1) -> 1
        _close(error_corrected_disagreement([1, 1, 0, 0], [0, 0, 1, 1], y, mode="min_max"), 1.0)
        # e_a + e_b > 1 is capped: a wrong on 0,1,2 (3/4), b wrong on 1,2,3 (3/4), all with
        # distinct wrong classes where both are wrong: Dis = 4/4; min(6/4, 1) - 0 = 1 -> 1
        _close(error_corrected_disagreement([1, 1, 1, 0], [0, 2, 2, 2], y, mode="min_max"), 1.0)
        # the same with b agreeing with a on input 1: Dis = 3/4 -> (3/4 - 0) / 1
        _close(error_corrected_disagreement([1, 1, 1, 0], [0, 1, 2, 2], y, mode="min_max"), 0.75)

    def test_error_rate_upper_bound_attained(self):
        # e_a = 1/4 (input 0), b always wrong (e_b = 1) and never agreeing with a:
        # Dis = 1, bound min(1/4 + 1, 1) / (1/4) = 4 -> value 1 / (1/4) = 4
        y, a, b = [0, 0, 0, 0], [1, 0, 0, 0], [2, 1, 1, 1]
        _close(error_corrected_disagreement(a, b, y), 4.0)

    def test_soft_inputs(self):
        # soft a -> argmax [1, 0, 1]; y = [1, 1, 1]: e_a = 1/3; b = [1, 1, 0]: e_b = 1/3
        # Dis: inputs 1 (0/1), 2 (1/0) -> 2/3. error_rate 2; min_max (2/3) / (2/3) = 1
        a = [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]
        _close(error_corrected_disagreement(a, [1, 1, 0], [1, 1, 1]), 2.0)
        _close(error_corrected_disagreement(a, [1, 1, 0], [1, 1, 1], mode="min_max"), 1.0)


class TestCohensKappa:
    def test_two_classes(self):
        # p_o = 3/4; n^a = (2, 2), n^b = (1, 3): p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2
        # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
        _close(cohens_kappa([0, 0, 1, 1], [0, 1, 1, 1]), 0.5)

    def test_three_classes(self):
        # a = 0 0 1 1 2 2, b = 0 1 1 2 2 0: agree on 0, 2, 4 -> p_o = 1/2
        # every class twice in each: p_e = 3 (2/6)(2/6) = 1/3; kappa = (1/2 - 1/3)/(2/3) = 1/4
        _close(cohens_kappa([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 0]), 0.25)

    def test_class_occurring_in_one_model_only(self):
        # a = 0 0 0 1, b = 0 0 2 1: p_o = 3/4; n^a = (3, 1, 0), n^b = (2, 1, 1) over 0, 1, 2
        # p_e = (3/4)(2/4) + (1/4)(1/4) + 0 = 7/16; kappa = (12/16 - 7/16) / (9/16) = 5/9
        _close(cohens_kappa([0, 0, 0, 1], [0, 0, 2, 1]), 5 / 9)

    def test_extremes(self):
        _close(cohens_kappa([0, 1, 2, 2], [0, 1, 2, 2]), 1.0)
        # complete disagreement with balanced classes: p_o = 0, p_e = 1/2 -> -1
        _close(cohens_kappa([0, 1, 0, 1], [1, 0, 1, 0]), -1.0)
        # each model constant, different classes: p_o = 0, p_e = 1*0 + 0*1 = 0 -> 0
        _close(cohens_kappa([0, 0, 0], [1, 1, 1]), 0.0)

    def test_nan_when_p_e_is_one(self):
        # both models predict class 2 everywhere: p_e = 1
        with pytest.warns(DegenerateDataWarning, match=P_E_ONE):
            _close(cohens_kappa([2, 2, 2], [2, 2, 2]), math.nan)
        with pytest.warns(DegenerateDataWarning, match=P_E_ONE):
            _close(cohens_kappa([[0.0, 1.0], [0.2, 0.8]], [1, 1]), math.nan)

    def test_soft(self):
        # argmax [0, 1, 1, 1] vs [0, 0, 1, 1] -> the two-class case above, swapped
        soft = [[0.9, 0.1], [0.4, 0.6], [0.0, 1.0], [0.3, 0.7]]
        _close(cohens_kappa([0, 0, 1, 1], soft), 0.5)


class TestJSD:
    def test_disjoint_and_identical_rows(self):
        # row 0: disjoint supports -> JS = ln 2 nats = 1 bit; row 1: equal after
        # renormalisation ([1, 1] and [2, 2] are both [1/2, 1/2]) -> 0; mean 1/2
        P, Q = [[1, 0], [1, 1]], [[0, 1], [2, 2]]
        _close(jsd(P, Q), 0.5)
        _close(jsd(P, Q, base=math.e), LN2 / 2)
        _close(jsd(P, Q, base=10.0), math.log10(2) / 2)

    def test_value(self):
        # P = (1/2, 1/2), Q = (1, 0), M = (3/4, 1/4):
        # JS = 1/2 [1/2 log2(2/3) + 1/2 log2(2) + log2(4/3)]
        #    = 1/2 [1/2 - 1/2 log2 3 + 1/2 + 2 - log2 3] = 3/2 - 3/4 log2 3
        want = 1.5 - 0.75 * math.log2(3)
        _close(jsd([[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]), want)
        # the same with unnormalised rows (renormalised to sum 1)
        _close(jsd([[3.0, 3.0], [0.1, 0.1]], [[2.0, 0.0], [7.0, 0.0]]), want)

    def test_all_zero_rows_ignored_and_nan(self):
        # rows 0 and 2 valid (JS 1 and 0); row 1 is zero in Q, row 3 zero in both: ignored
        P = [[1, 0], [1, 0], [0.3, 0.7], [0, 0]]
        Q = [[0, 1], [0, 0], [0.3, 0.7], [0, 0]]
        with pytest.warns(DegenerateDataWarning, match=r"2 of 4 rows are all zeros in P or Q"):
            _close(jsd(P, Q), 0.5)
        with pytest.warns(DegenerateDataWarning, match=r"every row is all zeros in P or in Q"):
            _close(jsd([[0, 0], [1, 0]], [[1, 0], [0, 0]]), math.nan)

    def test_range_base_2_and_e(self):
        rng = np.random.default_rng(0)
        for base, hi in ((2.0, 1.0), (math.e, LN2)):
            for C in (2, 3, 10):
                P, Q = _probs(rng, 40, C, 0.3), _probs(rng, 40, C, 0.3)
                v = jsd(P, Q, base=base)
                assert 0.0 < v < hi
                # the ends of the range are attained
                _close(jsd(P, P.copy(), base=base), 0.0)
                onehot_a, onehot_b = np.eye(C)[np.zeros(5, int)], np.eye(C)[np.ones(5, int)]
                _close(jsd(onehot_a, onehot_b, base=base), hi)

    def test_change_of_base(self):
        rng = np.random.default_rng(1)
        P, Q = _probs(rng, 30, 4), _probs(rng, 30, 4)
        _close(jsd(P, Q, base=math.e), jsd(P, Q) * LN2, 1e-12)

    def test_clipping_to_the_true_range(self):
        # Revision 2 of the definition: every JS_i is clipped to its true range, between 0
        # and log_b 2 (formerly [0, 1], which cut the disjoint rows' log_b 2 > 1 for
        # 1 < base < 2). A disjoint row has JS = ln 2 / ln b exactly, in any base.
        P, Q = [[1, 0], [1, 0]], [[0, 1], [0, 1]]
        _close(jsd(P, Q, base=1.5), LN2 / math.log(1.5), 1e-14)  # 1.71: no longer cut to 1
        _close(jsd(P, Q, base=0.5), -1.0, 1e-14)  # log_0.5 2 = -1: the range is [-1, 0]
        assert cg.get_measure("jsd").bounds(base=1.5) == pytest.approx(
            (0.0, LN2 / math.log(1.5)), abs=1e-15
        )
        assert cg.get_measure("jsd").bounds(base=0.5) == pytest.approx((-1.0, 0.0), abs=1e-15)
        assert cg.get_measure("jsd").bounds(base=4.0) == pytest.approx((0.0, 0.5), abs=1e-15)

    def test_clip_removes_round_off_only(self):
        # Identical rows have JS = 0 up to round-off: never negative after the clip, and no
        # value inside the range is changed (the unclipped reference agrees to 1e-12).
        rng = np.random.default_rng(5)
        P = _probs(rng, 50, 6)
        for base in (2.0, 1.5, 0.5, 10.0):
            assert jsd(P, P.copy(), base=base) == 0.0
            Q = _probs(rng, 50, 6)
            top = LN2 / math.log(base)
            v = jsd(P, Q, base=base)
            assert min(0.0, top) <= v <= max(0.0, top)
            _close(v, ref_jsd(P, Q, base), 1e-12)


class TestSurrogateChurn:
    P = [[0.6, 0.3], [1.0, 0.0]]
    Q = [[0.3, 0.6], [0.5, 0.0]]

    def test_alpha_1(self):
        # row 0: [1, 1/2] vs [1/2, 1] -> 1/2 + 1/2 = 1; row 1: [1, 0] vs [1, 0] -> 0
        # SChurn = (1 + 0) / (2 * 2) = 1/4
        _close(surrogate_churn(self.P, self.Q), 0.25)

    def test_alpha_2_and_half(self):
        # alpha = 2: row 0 [1, 1/4] vs [1/4, 1] -> 3/2; / 4 -> 3/8
        _close(surrogate_churn(self.P, self.Q, alpha=2.0), 3 / 8)
        # alpha = 1/2: row 0 [1, sqrt(1/2)] vs [sqrt(1/2), 1] -> 2 (1 - sqrt(1/2)); / 4
        _close(surrogate_churn(self.P, self.Q, alpha=0.5), (1 - math.sqrt(0.5)) / 2)

    def test_maximum_c_over_2(self):
        # scaled rows [1, 0, 0] vs [0, 1, 1]: sum |.| = 3 = C per row -> C/2 = 3/2
        _close(surrogate_churn([[1, 0, 0]] * 3, [[0, 2, 2]] * 3), 1.5)

    def test_nan_for_zero_row_maximum(self):
        with pytest.warns(DegenerateDataWarning, match=r"P has 1 all-zero row\(s\) \(row 0"):
            _close(surrogate_churn([[0, 0], [1, 0]], [[1, 0], [1, 0]]), math.nan)
        with pytest.warns(DegenerateDataWarning, match=r"Q has 1 all-zero row\(s\) \(row 1"):
            _close(surrogate_churn([[1, 0], [1, 0]], [[1, 0], [0, 0]]), math.nan)

    def test_large_alpha_tends_to_disagreement(self):
        # (P_ic / max P_i)^alpha -> 1[c = argmax] as alpha grows (no ties), so each row
        # contributes 2 1[argmaxes differ] / (2n): the disagreement.
        rng = np.random.default_rng(2)
        P, Q = _probs(rng, 50, 4), _probs(rng, 50, 4)
        assert surrogate_churn(P, Q, alpha=1e5) == pytest.approx(disagreement(P, Q), abs=1e-6)


class TestAccuracyDiff:
    def test_hard(self):
        # y = 0 1 1 1; a right on 0, 1, 2 -> 3/4; b = 0 0 0 0 right on 0 -> 1/4; |3/4 - 1/4|
        _close(accuracy_diff([0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]), 0.5)
        _close(accuracy_diff([0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]), 0.5)

    def test_equal_accuracy_but_disagreeing(self):
        # both right on exactly two inputs, different ones: accuracies 1/2, 1/2 -> 0
        _close(accuracy_diff([0, 1, 2, 2], [2, 2, 0, 1], [0, 1, 0, 1]), 0.0)

    def test_soft(self):
        # argmax [1, 0, 1]; y = [1, 1, 1]: acc 2/3; b = [0, 0, 0]: acc 0 -> 2/3
        _close(accuracy_diff([[0, 1], [1, 0], [0.4, 0.6]], [0, 0, 0], [1, 1, 1]), 2 / 3)


class TestPredictionDifference:
    P = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    Q = [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]

    def test_two_models_every_p(self):
        # P - Q: row 0 (1, -1, 0), row 1 (0, 1/2, -1/2); PD = (1/(2n)) sum_i ||P_i - Q_i||_p
        # p = 1:   (2 + 1) / 4 = 3/4
        # p = 2:   (sqrt 2 + sqrt(1/2)) / 4 = (3/2) sqrt 2 / 4 = 3 sqrt 2 / 8
        # p = 3:   (2^(1/3) + 2^(1/3)/2) / 4 = 3 * 2^(1/3) / 8
        # p = inf: (1 + 1/2) / 4 = 3/8
        _close(prediction_difference(self.P, self.Q), 0.75)
        _close(prediction_difference(self.P, self.Q, p=2), 3 * math.sqrt(2) / 8)
        _close(prediction_difference(self.P, self.Q, p=3.0), 3 * 2 ** (1 / 3) / 8)
        _close(prediction_difference(self.P, self.Q, p=math.inf), 3 / 8)

    def test_three_models(self):
        # models P, Q, R = P; row 0: mean (2/3, 1/3, 0); deviations in L1:
        #   P, R: (1/3, -1/3, 0) -> 2/3 each; Q: (-2/3, 2/3, 0) -> 4/3; mean over l: 8/9
        # row 1: mean (1/2, 1/3, 1/6); P, R: (0, 1/6, -1/6) -> 1/3; Q: (0, -1/3, 1/3) -> 2/3
        #   mean over l: 4/9.  PD = (8/9 + 4/9) / 2 = 2/3
        _close(prediction_difference(self.P, self.Q, self.P), 2 / 3)
        # max norm: row 0: 1/3, 2/3, 1/3 -> 4/9; row 1: 1/6, 1/3, 1/6 -> 2/9; PD = 1/3
        _close(prediction_difference(self.P, self.Q, self.P, p=math.inf), 1 / 3)

    def test_identical_models(self):
        _close(prediction_difference(self.P, self.P, self.P, self.P), 0.0)

    def test_large_p_is_accurate(self):
        # scaled norms: ||(1, -1, 0)||_p = 2^(1/p) even where |x|^p would underflow
        tiny = [[1e-200, 0.0], [0.0, 1e-200]]
        _close(
            prediction_difference(tiny, [[0.0, 1e-200], [1e-200, 0.0]], p=500.0),
            2 * 2 ** (1 / 500) * 1e-200 / 4,
        )


class TestFleissKappa:
    def test_three_models(self):
        # m = 3, n = 2: votes per input (2, 1) and (1, 2): P_i = (4 + 1 - 3) / 6 = 1/3
        # p = (3/6, 3/6): P_e = 1/2; kappa = (1/3 - 1/2) / (1/2) = -1/3
        _close(fleiss_kappa([[0, 1], [0, 1], [1, 0]]), -1 / 3)

    def test_four_models_three_categories(self):
        # rows = models, columns = inputs 0..3
        preds = [[0, 1, 2, 0], [0, 1, 2, 1], [0, 1, 1, 2], [0, 2, 1, 0]]
        # votes n_ic (categories 0, 1, 2): i0 (4,0,0) i1 (0,3,1) i2 (0,2,2) i3 (2,1,1)
        # sum_c n_ic^2: 16, 10, 8, 6 -> P_i = (s - 4) / 12: 1, 1/2, 1/3, 1/6; Pbar = 1/2
        # totals (6, 6, 4) / 16 -> P_e = (36 + 36 + 16) / 256 = 88/256 = 11/32
        # kappa = (1/2 - 11/32) / (21/32) = (5/32) / (21/32) = 5/21
        _close(fleiss_kappa(preds), 5 / 21)

    def test_two_models_is_scotts_pi(self):
        # a = 0 0 1 1, b = 0 1 1 1: P_i = 1, 0, 1, 1 -> Pbar = 3/4 (= p_o)
        # pooled p = (3/8, 5/8): P_e = 9/64 + 25/64 = 34/64; kappa = (48 - 34) / (64 - 34) = 7/15
        _close(fleiss_kappa([[0, 0, 1, 1], [0, 1, 1, 1]]), 7 / 15)

    def test_agreement_and_nan(self):
        _close(fleiss_kappa([[0, 1, 2], [0, 1, 2], [0, 1, 2]]), 1.0)
        with pytest.warns(DegenerateDataWarning, match=FLEISS_P_E_ONE):
            _close(fleiss_kappa([[1, 1, 1], [1, 1, 1]]), math.nan)  # one category: P_e = 1

    def test_soft_and_tuple(self):
        soft = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])  # -> 0 1 0 0
        _close(fleiss_kappa((soft, [0, 1, 1, 1])), fleiss_kappa([[0, 1, 0, 0], [0, 1, 1, 1]]))
        # a = 0 1 0 0, b = 0 1 1 1: P_i = 1, 1, 0, 0 -> Pbar = 1/2; pooled votes: four 0s,
        # four 1s -> p = (1/2, 1/2), P_e = 1/2; kappa = (1/2 - 1/2) / (1/2) = 0
        _close(fleiss_kappa((soft, [0, 1, 1, 1])), 0.0)


# --------------------------------------------------------------------------- references


def _pair_forms(rng, n, C):
    """Pairs of outputs in every form: hard/hard, soft/soft, mixed, tied scores, correlated."""
    a_hard, b_hard = _hard(rng, n, C), _hard(rng, n, C)
    A, B = _probs(rng, n, C), _probs(rng, n, C)
    return {
        "hard": (a_hard, b_hard),
        "soft": (A, B),
        "mixed": (A, b_hard),
        "ties": (_tied_scores(rng, n, C), _tied_scores(rng, n, C)),
        "correlated": (a_hard, _noisy_copy(rng, a_hard, C)),
    }


SIZES = [(2, 2), (5, 3), (17, 4), (60, 7)]


@pytest.mark.parametrize("n, C", SIZES)
def test_two_model_label_measures_match_reference(n, C):
    rng = np.random.default_rng(100 * n + C)
    for form, (a, b) in _pair_forms(rng, n, C).items():
        y = _noisy_copy(rng, np.argmax(a, 1) if np.ndim(a) == 2 else a, C, flip=0.4)
        ha, hb = _as_hard(a), _as_hard(b)
        # The docs' nan cases, each with a DegenerateDataWarning: p_e = 1 when both models
        # predict one and the same class everywhere; e_a = 0 for mode="error_rate"; e_a = 0 or
        # e_b = 0 for mode="min_max" (min(e_a + e_b, 1) - |e_a - e_b| = 0 exactly then).
        one_class = np.unique(np.concatenate([ha, hb])).size == 1
        no_err_a, no_err_b = not np.any(ha != y), not np.any(hb != y)
        for f, ref, extra, ctx in (
            (disagreement, ref_disagreement, (), contextlib.nullcontext()),
            (cohens_kappa, ref_cohens_kappa, (), _degenerate_if(one_class, P_E_ONE)),
            (accuracy_diff, ref_accuracy_diff, (y,), contextlib.nullcontext()),
        ):
            # counting in integers vs in fractions: both correctly rounded, hence equal
            with ctx:
                assert f(a, b, *extra) == ref(a, b, *extra) or (
                    math.isnan(f(a, b, *extra)) and math.isnan(ref(a, b, *extra))
                ), (f.__name__, form)
        for mode, degenerate, match in (
            ("error_rate", no_err_a, NO_ERROR_A),
            ("min_max", no_err_a or no_err_b, NO_ERROR_MIN_MAX),
        ):
            with _degenerate_if(degenerate, match):
                got = error_corrected_disagreement(a, b, y, mode=mode)
            want = ref_error_corrected_disagreement(a, b, y, mode)
            assert got == want or (math.isnan(got) and math.isnan(want)), (mode, form)


@pytest.mark.parametrize("n, C", SIZES)
def test_probability_measures_match_reference(n, C):
    rng = np.random.default_rng(7 * n + C)
    cases = [
        (_probs(rng, n, C), _probs(rng, n, C)),
        (_probs(rng, n, C, 0.4), _probs(rng, n, C, 0.4)),  # exact zeros: 0 log 0
        (5.0 * _probs(rng, n, C), _tied_scores(rng, n, C) + 0.5),  # unnormalised
    ]
    for P, Q in cases:
        for base in (2.0, math.e, 10.0, 1.5, 0.5):
            _close(jsd(P, Q, base=base), ref_jsd(P, Q, base), 1e-10)
        for alpha in (1.0, 0.5, 3.0):
            _close(surrogate_churn(P, Q, alpha=alpha), ref_surrogate_churn(P, Q, alpha), 1e-12)
        R = _probs(rng, n, C)
        for p in (1, 2, 3.5, math.inf):
            _close(prediction_difference(P, Q, p=p), ref_prediction_difference(P, Q, p=p), 1e-12)
            _close(
                prediction_difference(P, Q, R, p=p), ref_prediction_difference(P, Q, R, p=p), 1e-12
            )


def test_jsd_with_zero_rows_matches_reference():
    rng = np.random.default_rng(3)
    P, Q = _probs(rng, 20, 5), _probs(rng, 20, 5)
    P[[2, 7]] = 0.0
    Q[[7, 11]] = 0.0
    zero_rows = r"3 of 20 rows are all zeros in P or Q"  # rows 2, 7, 11: ignored, warned
    with pytest.warns(DegenerateDataWarning, match=zero_rows):
        _close(jsd(P, Q), ref_jsd(P, Q), 1e-12)
    # the valid rows only
    keep = np.setdiff1d(np.arange(20), [2, 7, 11])
    with pytest.warns(DegenerateDataWarning, match=zero_rows):
        _close(jsd(P, Q), jsd(P[keep], Q[keep]), 1e-12)


@pytest.mark.parametrize("m, n, C", [(2, 5, 2), (3, 12, 3), (5, 40, 6), (8, 9, 2)])
def test_fleiss_matches_reference(m, n, C):
    rng = np.random.default_rng(m * 1000 + n)
    base = _hard(rng, n, C)
    preds = [_noisy_copy(rng, base, C, flip=0.5) for _ in range(m)]
    assert fleiss_kappa(preds) == ref_fleiss_kappa(preds)
    # mixed with soft outputs (including tied scores)
    mixed = [_probs(rng, n, C) if i % 2 else p for i, p in enumerate(preds)]
    mixed[0] = _tied_scores(rng, n, C)
    assert fleiss_kappa(mixed) == ref_fleiss_kappa(mixed)


def test_cross_check_with_scikit_learn_and_scipy():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    distance = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(4)
    a = _hard(rng, 80, 5)
    b = _noisy_copy(rng, a, 5, 0.6)
    _close(cohens_kappa(a, b), float(sklearn_metrics.cohen_kappa_score(a, b)), 1e-12)
    P, Q = _probs(rng, 30, 6), _probs(rng, 30, 6)
    # scipy returns the Jensen-Shannon *distance*, the square root of the divergence
    want = np.mean([distance.jensenshannon(p, q, base=2) ** 2 for p, q in zip(P, Q)])
    _close(jsd(P, Q), float(want), 1e-10)


def test_prediction_difference_two_model_identity():
    # Shamir & Coviello (2020): for two models PD = (1/(2n)) sum_i ||P_i - Q_i||_p
    rng = np.random.default_rng(5)
    P, Q = _probs(rng, 25, 4), _probs(rng, 25, 4)
    for p in (1, 2, 4, math.inf):
        want = np.linalg.norm(P - Q, ord=p, axis=1).sum() / (2 * 25)
        _close(prediction_difference(P, Q, p=p), float(want), 1e-12)


# --------------------------------------------------------------------------- properties


def test_fleiss_invariant_to_model_order():
    rng = np.random.default_rng(6)
    base = _hard(rng, 30, 4)
    preds = [_noisy_copy(rng, base, 4, 0.5) for _ in range(4)] + [_probs(rng, 30, 4)]
    v = fleiss_kappa(preds)
    for perm in itertools.permutations(range(5)):
        assert fleiss_kappa([preds[i] for i in perm]) == v


def test_prediction_difference_symmetric_in_models():
    rng = np.random.default_rng(7)
    outs = [_probs(rng, 20, 3) for _ in range(4)]
    v = prediction_difference(*outs, p=2)
    for perm in itertools.permutations(range(4)):
        _close(prediction_difference(*[outs[i] for i in perm], p=2), v, 1e-13)


def _relabel(x, perm):
    """Consistent relabelling: class c becomes perm[c] (soft: column c moves to perm[c])."""
    x = np.asarray(x)
    if x.ndim == 2:
        out = np.empty_like(x)
        out[:, perm] = x
        return out
    return perm[x]


def test_invariance_to_consistent_relabelling():
    """Every measure is unchanged when the classes are renamed consistently in all inputs.

    Soft scores are continuous here: with tied maxima the first-index argmax depends on the
    column order, so relabelling is only a symmetry for untied scores.
    """
    rng = np.random.default_rng(8)
    n, C = 40, 5
    a, b, c = _hard(rng, n, C), _probs(rng, n, C), _hard(rng, n, C)
    y = _noisy_copy(rng, a, C, 0.5)
    P, Q, R = _probs(rng, n, C), _probs(rng, n, C, 0.3), _probs(rng, n, C)

    for _ in range(3):
        perm = rng.permutation(C)
        t = lambda x: _relabel(x, perm)  # noqa: E731
        _close(disagreement(t(a), t(b)), disagreement(a, b))
        _close(cohens_kappa(t(a), t(b)), cohens_kappa(a, b))
        _close(accuracy_diff(t(a), t(b), t(y)), accuracy_diff(a, b, y))
        for mode in ("error_rate", "min_max"):
            _close(
                error_corrected_disagreement(t(a), t(b), t(y), mode=mode),
                error_corrected_disagreement(a, b, y, mode=mode),
            )
        _close(fleiss_kappa([t(a), t(b), t(c)]), fleiss_kappa([a, b, c]))
        _close(jsd(t(P), t(Q)), jsd(P, Q), 1e-13)
        _close(surrogate_churn(t(P), t(Q), alpha=0.7), surrogate_churn(P, Q, alpha=0.7), 1e-13)
        _close(
            prediction_difference(t(P), t(Q), t(R), p=3), prediction_difference(P, Q, R, p=3), 1e-13
        )
    # hard-only measures: any injective renaming of the labels, not just a permutation
    rename = lambda x: 1000 * np.asarray(x) - 17  # noqa: E731
    d = _hard(rng, n, C)
    _close(disagreement(rename(a), rename(d)), disagreement(a, d))
    _close(cohens_kappa(rename(a), rename(d)), cohens_kappa(a, d))
    _close(accuracy_diff(rename(a), rename(d), rename(y)), accuracy_diff(a, d, y))
    _close(fleiss_kappa([rename(a), rename(c), rename(d)]), fleiss_kappa([a, c, d]))


def test_kappas_within_bounds_on_adversarial_data():
    """Near-complete disagreement with few classes pushes kappa towards -1; never below."""
    rng = np.random.default_rng(9)
    low = 0.0
    for _ in range(300):
        n, C = int(rng.integers(2, 8)), int(rng.integers(2, 4))
        a = _hard(rng, n, C)
        b = (a + rng.integers(1, C, n)) % C if rng.random() < 0.7 else _hard(rng, n, C)
        # p_e = P_e = 1 (nan with a warning) exactly when a and b hold one and the same class;
        # with (a + 1) % C beside a there are always two categories, so never for three models.
        one_class = np.unique(np.concatenate([a, b])).size == 1
        with _degenerate_if(one_class, P_E_ONE):
            kappa_ab = cohens_kappa(a, b)
        with _degenerate_if(one_class, FLEISS_P_E_ONE):
            fleiss_ab = fleiss_kappa([a, b])
        for v in (kappa_ab, fleiss_ab, fleiss_kappa([a, b, (a + 1) % C])):
            if not math.isnan(v):
                assert -1.0 - 1e-15 <= v <= 1.0 + 1e-15
                low = min(low, v)
    assert low == -1.0  # the lower bound is attained


def test_error_rate_mode_within_its_data_dependent_range():
    # Fort et al. (2020): Dis / e_a lies in [0, min(e_a + e_b, 1) / e_a]
    rng = np.random.default_rng(10)
    for _ in range(200):
        n, C = int(rng.integers(2, 10)), int(rng.integers(2, 4))
        a, b, y = _hard(rng, n, C), _hard(rng, n, C), _hard(rng, n, C)
        e_a, e_b = np.mean(a != y), np.mean(b != y)
        with _degenerate_if(e_a == 0, NO_ERROR_A):
            v = error_corrected_disagreement(a, b, y)
        if e_a == 0:
            assert math.isnan(v)
        else:
            assert 0.0 <= v <= min(e_a + e_b, 1.0) / e_a + 1e-12
        # min(e_a + e_b, 1) - |e_a - e_b| is 0 exactly when one model makes no error
        with _degenerate_if(e_a == 0 or e_b == 0, NO_ERROR_MIN_MAX):
            w = error_corrected_disagreement(a, b, y, mode="min_max")
        assert math.isnan(w) or 0.0 <= w <= 1.0


def test_surrogate_churn_at_most_c_over_2():
    rng = np.random.default_rng(11)
    for C in (1, 2, 3, 8):
        P, Q = _probs(rng, 30, C, 0.5), _probs(rng, 30, C, 0.5)
        assert 0.0 <= surrogate_churn(P, Q, alpha=0.2) <= C / 2


def test_single_class_soft_outputs():
    # (n, 1) scores: argmax is always class 0
    col = np.array([[0.3], [0.9], [0.1]])
    _close(disagreement(col, [0, 0, 0]), 0.0)
    _close(jsd(col, 2 * col), 0.0)
    _close(surrogate_churn(col, col[::-1]), 0.0)


def test_inputs_not_modified():
    rng = np.random.default_rng(12)
    P = _probs(rng, 10, 3).astype(np.float32)
    Q = np.asfortranarray(_probs(rng, 10, 3))
    a = rng.integers(0, 3, 10).astype(np.float64)
    y = rng.integers(0, 3, 10)
    saved = [x.copy() for x in (P, Q, a, y)]
    disagreement(P, a)
    error_corrected_disagreement(a, Q, y, mode="min_max")
    cohens_kappa(Q, a)
    jsd(P, Q)
    surrogate_churn(P, Q, alpha=2.0)
    accuracy_diff(P, a, y)
    prediction_difference(P, Q, P, p=3)
    fleiss_kappa([P, Q, a])
    for x, x0 in zip((P, Q, a, y), saved):
        assert np.array_equal(x, x0) and x.dtype == x0.dtype


def test_float32_and_list_inputs_agree_with_float64():
    rng = np.random.default_rng(13)
    P, Q = _probs(rng, 15, 4), _probs(rng, 15, 4)
    P32, Q32 = P.astype(np.float32), Q.astype(np.float32)
    # float32 inputs are widened exactly, so they equal the float64 values of the widened data
    _close(jsd(P32, Q32), jsd(P32.astype(np.float64), Q32.astype(np.float64)), 0)
    _close(jsd(P.tolist(), Q.tolist()), jsd(P, Q), 0)
    _close(cohens_kappa(P.tolist(), list(np.argmax(Q, 1))), cohens_kappa(P, Q), 0)


# --------------------------------------------------------------------------- errors


class TestErrors:
    def test_mismatched_lengths(self):
        with pytest.raises(ValueError, match=r"pred_b has shape \(3,\).*same number n of examples"):
            disagreement([0, 1, 0, 1], [0, 1, 0])
        with pytest.raises(ValueError, match=r"pred_b has shape \(3, 2\).*same number"):
            cohens_kappa([0, 1, 0, 1], np.ones((3, 2)))
        with pytest.raises(ValueError, match=r"labels has shape \(5,\).*same number"):
            accuracy_diff([0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 1, 1])
        with pytest.raises(ValueError, match=r"labels has shape \(3,\).*same number"):
            error_corrected_disagreement([0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0])
        with pytest.raises(ValueError, match=r"Q has shape \(3, 2\).*equal shapes"):
            jsd(np.ones((4, 2)), np.ones((3, 2)))
        with pytest.raises(ValueError, match=r"more\[1\] has shape \(3, 2\).*equal shapes"):
            ones = np.ones((4, 2))
            prediction_difference(ones, ones, ones, np.ones((3, 2)))
        with pytest.raises(ValueError, match=r"preds\[2\] has shape \(2,\).*same number"):
            fleiss_kappa([[0, 1, 1], [0, 1, 1], [0, 1]])

    def test_mismatched_class_counts(self):
        with pytest.raises(ValueError, match=r"pred_b has shape \(3, 4\).*same number of classes"):
            disagreement(np.ones((3, 3)), np.ones((3, 4)))
        with pytest.raises(ValueError, match=r"preds\[1\] has shape \(3, 2\).*number of classes"):
            fleiss_kappa([np.ones((3, 3)), np.ones((3, 2))])
        with pytest.raises(ValueError, match=r"Q has shape \(3, 4\).*equal shapes"):
            surrogate_churn(np.ones((3, 3)), np.ones((3, 4)))
        # hard labels outside the classes of a soft output
        with pytest.raises(ValueError, match=r"pred_b holds class label 3, outside 0\.\.2"):
            disagreement(np.ones((3, 3)), [0, 1, 3])
        with pytest.raises(ValueError, match=r"labels holds class label -1, outside 0\.\.1"):
            accuracy_diff(np.ones((3, 2)), [0, 1, 1], [0, -1, 1])
        with pytest.raises(ValueError, match=r"labels holds class label 2.*pred_b"):
            error_corrected_disagreement([0, 1, 1], np.ones((3, 2)), [0, 2, 1])

    def test_negative_probabilities(self):
        bad = np.array([[0.5, 0.5], [1.2, -0.2]])
        good = np.array([[0.5, 0.5], [0.5, 0.5]])
        with pytest.raises(ValueError, match=r"P of shape \(2, 2\) has 1 negative.*non-negative"):
            jsd(bad, good)
        with pytest.raises(ValueError, match=r"Q of shape .* negative.*non-negative"):
            surrogate_churn(good, bad)
        with pytest.raises(ValueError, match=r"more\[0\] of shape .* negative.*non-negative"):
            prediction_difference(good, good, bad)

    def test_one_dimensional_where_probabilities_needed(self):
        P = np.ones((3, 2))
        for f in (jsd, surrogate_churn, prediction_difference):
            with pytest.raises(ValueError, match=r"P must be 2-D \(n, C\) probabilities.*1-D"):
                f([0, 1, 1], P)
            with pytest.raises(ValueError, match=r"Q must be 2-D \(n, C\) probabilities.*1-D"):
                f(P, [0, 1, 1])
        with pytest.raises(ValueError, match=r"more\[0\] must be 2-D"):
            prediction_difference(P, P, [0, 1, 1])

    def test_non_integer_hard_labels(self):
        with pytest.raises(ValueError, match=r"pred_a holds 1 non-integer value.*1\.5.*integer"):
            disagreement([0.0, 1.5, 2.0], [0, 1, 2])
        with pytest.raises(ValueError, match=r"labels holds 2 non-integer.*integer class"):
            accuracy_diff([0, 1, 2], [0, 1, 2], [0.5, 1.0, 2.5])
        with pytest.raises(ValueError, match=r"preds\[1\] holds 1 non-integer"):
            fleiss_kappa([[0, 1], [0.0, 0.1]])

    def test_non_finite(self):
        with pytest.raises(ValueError, match=r"pred_b of shape \(3,\) contains 1 non-finite"):
            disagreement([0, 1, 2], [0.0, np.nan, 2.0])
        with pytest.raises(ValueError, match=r"pred_a of shape \(2, 2\) contains 1 non-finite"):
            cohens_kappa([[0.1, np.nan], [0.3, 0.2]], [0, 1])
        with pytest.raises(ValueError, match=r"labels of shape \(2,\) contains 1 non-finite"):
            accuracy_diff([0, 1], [0, 1], [0.0, np.nan])
        with pytest.raises(ValueError, match=r"Q of shape \(2, 2\) contains 2 non-finite"):
            jsd(np.ones((2, 2)), [[np.nan, 1.0], [np.inf, 0.0]])
        with pytest.raises(ValueError, match=r"P of shape .* non-finite"):
            surrogate_churn([[np.nan, 1.0], [1.0, 0.0]], np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"Q of shape .* non-finite"):
            prediction_difference(np.ones((2, 2)), [[np.inf, 1.0], [1.0, 0.0]])
        with pytest.raises(ValueError, match=r"preds\[0\] of shape .* non-finite"):
            fleiss_kappa([[np.nan, 1.0], [1, 0]])

    def test_bad_dimensions_and_dtypes(self):
        with pytest.raises(ValueError, match=r"pred_a has shape \(2, 2, 2\) \(3-D\); expected h"):
            disagreement(np.ones((2, 2, 2)), [0, 1])
        with pytest.raises(ValueError, match=r"labels must be 1-D \(n,\) integer class labels"):
            accuracy_diff([0, 1], [0, 1], np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"labels must be 1-D"):
            error_corrected_disagreement([0, 1], [0, 1], 1)
        with pytest.raises(ValueError, match=r"pred_a has dtype <U1; expected"):
            disagreement(["a", "b"], [0, 1])
        with pytest.raises(ValueError, match=r"pred_b has dtype complex128"):
            cohens_kappa([0, 1], np.array([0, 1]) + 1j)
        with pytest.raises(ValueError, match=r"P has dtype object and its items are not all"):
            jsd(np.array([[None, 1], [0.5, 0.5]], dtype=object), np.ones((2, 2)) / 2)
        with pytest.raises(TypeError, match=r"P has dtype object and its items are not all"):
            jsd(np.array([["a", 1], [0.5, 0.5]], dtype=object), np.ones((2, 2)) / 2)
        assert jsd(np.array([[0.25, 0.75], [0.5, 0.5]], dtype=object), np.ones((2, 2)) / 2) == (
            jsd(np.array([[0.25, 0.75], [0.5, 0.5]]), np.ones((2, 2)) / 2)
        )

    def test_too_few_examples(self):
        # the docs' errors and warnings: n below the minimum, 2 where none is stated
        with pytest.raises(ValueError, match=r"pred_a has shape \(1,\).*at least 2 examples"):
            disagreement([0], [0])
        with pytest.raises(ValueError, match=r"pred_a has shape \(0,\); expected at least one"):
            disagreement([], [])
        with pytest.raises(ValueError, match=r"P has shape \(1, 3\).*at least 2 examples"):
            jsd(np.ones((1, 3)), np.ones((1, 3)))
        with pytest.raises(ValueError, match=r"P has shape \(2, 0\); expected at least one"):
            surrogate_churn(np.ones((2, 0)), np.ones((2, 0)))
        with pytest.raises(ValueError, match=r"labels has shape \(1,\).*at least 2"):
            accuracy_diff(np.ones((2, 2)), [0, 1], [0])  # length is checked after each array
        with pytest.raises(ValueError, match=r"pred_a has shape \(1, 2\).*at least 2"):
            accuracy_diff(np.ones((1, 2)), [0], [0])
        for f in (disagreement, cohens_kappa):
            assert type(f([0, 1], [1, 1])) is float  # n = 2 is accepted

    def test_bad_mode(self):
        with pytest.raises(
            ValueError,
            match=r"mode='minmax' is invalid; expected one of "
            r"'error_rate', 'min_max'",
        ):
            error_corrected_disagreement([0, 1], [0, 1], [0, 1], mode="minmax")
        with pytest.raises(ValueError, match=r"mode=None is invalid"):
            error_corrected_disagreement([0, 1], [0, 1], [0, 1], mode=None)

    @pytest.mark.parametrize("base", [0, -2.0, math.nan, math.inf])
    def test_bad_base_out_of_range(self, base):
        with pytest.raises(ValueError, match=r"base=.* is out of range; expected a value in \(0"):
            jsd(np.ones((2, 2)), np.ones((2, 2)), base=base)

    def test_base_one_and_non_numbers(self):
        with pytest.raises(
            ValueError,
            match=r"base=1 is invalid; expected a logarithm base > 0 "
            r"and != 1",
        ):
            jsd(np.ones((2, 2)), np.ones((2, 2)), base=1)
        with pytest.raises(ValueError, match=r"base='2' is invalid; expected a real number"):
            jsd(np.ones((2, 2)), np.ones((2, 2)), base="2")

    @pytest.mark.parametrize("alpha", [0, -1.0, math.nan, math.inf])
    def test_bad_alpha(self, alpha):
        with pytest.raises(
            ValueError,
            match=r"alpha=.* is out of range; expected a value in "
            r"\(0, inf\)",
        ):
            surrogate_churn(np.ones((2, 2)), np.ones((2, 2)), alpha=alpha)

    @pytest.mark.parametrize("p", [0, 0.5, -1, math.nan, -math.inf])
    def test_bad_p(self, p):
        with pytest.raises(
            ValueError,
            match=r"p=.* is out of range; expected a value in \[1, inf\)"
            r" or math.inf",
        ):
            prediction_difference(np.ones((2, 2)), np.ones((2, 2)), p=p)

    @pytest.mark.parametrize("p", ["2", True, None])
    def test_p_not_a_number(self, p):
        with pytest.raises(ValueError, match=r"p=.* is invalid; expected a real number"):
            prediction_difference(np.ones((2, 2)), np.ones((2, 2)), p=p)

    def test_fleiss_needs_a_list_of_two(self):
        with pytest.raises(ValueError, match=r"preds must be a list of m >= 2 .*got ndarray"):
            fleiss_kappa(np.array([[0, 1], [1, 0]]))
        with pytest.raises(
            ValueError,
            match=r"preds holds 1 prediction array\(s\); expected a "
            r"list of m >= 2",
        ):
            fleiss_kappa([[0, 1, 1]])
        with pytest.raises(ValueError, match=r"preds holds 0"):
            fleiss_kappa([])


# --------------------------------------------------------------------------- registry-driven


def test_every_expected_measure_is_registered():
    assert {m.name for m in OUTPUT_MEASURES} == EXPECTED
    for m in OUTPUT_MEASURES:
        assert m.family == "functional"
        assert m.invariances(**m.params) == frozenset()
        assert m.min_rows() == 2
    kinds = {m.name: m.kind for m in OUTPUT_MEASURES}
    assert {k for k, v in kinds.items() if v == "similarity"} == {"cohens_kappa", "fleiss_kappa"}
    ecd = cg.get_measure("error_corrected_disagreement")
    assert not ecd.symmetric() and ecd.symmetric(mode="min_max")
    assert ecd.bounds() == (0.0, math.inf) and ecd.bounds(mode="min_max") == (0.0, 1.0)
    assert cg.get_measure("jsd").bounds(base=math.e) == (0.0, LN2)
    assert cg.get_measure("prediction_difference").params == {"p": 1}


def _positional(m) -> list[str]:
    return [
        p.name
        for p in inspect.signature(m.func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def _needs_probabilities(m) -> bool:
    """The docs' functional page names probability inputs P, Q (upper case), predictions pred_a, preds."""
    return _positional(m)[0].isupper()


def _output_cases():
    out = []
    for m in OUTPUT_MEASURES:
        for params in m.variants:
            suffix = ",".join(f"{k}={v}" for k, v in params.items())
            pid = m.name + ("-" + suffix if suffix else "")
            out.append(pytest.param(m, dict(params), id=pid))
    return out


OUTPUT_CASES = _output_cases()


def _datasets(m, seed, n=50, C=4):
    """Lists of model outputs (3 models) in the forms the measure accepts, plus labels."""
    rng = np.random.default_rng(seed)
    y = _hard(rng, n, C)
    soft = [_probs(rng, n, C, 0.2) for _ in range(3)]
    close = [soft[0], np.abs(soft[0] + 0.05 * rng.standard_normal((n, C))), soft[1]]
    sets = {"soft": soft, "soft-close": close}
    if not _needs_probabilities(m):
        hard = [_noisy_copy(rng, y, C, 0.5) for _ in range(3)]
        sets["hard"] = hard
        sets["mixed"] = [soft[0], hard[1], _tied_scores(rng, n, C)]
        sets["hard-close"] = [hard[0], _noisy_copy(rng, hard[0], C, 0.1), hard[2]]
    return sets, y


def _call(m, outputs, labels, params):
    names = _positional(m)
    if names == ["preds"]:
        return m.func(list(outputs), **params)
    it = iter(outputs)
    args = [labels if name == "labels" else next(it) for name in names]
    return m.func(*args, **params)


@pytest.mark.parametrize("m, params", OUTPUT_CASES)
def test_registered_output_measure_float_symmetry_bounds(m, params):
    lo, hi = m.bounds(**params)
    asym = []
    for seed in (1, 2):
        sets, y = _datasets(m, seed)
        for label, outs in sets.items():
            v = _call(m, outs, y, params)
            assert type(v) is float, f"{label}: returned {type(v).__name__}"
            assert not math.isnan(v), f"{label}: nan on well-posed outputs"
            assert lo - 1e-12 <= v <= hi + 1e-12, f"{label}: {v!r} outside [{lo}, {hi}]"
            swapped = _call(m, [outs[1], outs[0], outs[2]], y, params)
            if m.symmetric(**params):
                assert swapped == pytest.approx(v, rel=1e-12, abs=1e-12), (
                    f"{label}: declared symmetric but f(a, b) = {v!r} != f(b, a) = {swapped!r}"
                )
            else:
                asym.append(abs(swapped - v))
            # identical outputs: zero distance / maximal similarity
            same = _call(m, [outs[0], np.array(outs[0], copy=True), outs[0]], y, params)
            if m.kind == "distance" and lo == 0.0:
                assert same == pytest.approx(0.0, abs=1e-14), f"{label}: f(a, a) = {same!r}"
            elif m.kind == "similarity" and hi == 1.0:
                assert same == pytest.approx(1.0, abs=1e-14), f"{label}: f(a, a) = {same!r}"
    if not m.symmetric(**params):
        assert max(asym) > 1e-6, "declared not symmetric, but never asymmetric on random data"


@pytest.mark.parametrize("m, params", OUTPUT_CASES)
def test_registered_output_measure_compare_and_layers(m, params):
    sets, y = _datasets(m, 3, n=20)
    outs = sets["soft"]
    direct = _call(m, outs, y, params)
    names = _positional(m)
    if names == ["preds"]:
        assert m(list(outs), **params) == direct
    else:
        it = iter(outs)
        assert m(*[y if k == "labels" else next(it) for k in names], **params) == direct
    if len(names) == 2:  # compare(a, b, name) for the two-argument measures
        assert cg.compare(outs[0], outs[1], m.name, **params) == direct
    with pytest.raises(ValueError, match="compares model outputs"):
        cg.compare_layers({"l1": np.ones((5, 2)), "l2": np.eye(5)}, measure=m.name, **params)
