"""``LayerComparison``: inference fields, ``significant()``, display, saving and loading."""

from __future__ import annotations

import dataclasses
import html.parser
import json
import math
import os
import warnings

import numpy as np
import pytest

import congruence as cg
from congruence import _files
from congruence.errors import LayerNotFoundError, UnreadableFileError
from congruence.results import LayerComparison

N = 40


def _res(values, rows=None, cols=None, **kw):
    values = np.asarray(values, dtype=np.float64)
    rows = rows or tuple(f"r{i}" for i in range(values.shape[0]))
    cols = cols or tuple(f"c{j}" for j in range(values.shape[1]))
    base = dict(measure="cka", params={}, kind="similarity", rows=rows, cols=cols, values=values)
    base.update(kw)
    return LayerComparison(**base)


@pytest.fixture(scope="module")
def computed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, 6))
    a = {"h1": x, "h2": np.tanh(x @ rng.standard_normal((6, 5))), "h3": x**2}
    b = {"g1": x + 0.2 * rng.standard_normal((N, 6)), "g2": np.abs(x)}
    return cg.compare_layers(a, b, "cka", debiased=True)


# --------------------------------------------------------------------------- the dataclass


def test_old_constructors_still_work_and_new_fields_default(computed):
    positional = LayerComparison(
        "rsa", {"method": "spearman"}, "similarity", ("a",), ("b",), np.array([[0.5]])
    )
    assert positional.pvalues is None and positional.n_permutations is None
    assert positional.seed is None and positional.alternative is None
    assert positional.shapes is None
    assert positional.version == cg.__version__
    assert computed.version == cg.__version__
    with pytest.raises(dataclasses.FrozenInstanceError):
        positional.seed = 3  # type: ignore[misc]


def test_fields_are_checked_and_normalised():
    with pytest.raises(ValueError, match=r"pvalues must have the shape of values, \(2, 1\)"):
        _res([[0.1], [0.2]], pvalues=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"values must have shape"):
        _res(np.ones((2, 2)), rows=("a",))
    res = _res([[0.1]], shapes={"a": {"r0": [40, np.int64(6)]}}, pvalues=[[0.5]])
    assert res.shapes == {"a": {"r0": (40, 6)}}
    assert res.pvalues.dtype == np.float64
    with pytest.raises(ValueError, match=r"shapes must map each side"):
        _res([[0.1]], shapes={"a": 3})


def test_unknown_names_raise_key_error_listing_names():
    res = _res([[0.1, 0.2]], rows=("h1",), cols=("g1", "g2"), pvalues=[[0.1, 0.5]])
    with pytest.raises(KeyError, match=r"no layer named 'g3' in the columns; did you mean"):
        res["h1", "g3"]
    with pytest.raises(LayerNotFoundError, match=r"the layers are: 'h1'"):
        res["zzzz", "g1"]


# --------------------------------------------------------------------------- significant()


def _holm_reference(p, alpha):
    """Holm via adjusted p-values: p~_(i) = max_{k <= i} min(1, (m - k + 1) p_(k))."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adj[idx] = running
    return adj <= alpha


def _bh_reference(p, alpha):
    """BH via adjusted p-values: p~_(i) = min_{k >= i} min(1, m p_(k) / k)."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.empty(m)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        idx = order[rank]
        running = min(running, m * p[idx] / (rank + 1))
        adj[idx] = running
    return adj <= alpha


