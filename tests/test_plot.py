"""Plots (Agg backend): the artists drawn by ``res.plot()``, ``res.plot_profile()`` and
``plot_null``, and that each figure renders to PNG."""

from __future__ import annotations

import doctest
import importlib
import io
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import congruence as cg  # noqa: E402
from congruence import plot as cplot  # noqa: E402
from congruence.results import LayerComparison  # noqa: E402

N = 50


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a plot function called show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def res():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, 6))
    a = {"h1": x, "h2": np.tanh(x @ rng.standard_normal((6, 4))), "h3": x**2}
    b = {"g1": x**2 + 0.1 * rng.standard_normal((N, 6)), "g2": 3 * x, "g3": np.abs(x)}
    return cg.compare_layers(a, b, "cka", debiased=True)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return data


def _best_markers(ax):
    lines = [ln for ln in ax.get_lines() if ln.get_gid() == "best match"]
    assert len(lines) == 1
    return list(zip(lines[0].get_xdata(), lines[0].get_ydata()))


def test_heatmap_artists(res):
    ax = res.plot()
    images = [im for im in ax.get_images() if isinstance(im, AxesImage)]
    assert len(images) == 1
    arr = images[0].get_array()
    assert arr.shape == (3, 3)  # one pixel per cell
    np.testing.assert_array_equal(np.asarray(arr), res.values)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(res.cols)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(res.rows)
    assert list(ax.get_xticks()) == [0, 1, 2] and list(ax.get_yticks()) == [0, 1, 2]
    label = images[0].colorbar.ax.get_ylabel()
    assert label == "cka(kernel=linear, sigma_frac=1.0, debiased=True)"
    # best matches: (column, row) of each row's argmax
    want = [(int(np.argmax(row)), i) for i, row in enumerate(res.values)]
    assert _best_markers(ax) == want
    assert want == [(1, 0), (1, 1), (0, 2)]  # h1 ~ 3x, h3 ~ x^2 (independent of the code)
    # 3 x 3 <= 12 x 12: the values are written in the cells
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(f"{v:.2f}" for v in res.values.ravel())
    # no p-values: nothing hatched
    assert not [p for p in ax.patches if p.get_gid() == "not significant"]
    _png(ax.figure)


def test_heatmap_on_given_axes_and_options(res):
    fig, (ax1, ax2) = plt.subplots(1, 2)
    got = res.plot(ax=ax2, annotate=False, mark_best=False, cmap="magma")
    assert got is ax2 and not ax1.get_images()
    assert not ax2.texts
    assert not [ln for ln in ax2.get_lines() if ln.get_gid() == "best match"]
    assert ax2.get_images()[0].get_cmap().name.startswith("magma")
    _png(fig)


def test_heatmap_annotates_only_small_matrices_by_default():
    big = LayerComparison(
        "cka",
        {},
        "similarity",
        tuple(f"r{i}" for i in range(13)),
        tuple(f"c{j}" for j in range(12)),
        np.random.default_rng(0).random((13, 12)),
    )
    ax = big.plot()
    assert not ax.texts
    assert len(big.plot(annotate=True).texts) == 13 * 12
    small = LayerComparison("cka", {}, "similarity", ("a",), ("b", "c"), np.ones((1, 2)))
    assert len(small.plot().texts) == 2


def test_heatmap_distance_and_nan():
    v = np.array([[0.3, 0.1, np.nan], [np.nan, np.nan, np.nan]])
    res = LayerComparison("procrustes", {}, "distance", ("r0", "r1"), ("c0", "c1", "c2"), v)
    ax = res.plot()
    im = ax.get_images()[0]
    assert im.get_cmap().name.startswith("viridis_r")  # the bright end is "more alike"
    arr = im.get_array()
    assert np.ma.is_masked(arr) and arr.mask.tolist() == np.isnan(v).tolist()
    assert _best_markers(ax) == [(1, 0)]  # the smallest distance; the all-nan row has none
    assert "nan" in [t.get_text() for t in ax.texts]
    _png(ax.figure)


