"""A self-contained HTML report of layer comparisons: :func:`report` and
``congruence report A.npz [B.npz] --measures cka,svcca,rsa [--permutations 200] --out r.html``.

One HTML file that needs nothing else: no script, no network resource, no external stylesheet
(the styles are inline). For each measure:

* a heatmap as inline SVG, exactly one ``<rect>`` per cell (darker = more alike; grey =
  nan), the best match of each row ringed and, with p-values, the cells that are not
  significant struck through (``alpha`` and ``correction`` of
  :meth:`~congruence.LayerComparison.significant`);
* a table of the values (each cell's exact value in its ``data-value`` attribute), the best
  match of each row, and the p-values when ``permutations > 0``;
* the measure's definition and references (from the registry) and its parameters.

Then the inputs (names, layers, shapes, dtypes and SHA-256: of each input file, or of each
array's bytes in C order when arrays are given), the package version, the number of
permutations and the seed, and the time taken to read the inputs and to compute each measure.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import html
import os
import platform
import time
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from congruence._files import atomic_write, check_output
from congruence._registry import get_measure
from congruence._validation import check_bool, check_number
from congruence.results import LayerComparison, alikeness, html_table, shade

__all__ = ["report", "render"]

#: The suffixes of a report file.
REPORT_SUFFIXES = (".html", ".htm")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;
color:#1a1a1a;max-width:1200px}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em}
table.meta{border-collapse:collapse}table.meta td,table.meta th{border:1px solid #ddd;
padding:2px 8px;text-align:left;vertical-align:top}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.hash{word-break:break-all}
.legend{display:inline-block;width:200px;height:12px;vertical-align:middle;
border:1px solid #999;margin:0 6px}
.scroll{overflow-x:auto}
svg.heatmap text{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px}
"""


# ---------------------------------------------------------------------- inputs


@dataclasses.dataclass
class _Input:
    """One side of the comparison: its display name, where it came from, its layers."""

    name: str
    source: str  # a file path, or "arrays"
    layers: dict[str, Any]
    file_sha256: Optional[str]
    layer_sha256: Optional[dict[str, str]]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(int(d) for d in np.shape(v)) for k, v in self.layers.items()}


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_array(x: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(x)).tobytes()).hexdigest()


def _read_input(
    x: Any, name: Optional[str], default: str, keys: Optional[Sequence[str]], pooling: Any
) -> _Input:
    from congruence.io import load_layers

    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        layers = load_layers(path, keys, pooling=pooling)
        file_hash = _sha256_file(path) if os.path.isfile(path) else None
        layer_hash = None if file_hash else {k: _sha256_array(v) for k, v in layers.items()}
        return _Input(
            name or os.path.basename(path.rstrip(os.sep)), path, layers, file_hash, layer_hash
        )
    if keys is not None:
        raise ValueError(
            "layers= / layers_b= select layers of a file; index a dict of arrays yourself"
        )
    if isinstance(x, Mapping):
        layers = {str(k): v for k, v in x.items()}
    elif isinstance(x, (list, tuple)):
        layers = {str(i): v for i, v in enumerate(x)}
    else:
        raise ValueError(
            f"{default} must be a file path, a dict of layer names to (n, p) arrays, or a list "
            f"of arrays; got {type(x).__name__}"
        )
    if pooling is not None:
        from congruence.pooling import pool

        layers = {
            k: pool(v, pooling[k] if isinstance(pooling, Mapping) else pooling)
            if np.ndim(v) > 2
            else v
            for k, v in layers.items()
        }
    hashes = {k: _sha256_array(v) for k, v in layers.items()}
    return _Input(name or default, "arrays", layers, None, hashes)


# ---------------------------------------------------------------------- the report


