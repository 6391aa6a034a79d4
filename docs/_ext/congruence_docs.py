"""Sphinx extension: the pages that are generated from the package at build time.

Everything here reads the installed ``congruence`` (its registry of measures, its ``__all__``,
its command line), so the documentation cannot disagree with the code:

* ``_generated/measures/<family>.rst``: one page per family of measures, each measure with its
  registry record (summary, kind, range, symmetry, invariances, parameters, references), its
  cost, and its full docstring (``autofunction``: definition, conventions, examples);
* ``_generated/api.rst``: the API reference, one entry per public name;
* ``_generated/include/``: fragments that hand-written pages include (not documents of their
  own): the comparison table of "Which measure should I use?" and its notes, the reference
  of every public exception class, the output of ``congruence --help`` and of each
  subcommand's help.

The files are rewritten only when their text changes, so an incremental build stays
incremental. ``python docs/_ext/congruence_docs.py OUTDIR`` writes them without Sphinx.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import congruence as cg
from congruence._registry import INVARIANCES, Measure, measures
from congruence.docs import format_bounds, measure_rows

#: Title and one-line scope of each family page; a family missing here gets a plain title.
FAMILY_TITLES = {
    "kernel": "Kernel measures (CKA, HSIC)",
    "cca": "CCA-based measures",
    "alignment": "Alignment-based measures",
    "rsm": "RSM-based measures",
    "neighbors": "Neighbourhood-based measures",
    "topology": "Topology-based measures",
    "descriptive": "Descriptive statistics",
    "functional": "Functional (output-based) measures",
}
#: Page order: representational families from the most used, then functional ones.
FAMILY_ORDER = tuple(FAMILY_TITLES)

#: Asymptotic cost of each measure: (time, extra memory) for ``n`` rows of widths ``p1, p2``
#: (``p`` either), ``k`` neighbours, ``C`` classes. The registry records the definition, not
#: the implementation, so the cost lives here; ``tests/test_docs.py`` checks that every
#: registered measure has an entry, and the build warns (an error with ``-W``) otherwise.
COST = {
    # kernel
    "cka": (
        "linear: O(n p1 p2) (feature space, p < n) or O(n^2 p) (Gram route); rbf: O(n^2 p)",
        "linear: O(p1 p2 + p^2) or O(n^2); rbf: O(n^2) (row tiles, exact streamed median)",
    ),
    "minibatch_cka": (
        "O(n b (p1 + p2)) with b = batch_size: a b x b Gram matrix per batch and side",
        "O(b^2 + n p)",
    ),
    "hsic": (
        "linear: O(n p1 p2) (feature space, p < n) or O(n^2 p) (Gram route); rbf: O(n^2 p)",
        "linear: O(p1 p2 + p^2) or O(n^2); rbf: O(n^2) (row tiles, exact streamed median)",
    ),
    "minibatch_cka": ("O(n b p) for batches of b rows", "O(b^2 + b p) per batch"),
    # cca
    "cca": ("O(n (p1^2 + p2^2)) (QR) + O(p1 p2 min(p1, p2))", "O(n (p1 + p2))"),
    "svcca": ("O(n (p1^2 + p2^2)) (SVD, then QR) + O(p1 p2 min(p1, p2))", "O(n (p1 + p2))"),
    "pwcca": ("O(n (p1^2 + p2^2)) (QR) + O(p1 p2 min(p1, p2))", "O(n (p1 + p2))"),
    # alignment
    "orthogonal_procrustes": ("O(n p1 p2) + O(p1 p2 min(p1, p2))", "O(n p + p1 p2)"),
    "procrustes_size_and_shape": ("O(n p1 p2) + O(p1 p2 min(p1, p2))", "O(n p + p1 p2)"),
    "angular_shape_metric": ("O(n (p1^2 + p2^2)) + O(p^3)", "O(n p + p^2)"),
    "permutation_procrustes": ("O(n p1 p2) + O(p^3) (linear assignment)", "O(n p + p1 p2)"),
    "linear_regression": ("O(n p2^2 + n p1 p2)", "O(n p + p1 p2)"),
    "aligned_cosine": ("O(n p1 p2) + O(p1 p2 min(p1, p2))", "O(n p + p1 p2)"),
    "correlation_match": ("O(n p1 p2) + O(p^3) (linear assignment)", "O(n p + p1 p2)"),
    # rsm
    "rsa": ("O(n^2 p + n^2 log n) (distances, ranks)", "O(n^2) (the two RSM triangles)"),
    "rsm_norm_diff": ("fro: O(n^2 p); spectral: O(n^2 p + n^3)", "fro: O(n p); spectral: O(n^2)"),
    "distance_correlation": ("O(n^2 p)", "O(n p) (streamed double centring)"),
    "eigenspace_overlap": ("O(n p min(n, p)) (SVDs) + O(n k1 k2)", "O(n (k1 + k2)), k = min(n, p)"),
    "gulp": ("O(n p min(n, p)) (SVDs) + O(n k1 k2)", "O(n (k1 + k2)), k = min(n, p)"),
    "normalized_bures": ("O(n p1 p2) + O(p1 p2 min(p1, p2))", "O(n (p1 + p2) + p1 p2)"),
    "riemannian_distance": ("O(n^2 p + n^3) (eigendecompositions)", "O(n^2)"),
    # neighbors
    "knn_jaccard": ("O(n^2 p) (blocked search)", "O(n (p + k)), never n x n"),
    "second_order_cosine": ("O(n^2 p) (blocked search)", "O(n (p + k)), never n x n"),
    "rank_similarity": ("O(n^2 p) (blocked search)", "O(n (p + k)), never n x n"),
    "joint_rank_jaccard": ("O(n^2 p) (blocked search)", "O(n (p + k)), never n x n"),
    "mutual_knn": ("O(n^2 p) (blocked search)", "O(n (p + k)), never n x n"),
    # topology
    "imd": ("O(n^2 p + n^3) (full eigendecomposition)", "O(n^2)"),
    "rtd": (
        "trials x Vietoris-Rips persistence on 2m points, m = min(n, max_points)",
        "O(m^2)",
    ),
    "geometry_score": (
        "n_samples x (O(n L p) distances + witness persistence), L = n_landmarks",
        "O(n^2) for n <= 4096 (cached distances), else O(n L)",
    ),
    # descriptive
    "magnitude_diff": ("O(n p)", "O(n p)"),
    "concentricity_diff": ("O(n p)", "O(n p)"),
    "uniformity_diff": ("O(n^2 p)", "O(n p) (row blocks)"),
    # functional
    "accuracy_diff": ("O(n C)", "O(n)"),
    "cohens_kappa": ("O(n C)", "O(n + C^2)"),
    "disagreement": ("O(n C)", "O(n)"),
    "error_corrected_disagreement": ("O(n C)", "O(n)"),
    "fleiss_kappa": ("O(n m C) for m models", "O(n m)"),
    "jsd": ("O(n C)", "O(n C)"),
    "prediction_difference": ("O(n C)", "O(n C)"),
    "surrogate_churn": ("O(n C)", "O(n C)"),
}

_KIND = {
    "similarity": "similarity (larger means more alike)",
    "distance": "distance (smaller means more alike; 0 for identical inputs)",
    "dependence": "dependence statistic (unnormalised; larger means more dependent)",
}
_INPUTS = {
    "representations": "representations: two arrays of shape ``(n, p1)``, ``(n, p2)``",
    "outputs": "model outputs: hard labels ``(n,)`` or scores / probabilities ``(n, C)``",
}
#: Short column labels of the invariances in the comparison table.
_INV_SHORT = {
    "orthogonal": "OT",
    "isotropic_scaling": "IS",
    "invertible_linear": "ILT",
    "translation": "TR",
    "permutation": "PT",
}


def families() -> list[str]:
    """The families of the registered measures, in page order."""
    present = {m.family for m in measures()}
    known = [f for f in FAMILY_ORDER if f in present]
    return known + sorted(present - set(known))


def family_title(family: str) -> str:
    return FAMILY_TITLES.get(family, family.capitalize() + " measures")


def missing_costs() -> list[str]:
    """Registered measures without an entry in :data:`COST`."""
    return [m.name for m in measures() if m.name not in COST]


def _rst_literal(text: str) -> str:
    return f"``{text}``"


def _params_rst(m: Measure) -> str:
    sig = inspect.signature(m.func)
    items = []
    for name in m.accepts:
        p = sig.parameters[name]
        if p.default is p.empty:
            items.append(f"``{name}`` (required)")
        else:
            items.append(f"``{name}={p.default!r}``")
    return ", ".join(items) or "none"


def _min_rows_rst(m: Measure) -> str:
    base = m.min_rows()
    text = str(base)
    for v in m.variants:
        changed = {k: val for k, val in v.items() if m.params.get(k) != val}
        if len(changed) == 1:
            try:
                other = m.min_rows(**changed)
            except (TypeError, ValueError):
                continue
            if other != base:
                ((k, val),) = changed.items()
                text += f" ({other} with ``{k}={val!r}``)"
    return text


def _with_params(text: str) -> str:
    """A :func:`congruence.docs.measure_rows` cell in words, its settings as literals.

    ``"orthogonal, translation; +isotropic_scaling with kernel='rbf'"`` becomes
    ``"orthogonal, translation; with ``kernel='rbf'``: also isotropic scaling"``.
    """
    out = []
    for i, part in enumerate(text.split("; ")):
        head, sep, label = part.partition(" with ")
        words = []
        for item in head.split(", "):
            if item.startswith("+"):
                item = "also " + item[1:]
            elif item.startswith("-") and i > 0:
                item = "not " + item[1:]
            words.append(item.replace("_", " "))
        head = ", ".join(words)
        out.append(f"with ``{label}``: {head}" if sep else head)
    return "; ".join(out)


def family_page(family: str) -> str:
    """The reStructuredText page of one family."""
    rows = {r["measure"]: r for r in measure_rows()}
    members = [m for m in measures() if m.family == family]
    # the family modules' docstrings (a measure defined elsewhere, such as minibatch_cka in
    # congruence.streaming.minibatch, has its module documented once, in the API reference)
    modules = sorted(
        {m.func.__module__ for m in members if m.func.__module__.startswith("congruence.measures.")}
    )
    title = family_title(family)
    lines = [
        ".. This file is generated by docs/_ext/congruence_docs.py; do not edit.",
        "",
        f".. _family-{family}:",
        "",
        title,
        "=" * len(title),
        "",
    ]
    for mod in modules:
        lines += [f".. automodule:: {mod}", "   :no-members:", ""]
    lines += [
        "Measures on this page: "
        + ", ".join(f":ref:`{m.name} <measure-{m.name}>`" for m in members)
        + ".",
        "",
    ]
    for m in members:
        r = rows[m.name]
        time, memory = COST.get(m.name, ("not stated", "not stated"))
        refs = "\n".join(f"       - {ref}" for ref in m.references) or "       - none"
        heading = f"``{m.name}``"
        lines += [
            f".. _measure-{m.name}:",
            "",
            heading,
            "-" * len(heading),
            "",
            f"**{m.summary.rstrip('.')}.**",
            "",
            ".. list-table::",
            "   :class: measure-card",
            "   :widths: 1 4",
            "   :stub-columns: 1",
            "",
            "   * - kind",
            f"     - {_KIND[m.kind]}",
            "   * - inputs",
            f"     - {_INPUTS[m.inputs]}",
            "   * - range",
            f"     - {_with_params(r['range'])}",
            "   * - symmetric",
            f"     - {_with_params(r['symmetric'])}",
            "   * - invariant to",
            f"     - {_with_params(r['invariances'])}",
            "   * - parameters",
            f"     - {_params_rst(m)}",
            "   * - minimum rows",
            f"     - {_min_rows_rst(m)}",
            "   * - time",
            f"     - {time}",
            "   * - memory",
            f"     - {memory}",
            "   * - references",
            "     -",
            "",
            refs,
            "",
            f".. autofunction:: congruence.{m.name}",
            "",
        ]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def choosing_table() -> str:
    """The Markdown comparison table of every measure (default parameters)."""
    inv_cols = [_INV_SHORT[i] for i in INVARIANCES]
    head = ["measure", "family", "kind", "range", "sym."] + inv_cols + ["time", "memory"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for fam in families():
        for m in (m for m in measures() if m.family == fam):
            inv = m.invariances()
            time, memory = COST.get(m.name, ("not stated", "not stated"))
            cells = [
                _ref(m.name),
                fam,
                m.kind,
                format_bounds(m.bounds()),
                "yes" if m.symmetric() else "no",
                *("✓" if i in inv else "" for i in INVARIANCES),
                time,
                memory,
            ]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def variant_notes() -> str:
    """Markdown list of the measures whose range, symmetry or invariances change with a
    parameter, in words."""
    out = []
    for r in measure_rows():
        notes = []
        for col in ("range", "symmetric", "invariances"):
            parts = r[col].split("; ")
            if len(parts) > 1:
                words = _with_params("; ".join(parts)).replace("``", "`")
                notes.append(f"{col} {words}")
        if notes:
            out.append(f"- {_ref(r['measure'])}: " + "; ".join(notes))
    return "\n".join(out)


def _ref(name: str) -> str:
    """A MyST cross-reference to a measure's section on its family page."""
    return f"{{ref}}`{name} <measure-{name}>`"


