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


# --------------------------------------------------------------------------- the documentation site
# docs/_ext/congruence_docs.py generates the measure pages, the comparison table and the API
# reference from the registry and ``__all__`` when Sphinx builds docs/ (in .ci/run); these
# tests check what it generates without running Sphinx, and run every example of the
# hand-written pages and every docstring of the package as doctests.

import doctest  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import pkgutil  # noqa: E402
import re  # noqa: E402

from congruence import errors  # noqa: E402
from congruence._registry import measures  # noqa: E402

DOCS = Path(__file__).parents[1] / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _generator():
    spec = importlib.util.spec_from_file_location(
        "congruence_docs", DOCS / "_ext" / "congruence_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def test_one_page_per_family_listing_each_of_its_measures():
    families = sorted({m.family for m in measures()})
    assert sorted(gen.families()) == families
    documented = []
    for family in families:
        page = gen.family_page(family)
        names = re.findall(r"^\.\. autofunction:: congruence\.(\w+)$", page, re.M)
        labels = re.findall(r"^\.\. _measure-(\w+):$", page, re.M)
        want = sorted(m.name for m in measures() if m.family == family)
        assert sorted(names) == want, family
        assert sorted(labels) == want, family
        documented += names
        for m in measures():
            if m.family == family:
                # the registry's record is on the card, word for word
                assert m.summary.rstrip(".") in page
                assert all(ref in page for ref in m.references), m.name
    assert sorted(documented) == cg.list_measures()


def test_measures_page_lists_every_family_page():
    toctree = (DOCS / "measures.md").read_text(encoding="utf-8")
    listed = re.findall(r"^_generated/measures/(\w+)$", toctree, re.M)
    assert sorted(listed) == sorted(gen.families())


def test_family_page_card_of_a_measure_with_parameter_dependent_properties():
    page = gen.family_page("kernel")
    card = page[page.index(".. _measure-cka:") : page.index(".. autofunction:: congruence.cka")]
    assert "[0, 1]; with ``debiased=True``: [-1, 1]" in card
    assert "``kernel='linear'``, ``sigma_frac=1.0``, ``debiased=False``" in card
    assert "2 (4 with ``debiased=True``)" in card
    assert "isotropic scaling, orthogonal, permutation, translation" in card
    hsic = page[page.index(".. _measure-hsic:") :]
    assert "with ``kernel='rbf'``: also isotropic scaling" in hsic


def test_comparison_table_has_one_row_per_measure_with_its_invariances():
    lines = gen.choosing_table().splitlines()
    rows = {re.match(r"\| \{ref\}`(\w+) <", ln).group(1): ln for ln in lines[2:]}
    assert sorted(rows) == cg.list_measures() and len(lines) == 2 + len(rows)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for name, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        m = cg.get_measure(name)
        marks = {inv for inv, col in gen._INV_SHORT.items() if cells[header.index(col)] == "✓"}
        assert marks == set(m.invariances()), name
        assert cells[header.index("kind")] == m.kind


def test_every_measure_has_a_cost():
    assert gen.missing_costs() == []


def test_api_reference_documents_every_public_name_once():
    page = gen.api_page()
    directives = re.findall(r"^\.\. auto(?:function|class|data):: (\S+)$", page, re.M)
    assert len(directives) == len(set(directives))
    registered = set(cg.list_measures())
    for name in cg.__all__:
        if name in registered:
            assert f":func:`~congruence.{name}`" in page, name
        elif getattr(cg, name).__module__ == errors.__name__:
            assert f":class:`~congruence.{name}`" in page, name
        else:
            assert f"congruence.{name}" in directives, name


def test_errors_page_documents_every_public_name_of_congruence_errors():
    ref = gen.errors_reference()
    for name in errors.__all__:
        assert re.search(rf"^\.\. auto(class|function):: congruence\.(errors\.)?{name}$", ref, re.M)
    assert "errors_reference.rst" in (DOCS / "guide" / "errors.md").read_text(encoding="utf-8")


def test_variant_notes_in_words():
    assert gen._with_params("[0, 1]; [-1, 1] with debiased=True") == (
        "[0, 1]; with ``debiased=True``: [-1, 1]"
    )
    assert gen._with_params("orthogonal, invertible_linear; -orthogonal, +x_y with a=1") == (
        "orthogonal, invertible linear; with ``a=1``: not orthogonal, also x y"
    )


# ----------------------------------------------------------------- examples of the pages

PAGES = sorted(
    p for p in DOCS.rglob("*.md") if not {"_build", "_generated"} & set(p.relative_to(DOCS).parts)
)
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.M | re.S)


def test_pages_found():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "choosing.md", "guide/streaming.md", "guide/errors.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples(page):
    """Every ```pycon block of a page runs, in order, as one doctest; a ``>>>`` prompt in any
    other block would be an example that silently never runs."""
    text = page.read_text(encoding="utf-8")
    blocks = FENCE.findall(text)
    for lang, body in blocks:
        if lang != "pycon":
            assert ">>>" not in body, f"{page.name}: a >>> example outside a pycon block"
    source = "\n".join(body for lang, body in blocks if lang == "pycon")
    if not source:
        return
    test = doctest.DocTestParser().get_doctest(source, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {page}"


# ----------------------------------------------------------------- docstrings of every module


def _modules():
    names = ["congruence"]
    for info in pkgutil.walk_packages(cg.__path__, "congruence."):
        names.append(info.name)
    return names


def test_every_module_is_collected():
    mods = _modules()
    assert {"congruence.measures.kernel", "congruence.streaming.exact", "congruence.io"} <= set(
        mods
    )
    assert len(mods) > 30


# examples may show a warned call (a degenerate input, a bootstrap of a biased measure), as a
# user would run it: the warning is shown, not an error (pyproject.toml makes it one in tests)
@pytest.mark.filterwarnings("default::congruence.errors.DegenerateDataWarning")
@pytest.mark.filterwarnings("default::congruence.errors.ResamplingBiasWarning")
@pytest.mark.parametrize("modname", _modules())
def test_module_doctests(modname):
    # importlib, not attribute access: ``congruence.compare`` is also a function.
    module = importlib.import_module(modname)
    result = doctest.testmod(module, optionflags=FLAGS, report=False)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {modname}"


# ----------------------------------------------------------------- the study hook of conf.py


def _conf():
    spec = importlib.util.spec_from_file_location("congruence_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_hook_runs_the_script_and_fails_the_build_when_it_fails(tmp_path):
    from sphinx.errors import ExtensionError

    conf = _conf()
    gen_dir = tmp_path / "docs" / "_generated"
    assert conf.run_study(tmp_path, gen_dir) is False  # no script yet: nothing happens
    assert not gen_dir.exists()
    script = tmp_path / "examples" / "layer_identification.py"
    script.parent.mkdir()
    script.write_text(
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.write_text('| measure | accuracy |\\n')\n",
        encoding="utf-8",
    )
    assert conf.run_study(tmp_path, gen_dir) is True
    assert (gen_dir / "study_table.md").read_text(encoding="utf-8") == "| measure | accuracy |\n"
    script.write_text("import sys\nprint('diverged')\nsys.exit(3)\n", encoding="utf-8")
    with pytest.raises(ExtensionError, match=r"(?s)exit 3.*diverged"):
        conf.run_study(tmp_path, gen_dir)
