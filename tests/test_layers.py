"""``compare_layers`` and ``LayerComparison``: layer matrices equal the pairwise calls."""

from __future__ import annotations

import csv
import importlib
import io
import math
import re
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence._layers import PerLayer
from congruence.compare import _pairwise
from congruence.errors import DegenerateDataWarning, LayerNotFoundError
from congruence.results import LayerComparison, find_layer, layer_not_found

N = 80


def _layers(seed: int = 0, n: int = N) -> dict[str, np.ndarray]:
    """Layers of different widths, one wider than ``n`` (the Gram-matrix route)."""
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((n, 6))
    h2 = np.tanh(h1 @ rng.standard_normal((6, 12)))
    h3 = np.maximum(h2 @ rng.standard_normal((12, 3)), 0) + 0.1 * rng.standard_normal((n, 3))
    wide = np.tanh(h2 @ rng.standard_normal((12, n + 40)))
    return {"h1": h1, "h2": h2, "h3": h3, "wide": wide}


def _id(measure: str, params: dict) -> str:
    return measure + "-" + ",".join(f"{k}={v}" for k, v in params.items())


KERNEL_PARAMS = [
    pytest.param(measure, params, id=_id(measure, params))
    for measure, flag in (("cka", "debiased"), ("hsic", "unbiased"))
    for params in (
        {"kernel": "linear", flag: False},
        {"kernel": "linear", flag: True},
        {"kernel": "rbf", flag: False},
        {"kernel": "rbf", flag: True},
        {"kernel": "rbf", "sigma_frac": 0.5, flag: True},
    )
]


def _pairwise_direct(measure, a, b, params):
    f = getattr(cg, measure)
    return np.array([[f(x, y, **params) for y in b.values()] for x in a.values()])


