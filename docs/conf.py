"""Sphinx configuration of the congruence documentation.

Build from the repository root (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The documented package is the *installed* ``congruence`` (the source tree has no compiled
core), so install it first (``pip install ".[docs]"``). The pages under ``_generated/`` are
written at build time from the package (``_ext/congruence_docs.py``) and, when
``examples/layer_identification.py`` exists, by that study script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sphinx.errors import ExtensionError

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
sys.path.insert(0, str(DOCS / "_ext"))

import congruence  # noqa: E402  (the installed package)

project = "congruence"
author = "the congruence developers"
copyright = "the congruence developers"
release = congruence.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "congruence_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# Fragments that pages include, not documents of their own: _generated/include/ and the
# study table that study.md includes.
exclude_patterns = [
    "_build",
    "_generated/include",
    "_generated/study_table.md",
    "Thumbs.db",
    ".DS_Store",
]

# numpydoc: parameters and returns as tables; class members are listed by autodoc itself.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections state the types

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"congruence {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


def run_study(root: Path = ROOT, generated: Path = GENERATED) -> bool:
    """Run the reproduction study, which writes the table that ``study.md`` includes.

    Runs ``python examples/layer_identification.py --out <generated>/study_table.md`` from
    ``root``; returns False (and does nothing) while that script does not exist. A failing
    script fails the build (``ExtensionError`` with the end of its output).
    """
    script = root / "examples" / "layer_identification.py"
    if not script.exists():
        return False
    generated.mkdir(parents=True, exist_ok=True)
    out = generated / "study_table.md"
    cmd = [sys.executable, str(script), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExtensionError(
            f"the reproduction study failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return True


def setup(app) -> None:
    app.connect("builder-inited", lambda app: run_study())
