"""Tests of the descriptive-statistics measures (docs: descriptive page).

``magnitude_diff``, ``concentricity_diff`` and ``uniformity_diff`` against hand-computed values
and the loop references of ``tests/reference_topology.py``. The generic properties
(symmetry, invariances, bounds, ...) are in ``tests/test_common.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import numpy as np
import pytest

import congruence as cg
from congruence import DegenerateDataWarning
from congruence.measures import descriptive

sys.path.insert(0, os.path.dirname(__file__))
from reference_topology import ref_concentricity, ref_magnitude, ref_uniformity  # noqa: E402

SHAPES = [(2, 1, 1), (3, 2, 5), (10, 4, 4), (37, 8, 3), (120, 3, 16)]


def _pair(n, p1, p2, seed):
    rng = np.random.default_rng(seed)
    X = 0.3 * rng.standard_normal((n, p1)) + rng.standard_normal(p1)
    Y = np.tanh(X @ rng.standard_normal((p1, p2))) * 0.5 + 0.2 * rng.standard_normal((n, p2))
    return X, Y


@pytest.mark.parametrize("n, p1, p2", SHAPES)
def test_match_references(n, p1, p2):
    X, Y = _pair(n, p1, p2, seed=n + p1)
    pairs = [
        (cg.magnitude_diff, ref_magnitude),
        (cg.concentricity_diff, ref_concentricity),
        (cg.uniformity_diff, ref_uniformity),
    ]
    for f, ref in pairs:
        got = f(X, Y)
        want = abs(ref(X) - ref(Y))
        assert type(got) is float
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-13), (f.__name__, got, want)


def test_magnitude_by_hand():
    X = [[3.0, 0.0], [3.0, 8.0]]  # mean (3, 4): 5
    Y = [[1.0, -2.0, 0.0], [-1.0, 2.0, 0.0]]  # mean 0: 0
    assert cg.magnitude_diff(X, Y) == 5.0
    assert cg.magnitude_diff(Y, X) == 5.0
    assert cg.magnitude_diff(X, [[0.0], [10.0]]) == 0.0  # |5 - 5|


def _warns_constant(arg, measure):
    """Expect the DegenerateDataWarning for a representation ``arg`` whose rows are all equal
    (the descriptive measures stay defined, MEASURES.md 0.2)."""
    return pytest.warns(
        DegenerateDataWarning, match=rf"{arg} has zero variance.*{measure} is still defined"
    )


def test_concentricity_by_hand():
    # Rows (1, 0) and (0, 1): mean (1/2, 1/2), both cosines 1/sqrt 2.
    X = [[1.0, 0.0], [0.0, 1.0]]
    same_direction = [[1.0, 1.0], [2.0, 2.0]]  # every cosine 1
    assert math.isclose(cg.concentricity_diff(X, same_direction), 1.0 - 1.0 / math.sqrt(2.0))
    # A zero row has cosine 0 with the mean (docs: neighbourhood page): (0 + 1 + 1) / 3.
    Z = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    with _warns_constant("Y", "concentricity_diff"):
        assert math.isclose(cg.concentricity_diff(Z, [[1.0], [1.0], [1.0]]), 1.0 / 3.0)
    # A zero mean makes every cosine 0, not nan.
    centred = [[1.0, -1.0], [-1.0, 1.0]]
    with _warns_constant("Y", "concentricity_diff"):
        assert cg.concentricity_diff(centred, [[5.0], [5.0]]) == 1.0
    with _warns_constant("Y", "concentricity_diff"):
        assert cg.concentricity_diff(centred, np.zeros((2, 3))) == 0.0
    # c can be negative: one large row fixes the mean's direction, nine small rows point
    # the other way, c = (1 - 9) / 10; against rows all along their mean (c = 1): 1.8.
    opposite = [[100.0]] + [[-1.0]] * 9
    with _warns_constant("X", "concentricity_diff"):
        assert math.isclose(cg.concentricity_diff(np.ones((10, 1)), opposite), 1.8)


def test_uniformity_by_hand():
    # Two points at squared distance s: u = log((2 + 2 exp(-2 s)) / 4).
    for s in (0.0, 0.25, 1.0, 3.0):
        u = math.log((2.0 + 2.0 * math.exp(-2.0 * s)) / 4.0)
        # Y's two rows are equal, and so are X's when s = 0.
        x_constant = s == 0.0
        with _warns_constant("Y", "uniformity_diff"):
            with (
                _warns_constant("X", "uniformity_diff") if x_constant else contextlib.nullcontext()
            ):
                got = cg.uniformity_diff([[0.0], [math.sqrt(s)]], [[5.0, 5.0], [5.0, 5.0]])
        assert math.isclose(got, abs(u - 0.0), rel_tol=1e-12, abs_tol=1e-15)


def test_uniformity_spread_data_reaches_minus_log_n_without_underflow():
    # exp(-2 d^2) underflows to 0 for every pair i != j: u = log(n / n^2) = -log n exactly,
    # and the difference with a single repeated point (u = 0) is log n, the top of the range.
    n = 50
    X = 1e3 * np.arange(n, dtype=float)[:, None]
    with _warns_constant("Y", "uniformity_diff"):
        got = cg.uniformity_diff(X, np.zeros((n, 2)))
    assert math.isclose(got, math.log(n), rel_tol=1e-14)
    spread = np.random.default_rng(0).standard_normal((n, 3)) * 1e4
    assert cg.uniformity_diff(X, spread) < 1e-12


def test_uniformity_blocks_agree(monkeypatch):
    X, Y = _pair(53, 3, 2, seed=5)
    whole = cg.uniformity_diff(X, Y)
    monkeypatch.setattr(descriptive, "_BLOCK_ELEMENTS", 7 * 53)  # 7 rows per block
    assert math.isclose(cg.uniformity_diff(X, Y), whole, rel_tol=1e-12)
    monkeypatch.setattr(descriptive, "_BLOCK_ELEMENTS", 1)  # one row per block
    assert math.isclose(cg.uniformity_diff(X, Y), whole, rel_tol=1e-12)


def test_uniformity_within_log_n():
    rng = np.random.default_rng(6)
    for n in (2, 5, 40):
        v = cg.uniformity_diff(0.1 * rng.standard_normal((n, 3)), rng.standard_normal((n, 2)))
        assert 0.0 <= v <= math.log(n)


def test_float32_inputs():
    X, Y = _pair(30, 4, 3, seed=7)
    X32 = X.astype(np.float32)
    for f in (cg.magnitude_diff, cg.concentricity_diff, cg.uniformity_diff):
        assert math.isclose(f(X32, Y), f(X32.astype(np.float64), Y), rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("name", ["magnitude_diff", "concentricity_diff", "uniformity_diff"])
def test_value_errors(name):
    f = getattr(cg, name)
    with pytest.raises(ValueError, match=r"X has shape \(1, 2\).*at least 2 rows"):
        f(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"must have the same number of rows"):
        f(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"Y of shape \(3, 2\) contains 1 non-finite"):
        f(np.ones((3, 2)), [[1.0, 2.0], [np.nan, 1.0], [0.0, 0.0]])
