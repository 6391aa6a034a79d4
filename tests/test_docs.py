"""The README's table of measures is generated from the registry and must stay in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

import congruence as cg
from congruence.docs import END, START, format_bounds, measure_table, update_readme

README = Path(__file__).parents[1] / "README.md"


def test_readme_table_in_sync_with_registry():
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, (
        f"README.md lacks the markers {START} / {END} around the table of measures"
    )
    between = text[text.index(START) + len(START) : text.index(END)]
    assert between == "\n" + measure_table() + "\n", (
        "README.md's table of measures is out of date: run `python -m congruence.docs` "
        "in the repository root"
    )


def test_table_lists_every_measure():
    table = measure_table()
    lines = table.splitlines()
    assert lines[0] == "| measure | family | kind | range | symmetric | invariances | parameters |"
    names = [ln.split("|")[1].strip().strip("`") for ln in lines[2:]]
    assert sorted(names) == cg.list_measures()
    cka = next(ln for ln in lines if ln.startswith("| `cka`"))
    assert "[0, 1]" in cka and "[-1, 1] with debiased=True" in cka


def test_format_bounds():
    inf = float("inf")
    assert format_bounds((0.0, 1.0)) == "[0, 1]"
    assert format_bounds((0.0, inf)) == "[0, inf)"
    assert format_bounds((-inf, inf)) == "(-inf, inf)"


def test_update_readme(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(f"# title\n\n{START}\nold table\n{END}\n\nmore\n", encoding="utf-8")
    assert update_readme(p) is True
    text = p.read_text(encoding="utf-8")
    assert text == f"# title\n\n{START}\n{measure_table()}\n{END}\n\nmore\n"
    assert update_readme(p) is False
    p.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        update_readme(p)