def _assert_close(got, want, tol=1e-10):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(1.0, float(np.nanmax(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("measure, params", KERNEL_PARAMS)
def test_self_matrix_equals_pairwise(measure, params):
    a = _layers(1)
    res = cg.compare_layers(a, measure=measure, **params)
    assert isinstance(res, LayerComparison)
    assert res.rows == res.cols == tuple(a)
    assert res.values.shape == (4, 4) and res.values.dtype == np.float64
    assert np.array_equal(res.values, res.values.T), "self-comparison matrix not symmetric"
    if measure == "cka":
        np.testing.assert_allclose(np.diag(res.values), 1.0, rtol=0, atol=1e-10)
    _assert_close(res.values, _pairwise_direct(measure, a, a, params))
    assert res.measure == measure
    assert res.kind == cg.get_measure(measure).kind
    assert dict(res.params) == {**cg.get_measure(measure).params, **params}


@pytest.mark.parametrize("measure, params", KERNEL_PARAMS)
def test_cross_matrix_equals_pairwise(measure, params):
    a = _layers(2)
    rng = np.random.default_rng(3)
    b = {
        "x": a["h1"] @ rng.standard_normal((6, 4)),
        "y": rng.standard_normal((N, 9)),
        "z": np.sin(a["h2"][:, :5]),
    }
    res = cg.compare_layers(a, b, measure=measure, **params)
    assert res.rows == tuple(a) and res.cols == tuple(b)
    assert res.values.shape == (4, 3)
    _assert_close(res.values, _pairwise_direct(measure, a, b, params))


def test_list_input_named_by_position():
    a = _layers(4)
    as_list = list(a.values())
    res = cg.compare_layers(as_list)
    assert res.rows == res.cols == ("0", "1", "2", "3")
    np.testing.assert_array_equal(res.values, cg.compare_layers(a).values)
    res2 = cg.compare_layers(tuple(as_list[:2]), as_list[2:], kernel="rbf")
    assert res2.rows == ("0", "1") and res2.cols == ("0", "1")
    _assert_close(res2.values, _pairwise_direct("cka", a, a, {"kernel": "rbf"})[:2, 2:])


def test_dict_keys_become_strings_in_order():
    rng = np.random.default_rng(5)
    a = {3: rng.standard_normal((20, 2)), "b": rng.standard_normal((20, 4))}
    res = cg.compare_layers(a)
    assert res.rows == ("3", "b")


def test_single_layer():
    X = np.random.default_rng(6).standard_normal((30, 5))
    res = cg.compare_layers({"only": X})
    assert res.values.shape == (1, 1)
    assert res["only", "only"] == pytest.approx(1.0, abs=1e-12)


def test_float32_layers():
    a = _layers(7)
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    before = {k: v.copy() for k, v in a32.items()}
    for params in ({}, {"kernel": "rbf"}, {"debiased": True}):
        res = cg.compare_layers(a32, **params)
        assert res.values.dtype == np.float64
        # float32 data are centred in float32, so agreement is at float32 precision.
        np.testing.assert_allclose(res.values, _pairwise_direct("cka", a32, a32, params), atol=1e-6)
        np.testing.assert_allclose(res.values, cg.compare_layers(a, **params).values, atol=1e-6)
    for k in a32:
        assert np.array_equal(a32[k], before[k]) and a32[k].dtype == np.float32
    mixed = {"f32": a32["h1"], "f64": a["h2"]}
    np.testing.assert_allclose(
        cg.compare_layers(mixed).values, _pairwise_direct("cka", mixed, mixed, {}), atol=1e-6
    )


def test_cell_by_cell_path_matches_the_whole_matrix_route():
    """``_pairwise`` (the cell-by-cell path and the fallback that names failing cells) must
    agree with the whole-matrix route."""
    a = _layers(8)
    b = {"p": a["h3"][:, ::-1], "q": a["h1"] ** 2}
    xa, xb = list(a.values()), list(b.values())
    for name, params in (
        ("cka", {}),
        ("cka", {"kernel": "rbf", "debiased": True}),
        ("hsic", {"unbiased": True}),
    ):
        m = cg.get_measure(name)
        names = (list(a), list(b))
        self_vals = _pairwise(m.func, m, xa, None, params, (list(a), list(a)))
        assert np.array_equal(self_vals, self_vals.T)
        _assert_close(self_vals, cg.compare_layers(a, measure=name, **params).values)
        cross = _pairwise(m.func, m, xa, xb, params, names)
        assert cross.shape == (4, 2)
        _assert_close(cross, cg.compare_layers(a, b, measure=name, **params).values)


def test_layers_are_not_modified():
    a = _layers(9)
    before = {k: v.copy() for k, v in a.items()}
    cg.compare_layers(a, kernel="rbf")
    cg.compare_layers(a, dict(a), measure="hsic", unbiased=True)
    for k in a:
        assert np.array_equal(a[k], before[k])


# --------------------------------------------------------------------------- errors


def test_mismatched_rows_names_the_layer():
    a = _layers(10)
    a["short"] = np.ones((N - 1, 3))
    with pytest.raises(ValueError, match="short"):
        cg.compare_layers(a)
    good = _layers(10)
    with pytest.raises(ValueError, match="odd"):
        cg.compare_layers(good, {"fine": good["h1"], "odd": good["h1"][:-5]})


def test_empty_and_non_mapping_inputs():
    a = _layers(11)
    with pytest.raises(ValueError, match="no layers"):
        cg.compare_layers({})
    with pytest.raises(ValueError, match="no layers"):
        cg.compare_layers(a, [])
    with pytest.raises(ValueError, match="dict"):
        cg.compare_layers(a["h1"])
    with pytest.raises(ValueError):
        cg.compare_layers("h1")
    with pytest.raises(ValueError):
        cg.compare_layers(a, 42)


def test_invalid_layer_arrays_name_the_layer():
    a = _layers(12)
    a["bad"] = a["h1"].copy()
    a["bad"][0, 0] = np.nan
    with pytest.raises(ValueError, match="bad"):
        cg.compare_layers(a)
    with pytest.raises(ValueError, match="flat"):
        cg.compare_layers({"ok": a["h1"], "flat": a["h1"][:, 0]})
    with pytest.raises(ValueError, match="at least 4 rows"):
        cg.compare_layers({"tiny": np.eye(3)}, debiased=True)


def test_unknown_measure_and_parameter():
    a = _layers(13)
    with pytest.raises(ValueError, match="cka"):
        cg.compare_layers(a, measure="cak")
    with pytest.raises(TypeError, match="kernal"):
        cg.compare_layers(a, kernal="rbf")
    with pytest.raises(ValueError, match="kernel"):
        cg.compare_layers(a, kernel="poly")


def test_output_measures_are_refused():
    outputs = cg.list_measures(inputs="outputs")
    if not outputs:
        pytest.skip("no measure on model outputs is registered yet")
    a = _layers(14)
    for name in outputs:
        with pytest.raises(ValueError, match="outputs"):
            cg.compare_layers(a, measure=name)


# --------------------------------------------------------------------------- LayerComparison


@pytest.fixture(scope="module")
def cross():
    a = _layers(15)
    rng = np.random.default_rng(16)
    b = {
        "copy_h2": a["h2"] @ np.linalg.qr(rng.standard_normal((12, 12)))[0],
        "noise": rng.standard_normal((N, 5)),
        "copy_h1": 2.0 * a["h1"] + 1.0,
    }
    return a, b, cg.compare_layers(a, b)


def test_indexing(cross):
    a, b, res = cross
    for i, r in enumerate(res.rows):
        for j, c in enumerate(res.cols):
            v = res[r, c]
            assert type(v) is float
            assert v == res.values[i, j]
            assert v == pytest.approx(cg.cka(a[r], b[c]), abs=1e-10)
    assert res["h2", "copy_h2"] == pytest.approx(1.0, abs=1e-10)


def test_unknown_layer_names_list_close_names(cross):
    _, _, res = cross
    with pytest.raises(
        LayerNotFoundError, match=r"^no layer named 'h_2' in the rows; did you mean 'h2'"
    ) as info:
        res["h_2", "copy_h2"]
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(
        LayerNotFoundError,
        match=r"no layer named 'copy_h3' in the columns; did you mean 'copy_h2' or 'copy_h1'\?",
    ):
        res["h2", "copy_h3"]
    # nothing close: every name is listed
    with pytest.raises(
        LayerNotFoundError,
        match=r"no layer named 'zzz' in the columns; the layers are: 'copy_h2', 'noise', 'copy_h1'",
    ):
        res["h1", "zzz"]
    with pytest.raises(KeyError, match=r"pair of layer names"):
        res["h1"]
    with pytest.raises(KeyError, match=r"no layer named 0"):
        res[0, 0]  # positions are not names: use res.values[i, j]


def test_layer_not_found_message_lists_at_most_twenty_names():
    names = [f"block{i:02d}.attn" for i in range(30)]
    err = layer_not_found("qqq", names, "the model")
    text = str(err)
    assert text.startswith("no layer named 'qqq' in the model; the layers are: 'block00.attn'")
    assert "'block19.attn' and 10 more" in text and "block20" not in text
    assert find_layer("block07.attn", names, "the model") == 7


def test_best_match(cross):
    _, _, res = cross
    best = res.best_match()
    assert list(best) == list(res.rows)
    assert best["h1"] == "copy_h1"
    assert best["h2"] == "copy_h2"
    for i, r in enumerate(res.rows):
        assert best[r] == res.cols[int(np.argmax(res.values[i]))]
    self_best = cg.compare_layers(_layers(15)).best_match()
    assert all(k == v for k, v in self_best.items())


def test_best_match_distance_and_nan():
    vals = np.array([[0.3, 0.1, 0.2], [np.nan, 0.5, 0.4], [np.nan, np.nan, np.nan]])
    res = LayerComparison(
        measure="some_distance",
        params={},
        kind="distance",
        rows=("r0", "r1", "r2"),
        cols=("c0", "c1", "c2"),
        values=vals,
    )
    assert res.best_match() == {"r0": "c1", "r1": "c2", "r2": None}
    sim = LayerComparison(
        measure="some_similarity",
        params={},
        kind="similarity",
        rows=("r0", "r1", "r2"),
        cols=("c0", "c1", "c2"),
        values=vals,
    )
    assert sim.best_match() == {"r0": "c0", "r1": "c1", "r2": None}


def _parse_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    return header[1:], [r[0] for r in body], np.array([[float(v) for v in r[1:]] for r in body])


def test_to_csv_round_trip(cross, tmp_path):
    _, _, res = cross
    text = res.to_csv()
    cols, rows, vals = _parse_csv(text)
    assert tuple(cols) == res.cols and tuple(rows) == res.rows
    np.testing.assert_array_equal(vals, res.values)  # repr(float) round-trips exactly
    path = tmp_path / "layers.csv"
    assert res.to_csv(path) == text
    assert path.read_text(encoding="utf-8") == text


def test_to_csv_quotes_awkward_names_and_nan():
    res = LayerComparison(
        measure="cka",
        params={},
        kind="similarity",
        rows=("a,b", 'say "hi"'),
        cols=("x",),
        values=np.array([[0.5], [np.nan]]),
    )
    cols, rows, vals = _parse_csv(res.to_csv())
    assert rows == ["a,b", 'say "hi"'] and cols == ["x"]
    assert vals[0, 0] == 0.5 and math.isnan(vals[1, 0])


def test_format_and_str(cross):
    _, _, res = cross
    text = res.format()
    lines = text.splitlines()
    assert len(lines) == 1 + len(res.rows)
    for c in res.cols:
        assert c in lines[0]
    for line, r, row in zip(lines[1:], res.rows, res.values):
        assert line.startswith(r)
        assert line.split()[1:] == [f"{v:.3f}" for v in row]
    assert f"{res.values[0, 0]:.5f}" in res.format(digits=5)
    s = str(res)
    assert s.startswith("cka(")
    assert "kernel='linear'" in s and "similarity" in s
    assert text in s


def test_to_pandas(cross):
    pd = pytest.importorskip("pandas")
    _, _, res = cross
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == list(res.rows)
    assert list(df.columns) == list(res.cols)
    np.testing.assert_array_equal(df.to_numpy(), res.values)
    assert df.loc["h1", "copy_h1"] == res["h1", "copy_h1"]


# --------------------------------------------------------------------------- cells that fail


def _with_bad_layers(seed: int = 20, n: int = N) -> dict[str, np.ndarray]:
    """Good layers plus two that no CCA-family measure accepts: collinear columns (rank 1 of
    3 after centring) and more columns than ``n - 1``."""
    rng = np.random.default_rng(seed)
    h1 = rng.standard_normal((n, 4))
    h2 = np.tanh(h1 @ rng.standard_normal((4, 5))) + 0.1 * rng.standard_normal((n, 5))
    dup = np.repeat(rng.standard_normal((n, 1)), 3, axis=1) * np.array([1.0, -2.0, 0.5])
    wide = rng.standard_normal((n, n + 5))
    return {"h1": h1, "dup": dup, "h2": h2, "wide": wide}


def _no_batch(monkeypatch, name):
    """Make ``compare_layers`` see ``name`` without its whole-matrix route (cell by cell)."""
    import dataclasses

    compare_mod = importlib.import_module("congruence.compare")  # the attribute is the function
    m = dataclasses.replace(cg.get_measure(name), layers=PerLayer())
    real = compare_mod.get_measure
    monkeypatch.setattr(compare_mod, "get_measure", lambda n: m if n == name else real(n))


@pytest.mark.parametrize("measure", ["cca", "pwcca", "linear_regression"])
@pytest.mark.parametrize("route", ["batch", "cells"])
def test_failing_cell_raises_with_the_layer_name(measure, route, monkeypatch):
    if route == "cells":
        _no_batch(monkeypatch, measure)
    a = _with_bad_layers()
    good = {"h1": a["h1"], "h2": a["h2"]}
    # self matrix: the first failing cell is (h1, dup); the collinear layer is named, not a[1]
    with pytest.raises(ValueError) as info:
        cg.compare_layers(a, measure=measure)
    msg = str(info.value)
    assert msg.startswith(f"{measure}(a['h1'], a['dup']): a['dup'] ")
    assert "rank" in msg and "a[1]" not in msg and " Y " not in msg
    # cross matrix: b's layer is named b[...]
    with pytest.raises(ValueError, match=rf"{measure}\(a\['h1'\], b\['wide'\]\): b\['wide'\] "):
        cg.compare_layers(good, {"wide": a["wide"]}, measure=measure)


@pytest.mark.parametrize("measure", ["cca", "pwcca", "svcca", "linear_regression"])
def test_on_error_nan_fills_the_failing_cells_and_warns_once_per_layer(measure):
    a = _with_bad_layers()
    f = getattr(cg, measure)
    names = list(a)

    def direct(x, y):
        try:
            return f(a[x], a[y])
        except ValueError:
            return np.nan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # svcca's over-fitting note
        want = np.array([[direct(x, y) for y in names] for x in names])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cg.compare_layers(a, measure=measure, on_error="nan")
    assert res.rows == tuple(names)
    np.testing.assert_array_equal(np.isnan(res.values), np.isnan(want))
    _assert_close(np.nan_to_num(res.values, nan=-7.0), np.nan_to_num(want, nan=-7.0))
    ours = [w for w in caught if "on_error='nan'" in str(w.message)]
    assert all(issubclass(w.category, DegenerateDataWarning) for w in ours)
    assert all(issubclass(w.category, RuntimeWarning) for w in ours)
    blamed = sorted(
        {m for w in ours for m in ("a['dup']", "a['wide']") if f"fails for {m}" in str(w.message)}
    )
    # a layer fails as X (its row), or as Y (its column: linear_regression's predictor)
    failing = sorted(
        {
            f"a[{names[i]!r}]"
            for i in range(4)
            if np.isnan(want[i]).all() or np.isnan(want[:, i]).all()
        }
    )
    assert len(ours) == len(failing) and blamed == failing
    if measure in ("cca", "pwcca"):  # both bad layers fail, the good cells are numbers
        assert failing == ["a['dup']", "a['wide']"]
        assert np.isfinite(res["h1", "h2"]) and np.isfinite(res["h2", "h1"])
    if measure == "svcca":  # defined for both layers: nothing to fill
        assert not np.isnan(res.values).any() and ours == []


def test_on_error_nan_on_the_cell_by_cell_path(monkeypatch):
    """riemannian_distance has no whole-matrix route and needs p >= n: narrow layers fail."""
    rng = np.random.default_rng(21)
    n = 20
    a = {
        "w1": rng.standard_normal((n, 30)),
        "narrow": rng.standard_normal((n, 5)),
        "w2": rng.standard_normal((n, 25)),
    }
    with pytest.raises(
        ValueError,
        match=r"riemannian_distance\(a\['w1'\], a\['narrow'\]\): a\['narrow'\] has shape \(20, 5\)",
    ):
        cg.compare_layers(a, measure="riemannian_distance")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cg.compare_layers(a, measure="riemannian_distance", on_error="nan")
    assert [str(w.message).count("a['narrow']") > 0 for w in caught] == [True]
    assert np.isnan(res.values[1]).all() and np.isnan(res.values[:, 1]).all()
    assert res["w1", "w2"] == pytest.approx(cg.riemannian_distance(a["w1"], a["w2"]), rel=1e-12)
    assert res["w2", "w1"] == res["w1", "w2"]  # symmetric: computed once


def test_on_error_does_not_hide_other_errors():
    a = _with_bad_layers()
    with pytest.raises(ValueError, match="on_error='skip' is invalid"):
        cg.compare_layers(a, measure="cca", on_error="skip")
    with pytest.raises(TypeError, match="epsilom"):
        cg.compare_layers(a, measure="cca", on_error="nan", epsilom=0.1)
    with pytest.raises(ValueError, match="short"):
        cg.compare_layers({**a, "short": a["h1"][:-1]}, measure="cca", on_error="nan")
    with pytest.raises(ValueError, match="progress"):
        cg.compare_layers(a, progress="yes")


@pytest.mark.parametrize(
    "measure, params, match",
    [
        ("cka", {"kernel": "cubic"}, "kernel='cubic' is invalid"),
        ("cka", {"debiased": "yes"}, "debiased='yes' is invalid; expected True or False"),
        ("rsa", {"rsm": "foo"}, "rsm='foo' is invalid"),
        ("knn_jaccard", {"k": 0}, r"k=0 is out of range"),
        ("svcca", {"variance": 2.0}, r"variance=2.0 is out of range"),
    ],
)
def test_on_error_nan_never_turns_an_invalid_parameter_into_nan_cells(measure, params, match):
    # the value is the call's fault, not a cell's data: the same error as the measure's own
    rng = np.random.default_rng(5)
    a = {"x": rng.standard_normal((30, 4)), "z": rng.standard_normal((30, 2))}
    with pytest.raises(cg.ParameterError, match=match):
        cg.compare_layers(a, measure=measure, on_error="nan", progress=False, **params)
    with pytest.raises(cg.ParameterError, match=match):
        cg.get_measure(measure).func(a["x"], a["z"], **params)
    assert issubclass(cg.ParameterError, ValueError)


def test_on_error_nan_keeps_a_warning_filter_error_an_error():
    a = _with_bad_layers()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        with pytest.raises(DegenerateDataWarning, match="a\\['dup'\\]"):
            cg.compare_layers(a, measure="cca", on_error="nan")


# --------------------------------------------------------------------------- progress


def _progress_at_once(monkeypatch):
    import functools

    from congruence._progress import Progress

    compare_mod = importlib.import_module("congruence.compare")

    monkeypatch.setattr(compare_mod, "Progress", functools.partial(Progress, delay=0.0))


def test_progress_counts_cells(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # the plain counter
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    a = _layers(22)  # normalized_bures: cell by cell (no whole-matrix route)
    cg.compare_layers(a, measure="normalized_bures")  # under a second: nothing shown
    assert capsys.readouterr().err == ""
    _progress_at_once(monkeypatch)
    cg.compare_layers(a, measure="normalized_bures")  # 4 layers, symmetric: 10 cells computed
    err = capsys.readouterr().err
    assert "congruence: 10/10 cells" in err and err.endswith("\n")
    cg.compare_layers(a, {"x": a["h1"], "y": a["h2"]}, measure="normalized_bures")
    assert "congruence: 8/8 cells" in capsys.readouterr().err
    cg.compare_layers(a, measure="normalized_bures", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_with_tqdm(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    _progress_at_once(monkeypatch)
    cg.compare_layers(_layers(23), measure="normalized_bures")
    err = capsys.readouterr().err
    assert "congruence" in err and re.search(r"10(\.0)?/10(\.0)?", err)


def test_results_doctests():
    """The examples of the layer-name lookup and of the one parser of layer sets."""
    import doctest

    module = importlib.import_module("congruence.results")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_whole_matrix_routes_name_layers_in_warnings():
    """Warnings from the whole-matrix routes name each layer by its name (a['conv1']), and
    the label context does not leak: a direct call names arguments as before."""
    rng = np.random.default_rng(7)
    h = rng.standard_normal((50, 4))
    layers = {"conv1": h, "dead": np.ones((50, 3))}
    for measure in ("cka", "knn_jaccard", "cca", "orthogonal_procrustes"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cg.compare_layers(layers, measure=measure)
        messages = [str(w.message) for w in caught if w.category is cg.DegenerateDataWarning]
        assert any("a['dead']" in m for m in messages), (measure, messages)
        assert not any("a[1]" in m for m in messages), (measure, messages)
    from congruence.results import layer_label

    assert layer_label("a", 1) == "a[1]"
