"""The self-contained HTML report: its content, the command line, and the page in a real
headless browser (Debian's chromium driven by selenium through chromium-driver)."""

from __future__ import annotations

import doctest
import hashlib
import html.parser
import importlib
import re
import shutil

import numpy as np
import pytest

import congruence as cg
from congruence.cli import main
from congruence.results import LayerComparison

N = 60
MEASURES = ("cka", "svcca", "rsa")
report_module = importlib.import_module("congruence.report")
compare_module = importlib.import_module("congruence.compare")


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, 6))
    a = {"h1": x, "h<2>": np.tanh(x @ rng.standard_normal((6, 5))), "h3": x**2}
    b = {"g1": x + 0.1 * rng.standard_normal((N, 6)), "g&2": np.abs(x)}
    return a, b


@pytest.fixture()
def files(tmp_path, layers):
    a, b = layers
    pa, pb = tmp_path / "model_a.npz", tmp_path / "model_b.npz"
    np.savez(pa, **a)
    np.savez(pb, **b)
    return pa, pb


class _Page(html.parser.HTMLParser):
    """Every element's tag and attributes, and the cells of each measure's section."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.section = None
        self.rects, self.cells, self.svgs = {}, {}, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section" and "measure" in a.get("class", ""):
            self.section = a["data-measure"]
        if tag == "svg" and self.section:
            self.svgs.setdefault(self.section, []).append(a)
        if tag == "rect":
            self.rects.setdefault(self.section, []).append(a)
        if tag == "td" and "cell" in a.get("class", "").split():
            self.cells.setdefault(self.section, []).append(a)

    handle_startendtag = handle_starttag


def _parse(page):
    p = _Page()
    p.feed(page)
    return p


def _assert_self_contained(page):
    p = _parse(page)
    assert not [t for t, _ in p.tags if t in ("script", "iframe", "object", "embed", "img")]
    for tag, attrs in p.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:"), (tag, attrs)
        if tag == "link":
            assert attrs.get("rel") == "icon" and attrs["href"].startswith("data:")
    assert "url(" not in page and "@import" not in page
    # the only address is the SVG namespace name (an identifier, never fetched)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_report_of_files(files, layers, tmp_path):
    pa, pb = files
    a, b = layers
    out = tmp_path / "report.html"
    page = cg.report(pa, pb, ",".join(MEASURES), out=out)
    assert out.read_text(encoding="utf-8") == page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # atomic
    _assert_self_contained(page)
    parsed = _parse(page)
    for name in MEASURES:
        want = cg.compare_layers(a, b, name)
        rects = parsed.rects[name]
        assert len(rects) == 3 * 2 == len(parsed.cells[name])
        assert parsed.svgs[name][0]["data-rows"] == "3" and parsed.svgs[name][0]["data-cols"] == "2"
        got = np.array([float(r["data-value"]) for r in rects]).reshape(3, 2)
        np.testing.assert_array_equal(got, want.values)
        got = np.array([float(c["data-value"]) for c in parsed.cells[name]]).reshape(3, 2)
        np.testing.assert_array_equal(got, want.values)
        assert [r["data-row"] for r in rects[::2]] == list(want.rows)
        m = cg.get_measure(name)
        assert page.count(m.summary.replace("'", "&#x27;")) >= 1
        for ref in m.references:
            assert ref.replace("&", "&amp;").replace("'", "&#x27;") in page
    # the inputs: names, file hashes computed here, shapes
    for path in (pa, pb):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in page
        assert path.name in page and str(path) in page
    assert "(60, 6)" in page and "(60, 5)" in page
    assert "h&lt;2&gt;" in page and "g&amp;2" in page and "h<2>" not in page
    assert f"<td>{cg.__version__}</td>" in page
    assert "Timings" in page and "reading the inputs" in page
    for name in MEASURES:
        assert re.search(rf"<th>{name}</th><td>[0-9.e+-]+ s</td>", page)
    assert "none (no p-values)" in page
    assert "kernel</th><td><code>&#x27;linear&#x27;</code>" in page  # the parameters


def test_report_of_arrays_hashes_each_array_and_self_comparison(layers):
    a, _ = layers
    page = cg.report(a, measures=["cka"], names=["my net"], params={"cka": {"debiased": True}})
    for x in a.values():
        assert hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() in page
    parsed = _parse(page)
    want = cg.compare_layers(a, measure="cka", debiased=True)
    assert len(parsed.rects["cka"]) == 9
    got = np.array([float(c["data-value"]) for c in parsed.cells["cka"]]).reshape(3, 3)
    np.testing.assert_array_equal(got, want.values)
    assert "congruence report: my net" in page and "debiased</th><td><code>True</code>" in page
    # the best match of each layer of a model with itself is itself: three rings
    assert sum(1 for t, _ in parsed.tags if t == "circle") == 3


def test_report_checks_before_computing(files, tmp_path, monkeypatch):
    pa, pb = files

    def boom(*args, **kwargs):
        raise AssertionError("computed before the checks")

    monkeypatch.setattr(compare_module, "compare_layers", boom)
    with pytest.raises(ValueError, match=r"the formats are \.html, \.htm"):
        cg.report(pa, pb, out=tmp_path / "r.pdf")
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        cg.report(pa, pb, out=tmp_path / "missing" / "r.html")
    with pytest.raises(ValueError, match=r"unknown measure|no measure named|'ckaa'"):
        cg.report(pa, pb, "cka,ckaa")
    with pytest.raises(TypeError, match=r"unexpected parameter"):
        cg.report(pa, pb, "cka", params={"cka": {"kernal": "rbf"}})
    with pytest.raises(ValueError, match=r"params names measure\(s\) \['rsa'\]"):
        cg.report(pa, pb, "cka", params={"rsa": {}})
    with pytest.raises(ValueError, match=r"compares model outputs"):
        cg.report(pa, pb, "cohens_kappa")
    with pytest.raises(ValueError, match=r"permutations=-1 is out of range"):
        cg.report(pa, pb, permutations=-1)
    with pytest.raises(ValueError, match=r"names must give one name per input \(2\)"):
        cg.report(pa, pb, names=["x"])
    with pytest.raises(ValueError, match=r"lists a measure twice"):
        cg.report(pa, pb, "cka,cka")
    assert not list(tmp_path.glob("*.html"))


def test_render_with_pvalues():
    v = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4]])
    p = np.array([[0.001, 0.5, 0.2], [0.03, 0.002, 0.6]])
    res = LayerComparison(
        "cka",
        {"kernel": "linear", "sigma_frac": 1.0, "debiased": False},
        "similarity",
        ("h1", "h2"),
        ("g1", "g2", "g3"),
        v,
        pvalues=p,
        n_permutations=999,
        seed=4,
    )
    page = report_module.render([res], permutations=999, seed=4, alpha=0.05, correction="holm")
    _assert_self_contained(page)
    parsed = _parse(page)
    assert len(parsed.rects["cka"]) == 6
    pv = np.array([float(c["data-pvalue"]) for c in parsed.cells["cka"]]).reshape(2, 3)
    np.testing.assert_array_equal(pv, p)
    # Holm over m = 6: .001 <= .05/6, .002 <= .05/5, .03 > .05/4 stops: 4 cells fail
    crossed = [a for t, a in parsed.tags if t == "path" and a.get("class") == "not-significant"]
    assert len(crossed) == 4
    sig = [c for c in parsed.cells["cka"] if "significant" in c["class"].split()]
    assert [(c["data-row"], c["data-col"]) for c in sig] == [("h1", "g1"), ("h2", "g2")]
    assert "p-values from 999 permutations (seed 4)" in page
    assert "999 (seed 4); significance at alpha = 0.05, correction: holm" in page


def test_cli_report(files, layers, tmp_path, capsys):
    pa, pb = files
    out = tmp_path / "r.html"
    code = main(["report", str(pa), str(pb), "--measures", "cka,rsa", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == f"wrote {out} (cka, rsa)"
    parsed = _parse(out.read_text(encoding="utf-8"))
    want = cg.compare_layers(*layers, "rsa")
    got = np.array([float(c["data-value"]) for c in parsed.cells["rsa"]]).reshape(3, 2)
    np.testing.assert_array_equal(got, want.values)
    assert set(parsed.rects) == {"cka", "rsa"}


def test_cli_report_checks_the_output_first(files, tmp_path, capsys, monkeypatch):
    pa, pb = files

    def boom(*args, **kwargs):
        raise AssertionError("computed before the checks")

    monkeypatch.setattr(compare_module, "compare_layers", boom)
    for out, fragment in [
        (tmp_path / "r.txt", "the formats are .html, .htm"),
        (tmp_path / "nope" / "r.html", "does not exist"),
    ]:
        assert main(["report", str(pa), str(pb), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("congruence: error: ") and fragment in err, err
    assert (
        main(["report", str(pa), "--measures", "cka,,rsa", "--out", str(tmp_path / "x.html")]) == 2
    )
    assert "comma-separated measure names" in capsys.readouterr().err
    assert main(["report", str(pa), "--out", str(tmp_path / "x.html"), "--permutations", "-2"]) == 2
    assert "--permutations must be 0 or more" in capsys.readouterr().err
    assert main(["report", str(pa)]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err


def test_report_doctests():
    result = doctest.testmod(
        report_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- real browser


def _browser():
    """A headless chromium driven through chromium-driver; fails (never skips) without them."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "the report's browser test needs Debian's chromium and chromium-driver: "
            "apt-get install -y chromium chromium-driver (.ci/run installs them)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the report's browser test needs selenium: pip install '.[test]'")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = _browser()
    yield d
    d.quit()