def report(
    a: Any,
    b: Any = None,
    measures: Union[str, Sequence[str]] = ("cka",),
    *,
    permutations: int = 0,
    seed: Optional[int] = None,
    out: Union[str, os.PathLike, None] = None,
    names: Optional[Sequence[str]] = None,
    params: Optional[Mapping[str, Mapping[str, Any]]] = None,
    layers: Optional[Sequence[str]] = None,
    layers_b: Optional[Sequence[str]] = None,
    pooling: Any = None,
    alpha: float = 0.05,
    correction: Optional[str] = "holm",
    title: Optional[str] = None,
    progress: bool = False,
) -> str:
    """Compare the layers of ``a`` and ``b`` (or of ``a`` with itself) with each measure and
    write one self-contained HTML report; return its text.

    Parameters
    ----------
    a, b : path, dict of str to array, or list of arrays
        A file of layers (read by :func:`congruence.io.load_layers`: ``.npz``, ``.npy``,
        ``.safetensors``, HDF5, zarr) or the layers themselves, on the same ``n`` inputs.
        ``b=None`` compares ``a`` with itself.
    measures : str or sequence of str
        Registered measures on representations; a string may list several, comma-separated
        (``"cka,svcca,rsa"``).
    permutations : int
        With ``N > 0``, each matrix of a measure whose sides are paired by rows
        (``Measure.paired``) also gets permutation p-values,
        ``compare_layers(..., permutations=N, seed=seed)``, shown in the tables and used to
        strike out the cells that are not significant in the heatmaps; the others (e.g.
        ``magnitude_diff``) have no permutation null and are shown without.
    seed : int, optional
        Seed of the permutations.
    out : path, optional
        Where to write the report (``.html`` or ``.htm``; checked before any computation,
        written atomically).
    names : pair of str, optional
        Display names of ``a`` and ``b`` (default: the file names, or ``"a"`` and ``"b"``).
    params : dict of measure name to dict, optional
        Parameters of each measure, e.g. ``{"cka": {"kernel": "rbf"}}``.
    layers, layers_b : sequence of str, optional
        The layers of the files ``a`` and ``b`` to compare (default: all).
    pooling : str or dict, optional
        How 3-D and 4-D activations are pooled (the policies of :func:`congruence.pool`).
    alpha, correction
        The significance level and multiple-comparison correction of the heatmaps' marks
        (:meth:`~congruence.LayerComparison.significant`).
    title : str, optional
        The page's title.
    progress : bool
        Show the progress of each matrix on stderr.

    Returns
    -------
    str
        The HTML text (also written to ``out`` when given).

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((60, 5))
    >>> page = cg.report({"h1": x, "h2": np.tanh(x)}, {"g1": 2 * x}, measures="cka,rsa")
    >>> page.startswith("<!DOCTYPE html>"), page.count("<rect")
    (True, 4)
    """
    if isinstance(measures, str):
        measures = [t.strip() for t in measures.split(",") if t.strip()]
    measures = list(measures)
    if not measures:
        raise ValueError("measures names no measure; e.g. measures=('cka', 'rsa')")
    if len(set(measures)) != len(measures):
        raise ValueError(f"measures lists a measure twice: {measures}")
    params = dict(params or {})
    regs = []
    for name in measures:
        m = get_measure(name)
        if m.inputs != "representations":
            raise ValueError(
                f"measure {name!r} compares model outputs, not layer representations; "
                "a report compares layers"
            )
        regs.append(m)
    unknown = set(params) - set(measures)
    if unknown:
        raise ValueError(f"params names measure(s) {sorted(unknown)} that are not in measures")
    given = {m.name: dict(params.get(name, {})) for name, m in zip(measures, regs)}
    for m in regs:
        m.check_params(given[m.name])  # an unknown parameter fails before any work
    permutations = int(check_number("permutations", permutations, low=0, integer=True))
    if seed is not None:
        seed = int(check_number("seed", seed, low=0, integer=True))
    progress = check_bool("progress", progress)
    if out is not None:
        check_output(out, REPORT_SUFFIXES, "the report")
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != (1 if b is None else 2):
            raise ValueError(
                f"names must give one name per input ({1 if b is None else 2}); got {names}"
            )
    if b is None and layers_b is not None:
        raise ValueError("layers_b needs a second input b (without it, use layers)")

    t0 = time.perf_counter()
    side_a = _read_input(a, names[0] if names else None, "a", layers, pooling)
    side_b = (
        None if b is None else _read_input(b, names[1] if names else None, "b", layers_b, pooling)
    )
    timings = {"reading the inputs": time.perf_counter() - t0}
    shapes = {"a": side_a.shapes}
    if side_b is not None:
        shapes["b"] = side_b.shapes

    from congruence.compare import compare_layers

    results = []
    for m in regs:
        t = time.perf_counter()
        extra: dict[str, Any] = {}
        if permutations > 0 and m.paired:  # the others have no permutation null
            extra = {"permutations": permutations, "seed": seed}
        res = compare_layers(
            side_a.layers,
            None if side_b is None else side_b.layers,
            m.name,
            progress=progress,
            **extra,
            **given[m.name],
        )
        results.append(dataclasses.replace(res, shapes=shapes))
        timings[m.name] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    page = render(
        results,
        [side_a] if side_b is None else [side_a, side_b],
        timings=timings,
        permutations=permutations,
        seed=seed,
        alpha=alpha,
        correction=correction,
        title=title,
    )
    if out is not None:
        atomic_write(out, page)
    return page


