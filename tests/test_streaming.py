"""Exact streaming CKA/HSIC, minibatch CKA and large-n RBF CKA (issue 5; the docs' streaming guide).

Expected values: the in-memory ``cg.cka`` / ``cg.hsic`` / ``cg.compare_layers`` on the
concatenated rows (the accumulators must reproduce them for any split), the slow references
of ``reference_streaming.py`` (full n x n Gram matrices; minibatch CKA from Song et al.'s trace
formula per batch), and identities (minibatch CKA with one batch is debiased CKA).
"""

from __future__ import annotations

import doctest
import importlib
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_streaming import (
    ref_linear_cka,
    ref_linear_hsic,
    ref_minibatch_cka,
    ref_rbf_cka,
)

import congruence as cg
from congruence.errors import DegenerateDataWarning, LayerNotFoundError
from congruence.results import LayerComparison
from congruence.streaming import (
    CKAAccumulator,
    HSICAccumulator,
    LayerAccumulator,
    MinibatchCKA,
    batch_bounds,
    minibatch_cka,
)
from congruence.streaming import drive as streaming_drive
from congruence.streaming import minibatch as streaming_minibatch
from congruence.streaming import moments as streaming_moments


def _pair(n, p1=5, p2=3, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p1)) * rng.uniform(0.5, 3.0, p1) + offset * rng.uniform(-1, 1, p1)
    Y = np.tanh(X @ rng.standard_normal((p1, p2))) + 0.5 * rng.standard_normal((n, p2)) + offset
    return X, Y


def _feed(acc, X, Y, cuts):
    bounds = [0, *cuts, X.shape[0]]
    for s, e in zip(bounds[:-1], bounds[1:]):
        acc.update(X[s:e], Y[s:e])
    return acc


def _close_hsic(got, want, tol=1e-10):
    assert abs(got - want) <= tol * max(1.0, abs(want)), (got, want)


# --------------------------------------------------------------------------- exact streaming


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 40),
    p1=st.integers(1, 6),
    p2=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    debiased=st.booleans(),
    data=st.data(),
)
def test_random_batch_splits_equal_in_memory(n, p1, p2, seed, debiased, data):
    X, Y = _pair(n, p1, p2, seed=seed % 1000, offset=50.0)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1), label="cuts"))
    acc = _feed(CKAAccumulator(debiased=debiased), X, Y, cuts)
    hs = _feed(HSICAccumulator(unbiased=debiased), X, Y, cuts)
    assert acc.n == n
    if debiased and n < 4:
        with pytest.raises(ValueError, match="needs at least 4 rows"):
            acc.value()
        return
    assert acc.value() == pytest.approx(cg.cka(X, Y, debiased=debiased), abs=1e-10, nan_ok=True)
    assert acc.cka() == acc.value()
    _close_hsic(hs.value(), cg.hsic(X, Y, unbiased=debiased))
    _close_hsic(acc.hsic(), hs.value(), tol=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_single_row_batches(debiased):
    X, Y = _pair(30, offset=100.0, seed=3)
    acc = CKAAccumulator(debiased=debiased)
    hs = HSICAccumulator(unbiased=debiased)
    for i in range(30):
        acc.update(X[i : i + 1], Y[i : i + 1])
        hs.update(X[i : i + 1], Y[i : i + 1])
    assert abs(acc.value() - cg.cka(X, Y, debiased=debiased)) < 1e-10
    _close_hsic(hs.value(), cg.hsic(X, Y, unbiased=debiased))


@pytest.mark.parametrize("debiased", [False, True])
def test_matches_slow_reference(debiased):
    X, Y = _pair(25, 4, 7, seed=5, offset=10.0)
    acc = _feed(CKAAccumulator(debiased=debiased), X, Y, [1, 2, 9, 10, 24])
    hs = _feed(HSICAccumulator(unbiased=debiased), X, Y, [3, 11])
    assert abs(acc.value() - ref_linear_cka(X, Y, debiased)) < 1e-10
    _close_hsic(hs.value(), ref_linear_hsic(X, Y, debiased))


def test_hand_computed_hsic():
    # X = Y = [0, 1, 2]: centred values -1, 0, 1, HSIC_b = (sum x^2)^2 / (n-1)^2 = 4 / 4
    acc = HSICAccumulator()
    for v in (0.0, 1.0, 2.0):
        acc.update([[v]], [[v]])
    assert acc.value() == pytest.approx(1.0, abs=1e-15)
    # n = 4, X = Y = [0, 0, 1, 1]: K0 = [[0,0,0,0],[0,0,0,0],[0,0,0,1],[0,0,1,0]];
    # tr(K0 K0) = 2, 1'K0 1 = 2, 1'K0K0 1 = 2 -> (2 + 4/6 - 2*2/2) / 4 = 1/6
    acc = HSICAccumulator(unbiased=True)
    acc.update([[0.0], [0.0]], [[0.0], [0.0]]).update([[1.0], [1.0]], [[1.0], [1.0]])
    assert acc.value() == pytest.approx(1.0 / 6.0, abs=1e-15)


def _parts(X, Y, bounds, debiased):
    out = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        out.append(CKAAccumulator(debiased=debiased).update(X[s:e], Y[s:e]))
    return out


@pytest.mark.parametrize("debiased", [False, True])
def test_merge_order_does_not_matter(debiased):
    X, Y = _pair(400, 6, 4, seed=8, offset=1e3)
    bounds = [0, 1, 2, 50, 51, 180, 300, 399, 400]
    want = cg.cka(X, Y, debiased=debiased)
    rng = np.random.default_rng(0)
    values = []
    for trial in range(6):
        parts = _parts(X, Y, bounds, debiased)
        order = rng.permutation(len(parts))
        parts = [parts[i] for i in order]
        if trial % 2:  # left fold
            acc = parts[0]
            for p in parts[1:]:
                acc.merge(p)
        else:  # balanced tree
            while len(parts) > 1:
                parts = [
                    parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i]
                    for i in range(0, len(parts), 2)
                ]
            acc = parts[0]
        assert acc.n == 400
        values.append(acc.value())
    assert max(values) - min(values) <= 1e-12
    assert abs(values[0] - want) < 1e-10


def test_merge_leaves_other_unchanged_and_handles_empty():
    X, Y = _pair(40, seed=2)
    a = CKAAccumulator().update(X[:20], Y[:20])
    b = CKAAccumulator().update(X[20:], Y[20:])
    before = b.value()
    a.merge(b)
    assert b.value() == before and b.n == 20
    assert abs(a.value() - cg.cka(X, Y)) < 1e-12
    empty = CKAAccumulator()
    assert empty.merge(CKAAccumulator()).n == 0
    c = CKAAccumulator().merge(a)  # into an empty one: a copy
    a.update(X[:5], Y[:5])
    assert c.n == 40 and abs(c.value() - cg.cka(X, Y)) < 1e-12
    assert a.merge(CKAAccumulator()).n == 45


def _state_bytes(acc) -> int:
    total = 0
    for v in vars(acc._state).values():
        if isinstance(v, np.ndarray):
            total += v.nbytes
        elif isinstance(v, list):
            total += sum(m.nbytes for m in v)
    return total


