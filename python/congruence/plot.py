"""Plots of layer comparisons and permutation tests (needs matplotlib:
``pip install 'congruence[plot]'``).

matplotlib is imported when a function is called, never at ``import congruence``. Every
function draws on the given ``ax`` (or a new figure's Axes), returns the Axes, and never calls
``show()``: display or save the figure yourself (``ax.figure.savefig("cka.png")``).

* :func:`heatmap` (``res.plot()``): the layer matrix, with the layer names on the axes, a
  colour bar named by the measure and its parameters, the best match of each row marked and,
  when the result holds p-values, the cells that are not significant hatched.
* :func:`profile` (``res.plot_profile()``): for each layer of the first model, the value of its
  best match and of the layer of the second model at the same relative depth.
* :func:`plot_null`: the null distribution of a permutation test with the observed value.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np, congruence as cg
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((50, 6))
>>> res = cg.compare_layers({"h1": x, "h2": np.tanh(x)}, {"g1": x**2, "g2": 2 * x})
>>> ax = res.plot()
>>> [t.get_text() for t in ax.get_xticklabels()]
['g1', 'g2']
>>> ax.images[0].colorbar.ax.get_ylabel()
'cka(kernel=linear, sigma_frac=1.0, debiased=False)'
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from congruence._validation import check_bool

__all__ = ["heatmap", "profile", "plot_null", "same_depth"]

#: ``annotate=None`` writes the values in the cells up to this many rows and columns
ANNOTATE_MAX = 12
#: what the best-match markers, the hatched cells and the observed line are called (their
#: matplotlib ``gid``), so that they can be found on the Axes
BEST_GID = "best match"
NOT_SIGNIFICANT_GID = "not significant"
OBSERVED_GID = "observed"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib: pip install 'congruence[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def _axes(ax: Any) -> Any:
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots()
    return ax


def measure_label(res: Any) -> str:
    """``"cka(kernel=linear, debiased=False)"``: the measure and its parameters."""
    params = ", ".join(f"{k}={v}" for k, v in res.params.items())
    return f"{res.measure}({params})"


def heatmap(
    res: Any,
    ax: Any = None,
    annotate: Optional[bool] = None,
    cmap: Any = None,
    mark_best: bool = True,
    significance: bool = True,
    *,
    alpha: float = 0.05,
    correction: Optional[str] = "holm",
    digits: int = 2,
    colorbar: bool = True,
) -> Any:
    """Draw a :class:`~congruence.LayerComparison` as a heatmap; return the Axes.

    Parameters
    ----------
    res : LayerComparison
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    annotate : bool, optional
        Write each value in its cell (``digits`` decimals); ``None`` (default) does so when
        the matrix is at most 12 x 12.
    cmap : str or Colormap, optional
        Default ``"viridis"`` for similarities and dependences and ``"viridis_r"`` for
        distances, so that the bright end is "more alike" for every kind. nan cells are grey.
    mark_best : bool
        Mark each row's best match (largest similarity, smallest distance) with a red ring:
        one ``Line2D`` whose ``gid`` is ``"best match"`` and whose points are the
        ``(column, row)`` positions.
    significance : bool
        When the result holds p-values, hatch the cells that are not significant by
        ``res.significant(alpha, correction)``: one ``Rectangle`` patch per such cell, with
        ``gid`` ``"not significant"``. Ignored without p-values.
    alpha, correction
        Passed to :meth:`~congruence.LayerComparison.significant`.
    colorbar : bool
        Add a colour bar labelled with the measure and its parameters.

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]`` (its array is the matrix, rows top to bottom); the tick
        labels are the layer names (columns on the x axis, rows on the y axis).
    """
    mark_best = check_bool("mark_best", mark_best)
    significance = check_bool("significance", significance)
    _pyplot()
    from matplotlib.patches import Rectangle

    ax = _axes(ax)
    values = np.asarray(res.values, dtype=np.float64)
    r, c = values.shape
    if cmap is None:
        cmap = "viridis_r" if res.kind == "distance" else "viridis"
    import matplotlib

    colours = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    colours = colours.with_extremes(bad="#bdbdbd")
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=colours, aspect="auto", interpolation="nearest"
    )
    ax.set_xticks(range(c), labels=list(res.cols), rotation=45 if c > 1 else 0, ha="right")
    ax.set_yticks(range(r), labels=list(res.rows))
    ax.set_xlabel("columns (b)" if not res.is_self else "layers")
    ax.set_ylabel("rows (a)" if not res.is_self else "layers")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=measure_label(res))
    if annotate is None:
        annotate = r <= ANNOTATE_MAX and c <= ANNOTATE_MAX
    if annotate:
        norm = image.norm
        for i in range(r):
            for j in range(c):
                v = values[i, j]
                rgba = image.cmap(norm(v)) if math.isfinite(v) else (0.74, 0.74, 0.74, 1)
                light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                ax.text(
                    j,
                    i,
                    f"{v:.{digits}f}",
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="black" if light > 0.5 else "white",
                )
    if mark_best:
        best = [(j, i) for i, j in enumerate(res._best_columns()) if j >= 0]
        xs = [p[0] for p in best]
        ys = [p[1] for p in best]
        ax.plot(
            xs,
            ys,
            linestyle="none",
            marker="o",
            markersize=14,
            markerfacecolor="none",
            markeredgecolor="#d62728",
            markeredgewidth=2,
            gid=BEST_GID,
            label="best match",
        )
    if significance and res.pvalues is not None:
        passed = res.significant(alpha, correction)
        for i, j in zip(*np.nonzero(~passed)):
            ax.add_patch(
                Rectangle(
                    (j - 0.5, i - 0.5),
                    1,
                    1,
                    fill=False,
                    hatch="///",
                    edgecolor="#525252",
                    linewidth=0,
                    gid=NOT_SIGNIFICANT_GID,
                )
            )
        what = correction or "uncorrected"
        ax.set_title(f"hatched: not significant (alpha={alpha:g}, {what})", fontsize="small")
    ax.set_xlim(-0.5, c - 0.5)
    ax.set_ylim(r - 0.5, -0.5)
    return ax


def same_depth(i: int, n_rows: int, n_cols: int) -> int:
    """The column layer at the same relative depth as row layer ``i`` (0-based).

    Layers are taken in their order, first to last. Row ``i`` of ``n_rows`` sits at depth
    ``i / (n_rows - 1)`` (0 for the first layer, 1 for the last); the column at that depth is
    ``floor(i (n_cols - 1) / (n_rows - 1) + 1/2)``: first to first, last to last, and the
    nearest in between (ties to the deeper layer). A single row layer is matched with the
    last column layer (both are the model's output end).

    >>> [same_depth(i, 3, 3) for i in range(3)]
    [0, 1, 2]
    >>> [same_depth(i, 3, 5) for i in range(3)]
    [0, 2, 4]
    >>> [same_depth(i, 4, 2) for i in range(4)]
    [0, 0, 1, 1]
    >>> same_depth(0, 1, 4)
    3
    """
    if n_rows == 1:
        return n_cols - 1
    # exact rational arithmetic: floor((2 i (C - 1) + (R - 1)) / (2 (R - 1)))
    return (2 * i * (n_cols - 1) + (n_rows - 1)) // (2 * (n_rows - 1))


def profile(res: Any, ax: Any = None) -> Any:
    """For each row layer (model A, in order), the value of its best match in B and of the
    layer of B at the same relative depth (:func:`same_depth`); return the Axes.

    Two lines on the row layers: ``"best match"`` (the largest similarity, or smallest
    distance, of the row) and ``"same depth"`` (``values[i, same_depth(i, R, C)]``). When the
    best match is the same-depth layer, the two points coincide: layers that correspond by
    depth are each other's best matches.

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from congruence import LayerComparison
    >>> res = LayerComparison("cka", {}, "similarity", ("h1", "h2"), ("g1", "g2", "g3"),
    ...                       np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.6]]))
    >>> ax = res.plot_profile()
    >>> [line.get_ydata().tolist() for line in ax.get_lines()]
    [[0.9, 0.8], [0.9, 0.6]]
    """
    ax = _axes(ax)
    values = np.asarray(res.values, dtype=np.float64)
    r, c = values.shape
    best = res._best_columns()
    x = np.arange(r)
    best_values = [values[i, j] if j >= 0 else np.nan for i, j in enumerate(best)]
    depth_values = [values[i, same_depth(i, r, c)] for i in range(r)]
    ax.plot(x, best_values, marker="o", label="best match", gid="best match")
    ax.plot(x, depth_values, marker="s", linestyle="--", label="same depth", gid="same depth")
    ax.set_xticks(x, labels=list(res.rows), rotation=45 if r > 1 else 0, ha="right")
    ax.set_xlabel("layer of a")
    ax.set_ylabel(measure_label(res))
    ax.legend()
    return ax


def plot_null(
    statistic: float,
    null: Any,
    ax: Any = None,
    *,
    pvalue: Optional[float] = None,
    label: Optional[str] = None,
    bins: Any = "auto",
) -> Any:
    """A histogram of a permutation test's null distribution with the observed statistic as
    a vertical line (``gid`` ``"observed"``); return the Axes.

    Parameters
    ----------
    statistic : float
        The observed value.
    null : array-like of float
        The values under permuted pairings (non-finite ones are left out of the histogram).
    pvalue : float, optional
        Shown in the title.
    label : str, optional
        The x-axis label (the measure); default ``"statistic"``.
    bins
        Passed to ``Axes.hist``.

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> null = np.random.default_rng(0).normal(size=200)
    >>> ax = plot_null(3.1, null, pvalue=1 / 201, label="cka")
    >>> ax.get_title(), ax.get_xlabel()
    ('p = 0.00498 (200 permutations)', 'cka')
    """
    ax = _axes(ax)
    null = np.asarray(null, dtype=np.float64).ravel()
    finite = null[np.isfinite(null)]
    ax.hist(finite, bins=bins, color="#9ecae1", edgecolor="#3182bd", label="null")
    ax.axvline(float(statistic), color="#d62728", linewidth=2, label="observed", gid=OBSERVED_GID)
    ax.set_xlabel(label or "statistic")
    ax.set_ylabel("permutations")
    if pvalue is not None:
        ax.set_title(f"p = {float(pvalue):.3g} ({null.size} permutations)")
    ax.legend()
    return ax