def render(
    results: Sequence[LayerComparison],
    inputs: Sequence[Any] = (),
    *,
    timings: Optional[Mapping[str, float]] = None,
    permutations: int = 0,
    seed: Optional[int] = None,
    alpha: float = 0.05,
    correction: Optional[str] = "holm",
    title: Optional[str] = None,
) -> str:
    """The HTML page of :func:`report` for results already computed (``inputs`` are the
    report's descriptions of the inputs; may be empty)."""
    esc = html.escape
    if title is None:
        title = (
            "congruence report: " + " vs ".join(i.name for i in inputs)
            if inputs
            else "congruence report"
        )
    import congruence

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        '<table class="meta" id="about"><tbody>',
        _row("congruence", esc(congruence.__version__)),
        _row("created", esc(now)),
        _row(
            "environment",
            esc(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.system()}"),
        ),
        _row("measures", esc(", ".join(r.measure for r in results))),
        _row(
            "permutations",
            f"{permutations} (seed {esc(repr(seed))}); significance at alpha = {alpha:g}, "
            f"correction: {esc(str(correction))}"
            if permutations
            else "none (no p-values)",
        ),
        "</tbody></table>",
    ]
    if inputs:
        parts.append(_inputs_section(inputs))
    for res in results:
        parts.append(_measure_section(res, alpha, correction))
    if timings:
        parts.append('<h2 id="timings">Timings</h2><table class="meta"><tbody>')
        parts += [_row(esc(k), f"{v:.3g} s") for k, v in timings.items()]
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _row(key: str, value: str) -> str:
    return f"<tr><th>{key}</th><td>{value}</td></tr>"


def _inputs_section(inputs: Sequence[Any]) -> str:
    esc = html.escape
    out = ['<h2 id="inputs">Inputs</h2>']
    for side, inp in zip("ab", inputs):
        out.append(f'<h3>{side}: {esc(inp.name)}</h3><table class="meta input" data-side="{side}">')
        out.append(_row("source", f"<code>{esc(inp.source)}</code>"))
        if inp.file_sha256:
            out.append(_row("SHA-256 of the file", f'<span class="hash">{inp.file_sha256}</span>'))
        out.append("</table>")
        out.append(
            '<table class="meta layers"><thead><tr><th>layer</th><th>shape</th><th>dtype</th>'
        )
        if inp.layer_sha256:
            out.append("<th>SHA-256 of the array's bytes (C order)</th>")
        out.append("</tr></thead><tbody>")
        for k, v in inp.layers.items():
            cells = [esc(k), esc(str(tuple(np.shape(v)))), esc(str(getattr(v, "dtype", "")))]
            if inp.layer_sha256:
                cells.append(f'<span class="hash">{inp.layer_sha256[k]}</span>')
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table>")
    return "\n".join(out)


def _measure_section(res: LayerComparison, alpha: float, correction: Optional[str]) -> str:
    esc = html.escape
    m = get_measure(res.measure)
    sig = res.significant(alpha, correction) if res.pvalues is not None else None
    params = res.params
    low, high = m.bounds(**dict(params))
    out = [
        f'<section class="measure" id="measure-{esc(res.measure)}" data-measure="{esc(res.measure)}">',
        f"<h2>{esc(res.measure)}</h2>",
        f'<p class="definition">{esc(m.summary)}.</p>',
        f"<p>Family: {esc(m.family)}; kind: {esc(res.kind)} "
        f"({'smaller' if res.kind == 'distance' else 'larger'} = more alike); "
        f"range: [{low:g}, {high:g}].</p>",
        "<h3>Parameters</h3>",
        '<table class="meta params"><tbody>'
        + "".join(_row(esc(str(k)), f"<code>{esc(repr(v))}</code>") for k, v in params.items())
        + "</tbody></table>"
        if params
        else "<p>No parameters.</p>",
        '<h3>References</h3><ul class="references">'
        + "".join(f"<li>{esc(r)}</li>" for r in m.references)
        + "</ul>",
        "<h3>Heatmap</h3>",
        _legend(res),
        f'<div class="scroll">{heatmap_svg(res, sig)}</div>',
        "<h3>Values</h3>",
        f'<div class="scroll">{html_table(res, significant=sig)}</div>',
    ]
    if res.pvalues is not None:
        out.append(
            f"<p>p-values from {res.n_permutations} permutations (seed {esc(repr(res.seed))}); "
            f"* = significant at alpha = {alpha:g} ({esc(str(correction or 'no correction'))}).</p>"
        )
    out.append(_best_table(res, sig))
    out.append("</section>")
    return "\n".join(out)