def test_holm_and_bh_hand_computed():
    # p sorted: .004 .01 .012 .03 .2 .6 (m = 6)
    p = np.array([[0.01, 0.6, 0.004], [0.03, 0.012, 0.2]])
    res = _res(np.zeros((2, 3)), pvalues=p, n_permutations=9999)
    # Holm at .05: .004 <= .05/6=.00833 yes; .01 <= .01 yes; .012 <= .0125 yes;
    # .03 <= .01667 no -> stop
    assert res.significant(0.05, "holm").tolist() == [[True, False, True], [False, True, False]]
    # BH at .05: k alpha/m = .00833 .01667 .025 .0333 .0417 .05 -> largest k with p_(k) <= is
    # k = 4 (.03 <= .0333): the four smallest
    assert res.significant(0.05, "fdr_bh").tolist() == [[True, False, True], [True, True, False]]
    assert res.significant(0.05, None).tolist() == [[True, False, True], [True, True, False]]
    assert res.significant(0.011, None).tolist() == [[True, False, True], [False, False, False]]
    # BH step-up: a large p-value in the middle does not stop it; here p_(2)=.04 > 2*.05/3
    # fails but p_(3) = .045 <= .05 passes, so all three pass
    res3 = _res(np.zeros((1, 3)), pvalues=[[0.045, 0.001, 0.04]], n_permutations=9999)
    assert res3.significant(0.05, "fdr_bh").tolist() == [[True, True, True]]
    # ... whereas Holm stops at .04 > .05/2
    assert res3.significant(0.05, "holm").tolist() == [[False, True, False]]


def test_ties_are_decided_together():
    res = _res(np.zeros((1, 4)), pvalues=[[0.02, 0.02, 0.02, 0.02]], n_permutations=9999)
    assert not res.significant(0.05, "holm").any()  # .02 > .05/4
    assert res.significant(0.05, "fdr_bh").all()  # .02 <= 4 * .05 / 4


def test_corrections_match_the_adjusted_p_value_definitions():
    rng = np.random.default_rng(0)
    for trial in range(300):
        r, c = rng.integers(1, 6, size=2)
        p = rng.beta(0.3, 1.0, size=(r, c))
        if trial % 3 == 0:  # ties, as permutation p-values have
            p = np.round(p * 20) / 20 + 0.001
        alpha = float(rng.choice([0.01, 0.05, 0.1, 0.2]))
        res = _res(np.zeros((r, c)), pvalues=p, n_permutations=10**6)
        flat = p.ravel()
        got_h = res.significant(alpha, "holm").ravel()
        got_b = res.significant(alpha, "fdr_bh").ravel()
        np.testing.assert_array_equal(got_h, _holm_reference(flat, alpha))
        np.testing.assert_array_equal(got_b, _bh_reference(flat, alpha))
        assert (got_h <= got_b).all()  # Holm is never more liberal than BH


def test_self_comparison_counts_each_unordered_pair_once():
    names = ("h1", "h2")
    vals = np.array([[1.0, 0.4], [0.4, 1.0]])
    p = np.array([[0.001, 0.03], [0.03, 0.001]])
    res = _res(vals, rows=names, cols=names, pvalues=p, n_permutations=9999)
    assert res.is_self
    # m = 3 unordered pairs: .001 <= .05/3, .001 <= .05/2, .03 <= .05/1 -> all pass.
    # (Counting both halves, m = 4, would fail .03 against .05/2.)
    assert res.significant(0.05, "holm").tolist() == [[True, True], [True, True]]
    # BH with m = 3: .03 <= 3 * .05 / 3
    assert res.significant(0.05, "fdr_bh").all()
    # the same numbers between two models (names differ) are four tests
    cross = _res(vals, rows=names, cols=("g1", "g2"), pvalues=p, n_permutations=9999)
    assert not cross.is_self
    assert cross.significant(0.05, "holm").tolist() == [[True, False], [False, True]]
    # asymmetric values with the same names are two models, not one
    assert not _res([[1.0, 0.3], [0.4, 1.0]], rows=names, cols=names).is_self


def test_self_comparison_decision_is_mirrored():
    names = ("a", "b", "c")
    v = np.array([[1, 0.5, 0.2], [0.5, 1, 0.1], [0.2, 0.1, 1]])
    p = np.array([[0.001, 0.001, 0.5], [0.001, 0.001, 0.002], [0.5, 0.002, 0.001]])
    res = _res(v, rows=names, cols=names, pvalues=p, n_permutations=9999)
    for corr in ("holm", "fdr_bh", None):
        s = res.significant(0.05, corr)
        np.testing.assert_array_equal(s, s.T)
        assert not s[0, 2] and s[1, 2]