def test_state_does_not_grow_with_n():
    X, Y = _pair(2000, 4, 3, seed=1)
    acc = CKAAccumulator(debiased=True).update(X[:10], Y[:10])
    size = _state_bytes(acc)
    for s in range(10, 2000, 100):
        acc.update(X[s : s + 100], Y[s : s + 100])
    assert _state_bytes(acc) == size
    # a pair: the (p1 + p2)^2 co-moments (XX, XY, YX, YY), 7 means (as shift + small part),
    # 7 column minima and maxima (the constant-column rule), 2 x 2 W, 2 x 7 G
    assert size == 8 * (49 + 2 * 7 + 2 * 7 + 4 + 14)
    # layers a = (4, 2) against b = (3,): self blocks 16 + 4 + 9, cross 6 x 3, no a-a block
    lay = LayerAccumulator().update({"x": X[:5], "x2": X[:5, :2]}, {"y": Y[:5]})
    size = _state_bytes(lay)
    lay.update({"x": X, "x2": X[:, :2]}, {"y": Y})
    assert _state_bytes(lay) == size == 8 * (16 + 4 + 9 + 18 + 2 * 9 + 2 * 9)


@pytest.mark.parametrize("debiased", [False, True])
def test_float32_with_large_offsets(debiased):
    rng = np.random.default_rng(4)
    n = 6000
    X = (rng.standard_normal((n, 12)) + 1e4).astype(np.float32)
    Y = (
        np.tanh(X.astype(np.float64) - 1e4) @ rng.standard_normal((12, 5))
        + 1e4
        + 0.5 * rng.standard_normal((n, 5))
    ).astype(np.float32)
    want = cg.cka(X.astype(np.float64), Y.astype(np.float64), debiased=debiased)
    acc = CKAAccumulator(debiased=debiased)
    for s in range(0, n, 999):
        acc.update(X[s : s + 999], Y[s : s + 999])
    assert abs(acc.value() - want) < 1e-6
    # the value is not trivial: a raw float32 accumulation would be far off
    assert 0.05 < want < 0.99


@pytest.mark.parametrize("offset", [1e8, 1e10])
@pytest.mark.parametrize("debiased", [False, True])
def test_float64_with_huge_offsets(offset, debiased):
    # X - offset is exact (Sterbenz), so cg.cka on the shifted data is the exact target; the
    # means are kept as shift + small part, so merging loses no precision to the offset
    rng = np.random.default_rng(6)
    n = 20000
    X = rng.standard_normal((n, 5)) + offset
    Y = (X - offset) @ rng.standard_normal((5, 3)) + rng.standard_normal((n, 3)) - offset / 3
    want = cg.cka(X - offset, Y - np.float64(-offset / 3), debiased=debiased)
    acc = CKAAccumulator(debiased=debiased)
    for s in range(0, n, 4096):
        acc.update(X[s : s + 4096], Y[s : s + 4096])
    assert abs(acc.value() - want) < 1e-12


@pytest.mark.parametrize("debiased", [False, True])
def test_constant_representation_gives_nan(debiased):
    X = np.ones((10, 3))
    Y = np.arange(20.0).reshape(10, 2) ** 2
    acc = CKAAccumulator(debiased=debiased).update(X[:4], Y[:4]).update(X[4:], Y[4:])
    with pytest.warns(DegenerateDataWarning, match=r"X has zero variance"):
        assert math.isnan(acc.value())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        assert math.isnan(cg.cka(X, Y, debiased=debiased))
    hs = HSICAccumulator(unbiased=debiased).update(X, Y)
    with pytest.warns(DegenerateDataWarning, match=r"X has zero variance.*hsic is 0"):
        assert hs.value() == 0.0


def test_update_errors():
    acc = CKAAccumulator()
    with pytest.raises(ValueError, match=r"X has shape \(3, 2\) and Y has shape \(4, 2\)"):
        acc.update(np.ones((3, 2)), np.ones((4, 2)))
    acc.update(np.random.default_rng(0).standard_normal((5, 2)), np.ones((5, 3)))
    with pytest.raises(
        ValueError, match=r"X has shape \(5, 4\) but earlier batches of X had 2 columns"
    ):
        acc.update(np.ones((5, 4)), np.ones((5, 3)))
    with pytest.raises(
        ValueError, match=r"Y has shape \(5, 1\) but earlier batches of Y had 3 columns"
    ):
        acc.update(np.ones((5, 2)), np.ones((5, 1)))
    with pytest.raises(ValueError, match=r"X of shape \(2, 2\) contains 1 non-finite"):
        acc.update([[1.0, np.nan], [0.0, 1.0]], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        acc.update(np.ones(3), np.ones((3, 3)))
    assert acc.n == 5  # failed updates change nothing
    with pytest.raises(ValueError, match=r"debiased=1 is invalid; expected True or False"):
        CKAAccumulator(debiased=1)
    with pytest.raises(ValueError, match=r"unbiased='yes' is invalid"):
        HSICAccumulator(unbiased="yes")


def test_too_few_rows_at_value_time():
    with pytest.raises(
        ValueError, match=r"n=0 row\(s\); cka with debiased=False needs at least 2 rows"
    ):
        CKAAccumulator().value()
    acc = CKAAccumulator().update([[1.0]], [[2.0]])
    with pytest.raises(
        ValueError, match=r"n=1 row\(s\); cka with debiased=False needs at least 2 rows"
    ):
        acc.value()
    acc.update([[2.0]], [[1.0]])
    assert acc.value() == pytest.approx(1.0)
    deb = CKAAccumulator(debiased=True).update(
        np.arange(3.0)[:, None], np.arange(3.0)[:, None] ** 2
    )
    with pytest.raises(
        ValueError, match=r"n=3 row\(s\); cka with debiased=True needs at least 4 rows"
    ):
        deb.value()
    with pytest.raises(
        ValueError, match=r"n=3 row\(s\); hsic with debiased=True needs at least 4 rows"
    ):
        deb.hsic()
    hs = HSICAccumulator(unbiased=True).update(np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"hsic with unbiased=True needs at least 4 rows"):
        hs.value()


def test_merge_errors():
    X, Y = _pair(10)
    a = CKAAccumulator().update(X, Y)
    with pytest.raises(
        ValueError,
        match=r"other has widths \(p1, p2\) = \(5, 2\) but this accumulator has \(5, 3\)",
    ):
        a.merge(CKAAccumulator().update(X, Y[:, :2]))
    with pytest.raises(ValueError, match=r"debiased=True into one with debiased=False"):
        a.merge(CKAAccumulator(debiased=True).update(X, Y))
    with pytest.raises(ValueError, match=r"other must be a CKAAccumulator or HSICAccumulator"):
        a.merge(object())


# --------------------------------------------------------------------------- layer-wise


def _model(n, seed, widths=(6, 3, 9)):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, widths[0])) + 3.0
    out = {"l0": h}
    for i, w in enumerate(widths[1:], 1):
        h = np.tanh(h @ rng.standard_normal((h.shape[1], w)) / 2) + 0.2 * rng.standard_normal(
            (n, w)
        )
        out[f"l{i}"] = h
    return out