def _legend(res: LayerComparison) -> str:
    v = np.asarray(res.values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if not finite.size:
        return "<p>No finite value.</p>"
    lo, hi = finite.min(), finite.max()
    least, most = (hi, lo) if res.kind == "distance" else (lo, hi)
    stops = ", ".join(shade(t) for t in (0.0, 0.25, 0.5, 0.75, 1.0))
    return (
        f'<p class="scale">less alike <code>{least:.3g}</code>'
        f'<span class="legend" style="background:linear-gradient(to right, {stops})"></span>'
        f"<code>{most:.3g}</code> more alike; grey: nan; ring: best match of the row"
        + ("; struck out: not significant" if res.pvalues is not None else "")
        + "</p>"
    )


def _best_table(res: LayerComparison, sig: Any) -> str:
    esc = html.escape
    head = "<th>layer</th><th>best match</th><th>value</th>"
    if res.pvalues is not None:
        head += "<th>p-value</th><th>significant</th>"
    out = [
        '<h3>Best matches</h3><table class="meta best-matches"><thead><tr>',
        head,
        "</tr></thead><tbody>",
    ]
    for i, (r, j) in enumerate(zip(res.rows, res._best_columns())):
        if j < 0:
            out.append(f"<tr><td>{esc(r)}</td><td>none (all nan)</td><td></td></tr>")
            continue
        cells = [esc(r), esc(res.cols[j]), f"{res.values[i, j]:.4g}"]
        if res.pvalues is not None:
            cells += [f"{res.pvalues[i, j]:.3g}", "yes" if sig[i, j] else "no"]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def heatmap_svg(res: LayerComparison, significant: Any = None) -> str:
    """The matrix as an inline SVG heatmap: exactly one ``<rect class="cell">`` per cell,
    filled by :func:`congruence.results.shade` of its :func:`~congruence.results.alikeness`
    (with ``data-row``, ``data-col``, ``data-value`` and a ``<title>`` tooltip), a
    ``<circle class="best">`` on each row's best match, and a ``<path class="not-significant">``
    across each cell that ``significant`` (a boolean matrix) marks False. Layer names are
    ``<text>`` labels when the cells are large enough to carry them.

    >>> import numpy as np
    >>> res = LayerComparison("cka", {}, "similarity", ("h1", "h2"), ("g1", "g2", "g3"),
    ...                       np.array([[0.9, 0.5, 0.1], [0.2, 0.8, np.nan]]))
    >>> svg = heatmap_svg(res)
    >>> svg.count("<rect"), svg.count("<circle")
    (6, 2)
    """
    esc = html.escape
    values = np.asarray(res.values, dtype=np.float64)
    r, c = values.shape
    cell = max(4, min(36, 600 // max(r, c)))
    labels = cell >= 10
    left = min(220, 7 * max(len(n) for n in res.rows) + 12) if labels else 4
    top = min(160, int(5.2 * max(len(n) for n in res.cols)) + 16) if labels else 4
    # the last column's label, rotated by -45 degrees, reaches about `top` to the right
    width, height = left + c * cell + (top if labels else 4), top + r * cell + 4
    t = alikeness(res)
    best = res._best_columns()
    out = [
        f'<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" data-rows="{r}" data-cols="{c}" '
        f'role="img" aria-label="{esc(res.measure)} heatmap">'
    ]
    if labels:
        for i, name in enumerate(res.rows):
            y = top + (i + 0.5) * cell
            out.append(
                f'<text class="row-label" x="{left - 4}" y="{y:.1f}" text-anchor="end" '
                f'dominant-baseline="middle">{esc(name)}</text>'
            )
        for j, name in enumerate(res.cols):
            x = left + (j + 0.5) * cell
            out.append(
                f'<text class="col-label" transform="translate({x:.1f},{top - 4}) rotate(-45)" '
                f'text-anchor="start">{esc(name)}</text>'
            )
    for i, rn in enumerate(res.rows):
        for j, cn in enumerate(res.cols):
            v = float(values[i, j])
            x, y = left + j * cell, top + i * cell
            tip = f"{rn} \u2013 {cn}: {v:.4g}"
            if res.pvalues is not None:
                tip += f" (p = {float(res.pvalues[i, j]):.3g})"
            out.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{shade(t[i, j])}" data-row="{esc(rn)}" data-col="{esc(cn)}" '
                f'data-value="{v!r}"><title>{esc(tip)}</title></rect>'
            )
    for i, j in enumerate(best):
        if j >= 0:
            cx, cy = left + (j + 0.5) * cell, top + (i + 0.5) * cell
            out.append(
                f'<circle class="best" cx="{cx:.1f}" cy="{cy:.1f}" r="{cell * 0.32:.1f}" '
                'fill="none" stroke="#e6550d" stroke-width="2"/>'
            )
    if significant is not None:
        for i, j in zip(*np.nonzero(~np.asarray(significant, dtype=bool))):
            x, y = left + j * cell, top + i * cell
            out.append(
                f'<path class="not-significant" d="M{x + 2} {y + cell - 2}L{x + cell - 2} {y + 2}" '
                'stroke="#7f7f7f" stroke-width="1.5"/>'
            )
    out.append("</svg>")
    return "".join(out)