def test_nan_pvalues_are_not_tests():
    p = np.array([[0.01, np.nan], [0.02, 0.04]])
    res = _res(np.zeros((2, 2)), pvalues=p, n_permutations=9999)
    # m = 3: .01 <= .05/3, .02 <= .05/2, .04 <= .05 (with m = 4, .02 > .05/3 would stop it)
    assert res.significant(0.05, "holm").tolist() == [[True, False], [True, True]]


def test_significant_errors():
    with pytest.raises(ValueError, match=r"no p-values; compute them with compare_layers"):
        _res([[0.5]]).significant()
    res = _res([[0.5]], pvalues=[[0.01]], n_permutations=999)
    with pytest.raises(ValueError, match=r"alpha=1.5 is out of range"):
        res.significant(1.5)
    with pytest.raises(ValueError, match=r"alpha=0 is out of range"):
        res.significant(0)
    with pytest.raises(ValueError, match=r"correction='bonferroni' is invalid; expected one of"):
        res.significant(0.05, "bonferroni")


def test_warns_when_too_few_permutations_for_any_cell():
    p = np.full((2, 3), 1 / 100)  # the smallest p-value 99 permutations can give
    res = _res(np.zeros((2, 3)), pvalues=p, n_permutations=99)
    # Holm: m = 6, 100 < 6 / .05 = 120 -> warn; and indeed nothing passes
    with pytest.warns(UserWarning, match=r"no cell can be significant; use at least 119"):
        got = res.significant(0.05, "holm")
    assert not got.any()
    # BH: a cell can pass only in a group: here all six are at 1/100 and all pass
    with pytest.warns(UserWarning, match=r"at least 2 cells have that p-value"):
        got = res.significant(0.05, "fdr_bh")
    assert got.all()
    # uncorrected: one test at a time, 100 >= 1 / .05: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res.significant(0.05, None)
        # 120 >= 120: enough, no warning
        dataclasses.replace(res, n_permutations=119).significant(0.05, "holm")
    # uncorrected with 10 permutations: 11 < 20
    few = dataclasses.replace(res, n_permutations=10, pvalues=np.full((2, 3), 1 / 11))
    with pytest.warns(UserWarning, match=r"alpha = 0.05: no cell can be significant"):
        assert not few.significant(0.05, None).any()


# --------------------------------------------------------------------------- repr and HTML


def test_repr_shows_the_numbers_up_to_20(computed):
    text = repr(computed)
    lines = text.splitlines()
    assert lines[0] == (
        "LayerComparison(cka(kernel='linear', sigma_frac=1.0, debiased=True) [similarity], 3 x 2)"
    )
    assert "\n".join(lines[1:]) == computed.format()
    for i, r in enumerate(computed.rows):
        row = next(ln for ln in lines[1:] if ln.startswith(r + " "))
        assert row.split()[1:] == [f"{v:.3f}" for v in computed.values[i]]
    big = _res(np.arange(400.0).reshape(20, 20) / 400)
    assert len(repr(big).splitlines()) == 1 + 21
    assert "0.998" in repr(big)  # the last value, 399/400


def test_repr_summarises_beyond_20():
    v = np.linspace(-0.5, 0.75, 21 * 3).reshape(21, 3)
    v[4, 1] = np.nan
    text = repr(_res(v))
    assert text.splitlines()[0].endswith("21 x 3)")
    assert "rows: r0, r1, r2, ..." in text and "cols: c0, c1, c2" in text
    assert "values from -0.5 to 0.75, 1 nan" in text
    assert len(text.splitlines()) < 8


def test_repr_with_pvalues():
    res = _res([[0.9, 0.1]], pvalues=[[0.001, 0.7]], n_permutations=999)
    text = repr(res)
    assert "p-values from 999 permutations" in text.splitlines()[0]
    after = text.split("p-values\n", 1)[1].splitlines()
    assert after[1].split() == ["r0", "0.001", "0.700"]