def _stream(acc, a, b, cuts):
    n = next(iter(a.values())).shape[0]
    bounds = [0, *cuts, n]
    for s, e in zip(bounds[:-1], bounds[1:]):
        acc.update(
            {k: v[s:e] for k, v in a.items()},
            None if b is None else {k: v[s:e] for k, v in b.items()},
        )
    return acc


@pytest.mark.parametrize("measure,flag", [("cka", "debiased"), ("hsic", "unbiased")])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("with_b", [False, True])
def test_layers_equal_compare_layers(measure, flag, unbiased, with_b):
    a = _model(70, 0)
    b = _model(70, 1, widths=(2, 5)) if with_b else None
    acc = _stream(LayerAccumulator(measure, **{flag: unbiased}), a, b, [1, 13, 14, 40])
    got = acc.result()
    want = cg.compare_layers(a, b, measure, **{flag: unbiased})
    assert isinstance(got, LayerComparison)
    assert (got.measure, got.kind, got.rows, got.cols) == (
        want.measure,
        want.kind,
        want.rows,
        want.cols,
    )
    assert dict(got.params) == dict(want.params)
    scale = max(1.0, float(np.abs(want.values).max()))
    np.testing.assert_allclose(got.values, want.values, rtol=1e-10, atol=1e-10 * scale)
    assert np.array_equal(acc.value().values, got.values, equal_nan=True)
    other = acc.hsic() if measure == "cka" else acc.cka()
    other_name = "hsic" if measure == "cka" else "cka"
    other_flag = "unbiased" if measure == "cka" else "debiased"
    want2 = cg.compare_layers(a, b, other_name, **{other_flag: unbiased})
    scale = max(1.0, float(np.abs(want2.values).max()))
    np.testing.assert_allclose(other.values, want2.values, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize("debiased", [False, True])
def test_feed_blocks_equal_compare_layers(debiased):
    # Feed(block=k) holds the pushed blocks until k rows, then adds them in one update:
    # the same matrix as compare_layers, and as one update per block
    from congruence.streaming.drive import Feed

    a, b = _model(90, 3), _model(90, 4, widths=(2, 5))
    cuts = [0, 7, 8, 30, 31, 55, 90]
    blocked = Feed("cka", {"debiased": debiased}, block=20)
    plain = Feed("cka", {"debiased": debiased})
    seen = []
    real_absorb = blocked.acc._absorb  # each update of the accumulator: its rows
    blocked.acc._absorb = lambda prep: seen.append(len(prep[3][0])) or real_absorb(prep)
    for s, e in zip(cuts[:-1], cuts[1:]):
        for f in (blocked, plain):
            f.push({k: v[s:e] for k, v in a.items()}, {k: v[s:e] for k, v in b.items()})
    got, ref = blocked.result(), plain.result()
    assert seen == [30, 25, 35]  # 7+1+22 rows, 1+24, then the last 35 at result()
    want = cg.compare_layers(a, b, "cka", debiased=debiased)
    np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.values, ref.values, rtol=0, atol=1e-13)
    assert got.rows == want.rows and got.cols == want.cols
    # one model with itself, and a block reached by bytes before rows
    solo = Feed("hsic", block=10**9)
    monkey = streaming_drive.BLOCK_BYTES
    try:
        streaming_drive.BLOCK_BYTES = 60 * 18 * 8
        for s, n_added in zip(range(0, 90, 30), (0, 60, 60)):
            solo.push({k: v[s : s + 30] for k, v in a.items()})
            assert solo.acc.n == n_added  # flushed once 60 rows (8640 bytes) are held
    finally:
        streaming_drive.BLOCK_BYTES = monkey
    np.testing.assert_allclose(
        solo.result().values, cg.compare_layers(a, None, "hsic").values, rtol=1e-12
    )
    with pytest.raises(ValueError, match="block"):
        Feed("cka", block=0)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("cross", [True, False])
def test_feed_reuses_the_replaced_state_bit_for_bit(debiased, cross):
    # Feed(block=) lets its accumulator write each update's products into the arrays of the
    # state that the previous update replaced: the same bits as a LayerAccumulator fed the
    # same blocks, whose states are all fresh; the two arrays alternate
    from congruence.streaming.drive import Feed

    a, b = _model(120, 5), _model(120, 6, widths=(3, 4))
    b = b if cross else None
    feed = Feed("cka", {"debiased": debiased}, block=20, workers=2)
    plain = cg.LayerAccumulator("cka", debiased=debiased)
    ids = []
    for s in range(0, 120, 20):
        part_a = {k: v[s : s + 20] for k, v in a.items()}
        part_b = None if b is None else {k: v[s : s + 20] for k, v in b.items()}
        feed.push(part_a, part_b)
        plain.update(part_a, part_b)
        state = feed.acc._state
        ids.append(id(state.caa if state.layout.full else state.cab))
        assert (getattr(feed.acc, "_spare", None) is not None) == (s > 0)
    assert len(set(ids)) == 2 and ids[0] == ids[2] == ids[4]
    for mine, theirs in zip(feed.acc._state.matrices(), plain._state.matrices()):
        np.testing.assert_array_equal(mine[0], theirs[0])
    np.testing.assert_array_equal(feed.result().values, plain.result().values)
    assert "_spare" not in feed.acc.__getstate__()