def test_non_significant_cells_are_hatched(res):
    p = np.array([[0.5, 0.001, 0.2], [0.04, 0.001, 0.3], [0.001, 0.9, 0.002]])
    withp = LayerComparison(
        res.measure,
        res.params,
        res.kind,
        res.rows,
        res.cols,
        res.values,
        pvalues=p,
        n_permutations=999,
    )
    ax = withp.plot()
    hatched = [pt for pt in ax.patches if pt.get_gid() == "not significant"]
    # Holm at .05 over m = 9: .001 .001 .001 pass (<= .05/9 = .0056, .05/8, .05/7);
    # .002 <= .05/6 passes; .04 > .05/5 = .01 stops: 5 cells are not significant
    positions = sorted((int(pt.get_y() + 0.5), int(pt.get_x() + 0.5)) for pt in hatched)
    assert positions == [(0, 0), (0, 2), (1, 0), (1, 2), (2, 1)]
    assert all(isinstance(pt, Rectangle) and pt.get_hatch() == "///" for pt in hatched)
    assert all(pt.get_width() == 1 and pt.get_height() == 1 for pt in hatched)
    assert "not significant" in ax.get_title()
    # uncorrected at .05: only .2, .3, .5 and .9 fail
    ax = withp.plot(correction=None)
    assert len([pt for pt in ax.patches if pt.get_gid() == "not significant"]) == 4
    ax = withp.plot(significance=False)
    assert not [pt for pt in ax.patches if pt.get_gid() == "not significant"]
    _png(ax.figure)


def test_same_depth_rule():
    # first to first, last to last, nearest in between (ties to the deeper one)
    assert [cplot.same_depth(i, 5, 3) for i in range(5)] == [0, 1, 1, 2, 2]
    assert [cplot.same_depth(i, 2, 7) for i in range(2)] == [0, 6]
    assert [cplot.same_depth(i, 7, 7) for i in range(7)] == list(range(7))
    assert cplot.same_depth(0, 1, 1) == 0
    for r in range(1, 9):
        for c in range(1, 9):
            js = [cplot.same_depth(i, r, c) for i in range(r)]
            assert js == sorted(js) and 0 <= js[0] and js[-1] == c - 1
            if r > 1 and c > 1:
                assert js[0] == 0
                # the nearest column to depth i / (r - 1)
                for i, j in enumerate(js):
                    assert abs(j / (c - 1) - i / (r - 1)) <= 0.5 / (c - 1) + 1e-12


def test_profile(res):
    ax = res.plot_profile()
    lines = {ln.get_gid(): ln for ln in ax.get_lines()}
    assert set(lines) == {"best match", "same depth"}
    np.testing.assert_array_equal(lines["best match"].get_ydata(), res.values.max(axis=1))
    # 3 x 3: the same-depth layers are the diagonal
    np.testing.assert_array_equal(lines["same depth"].get_ydata(), np.diag(res.values))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(res.rows)
    assert ax.get_ylabel() == "cka(kernel=linear, sigma_frac=1.0, debiased=True)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["best match", "same depth"]
    _png(ax.figure)


def test_profile_with_different_depths_and_distance():
    v = np.array([[0.5, 0.2, 0.9, 0.4, 0.1], [0.3, 0.6, 0.2, 0.05, 0.8]])
    res = LayerComparison("d", {}, "distance", ("a0", "a1"), tuple("bcdef"), v)
    ax = res.plot_profile()
    lines = {ln.get_gid(): ln for ln in ax.get_lines()}
    assert lines["best match"].get_ydata().tolist() == [0.1, 0.05]  # the smallest distances
    assert lines["same depth"].get_ydata().tolist() == [0.5, 0.8]  # first-first, last-last


def test_plot_null():
    rng = np.random.default_rng(1)
    null = rng.normal(size=300)
    null[5] = np.nan
    ax = cplot.plot_null(2.5, null, pvalue=3 / 301, label="cka")
    assert ax.get_title() == "p = 0.00997 (300 permutations)"
    assert ax.get_xlabel() == "cka" and ax.get_ylabel() == "permutations"
    heights = [pt.get_height() for pt in ax.patches]
    assert sum(heights) == 299  # the nan is left out
    observed = [ln for ln in ax.get_lines() if ln.get_gid() == "observed"]
    assert len(observed) == 1 and list(observed[0].get_xdata()) == [2.5, 2.5]
    _png(ax.figure)
    fig, given = plt.subplots()
    out = cplot.plot_null(0.1, [0.0, 0.2, 0.05], ax=given)
    assert out is given and given.get_title() == "" and given.get_xlabel() == "statistic"


def test_missing_matplotlib_names_the_extra(res, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'congruence\[plot\]'"):
        res.plot()
    with pytest.raises(ImportError, match=r"congruence\[plot\]"):
        cplot.plot_null(0.0, [1.0])


def test_import_congruence_does_not_import_matplotlib():
    import subprocess

    code = "import sys, congruence; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_doctests():
    module = importlib.import_module("congruence.plot")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
