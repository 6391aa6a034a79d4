"""The table of measures, generated from the registry (for the README and ``congruence list``).

The README holds the table between two markers; regenerate it after adding or changing a
measure with::

    python -m congruence.docs          # rewrites README.md in the current directory

``tests/test_docs.py`` fails while the README is out of date with the registry.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import congruence  # noqa: F401  (registers every measure)
from congruence._registry import Measure, measures

__all__ = ["COLUMNS", "START", "END", "measure_rows", "measure_table", "update_readme"]

START = "<!-- measures:start -->"
END = "<!-- measures:end -->"
#: Column headers of the table, in order.
COLUMNS = ("measure", "family", "kind", "range", "symmetric", "invariances", "parameters")


def format_bounds(bounds: Sequence[float]) -> str:
    """``(0.0, 1.0)`` -> ``"[0, 1]"``, ``(0.0, inf)`` -> ``"[0, inf)"``."""
    lo, hi = bounds

    def num(v: float) -> str:
        if math.isinf(v):
            return "-inf" if v < 0 else "inf"
        return f"{v:g}"

    return f"{'(' if math.isinf(lo) else '['}{num(lo)}, {num(hi)}{')' if math.isinf(hi) else ']'}"


def _props(m: Measure, params: Mapping[str, Any]) -> dict[str, str]:
    return {
        "range": format_bounds(m.bounds(**params)),
        "symmetric": "yes" if m.symmetric(**params) else "no",
        "invariances": ", ".join(sorted(m.invariances(**params))) or "none",
    }


def _single_changes(m: Measure) -> list[dict[str, Any]]:
    """The declared variants that change exactly one parameter from its default."""
    out = []
    for v in m.variants:
        changed = {k: val for k, val in v.items() if m.params.get(k) != val}
        if len(changed) == 1:
            out.append(changed)
    return out


def measure_rows() -> list[dict[str, str]]:
    """One dict per registered measure, keyed by :data:`COLUMNS`, in registry order.

    Range, symmetry and invariances are those of the default parameters; where a declared
    variant that changes a single parameter changes them, that is appended, e.g.
    ``"[0, 1]; [-1, 1] with debiased=True"`` or, for invariances, the gained (``+``) and lost
    (``-``) ones: ``"orthogonal, translation; +isotropic_scaling with kernel='rbf'"``.
    """
    rows = []
    for m in measures():
        base = _props(m, {})
        props = dict(base)
        for change in _single_changes(m):
            label = ", ".join(f"{k}={v!r}" for k, v in change.items())
            if m.bounds(**change) != m.bounds():
                props["range"] += f"; {format_bounds(m.bounds(**change))} with {label}"
            if m.symmetric(**change) != m.symmetric():
                props["symmetric"] += f"; {'yes' if m.symmetric(**change) else 'no'} with {label}"
            gained = sorted(m.invariances(**change) - m.invariances())
            lost = sorted(m.invariances() - m.invariances(**change))
            diff = [f"+{x}" for x in gained] + [f"-{x}" for x in lost]
            if diff:
                props["invariances"] += f"; {', '.join(diff)} with {label}"
        rows.append(
            {
                "measure": m.name,
                "family": m.family,
                "kind": m.kind,
                **props,
                "parameters": ", ".join(f"{k}={v!r}" for k, v in m.params.items()) or "none",
            }
        )
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def measure_table() -> str:
    """The registered measures as a Markdown table (no trailing newline)."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in measure_rows():
        cells = [f"`{row['measure']}`"]
        cells += [_md(row[c]) for c in COLUMNS[1:-1]]
        cells.append(f"`{_md(row['parameters'])}`" if row["parameters"] != "none" else "none")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with everything between :data:`START` and :data:`END` replaced by ``table``.

    Raises
    ------
    ValueError
        If the markers are missing or out of order.
    """
    i, j = text.find(START), text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(
            f"the markers {START} and {END} (in this order) were not found; add them where "
            "the table of measures belongs"
        )
    return text[: i + len(START)] + "\n" + table + "\n" + text[j:]


def update_readme(path: Union[str, Path] = "README.md") -> bool:
    """Replace the table between the markers in ``path``; return whether the file changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    new = replace_between_markers(old, measure_table())
    if new == old:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "README.md"
    try:
        changed = update_readme(path)
    except (OSError, ValueError) as exc:
        print(f"congruence.docs: error: {path}: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {'measure table updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
