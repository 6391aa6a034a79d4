"""The registry: listing and looking up measures, their metadata, exports and docstrings."""

from __future__ import annotations

import doctest
import importlib
import inspect
import math

import numpy as np
import pytest

import congruence as cg
from congruence._registry import INVARIANCES, Measure, measures

ALL = measures()
IDS = [m.name for m in ALL]


# --------------------------------------------------------------------------- listing


def test_list_measures_sorted_and_complete():
    names = cg.list_measures()
    assert isinstance(names, list)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert {"cka", "hsic"} <= set(names)
    assert set(names) == {m.name for m in ALL}


def test_list_measures_by_family():
    kernel = cg.list_measures(family="kernel")
    assert kernel == sorted(kernel)
    assert {"cka", "hsic"} <= set(kernel)
    assert all(cg.get_measure(n).family == "kernel" for n in kernel)
    assert set(kernel) <= set(cg.list_measures())
    assert cg.list_measures(family="no-such-family") == []


def test_list_measures_by_inputs():
    reps = cg.list_measures(inputs="representations")
    outs = cg.list_measures(inputs="outputs")
    assert {"cka", "hsic"} <= set(reps)
    assert not set(reps) & set(outs)
    assert sorted(reps + outs) == cg.list_measures()


# --------------------------------------------------------------------------- lookup


def test_get_measure_cka_metadata():
    m = cg.get_measure("cka")
    assert isinstance(m, Measure)
    assert m.name == "cka"
    assert m.func is cg.cka
    assert m.family == "kernel"
    assert m.kind == "similarity"
    assert m.inputs == "representations"
    assert isinstance(m.summary, str) and m.summary
    assert dict(m.params) == {"kernel": "linear", "sigma_frac": 1.0, "debiased": False}
    sig = inspect.signature(cg.cka)
    assert dict(m.params) == {
        k: p.default for k, p in sig.parameters.items() if p.default is not p.empty
    }
    assert len(m.references) >= 1 and all(isinstance(r, str) and r for r in m.references)
    assert any("Kornblith" in r for r in m.references)
    assert m.bounds() == (0.0, 1.0)
    assert m.bounds(debiased=True) == (-1.0, 1.0)
    assert m.min_rows() == 2 and m.min_rows(debiased=True) == 4
    assert m.symmetric() and m.symmetric(kernel="rbf", debiased=True)
    assert m.invariances() == {"orthogonal", "isotropic_scaling", "translation", "permutation"}
    assert "invertible_linear" not in m.invariances(kernel="rbf")
    assert m.layers.matrix is not None


def test_get_measure_hsic_metadata():
    m = cg.get_measure("hsic")
    assert m.func is cg.hsic
    assert m.kind == "dependence"
    assert dict(m.params) == {"kernel": "linear", "sigma_frac": 1.0, "unbiased": False}
    assert m.bounds() == (0.0, math.inf)
    assert m.bounds(unbiased=True) == (-math.inf, math.inf)
    assert m.min_rows(unbiased=True) == 4
    assert "isotropic_scaling" not in m.invariances()
    assert "isotropic_scaling" in m.invariances(kernel="rbf")


def test_measure_is_callable():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    m = cg.get_measure("cka")
    assert np.isclose(m(X, Y, kernel="rbf"), cg.cka(X, Y, kernel="rbf"), rtol=1e-12, atol=0)


def test_get_measure_unknown_suggests():
    with pytest.raises(ValueError, match="'cka'") as info:
        cg.get_measure("cak")
    assert "Did you mean" in str(info.value)
    with pytest.raises(ValueError, match="unknown measure"):
        cg.get_measure("definitely_not_a_measure")
    with pytest.raises(ValueError):
        cg.get_measure(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        cg.compare(np.eye(3), np.eye(3), "cak")


def test_unknown_parameter_is_type_error():
    m = cg.get_measure("cka")
    with pytest.raises(TypeError, match="sigma"):
        m.bounds(sigma=2.0)
    with pytest.raises(TypeError):
        m.check_params({"debias": True})
    with pytest.raises(TypeError, match="accepted"):
        cg.compare(np.eye(4), np.eye(4), "cka", debias=True)


# --------------------------------------------------------------------------- every measure


@pytest.mark.parametrize("m", ALL, ids=IDS)
def test_metadata_well_formed(m):
    assert m.kind in ("similarity", "distance", "dependence")
    assert m.inputs in ("representations", "outputs")
    assert isinstance(m.family, str) and m.family
    assert isinstance(m.summary, str) and m.summary
    assert len(m.references) >= 1 and all(isinstance(r, str) and r for r in m.references)
    sig = inspect.signature(m.func)
    assert dict(m.params) == {
        k: p.default
        for k, p in sig.parameters.items()
        if p.kind == p.KEYWORD_ONLY or p.default is not p.empty
    }
    assert m.variants, "at least one variant (the defaults)"
    # The defaults come first, except for measures that are random by default (seed=None),
    # whose variants must all fix the seed so the common tests are deterministic.
    random_default = m.params.get("seed", 0) is None
    assert dict(m.variants[0]) == {} or (random_default and all("seed" in v for v in m.variants)), (
        "the defaults come first"
    )
    for params in m.variants:
        assert set(params) <= set(m.params), f"variant {params} has unknown parameters"
        assert set(m.invariances(**params)) <= set(INVARIANCES)
        lo, hi = m.bounds(**params)
        assert lo <= hi
        k = m.min_rows(**params)
        assert isinstance(k, int) and k >= 2
        assert isinstance(m.symmetric(**params), bool)


@pytest.mark.parametrize("m", ALL, ids=IDS)
def test_exported(m):
    assert hasattr(cg, m.name), f"congruence.{m.name} is not exported"
    assert getattr(cg, m.name) is m.func
    assert m.name in cg.__all__


def test_all_names_exist():
    for name in cg.__all__:
        assert hasattr(cg, name), name
    assert len(cg.__all__) == len(set(cg.__all__))


@pytest.mark.parametrize("m", ALL, ids=IDS)
def test_docstring_has_maths_and_examples(m):
    doc = m.func.__doc__ or ""
    assert "Examples" in doc, f"{m.name} docstring has no Examples section"
    assert ">>>" in doc, f"{m.name} docstring has no runnable example"
    assert ".. math::" in doc or ":math:" in doc, f"{m.name} docstring states no formula"
    assert "References" in doc or m.references


# --------------------------------------------------------------------------- doctests


def _doc_modules():
    names = ["congruence", "congruence.compare", "congruence.measures.kernel"]
    for m in ALL:
        if m.func.__module__ not in names:
            names.append(m.func.__module__)
    return names


# examples may show a warned call (a degenerate input, a bootstrap of a biased measure), as a
# user would run it: the warning is shown, not an error (pyproject.toml makes it one in tests)
@pytest.mark.filterwarnings("default::congruence.errors.DegenerateDataWarning")
@pytest.mark.filterwarnings("default::congruence.errors.ResamplingBiasWarning")
@pytest.mark.parametrize("modname", _doc_modules())
def test_doctests(modname):
    # importlib, not attribute access: ``congruence.compare`` is the function.
    module = importlib.import_module(modname)
    result = doctest.testmod(
        module, verbose=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, f"{modname} has no doctest examples"
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {modname}"