# --------------------------------------------------------------------------- API reference

#: Public modules documented in the API reference, in order (measure modules are on the
#: family pages, :mod:`congruence.errors` on the errors page).
API_MODULES = (
    "congruence.compare",
    "congruence.results",
    "congruence.pooling",
    "congruence.torch",
    "congruence.models",
    "congruence.io",
    "congruence.streaming",
    "congruence.streaming.exact",
    "congruence.streaming.minibatch",
    "congruence.streaming.drive",
    "congruence.streaming.dask",
    "congruence.distributed",
    "congruence.digits",
    "congruence.demo",
    "congruence.docs",
    "congruence.cli",
)


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def _home(name: str, obj: Any, seen: dict[int, str]) -> str:
    """Where an already documented object lives, as a cross-reference."""
    role = "class" if inspect.isclass(obj) else ("func" if callable(obj) else "data")
    return f":{role}:`{seen[id(obj)]}`"


def api_page() -> str:
    """The reStructuredText API reference: every public name documented exactly once."""
    from congruence import errors

    registered = {m.name for m in measures()}
    lines = [
        ".. This file is generated by docs/_ext/congruence_docs.py; do not edit.",
        "",
        ".. _api:",
        "",
        "API reference",
        "=============",
        "",
        "Every name of ``congruence.__all__``, then the public submodules. The measures are",
        "documented on their :doc:`family pages </measures>`, the exception and warning",
        "classes on :doc:`/guide/errors`.",
        "",
        "``congruence``",
        "--------------",
        "",
        ".. automodule:: congruence",
        "   :no-members:",
        "",
    ]
    seen: dict[int, str] = {}
    pending = []
    measure_refs, error_refs = [], []
    for name in sorted(cg.__all__, key=str.lower):
        obj = getattr(cg, name)
        if name in registered:
            measure_refs.append(f":func:`~congruence.{name}`")
            seen[id(obj)] = f"congruence.{name}"
        elif getattr(obj, "__module__", None) == errors.__name__:
            error_refs.append(f":class:`~congruence.{name}`")
            seen[id(obj)] = f"congruence.{name}"
        else:
            pending.append((name, obj))
    lines += [
        "Measures: " + ", ".join(measure_refs) + ".",
        "",
        "Exceptions and warnings: " + ", ".join(error_refs) + ".",
        "",
    ]
    for name, obj in pending:
        lines += [f".. {_directive(obj)}:: congruence.{name}", ""]
        if inspect.isclass(obj):
            lines += ["   :members:", ""]
        seen[id(obj)] = f"congruence.{name}"
    for modname in API_MODULES:
        mod = importlib.import_module(modname)
        heading = f"``{modname}``"
        lines += [heading, "-" * len(heading), "", f".. automodule:: {modname}", "   :no-members:"]
        # ``congruence.compare`` is both a module and the function it defines: index the
        # function only (one object per name).
        shadowed = modname.count(".") == 1 and callable(getattr(cg, modname[11:], None))
        lines += (["   :no-index:"] if shadowed else []) + [""]
        names = list(getattr(mod, "__all__", ()))
        also = []
        for name in names:
            obj = getattr(mod, name)
            if id(obj) in seen and not isinstance(obj, (str, int, float, tuple, frozenset)):
                also.append(_home(name, obj, seen))
                continue
            lines += [f".. {_directive(obj)}:: {modname}.{name}", ""]
            if inspect.isclass(obj):
                lines += ["   :members:", ""]
            seen[id(obj)] = f"{modname}.{name}"
        if also:
            lines += ["Also here: " + ", ".join(also) + ".", ""]
    return "\n".join(lines)