class _Cells(html.parser.HTMLParser):
    """The ``<td class="cell">`` of an HTML table: attributes, style and text."""

    def __init__(self):
        super().__init__()
        self.cells, self.headers, self._in, self._th = [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "cell" in a.get("class", "").split():
            self._in = {"attrs": a, "text": ""}
        if tag == "th":
            self._th = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._in is not None:
            self.cells.append(self._in)
            self._in = None
        if tag == "th" and self._th is not None:
            self.headers.append(self._th)
            self._th = None

    def handle_data(self, data):
        if self._in is not None:
            self._in["text"] += data
        if self._th is not None:
            self._th += data


def _luminance(style):
    hexa = style.split("background-color:")[1][1:7]
    r, g, b = (int(hexa[k : k + 2], 16) for k in (0, 2, 4))
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_repr_html_table():
    rows = ("<b>x</b>", "a&b")
    cols = ('c"1', "c2", "c3")
    v = np.array([[0.1, 0.7, 0.4], [0.9, 0.2, np.nan]])
    p = np.array([[0.5, 0.01, 0.2], [0.001, 0.3, np.nan]])
    res = _res(v, rows=rows, cols=cols, pvalues=p, n_permutations=999)
    page = res._repr_html_()
    assert "<b>x</b>" not in page.replace("<b>cka", "")  # names are escaped
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "a&amp;b" in page
    parser = _Cells()
    parser.feed(page)
    assert len(parser.cells) == 6
    assert [c for c in parser.headers if c] == list(cols) + list(rows)
    got = np.array([float(c["attrs"]["data-value"]) for c in parser.cells]).reshape(2, 3)
    np.testing.assert_array_equal(got, v)
    pv = np.array([float(c["attrs"]["data-pvalue"]) for c in parser.cells]).reshape(2, 3)
    np.testing.assert_array_equal(pv, p)
    assert "p=0.01" in parser.cells[1]["text"]
    best = [i for i, c in enumerate(parser.cells) if "best" in c["attrs"]["class"].split()]
    assert best == [1, 3]  # argmax of each row (nan ignored)
    # shading: darker for larger values of a similarity
    lum = [_luminance(c["attrs"]["style"]) for c in parser.cells]
    finite = [i for i in range(6) if np.isfinite(v.ravel()[i])]
    by_value = sorted(finite, key=lambda i: v.ravel()[i])
    assert [lum[i] for i in by_value] == sorted((lum[i] for i in finite), reverse=True)
    # for a distance the smallest is the darkest
    dist = dataclasses.replace(res, kind="distance")
    parser = _Cells()
    parser.feed(dist._repr_html_())
    lum = [_luminance(c["attrs"]["style"]) for c in parser.cells]
    assert min(lum[i] for i in finite) == lum[0]  # 0.1, the smallest distance
    best = [i for i, c in enumerate(parser.cells) if "best" in c["attrs"]["class"].split()]
    assert best == [0, 4]


# --------------------------------------------------------------------------- save / load


AWKWARD = np.array(
    [
        [0.1, 1 / 3, -0.0, np.nan],
        [np.inf, -np.inf, 5e-324, 1.7976931348623157e308],
        [np.nextafter(1.0, 2.0), -2.5e-17, 0.30000000000000004, 12345.678901234567],
    ]
)


def _full_result():
    return LayerComparison(
        measure="cka",
        params={
            "kernel": "rbf",
            "sigma_frac": 0.1 + 0.2,
            "debiased": True,
            "k": 7,
            "note": None,
            "big": 2**70,
            "odd": float("-inf"),
        },
        kind="similarity",
        rows=("conv,1", 'say "hi"', "# not a comment\nline two"),
        cols=("ünï", "a\tb", " lead", ""),
        values=AWKWARD,
        pvalues=np.array(
            [[0.001, 1.0, np.nan, 0.5], [1 / 7, 0.2, 0.3, 0.4], [0.05, 0.06, 0.07, 1 / 3]]
        ),
        n_permutations=999,
        seed=12345,
        alternative="greater",
        shapes={
            "a": {"conv,1": (40, 8), 'say "hi"': (40, 3), "# not a comment\nline two": (40, 2)},
            "b": {"ünï": (40, 5), "a\tb": (40, 1), " lead": (40, 2), "": (40, 9)},
        },
        version="9.8.7+saved",
    )


def _assert_same_bits(got, want):
    assert got.shape == want.shape and got.dtype == np.float64
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint64), want[~nan].view(np.uint64))