def _severe(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_console_check_catches_errors(browser, tmp_path):
    """The check below can fail: a script error and a resource that cannot load are SEVERE."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="missing.png"><script>noSuchFunction();</script></body></html>'
    )
    browser.get(bad.as_uri())
    messages = " ".join(e["message"] for e in _severe(browser))
    assert "noSuchFunction" in messages and "missing.png" in messages


def test_report_in_browser(browser, files, layers, tmp_path):
    from selenium.webdriver.common.by import By

    pa, pb = files
    out = tmp_path / "report.html"
    cg.report(pa, pb, MEASURES, out=out)
    browser.get(out.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert _severe(browser) == []
    sections = browser.find_elements(By.CSS_SELECTOR, "section.measure")
    assert [s.get_attribute("data-measure") for s in sections] == list(MEASURES)
    for section in sections:
        name = section.get_attribute("data-measure")
        want = cg.compare_layers(*layers, name)
        svgs = section.find_elements(By.CSS_SELECTOR, "svg.heatmap")
        assert len(svgs) == 1
        rects = svgs[0].find_elements(By.TAG_NAME, "rect")
        assert len(rects) == want.values.size
        # every cell is drawn: a visible box of the same size
        sizes = {(r.rect["width"], r.rect["height"]) for r in rects}
        assert len(sizes) == 1 and min(next(iter(sizes))) > 0
        cells = section.find_elements(By.CSS_SELECTOR, "table.congruence-matrix td.cell")
        assert len(cells) == want.values.size
        shown = np.array([float(c.get_attribute("data-value")) for c in cells])
        np.testing.assert_array_equal(shown.reshape(want.values.shape), want.values)
        texts = [c.text.split("\n")[0] for c in cells]
        assert texts == [f"{v:.3f}" for v in want.values.ravel()]
        best = section.find_elements(By.CSS_SELECTOR, "td.cell.best")
        assert [(b.get_attribute("data-row"), b.get_attribute("data-col")) for b in best] == list(
            want.best_match().items()
        )


def test_report_with_permutations_shows_the_p_values_of_compare_layers(layers, tmp_path):
    a, b = layers
    out = tmp_path / "p.html"
    # 49 permutations cannot reach alpha / m = 0.05 / 6 (the smallest p-value is 1/50): said
    with pytest.warns(UserWarning, match=r"smallest p-value is 0.02 > alpha/m = 0.05/6"):
        page = cg.report(a, b, "cka,rsa", permutations=49, seed=3, out=out)
    assert out.read_text(encoding="utf-8") == page
    _assert_self_contained(page)
    parsed = _parse(page)
    for measure in ("cka", "rsa"):
        want = cg.compare_layers(a, b, measure, permutations=49, seed=3, progress=False)
        cells = parsed.cells[measure]
        assert len(parsed.rects[measure]) == want.values.size == len(cells)
        got = np.array([float(c["data-pvalue"]) for c in cells]).reshape(want.values.shape)
        np.testing.assert_array_equal(got, want.pvalues)
    assert "p-values from 49 permutations (seed 3)" in page