def test_feed_blocks_check_every_block():
    # Feed(block=k) copies the rows into one float64 buffer as they arrive and checks a
    # later block by its shapes only: NaN and inf are still found (at the update, with the
    # message of as_matrix), and a block of other layers or widths is refused at its push
    from congruence.streaming.drive import Feed

    a, b = _model(40, 7), _model(40, 8, widths=(2, 5))

    def part(x, s, e):
        return {k: v[s:e] for k, v in x.items()}

    feed = Feed("cka", block=30)
    feed.push(part(a, 0, 10), part(b, 0, 10))
    bad = {k: v.copy() for k, v in part(b, 10, 20).items()}
    bad["l1"][3, 1] = np.nan
    bad["l1"][4, 0] = np.inf
    feed.push(part(a, 10, 20), bad)
    with pytest.raises(ValueError, match=r"b\['l1'\] of shape \(30, 5\) contains 2 non-finite"):
        feed.push(part(a, 20, 30), part(b, 20, 30))
    assert feed.acc.n == 0  # nothing was added
    feed = Feed("cka", block=30)
    feed.push(part(a, 0, 10), part(b, 0, 10))
    wide = part(b, 10, 20)
    wide["l0"] = np.ones((10, 3))
    with pytest.raises(ValueError, match=r"b\['l0'\] has 3 columns but earlier batches"):
        feed.push(part(a, 10, 20), wide)
    with pytest.raises(LayerNotFoundError):
        feed.push({"zz": a["l0"][10:20]}, part(b, 10, 20))
    with pytest.raises(ValueError, match="b was given in the first batch"):
        feed.push(part(a, 10, 20))
    # blocks of other types (lists, float16, ints) are validated and converted in full
    feed = Feed("cka", block=25)
    for s in range(0, 40, 10):
        x = {k: v[s : s + 10].tolist() for k, v in a.items()}
        y = {k: v[s : s + 10].astype(np.float16) for k, v in b.items()}
        feed.push(x, y)
    y16 = {k: v.astype(np.float16).astype(np.float64) for k, v in b.items()}
    want = cg.compare_layers(a, y16, "cka")
    np.testing.assert_allclose(feed.result().values, want.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_products_on_threads_give_the_same_bits(debiased, monkeypatch):
    # the products of a batch shared by 1, 2 or 3 threads: bitwise the same state
    monkeypatch.setattr(streaming_moments, "_THREADED_WORK", 0)
    monkeypatch.setattr(streaming_moments, "_CHUNK", 30)  # the cross block in 3 row chunks
    a, b = _model(300, 5, widths=(40, 7, 33)), _model(300, 6, widths=(25, 50))
    results = []
    for workers in (1, 2, 3):
        acc = LayerAccumulator("cka", debiased=debiased)
        acc._workers = workers
        _stream(acc, a, b, [100, 170])
        results.append(acc)
    for acc in results[1:]:
        assert np.array_equal(acc.result().values, results[0].result().values)
        for M, M0 in zip(acc._state.matrices(), results[0]._state.matrices()):
            assert np.array_equal(M[0], M0[0])
    want = cg.compare_layers(a, b, "cka", debiased=debiased)
    np.testing.assert_allclose(results[1].result().values, want.values, rtol=0, atol=1e-12)
    x, y = np.ones((4, 2)), np.arange(12.0).reshape(4, 3)
    got = streaming_moments._products([(x, x), (x, y), (y, y)], 2)
    for g, w in zip(got, [x.T @ x, x.T @ y, y.T @ y]):
        np.testing.assert_array_equal(g, w)


def test_product_threads_after_fork(monkeypatch):
    # the product threads are kept between calls; a forked child (whose copy of the pool has
    # no threads) must make its own pool instead of waiting forever
    monkeypatch.setattr(streaming_moments, "_THREADED_WORK", 0)
    x, y = np.arange(12.0).reshape(4, 3), np.ones((4, 2))
    pairs = [(x, x), (x, y)]
    streaming_moments._products(pairs, 2)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        signal.alarm(60)  # a child waiting on threads that do not exist dies (SIGALRM)
        try:
            got = streaming_moments._products(pairs, 2)
            code = 0 if np.array_equal(got[1], x.T @ y) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = streaming_moments._products(pairs, 2)
    np.testing.assert_array_equal(got[0], x.T @ x)


def test_layers_list_input_and_merge():
    a = _model(60, 2)
    lst = list(a.values())
    acc1 = LayerAccumulator().update([x[:25] for x in lst])
    acc2 = LayerAccumulator().update([x[25:] for x in lst])
    acc1.merge(acc2)
    want = cg.compare_layers(lst)
    assert acc1.result().rows == ("0", "1", "2")
    np.testing.assert_allclose(acc1.result().values, want.values, atol=1e-12)


def test_layers_errors():
    a = _model(20, 0)
    with pytest.raises(
        ValueError,
        match=r"kernel='rbf' cannot be accumulated over batches: expected kernel='linear'",
    ):
        LayerAccumulator("cka", kernel="rbf")
    with pytest.raises(
        ValueError, match=r"measure='cca' is invalid; expected one of 'cka', 'hsic'"
    ):
        LayerAccumulator("cca")
    with pytest.raises(TypeError, match="unexpected parameter"):
        LayerAccumulator("cka", unbiased=True)
    with pytest.raises(ValueError, match=r"debiased='no' is invalid"):
        LayerAccumulator("cka", debiased="no")
    acc = LayerAccumulator().update(a)
    with pytest.raises(
        ValueError,
        match=r"a has layers \['l0', 'l1'\] but the first batch had \['l0', 'l1', 'l2'\]",
    ):
        acc.update({"l0": a["l0"], "l1": a["l1"]})
    with pytest.raises(
        ValueError, match=r"a\['l1'\] has 4 columns but earlier batches of that layer had 3"
    ):
        acc.update({"l0": a["l0"], "l1": np.ones((20, 4)), "l2": a["l2"]})
    with pytest.raises(ValueError, match=r"b was given in the first batch but not in this one"):
        acc.update(a, {"x": np.ones((20, 2))})
    with pytest.raises(
        ValueError, match=r"a\['l1'\] has shape \(19, 3\) but a\['l0'\] has 20 rows"
    ):
        acc.update({"l0": a["l0"], "l1": a["l1"][:19], "l2": a["l2"]})
    with pytest.raises(ValueError, match=r"a must map layer names"):
        acc.update(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"a holds no layers"):
        acc.update({})
    with pytest.raises(ValueError, match=r"other compares layers"):
        acc.merge(LayerAccumulator().update({"x": np.ones((3, 2))}))
    with pytest.raises(
        ValueError,
        match=r"LayerAccumulator has seen n=3 row\(s\); cka with debiased=True needs at least 4",
    ):
        LayerAccumulator(debiased=True).update({"x": np.arange(6.0).reshape(3, 2)}).result()


def test_layers_constant_layer_nan():
    a = {"c": np.full((12, 2), 3.0), "v": np.arange(24.0).reshape(12, 2) ** 1.5}
    acc = (
        LayerAccumulator()
        .update({k: v[:5] for k, v in a.items()})
        .update({k: v[5:] for k, v in a.items()})
    )
    with pytest.warns(DegenerateDataWarning, match=r"a\['c'\] has zero variance"):
        res = acc.result()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        want = cg.compare_layers(a)
    assert np.isnan(res.values[0]).all() and np.isnan(res.values[:, 0]).all()
    assert np.isnan(want.values[0, 1])
    assert res["v", "v"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- minibatch CKA


def test_minibatch_equals_reference_pair():
    X, Y = _pair(300, 6, 4, seed=11, offset=5.0)
    want = ref_minibatch_cka(
        [X[s : s + 60] for s in range(0, 300, 60)], [Y[s : s + 60] for s in range(0, 300, 60)]
    )
    assert minibatch_cka(X, Y, batch_size=60) == pytest.approx(want, abs=1e-12)
    # it is a different estimator than CKA
    assert abs(want - cg.cka(X, Y)) > 1e-3


@pytest.mark.parametrize("ragged", ["merge", "drop"])
def test_minibatch_ragged_rule(ragged):
    X, Y = _pair(230, 5, 3, seed=12)
    # batch_size 50 over 230 rows: 4 full batches and 30 rows left over
    if ragged == "merge":
        bounds = [(0, 50), (50, 100), (100, 150), (150, 230)]  # the 30 rows join the last batch
    else:
        bounds = [(0, 50), (50, 100), (100, 150), (150, 200)]  # the 30 rows are left out
    assert batch_bounds(230, 50, ragged) == bounds
    want = ref_minibatch_cka([X[s:e] for s, e in bounds], [Y[s:e] for s, e in bounds])
    assert minibatch_cka(X, Y, batch_size=50, ragged=ragged) == pytest.approx(want, abs=1e-12)
    other = [(0, 50), (50, 100), (100, 150), (150, 200), (200, 230)]
    alt = ref_minibatch_cka([X[s:e] for s, e in other], [Y[s:e] for s, e in other])
    assert abs(alt - want) > 1e-6  # the rule matters


def test_batch_bounds_edge_cases():
    assert batch_bounds(7, 10) == [(0, 7)]
    assert batch_bounds(20, 10) == [(0, 10), (10, 20)]
    assert batch_bounds(20, 10, ragged="drop") == [(0, 10), (10, 20)]
    with pytest.raises(
        ValueError, match=r"ragged='drop' with batch_size=10 leaves no batch of the n=7 rows"
    ):
        batch_bounds(7, 10, ragged="drop")
    with pytest.raises(
        ValueError, match=r"ragged='keep' is invalid; expected one of 'merge', 'drop'"
    ):
        batch_bounds(7, 3, ragged="keep")


def test_minibatch_single_batch_is_debiased_cka():
    X, Y = _pair(90, 4, 6, seed=13)
    assert minibatch_cka(X, Y, batch_size=90) == pytest.approx(
        cg.cka(X, Y, debiased=True), abs=1e-12
    )
    assert minibatch_cka(X, Y, batch_size=500) == pytest.approx(
        cg.cka(X, Y, debiased=True), abs=1e-12
    )


@pytest.mark.parametrize("with_b", [False, True])
@pytest.mark.parametrize("widths", [(3, 5, 2), (40, 70, 33)])  # feature route / Gram route
def test_minibatch_layers_equal_reference(with_b, widths, monkeypatch):
    a = _model(120, 3, widths=widths)
    b = _model(120, 4, widths=(4, widths[1])) if with_b else None
    batches = [(0, 32), (32, 64), (64, 120)]
    acc = MinibatchCKA()
    for s, e in batches:
        acc.update(
            {k: v[s:e] for k, v in a.items()},
            None if b is None else {k: v[s:e] for k, v in b.items()},
        )
    res = acc.result()
    cols = a if b is None else b
    assert res.rows == tuple(a) and res.cols == tuple(cols)
    want = np.array(
        [
            [
                ref_minibatch_cka([x[s:e] for s, e in batches], [y[s:e] for s, e in batches])
                for y in cols.values()
            ]
            for x in a.values()
        ]
    )
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-12)
    # the Gram route in several row blocks gives the same
    monkeypatch.setattr(streaming_minibatch, "_GRAM_BLOCK_BYTES", 8 * 64 * 5)
    acc2 = MinibatchCKA()
    for s, e in batches:
        acc2.update(
            {k: v[s:e] for k, v in a.items()},
            None if b is None else {k: v[s:e] for k, v in b.items()},
        )
    np.testing.assert_allclose(acc2.result().values, want, rtol=0, atol=1e-12)


def test_minibatch_merge_and_nan():
    a = {"c": np.ones((40, 2)), "v": np.random.default_rng(0).standard_normal((40, 3))}
    p = MinibatchCKA().update({k: v[:20] for k, v in a.items()})
    q = MinibatchCKA().update({k: v[20:] for k, v in a.items()})
    whole = (
        MinibatchCKA()
        .update({k: v[:20] for k, v in a.items()})
        .update({k: v[20:] for k, v in a.items()})
    )
    with pytest.warns(
        DegenerateDataWarning, match=r"a\['c'\] has zero variance within every batch"
    ):
        merged = p.merge(q).result()
        np.testing.assert_array_equal(np.isnan(merged.values), np.isnan(whole.result().values))
    assert p.batches == 2 and p.n == 40
    assert np.isnan(merged["c", "v"]) and merged["v", "v"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"other compares layers"):
        p.merge(MinibatchCKA().update({"x": np.ones((5, 2))}))


def test_minibatch_errors():
    X, Y = _pair(30)
    acc = MinibatchCKA()
    with pytest.raises(
        ValueError, match=r"the batch has 3 row\(s\); minibatch CKA needs at least 4 rows per batch"
    ):
        acc.update({"x": X[:3]}, {"y": Y[:3]})
    with pytest.raises(ValueError, match=r"MinibatchCKA has no batch yet"):
        acc.result()
    with pytest.raises(
        ValueError, match=r"batch_size=3 is out of range; expected a value in \[4, inf\)"
    ):
        minibatch_cka(X, Y, batch_size=3)
    with pytest.raises(ValueError, match=r"batch_size=4.5 is invalid; expected an integer"):
        minibatch_cka(X, Y, batch_size=4.5)
    with pytest.raises(
        ValueError,
        match=r"X has shape \(3, 5\): 3 row\(s\), but this measure needs at least 4 rows",
    ):
        minibatch_cka(X[:3], Y[:3], batch_size=4)
    acc.update({"x": X[:4]}, {"y": Y[:4]})
    with pytest.raises(ValueError, match=r"b has layers \['z'\] but the first batch had \['y'\]"):
        acc.update({"x": X[:4]}, {"z": Y[:4]})


# --------------------------------------------------------------------------- RBF at large n


def test_rbf_cka_at_n3000_equals_reference():
    rng = np.random.default_rng(21)
    n = 3000
    X = rng.standard_normal((n, 6))
    Y = np.sin(X @ rng.standard_normal((6, 4))) + 0.3 * rng.standard_normal((n, 4))
    want = ref_rbf_cka(X, Y, 0.8)
    assert cg.cka(X, Y, kernel="rbf", sigma_frac=0.8) == pytest.approx(want, abs=1e-10)


# --------------------------------------------------------------------------- memory bound


_MEMORY_CHILD = textwrap.dedent(
    """
    import numpy as np
    from congruence.streaming import CKAAccumulator

    def hwm_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    rng = np.random.default_rng(0)
    CKAAccumulator(debiased=True).update(rng.standard_normal((50, 32)), rng.standard_normal((50, 16))).value()
    base = hwm_kib()
    acc = CKAAccumulator(debiased=True)
    rows, batch = 10**6, 20000
    for _ in range(rows // batch):
        X = rng.standard_normal((batch, 32))
        Y = X[:, :16] + rng.standard_normal((batch, 16))
        acc.update(X, Y)
    print(acc.n, hwm_kib() - base, acc.value())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_peak_memory_bounded_over_a_million_rows():
    # one BLAS thread: the products are tiny, and threads only add noise on a busy machine
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    n, grown_kib, value = out.stdout.split()
    assert int(n) == 10**6
    held_mib = 10**6 * 48 * 8 / 2**20  # holding the rows: 366 MiB
    grown_mib = int(grown_kib) / 1024
    assert grown_mib < 40, f"peak memory grew by {grown_mib:.1f} MiB while streaming"
    assert grown_mib < held_mib / 9
    assert 0.2 < float(value) < 0.9


# --------------------------------------------------------------------------- threads
#
# Eight threads share one accumulator. Every update must count: the row count must be exact,
# and the value equal to the serial one up to the order of the floating-point merges. The
# merges add centred co-moments (positive terms for the self blocks) and a rank-one
# correction, each adding a relative rounding of a few eps per step; over the ~400 merges here
# a different order moves the value by at most ~400 * 4 * 1.1e-16 ~ 2e-13 relative. rtol=1e-11
# leaves that margin while a single lost batch (1/400 of the rows) moves CKA by ~1e-3.

_THREADS = 8


def _threaded(work, n_threads=_THREADS):
    """Run ``work(k)`` for k = 0..n_threads-1 in threads started together; re-raise errors."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def run(k):
        try:
            barrier.wait()
            work(k)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _thread_data(n=3000, p=24, seed=40):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 2.0
    Y = np.tanh(X @ rng.standard_normal((p, p))) + 0.3 * rng.standard_normal((n, p))
    return X, Y


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("cls", [CKAAccumulator, HSICAccumulator])
def test_pair_accumulator_shared_by_threads(cls, debiased):
    X, Y = _thread_data()
    bounds = [(s, s + 10) for s in range(0, X.shape[0], 10)]  # 300 batches of 10 rows
    serial = cls(debiased)
    for s, e in bounds:
        serial.update(X[s:e], Y[s:e])
    for trial in range(3):
        shared = cls(debiased)
        _threaded(lambda k: [shared.update(X[s:e], Y[s:e]) for s, e in bounds[k::_THREADS]])
        assert shared.n == X.shape[0] == 3000
        assert shared.value() == pytest.approx(serial.value(), rel=1e-11, abs=0)


def test_layer_accumulator_shared_by_threads():
    X, Y = _thread_data(seed=41)
    a = {"x": X, "x2": X[:, :7] ** 2}
    b = {"y": Y}
    bounds = [(s, s + 8) for s in range(0, X.shape[0], 8)]
    serial = LayerAccumulator("cka", debiased=True)
    for s, e in bounds:
        serial.update({k: v[s:e] for k, v in a.items()}, {k: v[s:e] for k, v in b.items()})
    shared = LayerAccumulator("cka", debiased=True)
    _threaded(
        lambda k: [
            shared.update({q: v[s:e] for q, v in a.items()}, {q: v[s:e] for q, v in b.items()})
            for s, e in bounds[k::_THREADS]
        ]
    )
    assert shared.n == 3000
    np.testing.assert_allclose(shared.result().values, serial.result().values, rtol=1e-11, atol=0)


def test_minibatch_shared_by_threads():
    X, Y = _thread_data(seed=42)
    bounds = batch_bounds(X.shape[0], 32)
    serial = MinibatchCKA()
    for s, e in bounds:
        serial.update({"x": X[s:e]}, {"y": Y[s:e]})
    shared = MinibatchCKA()
    _threaded(
        lambda k: [shared.update({"x": X[s:e]}, {"y": Y[s:e]}) for s, e in bounds[k::_THREADS]]
    )
    assert (shared.n, shared.batches) == (serial.n, serial.batches) == (3000, len(bounds))
    # a sum of per-batch terms in another order: relative differences of a few eps per term
    np.testing.assert_allclose(shared.result().values, serial.result().values, rtol=1e-11, atol=0)


def test_concurrent_merges_and_reads():
    X, Y = _thread_data(seed=43)
    bounds = [(s, s + 50) for s in range(0, X.shape[0], 50)]
    parts = [CKAAccumulator().update(X[s:e], Y[s:e]) for s, e in bounds]
    total = CKAAccumulator()
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            if total.n >= 2:
                v = total.value()
                seen.append(v)
                assert 0.0 <= v <= 1.0

    r = threading.Thread(target=reader)
    r.start()
    try:
        _threaded(lambda k: [total.merge(p) for p in parts[k::_THREADS]])
    finally:
        stop.set()
        r.join()
    assert total.n == 3000
    assert total.value() == pytest.approx(cg.cka(X, Y), rel=1e-11, abs=0)
    assert all(p.n == 50 for p in parts)  # merged accumulators are unchanged


def test_accumulators_copy_and_pickle_with_their_lock():
    X, Y = _pair(40)
    for acc in (
        CKAAccumulator(debiased=True).update(X, Y),
        LayerAccumulator().update({"x": X}),
        MinibatchCKA().update({"x": X}),
    ):
        for twin in (acc.copy(), pickle.loads(pickle.dumps(acc))):
            assert twin._lock is not acc._lock
            a, b = twin.value(), acc.value()
            if isinstance(a, LayerComparison):
                a, b = a.values, b.values
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- interruption


def _interrupt_once(monkeypatch, module, name):
    """Make ``<module>.<name>`` raise KeyboardInterrupt on its next call (midway in an
    update: the batch's products are done, the combination with the state has begun)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def boom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, boom)
    return calls


@pytest.mark.parametrize("debiased", [False, True])
def test_interrupted_update_leaves_pair_accumulator_unchanged(monkeypatch, debiased):
    X, Y = _pair(300, 6, 4, seed=50, offset=3.0)
    acc = CKAAccumulator(debiased).update(X[:100], Y[:100])
    before = (acc.n, acc.value(), acc.hsic())
    calls = _interrupt_once(monkeypatch, streaming_moments, "_rank1")
    with pytest.raises(KeyboardInterrupt):
        acc.update(X[100:200], Y[100:200])
    assert calls["n"] == 1  # interrupted inside the combination
    assert (acc.n, acc.value(), acc.hsic()) == before
    # the next updates give exactly what an accumulator that never saw the batch gives
    acc.update(X[200:], Y[200:])
    clean = CKAAccumulator(debiased).update(X[:100], Y[:100]).update(X[200:], Y[200:])
    assert (acc.n, acc.value(), acc.hsic()) == (clean.n, clean.value(), clean.hsic())


def test_interrupted_update_and_bad_batches_leave_layers_unchanged(monkeypatch):
    a = _model(200, seed=51)
    first = {k: v[:80] for k, v in a.items()}
    acc = LayerAccumulator("hsic", unbiased=True).update(first)
    before = acc.result().values.copy()
    _interrupt_once(monkeypatch, streaming_moments, "_rank1")
    with pytest.raises(KeyboardInterrupt):
        acc.update({k: v[80:] for k, v in a.items()})
    np.testing.assert_array_equal(acc.result().values, before)
    bad = {k: v[80:].copy() for k, v in a.items()}
    bad["l1"][3, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite"):
        acc.update(bad)
    renamed = {("l_1" if k == "l1" else k): v[80:] for k, v in a.items()}
    with pytest.raises(LayerNotFoundError, match=r"no layer named 'l_1' .*did you mean 'l1'"):
        acc.update(renamed)
    assert acc.n == 80
    np.testing.assert_array_equal(acc.result().values, before)


def test_interrupted_minibatch_update_leaves_it_unchanged(monkeypatch):
    X, Y = _pair(120, seed=52)
    acc = MinibatchCKA().update({"x": X[:40]}, {"y": Y[:40]})
    before = acc.result().values.copy()
    _interrupt_once(monkeypatch, streaming_minibatch, "_add_sums")
    with pytest.raises(KeyboardInterrupt):
        acc.update({"x": X[40:80]}, {"y": Y[40:80]})
    assert (acc.n, acc.batches) == (40, 1)
    np.testing.assert_array_equal(acc.result().values, before)
    with pytest.raises(ValueError, match=r"the batch has 3 row\(s\)"):
        acc.update({"x": X[80:83]}, {"y": Y[80:83]})
    assert (acc.n, acc.batches) == (40, 1)


# --------------------------------------------------------------------------- extreme values
#
# float32 inputs are the values they hold: the target is the formula evaluated in float64 on
# those values (reference_streaming centres in float64, then builds the Gram matrices).


def _extreme(kind, n=240, seed=60):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 8))
    W = np.tanh(Z @ rng.standard_normal((8, 5))) + 0.7 * rng.standard_normal((n, 5))
    if kind == "huge":
        return (Z * 1e20).astype(np.float32), W.astype(np.float32)
    if kind == "huge_both":
        return (Z * 1e20).astype(np.float32), (W * 3e18).astype(np.float32)
    # per-feature offsets of 1e4: float32 keeps ~3 decimals of the unit-scale signal
    return (Z + 1e4).astype(np.float32), (W - 1e4 * rng.uniform(0.5, 1, 5)).astype(np.float32)


@pytest.mark.parametrize("kind", ["huge", "huge_both", "offset"])
@pytest.mark.parametrize("debiased", [False, True])
def test_float32_extremes_equal_float64_formula(kind, debiased):
    X, Y = _extreme(kind)
    want_cka = ref_linear_cka(X, Y, debiased=debiased)
    want_hsic = ref_linear_hsic(X, Y, unbiased=debiased)
    assert 0.05 < want_cka < 0.99  # not a trivial value
    cka_acc, hsic_acc = CKAAccumulator(debiased), HSICAccumulator(debiased)
    layers = LayerAccumulator("cka", debiased=debiased)
    for s in range(0, X.shape[0], 70):  # ragged: 70, 70, 70, 30
        cka_acc.update(X[s : s + 70], Y[s : s + 70])
        hsic_acc.update(X[s : s + 70], Y[s : s + 70])
        layers.update({"x": X[s : s + 70]}, {"y": Y[s : s + 70]})
    assert cka_acc.value() == pytest.approx(want_cka, rel=1e-6, abs=0)
    assert hsic_acc.value() == pytest.approx(want_hsic, rel=1e-6, abs=0)
    assert layers.result()["x", "y"] == pytest.approx(want_cka, rel=1e-6, abs=0)
    assert layers.hsic()["x", "y"] == pytest.approx(want_hsic, rel=1e-6, abs=0)


@pytest.mark.parametrize("kind", ["huge", "huge_both", "offset"])
def test_float32_extremes_minibatch(kind):
    X, Y = _extreme(kind)
    bounds = [(0, 64), (64, 128), (128, 192), (192, 240)]  # the last batch is ragged (48)
    want = ref_minibatch_cka([X[s:e] for s, e in bounds], [Y[s:e] for s, e in bounds])
    acc = MinibatchCKA()
    for s, e in bounds:
        acc.update({"x": X[s:e]}, {"y": Y[s:e]})
    assert 0.05 < want < 0.99
    assert acc.result()["x", "y"] == pytest.approx(want, rel=1e-6, abs=0)


def test_overflowing_batch_is_refused_and_not_added():
    X, Y = _pair(20)
    acc = CKAAccumulator().update(X[:10], Y[:10])
    with pytest.raises(
        ValueError, match=r"values up to 1e\+200 in magnitude, whose products overflow float64"
    ):
        acc.update(np.full((10, 5), 1e200) * np.arange(1, 11)[:, None] / 10, Y[10:])
    assert acc.n == 10 and math.isfinite(acc.value())


@pytest.mark.parametrize("scale", [1e60, 1e-60, 1e100, 1e-100, 1e140, 1e-140])
def test_large_and_small_magnitudes_give_the_in_memory_values(scale):
    # The Frobenius inner products of the co-moments are squares of squares: at 1e100 they
    # overflowed (CKA came back 0.0) and at 1e-100 underflowed (nan), silently. CKA does not
    # depend on the scale; HSIC scales by its square for one scaled side.
    rng = np.random.default_rng(71)
    X, Z = rng.standard_normal((60, 4)), rng.standard_normal((60, 3))
    a, b = {"x": X}, {"z": scale * Z}
    want = cg.compare_layers({"x": X}, {"z": Z}).values[0, 0]
    assert 0.01 < want < 0.99
    assert cg.stream_layers(a, b, progress=False)["x", "z"] == pytest.approx(want, rel=1e-12)
    assert CKAAccumulator().update(X, scale * Z).value() == pytest.approx(want, rel=1e-12)
    # the debiased state also holds fourth powers: exact within 1e+-72, refused beyond
    acc = LayerAccumulator("cka", debiased=True)
    if 1e-70 < scale < 1e70:
        acc.update(a, b)
        assert acc.result()["x", "z"] == pytest.approx(cg.cka(X, Z, debiased=True), rel=1e-10)
    else:
        with pytest.raises(ValueError, match="products (overflow|underflow) float64"):
            acc.update(a, b)
    h = cg.stream_layers(a, b, measure="hsic", progress=False)["x", "z"]
    assert h == pytest.approx(scale * scale * cg.hsic(X, Z), rel=1e-12)


def test_layers_varying_below_the_normal_range_are_refused():
    # spreads below 2**-480: the co-moments' products would be subnormal (bits lost) or 0
    X = np.random.default_rng(72).standard_normal((30, 3))
    with pytest.raises(ValueError, match=r"vary by at most .* products underflow float64"):
        cg.stream_layers({"x": X}, {"z": 1e-160 * X}, progress=False)
    with pytest.raises(ValueError, match="products underflow float64"):
        CKAAccumulator().update(1e-300 * X, X)
    # the minibatch accumulator sums fourth powers: 1e-100 gave nan silently
    with pytest.raises(ValueError, match="products underflow float64"):
        MinibatchCKA().update([X[:10]], [1e-100 * X[:10]])
    # the function has the whole arrays: it scales each by a power of two first
    Y = np.tanh(X)
    want = cg.minibatch_cka(X, Y, batch_size=10)
    for scale in (1e-60, 1e-100, 1e-300, 1e300):
        assert cg.minibatch_cka(X, scale * Y, batch_size=10) == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------- degenerate data


def test_constant_layer_warns_and_names_it():
    rng = np.random.default_rng(70)
    a = {"c": np.full((30, 3), 0.1), "v": rng.standard_normal((30, 4))}
    acc = LayerAccumulator("cka")
    for s in range(0, 30, 7):
        acc.update({k: v[s : s + 7] for k, v in a.items()})
    with pytest.warns(
        DegenerateDataWarning,
        match=r"a\['c'\] has zero variance: every row is identical; cka is undefined \(nan\)",
    ):
        res = acc.result()
    assert np.isnan(res.values[0]).all() and np.isnan(res.values[:, 0]).all()
    assert res["v", "v"] == pytest.approx(1.0, abs=1e-12)
    with pytest.warns(
        DegenerateDataWarning,
        match=r"a\['c'\] has zero variance: every row is identical; hsic is 0",
    ):
        h = acc.hsic()
    assert h["c", "v"] == 0.0 and h["c", "c"] == 0.0 and h["v", "v"] > 0


def test_near_constant_columns_follow_the_relative_rule():
    # values 0.1 and the next float up: a 1-ulp spread, identical rows by the relative rule
    # (peak-to-peak <= 8 eps max|x|) although the computed centred values are not all zero
    X = np.full((12, 2), 0.1)
    X[::2, 0] = np.nextafter(0.1, 1.0)
    Y = np.arange(24.0).reshape(12, 2) ** 1.5
    for debiased in (False, True):
        acc = CKAAccumulator(debiased).update(X[:5], Y[:5]).update(X[5:], Y[5:])
        with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance"):
            assert math.isnan(acc.value())
        h = HSICAccumulator(debiased).update(X, Y)
        with pytest.warns(DegenerateDataWarning, match=r"^X has zero variance.*hsic is 0"):
            assert h.value() == 0.0


def test_no_warning_for_ordinary_data():
    X, Y = _pair(50, seed=71)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CKAAccumulator(True).update(X, Y).value()
        LayerAccumulator().update({"x": X, "y": Y}).result()
        MinibatchCKA().update({"x": X}, {"y": Y}).result()


def test_minibatch_constant_in_every_batch_or_in_some():
    rng = np.random.default_rng(72)
    v = rng.standard_normal((60, 3))
    w = np.tanh(v @ rng.standard_normal((3, 2)))
    part = v[:, :2].copy()
    part[:20] = 5.0  # constant in the first batch only
    bounds = [(0, 20), (20, 40), (40, 60)]
    acc = MinibatchCKA()
    for s, e in bounds:
        acc.update({"c": np.ones((e - s, 2)), "part": part[s:e]}, {"w": w[s:e]})
    with pytest.warns(
        DegenerateDataWarning, match=r"a\['c'\] has zero variance within every batch"
    ):
        res = acc.result()
    assert np.isnan(res["c", "w"])
    # a batch where the layer is constant adds 0 to every sum (K = 0 in that batch)
    want = ref_minibatch_cka([part[s:e] for s, e in bounds], [w[s:e] for s, e in bounds])
    assert res["part", "w"] == pytest.approx(want, abs=1e-12)


def test_minibatch_ragged_batches_fed_by_hand():
    # each batch's unbiased HSIC counts once (the mean over batches), whatever its size
    X, Y = _pair(130, 4, 3, seed=73, offset=2.0)
    bounds = [(0, 50), (50, 100), (100, 130)]
    acc = MinibatchCKA()
    for s, e in bounds:
        acc.update([X[s:e]], [Y[s:e]])
    want = ref_minibatch_cka([X[s:e] for s, e in bounds], [Y[s:e] for s, e in bounds])
    assert acc.result().values[0, 0] == pytest.approx(want, abs=1e-12)
    pooled = ref_minibatch_cka([X[:100], X[100:]], [Y[:100], Y[100:]])
    assert abs(pooled - want) > 1e-6  # the split matters, so the check can fail


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize(
    "modname",
    [
        "congruence.streaming",
        "congruence.streaming.exact",
        "congruence.streaming.minibatch",
        "congruence.streaming.drive",
    ],
)
def test_doctests(modname):
    module = importlib.import_module(modname)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- one parser of layer sets


def test_every_layer_api_reads_layer_sets_the_same_way():
    """compare_layers, the accumulators, stream_layers and Dask share one parser: the same
    names for lists, the same refusals."""
    pytest.importorskip("dask")
    from congruence.distributed import dask_compare_layers
    from congruence.io import stream_layers

    x = _model(40, seed=70)
    listed = list(x.values())
    apis = {
        "compare_layers": lambda a, b=None: cg.compare_layers(a, b),
        "LayerAccumulator": lambda a, b=None: LayerAccumulator().update(a, b).result(),
        "MinibatchCKA": lambda a, b=None: MinibatchCKA().update(a, b).result(),
        "stream_layers": lambda a, b=None: stream_layers(a, b, batch_size=16),
        "dask": lambda a, b=None: dask_compare_layers(a, b, compute=True),
    }
    for name, api in apis.items():
        res = api(listed, {"z": listed[0]})
        assert res.rows == tuple(str(i) for i in range(len(listed))) and res.cols == ("z",), name
        with pytest.raises(
            ValueError, match=r"^a must map layer names to .* \(a dict\) or be a list of them"
        ):
            api(listed[0])
        with pytest.raises(ValueError, match=r"^b holds no layers$"):
            api(x, {})
        with pytest.raises(ValueError, match=r"^a names layer\(s\) \['1'\] twice"):
            api({1: listed[0], "1": listed[1]})
        with pytest.raises(ValueError, match=r"b\['short'\] .* but a\['l0'\] has 40 rows"):
            api(x, {"short": listed[0][:-3]})


def test_stream_layers_reads_tensors_and_names_layers_in_errors():
    # a layer set that works in compare_layers works here (a torch tensor once failed deep in
    # the readers: "Cannot interpret 'torch.float64' as a data type"), and errors on arrays
    # name the layer, not "array(100,)"
    import torch

    rng = np.random.default_rng(73)
    X, Y = rng.standard_normal((60, 4)), rng.standard_normal((60, 3))
    want = cg.compare_layers({"x": X}, {"y": Y})["x", "y"]
    got = cg.stream_layers({"x": torch.tensor(X)}, {"y": Y}, progress=False)["x", "y"]
    assert got == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match=r"a\['x'\] has shape \(100,\) \(1-D\)"):
        cg.stream_layers({"x": np.zeros(100)}, {"y": Y}, progress=False)
    with pytest.raises(ValueError, match=r"b\['y'\] has shape \(0, 3\)"):
        cg.stream_layers({"x": X}, {"y": np.zeros((0, 3))}, progress=False)


def test_minibatch_cka_is_a_registered_measure():
    # DECISIONS 3: the name in the results of estimator="minibatch" is a measure of the
    # registry, usable wherever a measure name is
    rng = np.random.default_rng(74)
    X = rng.standard_normal((100, 5))
    Y = np.tanh(X @ rng.standard_normal((5, 3))) + 0.3 * rng.standard_normal((100, 3))
    m = cg.get_measure("minibatch_cka")
    assert m.family == "kernel" and m.kind == "similarity" and m.paired
    res = cg.compare_layers({"x": X}, {"y": Y}, "minibatch_cka", batch_size=20, progress=False)
    want = ref_minibatch_cka(
        [X[s : s + 20] for s in range(0, 100, 20)], [Y[s : s + 20] for s in range(0, 100, 20)]
    )
    assert res["x", "y"] == pytest.approx(want, rel=1e-12)
    streamed = cg.stream_layers(
        {"x": X}, {"y": Y}, estimator="minibatch", batch_size=20, progress=False
    )
    assert cg.get_measure(streamed.measure) is m
    assert streamed["x", "y"] == pytest.approx(want, rel=1e-12)
    # without batch_size: one batch of every row, the debiased CKA
    assert cg.minibatch_cka(X, Y) == pytest.approx(cg.cka(X, Y, debiased=True), rel=1e-12)