def _assert_same_result(got, want):
    assert isinstance(got, LayerComparison)
    for f in dataclasses.fields(LayerComparison):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if f.name in ("values", "pvalues"):
            if b is None:
                assert a is None
            else:
                _assert_same_bits(np.asarray(a), np.asarray(b))
        elif f.name == "params":
            assert set(a) == set(b) and list(a) == list(b)
            for k in b:
                assert type(a[k]) is type(b[k]) and (a[k] == b[k] or a[k] != a[k] == b[k] != b[k])
        else:
            assert a == b, f.name


@pytest.mark.parametrize("suffix", [".json", ".npz", ".csv", ".JSON"])
def test_round_trip_exact(tmp_path, suffix):
    res = _full_result()
    path = tmp_path / f"res{suffix}"
    assert res.save(path) is None
    _assert_same_result(cg.load_result(path), res)
    _assert_same_result(cg.load_result(str(path)), res)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize("suffix", [".json", ".npz", ".csv"])
def test_round_trip_computed_without_pvalues(tmp_path, suffix, computed):
    path = tmp_path / f"res{suffix}"
    computed.save(path)
    back = cg.load_result(path)
    _assert_same_result(back, computed)
    assert back.best_match() == computed.best_match()


def test_json_is_strict_json_with_nonfinite_as_strings(tmp_path):
    res = _full_result()
    path = tmp_path / "res.json"
    res.save(path)

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert data["values"][0][3] == "nan" and data["values"][1][:2] == ["inf", "-inf"]
    assert data["values"][0][1] == 1 / 3 and data["pvalues"][0][2] == "nan"
    assert data["measure"] == "cka" and data["seed"] == 12345 and data["version"] == "9.8.7+saved"
    assert data["shapes"]["a"]["conv,1"] == [40, 8]


def test_csv_is_a_metadata_line_then_to_csv(tmp_path):
    res = _full_result()
    path = tmp_path / "res.csv"
    res.save(path)
    text = path.read_text(encoding="utf-8")
    first, rest = text.split("\n", 1)
    assert first.startswith("# congruence {")
    meta = json.loads(first[len("# congruence ") :])
    assert meta["pvalues"][1][0] == 1 / 7 and meta["n_permutations"] == 999
    assert meta["params"]["sigma_frac"] == 0.1 + 0.2
    assert rest == res.to_csv()
    # the table alone (to_csv) has no metadata: a clear refusal
    plain = tmp_path / "plain.csv"
    res.to_csv(plain)
    with pytest.raises(UnreadableFileError, match=r"does not start with '# congruence'"):
        cg.load_result(plain)


def test_npz_reads_without_pickle(tmp_path):
    res = _full_result()
    path = tmp_path / "res.npz"
    res.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"meta", "values", "pvalues"}
        _assert_same_bits(z["values"], AWKWARD)
        assert json.loads(str(z["meta"][()]))["rows"][2] == "# not a comment\nline two"