def errors_reference() -> str:
    """reStructuredText: every public name of :mod:`congruence.errors`."""
    from congruence import errors

    lines = [".. automodule:: congruence.errors", "   :no-members:", ""]
    for name in errors.__all__:
        obj = getattr(errors, name)
        target = (
            f"congruence.{name}" if getattr(cg, name, None) is obj else f"{errors.__name__}.{name}"
        )
        lines += [f".. {_directive(obj)}:: {target}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

CLI_COMMANDS = ((), ("compare",), ("list",), ("demo",))


def cli_help() -> str:
    """Markdown: the help of ``congruence`` and of each subcommand, as the program prints it."""
    env = dict(os.environ, COLUMNS="88")
    out = []
    for args in CLI_COMMANDS:
        cmd = [sys.executable, "-m", "congruence.cli", *args, "--help"]
        text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        shown = " ".join(("congruence", *args, "--help"))
        out += [f"```text\n$ {shown}\n{text.rstrip()}\n```", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- writing


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not text.endswith("\n"):
        text += "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.write_text(text, encoding="utf-8")


def generate(outdir: Path) -> list[Path]:
    """Write every generated page under ``outdir``; return their paths."""
    outdir = Path(outdir)
    written = []
    fams = families()
    for fam in fams:
        p = outdir / "measures" / f"{fam}.rst"
        _write(p, family_page(fam))
        written.append(p)
    stale = {p for p in (outdir / "measures").glob("*.rst")} - set(written)
    for p in stale:  # a family that no longer exists
        p.unlink()
    for name, text in (
        ("choosing_table.md", choosing_table()),
        ("variant_notes.md", variant_notes()),
        ("api.rst", api_page()),
        ("errors_reference.rst", errors_reference()),
        ("cli_help.md", cli_help()),
        ("measure_count.md", f"{len(measures())} measures in {len(fams)} families"),
    ):
        p = outdir / ("" if name == "api.rst" else "include") / name
        _write(p, text)
        written.append(p)
    return written


def _on_builder_inited(app: Any) -> None:
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    for name in missing_costs():
        log.warning(
            f"measure {name!r} has no cost entry: add it to COST in docs/_ext/congruence_docs.py"
        )
    generate(Path(app.srcdir) / "_generated")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/_generated")):
        print(path)
