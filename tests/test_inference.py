"""Permutation tests and bootstrap intervals (congruence.inference), the kernel family's
permutation fast path, and compare_layers' p-values."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

import congruence as cg
from congruence import _core
from congruence._registry import get_measure, measures
from congruence.inference import bca_interval, permutations, pvalue

# ----------------------------------------------------------------------------- calibration


@pytest.mark.parametrize(
    "measure, params",
    [
        ("cka", {}),
        ("cka", {"kernel": "rbf"}),
        ("rsa", {}),
        ("orthogonal_procrustes", {}),
    ],
)
def test_pvalues_are_uniform_under_independence(measure, params):
    # 200 independent pairs at n = 16: the p-values of a valid test of a continuous statistic
    # are uniform on {1/(N+1), ..., 1}, within 1/(N+1) of the continuous uniform CDF.
    pvals = []
    for rep in range(200):
        rng = np.random.default_rng(1000 + rep)
        X = rng.standard_normal((16, 3))
        Y = rng.standard_normal((16, 2))
        res = cg.permutation_test(X, Y, measure, n_permutations=49, seed=rep, **params)
        pvals.append(res.pvalue)
    assert stats.kstest(pvals, "uniform").pvalue > 0.01


@pytest.mark.parametrize(
    "measure, params",
    [
        ("cka", {}),
        ("cka", {"kernel": "rbf", "debiased": True}),
        ("hsic", {"unbiased": True}),
        ("rsa", {}),
        ("orthogonal_procrustes", {}),
        ("cca", {}),
    ],
)
def test_strong_dependence_gives_the_smallest_pvalue(measure, params):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4))
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    Y = 2.0 * X @ Q + 1e-3 * rng.standard_normal((60, 4))
    res = cg.permutation_test(X, Y, measure, n_permutations=199, seed=0, **params)
    assert res.pvalue == 1 / 200
    assert res.null.shape == (199,)
    assert res.measure == measure and res.n_permutations == 199 and res.seed == 0


# ------------------------------------------------------------------ the p-value by hand


def test_pvalue_counts_by_hand_on_an_enumerable_null():
    # n = 4: 24 permutations, each drawn value is cka(X, X[perm]), and only the identity
    # gives CKA 1 (the values 0, 1, 2, 4 have no other affine image among their orderings).
    X = np.array([[0.0], [1.0], [2.0], [4.0]])
    values = {p: cg.cka(X, X[list(p)]) for p in itertools.permutations(range(4))}
    assert sum(np.isclose(v, 1.0, rtol=0, atol=1e-12) for v in values.values()) == 1
    N = 240
    res = cg.permutation_test(X, X, n_permutations=N, seed=5)
    drawn = permutations(4, N, seed=5)
    ident = int(np.sum((drawn == np.arange(4)).all(axis=1)))
    assert ident > 0  # ties (the identity permutation) must be there to be counted
    assert res.statistic == pytest.approx(1.0, abs=1e-12)
    assert res.pvalue == (1 + ident) / (1 + N)
    expected = np.array([values[tuple(p)] for p in drawn])
    np.testing.assert_allclose(res.null, expected, rtol=1e-12, atol=1e-14)
    # "less": every value is <= 1
    low = cg.permutation_test(X, X, n_permutations=N, seed=5, alternative="less")
    assert low.pvalue == 1.0


def test_pvalue_function_by_hand():
    null = np.array([0.1, 0.5, 0.5, 0.9, np.nan])
    # greater: 0.5, 0.5, 0.9 and the nan -> (1 + 4) / 6; less: 0.1, 0.5, 0.5, nan -> 5 / 6
    assert pvalue(0.5, null, "greater") == 5 / 6
    assert pvalue(0.5, null, "less") == 5 / 6
    assert pvalue(0.95, null[:4], "greater") == 1 / 5
    assert pvalue(0.95, null[:4], "two-sided") == 2 / 5
    assert pvalue(0.5 + 1e-16, null[:4], "less") == 4 / 5  # a round-off tie counts
    assert np.isnan(pvalue(np.nan, null, "greater"))


def test_two_sided_rule_and_the_default_alternative():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((25, 3))
    Y = X[:, :2] + 2.0 * rng.standard_normal((25, 2))
    g = cg.permutation_test(X, Y, "cka", n_permutations=99, seed=1, alternative="greater")
    le = cg.permutation_test(X, Y, "cka", n_permutations=99, seed=1, alternative="less")
    two = cg.permutation_test(X, Y, "cka", n_permutations=99, seed=1, alternative="two-sided")
    default = cg.permutation_test(X, Y, "cka", n_permutations=99, seed=1)
    np.testing.assert_array_equal(g.null, two.null)
    ge_count = np.sum(g.null >= g.statistic * (1 - 1e-13))
    le_count = np.sum(le.null <= le.statistic * (1 + 1e-13))
    assert g.pvalue == (1 + ge_count) / 100 and le.pvalue == (1 + le_count) / 100
    assert two.pvalue == min(1.0, 2 * min(g.pvalue, le.pvalue))
    assert default.alternative == "greater" and default.pvalue == g.pvalue
    dist = cg.permutation_test(X, Y, "orthogonal_procrustes", n_permutations=20, seed=1)
    assert dist.alternative == "less"


# ---------------------------------------------------------------------- refusals, errors


def test_unpaired_measures_are_refused():
    unpaired = {m.name for m in measures() if not m.paired}
    assert unpaired == {
        "imd",
        "geometry_score",
        "magnitude_diff",
        "concentricity_diff",
        "uniformity_diff",
        "accuracy_diff",
        "fleiss_kappa",
    }
    X = np.random.default_rng(0).standard_normal((30, 3))
    for name in unpaired:
        with pytest.raises(ValueError, match="compares each side separately"):
            cg.permutation_test(X, X, name, n_permutations=5)
    # the layer matrix's p-values are these tests: refused too (they once came back as 1)
    for name in unpaired - {"accuracy_diff", "fleiss_kappa"}:  # those compare model outputs
        with pytest.raises(ValueError, match="compares each side separately"):
            cg.compare_layers({"x": X}, {"y": 2 * X}, name, permutations=5, seed=0)


def test_report_gives_p_values_to_paired_measures_only(tmp_path):
    X = np.random.default_rng(1).standard_normal((40, 3))
    a, b = {"x": X}, {"y": np.tanh(X)}
    page = cg.report(a, b, "cka,magnitude_diff", permutations=19, seed=0)
    want = cg.compare_layers(a, b, "cka", permutations=19, seed=0, progress=False)
    # one p-value cell, cka's (the same as compare_layers'), none for magnitude_diff
    got = re.findall(r'data-pvalue="([^"]+)"', page)
    assert len(got) == 1 and float(got[0]) == want.pvalues[0, 0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_permutations": 0}, "n_permutations=0"),
        ({"n_permutations": 2.5}, "n_permutations=2.5"),
        ({"n_permutations": True}, "n_permutations=True"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": "a"}, "seed='a'"),
        ({"alternative": "bigger"}, "alternative='bigger'"),
        ({"measure": "ckaa"}, "Did you mean 'cka'"),
    ],
)
def test_permutation_test_arguments_are_validated(kwargs, match):
    X = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match=match):
        cg.permutation_test(X, X, **kwargs)


def test_inputs_and_parameters_are_validated():
    X = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match="same rows"):
        cg.permutation_test(X, X[:9])
    with pytest.raises(ValueError, match="same rows"):
        cg.bootstrap(X, X[:9])
    with pytest.raises(TypeError, match="unexpected parameter"):
        cg.permutation_test(X, X, kernal="rbf")
    with pytest.raises(ValueError, match="2-D"):
        cg.permutation_test(X[:, 0], X)
    for kwargs, match in [
        ({"ci": 1.0}, "ci=1.0"),
        ({"ci": 0}, "ci=0"),
        ({"method": "bc"}, "method='bc'"),
        ({"n_boot": 0}, "n_boot=0"),
        ({"seed": 1.5}, "seed=1.5"),
    ]:
        with pytest.raises(ValueError, match=match):
            cg.bootstrap(X, X, **kwargs)


# --------------------------------------------------------- the kernel family's fast path

KERNEL_VARIANTS = [
    (name, params)
    for name, flag in (("cka", "debiased"), ("hsic", "unbiased"))
    for params in (
        {},
        {"kernel": "rbf"},
        {flag: True},
        {"kernel": "rbf", "sigma_frac": 0.5, flag: True},
    )
]


@pytest.mark.parametrize("name, params", KERNEL_VARIANTS)
def test_fast_path_equals_the_generic_path(name, params, monkeypatch):
    calls = []
    real = _core.kernel_permuted
    monkeypatch.setattr(_core, "kernel_permuted", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(11)
    X = rng.standard_normal((70, 6))
    Y = np.tanh(X[:, :4]) + 0.5 * rng.standard_normal((70, 4))
    perms = permutations(70, 40, seed=2)
    m = get_measure(name)
    fast = m.permuted(m.prepare(X, **params), m.prepare(Y, **params), perms, **params)
    assert calls, "the core's fast path was not used"
    generic = np.array([m(X, Y[p], **params) for p in perms])
    scale = np.max(np.abs(generic))
    np.testing.assert_allclose(fast, generic, rtol=1e-12, atol=1e-12 * scale)
    # The test itself: the same permutations, the same null.
    res = cg.permutation_test(X, Y, name, n_permutations=40, seed=2, **params)
    np.testing.assert_array_equal(res.null, fast)
    assert res.statistic == m(X, Y, **params)


def test_fast_path_on_float32_and_when_memory_is_short(monkeypatch):
    from congruence.measures import kernel

    rng = np.random.default_rng(12)
    X = rng.standard_normal((50, 5)).astype(np.float32)
    Y = (X[:, :3] + rng.standard_normal((50, 3))).astype(np.float32)
    perms = permutations(50, 10, seed=0)
    m = get_measure("cka")
    fast = m.permuted(m.prepare(X), m.prepare(Y), perms)
    generic = np.array([cg.cka(X, Y[p]) for p in perms])
    np.testing.assert_allclose(fast, generic, rtol=1e-12)

    def no_room(*args):
        raise MemoryError("no room")

    monkeypatch.setattr(kernel, "check_fits", no_room)
    monkeypatch.setattr(_core, "kernel_permuted", None)  # must not be called
    again = m.permuted(m.prepare(X), m.prepare(Y), perms)
    np.testing.assert_array_equal(again, generic)


def test_degenerate_layers_give_their_defined_value_for_every_permutation():
    X = np.ones((12, 2))
    Y = np.random.default_rng(0).standard_normal((12, 3))
    with pytest.warns(cg.DegenerateDataWarning):
        res = cg.permutation_test(X, Y, "cka", n_permutations=9, seed=0)
    assert np.isnan(res.statistic) and np.isnan(res.pvalue) and np.isnan(res.null).all()
    with pytest.warns(cg.DegenerateDataWarning):
        h = cg.permutation_test(X, Y, "hsic", n_permutations=9, seed=0)
    assert h.statistic == 0.0 and (h.null == 0.0).all() and h.pvalue == 1.0


def test_the_prepared_kernel_matrix_is_reused():
    from congruence.measures.kernel import KernelLayer

    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    m = get_measure("cka")
    px, py = m.prepare(X), m.prepare(Y)
    assert isinstance(px, KernelLayer)
    m.permuted(px, py, permutations(30, 3, seed=0))
    first = px.centred("linear", 1.0, False)[0]
    m.permuted(px, py, permutations(30, 3, seed=1))
    assert px.centred("linear", 1.0, False)[0] is first


_CHILD = """
import hashlib, numpy as np, congruence as cg
rng = np.random.default_rng(4)
X = rng.standard_normal((300, 8)); Y = X[:, :5] + rng.standard_normal((300, 5))
out = []
for params in ({}, {"kernel": "rbf", "debiased": True}):
    res = cg.permutation_test(X, Y, "cka", n_permutations=64, seed=9, **params)
    out.append(res.null.tobytes() + np.float64(res.pvalue).tobytes())