def test_save_refuses_non_scalar_parameters(tmp_path):
    res = _res([[0.5]], params={"kernel": "rbf", "layers": [1, 2]})
    with pytest.raises(ValueError, match=r"parameter 'layers' = \[1, 2\] \(list\).*JSON scalars"):
        res.save(tmp_path / "x.json")
    with pytest.raises(ValueError, match=r"parameter 'f'"):
        _res([[0.5]], params={"f": np.mean}).save(tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []
    # numpy scalars are scalars
    ok = _res([[0.5]], params={"k": np.int64(3), "s": np.float32(0.5), "b": np.bool_(True)})
    ok.save(tmp_path / "ok.json")
    assert cg.load_result(tmp_path / "ok.json").params == {"k": 3, "s": 0.5, "b": True}
    with pytest.raises(ValueError, match=r"cannot save seed = 'abc': expected an int or None"):
        _res([[0.5]], seed="abc").save(tmp_path / "y.json")


def test_unknown_suffix_lists_the_formats(tmp_path):
    res = _res([[0.5]])
    for name in ("x.txt", "x"):
        with pytest.raises(ValueError, match=r"the formats are \.json, \.npz, \.csv"):
            res.save(tmp_path / name)
        with pytest.raises(ValueError, match=r"the formats are \.json, \.npz, \.csv"):
            cg.load_result(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        res.save(tmp_path / "missing" / "x.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ValueError, match=r"is a folder"):
        res.save(tmp_path / "dir.json")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "res.json"
    _res([[0.25]]).save(path)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _res([[0.75]]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["res.json"]


def test_load_refuses_damaged_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        cg.load_result(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UnreadableFileError, match=r"not valid JSON"):
        cg.load_result(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"values": [[1]]}))
    with pytest.raises(UnreadableFileError, match=r"not a congruence result"):
        cg.load_result(other)
    res = _res([[0.5, 0.25]])
    good = tmp_path / "good.json"
    res.save(good)
    data = json.loads(good.read_text())
    data["values"] = [[0.5]]
    good.write_text(json.dumps(data))
    with pytest.raises(UnreadableFileError, match=r"values has 1 rows of lengths \[1\]"):
        cg.load_result(good)
    data["values"] = [[0.5, "NaN"]]
    good.write_text(json.dumps(data))
    with pytest.raises(UnreadableFileError, match=r"'NaN' is not a number"):
        cg.load_result(good)
    npz = tmp_path / "x.npz"
    np.savez(npz, values=np.ones((1, 1)))
    with pytest.raises(UnreadableFileError, match=r"no 'meta' and 'values' entries"):
        cg.load_result(npz)
    trunc = tmp_path / "t.npz"
    res.save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:50])
    with pytest.raises(UnreadableFileError, match=r"not a readable \.npz result"):
        cg.load_result(trunc)
    csvp = tmp_path / "x.csv"
    res.save(csvp)
    lines = csvp.read_text().split("\n")
    csvp.write_text("\n".join([lines[0], lines[1].replace("c1", "c9")] + lines[2:]))
    with pytest.raises(UnreadableFileError, match=r"layer names differ"):
        cg.load_result(csvp)


def test_to_xarray():
    import xarray as xr

    res = _full_result()
    da = res.to_xarray()
    assert isinstance(da, xr.DataArray)
    assert da.dims == ("rows", "cols") and da.name == "cka"
    assert list(da.coords["rows"].values) == list(res.rows)
    assert list(da.coords["cols"].values) == list(res.cols)
    _assert_same_bits(da.values, res.values)
    _assert_same_bits(da.coords["pvalues"].values, res.pvalues)
    assert da.attrs["measure"] == "cka" and da.attrs["kind"] == "similarity"
    assert da.attrs["params"]["kernel"] == "rbf" and da.attrs["seed"] == 12345
    assert da.attrs["n_permutations"] == 999 and da.attrs["version"] == "9.8.7+saved"
    one = da.sel(rows="conv,1", cols="ünï")
    assert float(one) == 0.1 and float(one.coords["pvalues"]) == 0.001
    plain = _res([[0.5, 0.25]]).to_xarray()
    assert "pvalues" not in plain.coords and "seed" not in plain.attrs


# --------------------------------------------------------------------------- output checks


def test_check_output(tmp_path, monkeypatch):
    assert _files.check_output(tmp_path / "r.HTML", (".html",), "the report") == ".html"
    with pytest.raises(ValueError, match=r"suffix '\.htm'; the formats are \.html"):
        _files.check_output(tmp_path / "r.htm", (".html",), "the report")
    with pytest.raises(FileNotFoundError, match=r"the folder of the report .* does not exist"):
        _files.check_output(tmp_path / "no" / "r.html", (".html",), "the report")
    real = os.access
    monkeypatch.setattr(
        _files.os, "access", lambda p, mode: False if p == str(tmp_path) else real(p, mode)
    )
    with pytest.raises(PermissionError, match=r"is not writable"):
        _files.check_output(tmp_path / "r.html", (".html",), "the report")


def test_nonfinite_parameters_round_trip(tmp_path):
    res = _res([[0.5]], params={"a": float("nan"), "b": float("inf")})
    path = tmp_path / "p.json"
    res.save(path)
    back = cg.load_result(path).params
    assert math.isnan(back["a"]) and back["b"] == math.inf
    raw = json.loads(path.read_text())
    assert raw["params"] == {"a": {"float": "nan"}, "b": {"float": "inf"}}
