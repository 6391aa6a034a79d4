"""The per-layer contract of every registered representational measure, driven by the registry.

For each measure and each of its registry variants (``Measure.variants``), against explicit
loops of the measure's own function (the definition; nan where it gives nan):

* ``compare_layers(a, b)`` and ``compare_layers(a)``;
* ``pair(prepare(x), prepare(y)) == func(x, y)``;
* where ``reindexable``: ``reindex(prepare(x), idx)`` pairs like ``prepare(x[idx])``, for a
  permutation and for a resample with replacement;
* where a permutation fast path exists (``permuted``, or ``reindex``): ``permuted`` equals
  the loop ``func(x, y[perm])`` over the permutations.

Every comparison is to 1e-10 (relative to the largest value, at least absolute).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import congruence as cg
from congruence._registry import measures
from congruence.errors import DegenerateDataWarning

CASES = [
    pytest.param(m, dict(v), id=f"{m.name}-{','.join(f'{k}={x}' for k, x in v.items())}")
    for m in measures()
    if m.inputs == "representations"
    for v in m.variants
]

PERMUTABLE = [
    case
    for case in CASES
    if case.values[0].layers.permuted is not None or case.values[0].reindexable
]
REINDEXABLE = [case for case in CASES if case.values[0].reindexable]


def _data(m, params, seed=0):
    """Layers ``a`` (3) and ``b`` (2) of one set of rows: small widths (3-8) on ``n`` rows,
    or widths above ``n`` for a measure defined only for ``p >= n``."""
    rng = np.random.default_rng(seed)
    n = max(48, m.min_rows(**params)) if not m.wide else 20
    widths = (24, 27, 30, 25, 22) if m.wide else (3, 5, 8, 4, 6)
    z = rng.standard_normal((n, 3))
    layers = []
    for i, p in enumerate(widths):
        x = np.tanh(z @ rng.standard_normal((3, p))) + 0.3 * rng.standard_normal((n, p))
        layers.append(x + i)
    return {"h1": layers[0], "h2": layers[1], "h3": layers[2]}, {"u": layers[3], "v": layers[4]}


def _loop(m, a, b, params):
    return np.array([[m.func(x, y, **params) for y in b.values()] for x in a.values()])


def _assert_close(got, want, tol=1e-10):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol * scale)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        yield


@pytest.mark.parametrize("m, params", CASES)
def test_compare_layers_equals_the_loop_of_the_function(m, params):
    a, b = _data(m, params)
    _assert_close(cg.compare_layers(a, b, measure=m.name, **params).values, _loop(m, a, b, params))
    _assert_close(cg.compare_layers(a, measure=m.name, **params).values, _loop(m, a, a, params))


@pytest.mark.parametrize("m, params", CASES)
def test_pair_of_preparations_equals_the_function(m, params):
    a, b = _data(m, params, seed=1)
    for x, y in ((a["h1"], b["u"]), (b["v"], a["h3"]), (a["h2"], a["h2"].copy())):
        got = m.pair(m.prepare(x, name="x", **params), m.prepare(y, name="y", **params), **params)
        _assert_close(got, m.func(x, y, **params))


@pytest.mark.parametrize("m, params", REINDEXABLE)
def test_reindex_equals_preparing_the_indexed_rows(m, params):
    a, b = _data(m, params, seed=2)
    x, y = a["h2"], b["u"]
    n = x.shape[0]
    rng = np.random.default_rng(3)
    px, py = m.prepare(x, **params), m.prepare(y, **params)
    for idx in (rng.permutation(n), rng.integers(0, n, size=n)):
        want = m.pair(m.prepare(x[idx], **params), m.prepare(y[idx], **params), **params)
        got = m.pair(m.reindex(px, idx, **params), m.reindex(py, idx, **params), **params)
        _assert_close(got, want)
        _assert_close(got, m.func(x[idx], y[idx], **params))


@pytest.mark.parametrize("m, params", PERMUTABLE)
def test_permuted_equals_the_loop_over_permutations(m, params):
    a, b = _data(m, params, seed=4)
    x, y = a["h1"], b["v"]
    rng = np.random.default_rng(5)
    perms = np.array([rng.permutation(x.shape[0]) for _ in range(4)])
    got = m.permuted(m.prepare(x, **params), m.prepare(y, **params), perms, **params)
    assert got.shape == (4,)
    _assert_close(got, [m.func(x, y[perm], **params) for perm in perms])


def test_the_contract_covers_every_family_here():
    """Every measure of these families declares its own preparation and pair step."""
    for family in ("cca", "alignment", "neighbors", "topology", "descriptive"):
        for name in cg.list_measures(family=family):
            layers = cg.get_measure(name).layers
            assert layers.prepare is not None and layers.pair is not None, name


def test_neighbour_lists_with_ties_are_searched_again_when_permuted():
    """Duplicated rows tie: relabelling the lists would break the index rule, so the
    permuted rows are searched again; without ties the lists are relabelled (no search)."""
    import congruence.measures.neighbors as nb

    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 4))
    y = rng.standard_normal((30, 5))
    y[10:20] = y[:10]  # ten duplicated rows: distance 0 ties
    perms = np.array([rng.permutation(30) for _ in range(3)])
    for name in ("knn_jaccard", "rank_similarity", "second_order_cosine"):
        m = cg.get_measure(name)
        want = [m.func(x, y[perm], k=4) for perm in perms]
        _assert_close(m.permuted(m.prepare(x, k=4), m.prepare(y, k=4), perms, k=4), want)
        want = [m.func(y, x[perm], k=4) for perm in perms]
        _assert_close(m.permuted(m.prepare(y, k=4), m.prepare(x, k=4), perms, k=4), want)
    searches = []
    real = nb._knn
    try:
        nb._knn = lambda X, k: searches.append(k) or real(X, k)
        m = cg.get_measure("knn_jaccard")
        px, py = m.prepare(x, k=4), m.prepare(y, k=4)
        searches.clear()
        m.permuted(py, px, perms, k=4)  # x has no ties: one check (k + 1), no search
        assert searches == [5]
        searches.clear()
        m.permuted(px, py, perms, k=4)  # y ties: the check, then one search per permutation
        assert searches == [5, 4, 4, 4]
    finally:
        nb._knn = real