res = cg.permutation_test(X, Y, "rsa", n_permutations=8, seed=9)
out.append(res.null.tobytes())
print(hashlib.sha256(b"".join(out)).hexdigest())
"""


def test_results_do_not_depend_on_the_thread_count():
    digests = set()
    for threads in ("1", "2", "3"):
        env = {**os.environ, "RAYON_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


# ------------------------------------------------------------------ functional and seeds


def test_functional_measures_permute_the_second_output_only():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 40)
    a = np.where(rng.random(40) < 0.8, labels, rng.integers(0, 3, 40))
    b = np.where(rng.random(40) < 0.6, labels, rng.integers(0, 3, 40))
    res = cg.permutation_test(
        a, b, "error_corrected_disagreement", n_permutations=30, seed=3, labels=labels
    )
    perms = permutations(40, 30, seed=3)
    want = [cg.error_corrected_disagreement(a, b[p], labels=labels) for p in perms]
    np.testing.assert_allclose(res.null, want, rtol=1e-15)
    assert res.alternative == "less"


def test_measures_with_their_own_seed_get_a_spawned_one():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((14, 2))
    Y = X + 0.1 * rng.standard_normal((14, 2))
    params = {"max_points": 10, "trials": 2}
    res = cg.permutation_test(X, Y, "rtd", n_permutations=4, seed=8, **params)
    first, second = np.random.SeedSequence(8).spawn(2)
    own = int(second.generate_state(1, np.uint32)[0])
    assert res.params["seed"] == own
    perms = np.random.default_rng(first).permuted(np.tile(np.arange(14), (4, 1)), axis=1)
    want = [cg.rtd(X, Y[p], seed=own, **params) for p in perms]
    np.testing.assert_allclose(res.null, want, rtol=1e-12)
    assert res.statistic == cg.rtd(X, Y, seed=own, **params)


# ------------------------------------------------------------------------------ bootstrap


def _warns_duplicated_rows(measure):
    """Expect the ResamplingBiasWarning that bootstrap gives for every measure whose estimate
    duplicated rows bias (a property of the measure, not of the data)."""
    return pytest.warns(
        cg.ResamplingBiasWarning, match=rf"^{measure}: a bootstrap resample duplicates rows"
    )


def test_percentile_interval_is_the_quantiles_of_the_replicates():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 3))
    Y = X + rng.standard_normal((40, 3))
    with _warns_duplicated_rows("cka"):
        res = cg.bootstrap(X, Y, "cka", n_boot=150, ci=0.9, seed=4)
    idx = np.random.default_rng(4).integers(0, 40, size=(150, 40))
    want = np.array([cg.cka(X[i], Y[i]) for i in idx])
    np.testing.assert_allclose(res.distribution, want, rtol=1e-12)
    low, high = np.quantile(want, [0.05, 0.95])
    assert res.low == pytest.approx(low, rel=1e-12) and res.high == pytest.approx(high, rel=1e-12)
    assert res.statistic == cg.cka(X, Y) and res.method == "percentile" and res.ci == 0.9


def test_bca_interval_equals_a_slow_reference_from_the_formula():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((30, 2))
    Y = X @ rng.standard_normal((2, 2)) + rng.standard_normal((30, 2))
    with _warns_duplicated_rows("cka"):
        res = cg.bootstrap(X, Y, "cka", n_boot=300, ci=0.9, method="bca", seed=2)
    theta = cg.cka(X, Y)
    reps = res.distribution
    z0 = stats.norm.ppf(np.mean(reps < theta))
    jack = np.array([cg.cka(np.delete(X, i, 0), np.delete(Y, i, 0)) for i in range(30)])
    d = jack.mean() - jack
    acc = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    ends = []
    for alpha in (0.05, 0.95):
        z = z0 + stats.norm.ppf(alpha)
        ends.append(np.quantile(reps, stats.norm.cdf(z0 + z / (1 - acc * z))))
    assert res.low == pytest.approx(ends[0], rel=1e-10)
    assert res.high == pytest.approx(ends[1], rel=1e-10)
    # With no replicate below the statistic the BCa correction is undefined.
    assert np.isnan(bca_interval(0.0, np.ones(5), np.arange(4.0), 0.9)).all()


def test_bootstrap_coverage_of_a_known_disagreement_rate():
    # Two classifiers that disagree independently on each input with probability 0.3: the
    # population disagreement is 0.3. The 90% percentile interval from n = 120 inputs covers
    # it in about 90% of samples; 200 samples give a binomial spread of about 2%.
    covered = 0
    for rep in range(200):
        rng = np.random.default_rng(500 + rep)
        a = rng.integers(0, 4, 120)
        flip = rng.random(120) < 0.3
        b = np.where(flip, (a + rng.integers(1, 4, 120)) % 4, a)
        res = cg.bootstrap(a, b, "disagreement", n_boot=300, ci=0.9, seed=rep)
        covered += res.low <= 0.3 <= res.high
    assert 0.82 <= covered / 200 <= 0.97


def test_bootstrap_resamples_the_same_rows_and_the_labels():
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, 30)
    a = np.where(rng.random(30) < 0.7, labels, 1 - labels)
    b = np.where(rng.random(30) < 0.9, labels, 1 - labels)
    res = cg.bootstrap(a, b, "accuracy_diff", n_boot=50, seed=1, labels=labels)
    idx = np.random.default_rng(1).integers(0, 30, size=(50, 30))
    want = [cg.accuracy_diff(a[i], b[i], labels=labels[i]) for i in idx]
    np.testing.assert_allclose(res.distribution, want, rtol=1e-15)
    X = rng.standard_normal((20, 3))
    with _warns_duplicated_rows("cka"):  # the default measure
        same = cg.bootstrap(X, 2 * X + 1, n_boot=20, seed=0)
    np.testing.assert_allclose(same.distribution, 1.0, rtol=1e-12)


def test_measures_biased_by_duplicated_rows_warn():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((25, 3))
    Y = X + rng.standard_normal((25, 3))
    for measure, params in [
        ("cka", {}),
        ("hsic", {}),
        ("cka", {"debiased": True}),
        ("cka", {"kernel": "rbf"}),
        ("hsic", {"unbiased": True}),
        ("knn_jaccard", {"k": 3}),
        ("rsa", {}),
        ("distance_correlation", {}),
    ]:
        with pytest.warns(cg.ResamplingBiasWarning, match=measure):
            cg.bootstrap(X, Y, measure, n_boot=5, seed=0, **params)
    assert issubclass(cg.ResamplingBiasWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.bootstrap(X, Y, "cca", n_boot=5, seed=0)


def test_a_bootstrap_distribution_on_one_side_of_the_statistic_warns():
    # Biased CKA with p comparable to n: every resample (about 63% distinct rows) gives a
    # larger value than the data, so the percentile interval misses the estimate and BCa's
    # bias correction is undefined; both are said, not returned silently.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 64))
    Y = np.tanh(X @ rng.standard_normal((64, 32))) + rng.standard_normal((200, 32))
    # Each call also gives cka's warning that duplicated rows bias it, whatever the data.
    with _warns_duplicated_rows("cka"):
        with pytest.warns(cg.ResamplingBiasWarning, match="on one side of the estimate"):
            res = cg.bootstrap(X, Y, "cka", n_boot=200, seed=0)
    assert np.all(res.distribution > res.statistic) and res.low > res.statistic
    with _warns_duplicated_rows("cka"):
        with pytest.warns(cg.ResamplingBiasWarning, match="on one side of the estimate"):
            with pytest.warns(cg.DegenerateDataWarning, match="BCa interval is undefined"):
                res = cg.bootstrap(X, Y, "cka", n_boot=200, seed=0, method="bca")
    assert math.isnan(res.low) and math.isnan(res.high)


# ----------------------------------------------------------------- compare_layers p-values


def _layers(seed: int, n: int = 30) -> dict:
    rng = np.random.default_rng(seed)
    h0 = rng.standard_normal((n, 4))
    return {
        "h0": h0,
        "h1": np.tanh(h0 @ rng.standard_normal((4, 3))),
        "h2": rng.standard_normal((n, 5)),
    }


@pytest.mark.parametrize("measure, params", [("cka", {}), ("cka", {"kernel": "rbf"}), ("rsa", {})])
def test_compare_layers_pvalues_equal_cellwise_tests(measure, params):
    a, b = _layers(0), _layers(1)
    res = cg.compare_layers(a, b, measure, permutations=39, seed=3, progress=False, **params)
    assert res.n_permutations == 39 and res.seed == 3 and res.alternative == "greater"
    for i, r in enumerate(res.rows):
        for j, c in enumerate(res.cols):
            t = cg.permutation_test(a[r], b[c], measure, n_permutations=39, seed=3, **params)
            assert res.pvalues[i, j] == t.pvalue, (r, c)
    # One model with itself: the upper triangle tested, mirrored.
    own = cg.compare_layers(a, None, measure, permutations=39, seed=3, progress=False, **params)
    np.testing.assert_array_equal(own.pvalues, own.pvalues.T)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        r, c = own.rows[i], own.rows[j]
        t = cg.permutation_test(a[r], a[c], measure, n_permutations=39, seed=3, **params)
        assert own.pvalues[i, j] == t.pvalue
    assert (np.diag(own.pvalues) == 1 / 40).all()


def test_compare_layers_without_permutations_and_bad_options():
    a = _layers(2)
    res = cg.compare_layers(a, progress=False)
    assert res.pvalues is None and res.n_permutations is None and res.seed is None
    with pytest.raises(ValueError, match="permutations=0"):
        cg.compare_layers(a, permutations=0, progress=False)
    with pytest.raises(ValueError, match="pass permutations"):
        cg.compare_layers(a, seed=1, progress=False)
    with pytest.raises(ValueError, match="pass permutations"):
        cg.compare_layers(a, alternative="less", progress=False)


def test_cli_prints_the_pvalues(tmp_path, capsys):
    from congruence.cli import main

    a = _layers(3)
    path = tmp_path / "a.npz"
    np.savez(path, **a)
    assert main(["compare", str(path), "--permutations", "19", "--seed", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "p-values (19 permutations, seed 4" in out
    want = cg.compare_layers(a, permutations=19, seed=4, progress=False)
    table = out.split("p-values", 1)[1].splitlines()[2:]
    got = np.array([[float(v) for v in line.split()[1:]] for line in table if line.strip()])
    np.testing.assert_allclose(got, want.pvalues, atol=5e-4)


def test_the_permutations_of_a_seed():
    # The permutations of a seed are numpy's Generator.permuted rows: fixed for a seed.
    p = permutations(6, 3, seed=0)
    q = np.random.default_rng(0).permuted(np.tile(np.arange(6), (3, 1)), axis=1)
    np.testing.assert_array_equal(p, q)
