"""The package's version, metadata and citation file agree with their one source, Cargo.toml.

The version is written once, in ``[workspace.package]`` of Cargo.toml; maturin copies it into the
installed metadata, which ``congruence.__version__`` and ``congruence --version`` read. These tests
parse Cargo.toml themselves (an independent reading), so they run against the source tree and
against an installed wheel alike (the repository is located from this file).
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata
from pathlib import Path

import yaml
from packaging.version import Version

import congruence as cg

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - CI runs 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _cargo_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def test_version_is_the_cargo_workspace_version():
    cargo = _cargo_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", cargo), cargo
    # maturin writes Cargo's semver as the equivalent PEP 440 version (1.0.0-alpha.1 -> 1.0.0a1).
    assert Version(cg.__version__) == Version(cargo)
    assert metadata.version("congruence") == cg.__version__


def test_every_crate_takes_the_workspace_version():
    for manifest in ["rust/core/Cargo.toml", "rust/python/Cargo.toml"]:
        with open(ROOT / manifest, "rb") as f:
            assert tomllib.load(f)["package"]["version"] == {"workspace": True}, manifest


def test_console_script_prints_the_version():
    exe = shutil.which("congruence")
    assert exe is not None, "console script `congruence` not on PATH after install"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    name, version = res.stdout.split()
    assert name == "congruence" and Version(version) == Version(_cargo_version())


def test_version_falls_back_when_the_package_is_not_installed():
    # importlib.metadata knows nothing of a bare source tree: __version__ is then a valid PEP 440
    # local version that sorts below every release, not an error.
    code = textwrap.dedent(
        """
        import importlib.metadata as m
        def missing(name):
            raise m.PackageNotFoundError(name)
        m.version = missing
        import congruence
        print(congruence.__version__)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert res.returncode == 0, res.stderr
    fallback = res.stdout.strip()
    assert fallback == "0+unknown"
    assert Version(fallback) < Version("0.0.1")


def test_installed_metadata_has_license_readme_and_requirements():
    # The METADATA file itself, parsed as the email message it is (the body is the long
    # description; importlib.metadata's adapters differ between versions in how they expose it).
    text = metadata.distribution("congruence").read_text("METADATA")
    assert text is not None
    meta = email.parser.Parser().parsestr(text)
    assert meta["Name"] == "congruence"
    assert meta["License"] == "MIT" or meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["Description-Content-Type"].startswith("text/markdown")
    # The long description is the README (as it was when the package was built).
    assert meta.get_payload().startswith("# congruence\n")
    classifiers = meta.get_all("Classifier")
    assert "License :: OSI Approved :: MIT License" in classifiers
    # The stated Python versions start at requires-python.
    versions = [c.rsplit(":: ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c)]
    assert min(versions, key=Version) == "3.9"
    # No URL is listed that does not exist: there is no public repository yet.
    assert meta.get_all("Project-URL") is None


def test_citation_file():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ["message", "title", "abstract", "license", "keywords", "date-released"]:
        assert cff[key], key
    assert cff["authors"] == [{"name": "The congruence developers"}]
    assert str(cff["version"]) == _cargo_version()
    assert cff["license"] == "MIT"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))
    refs = {r["authors"][0]["family-names"]: r for r in cff["references"]}
    assert refs["Kornblith"]["year"] == 2019
    assert refs["Kornblith"]["title"] == "Similarity of Neural Network Representations Revisited"
    assert refs["Klabunde"]["title"].startswith("Similarity of Neural Network Models: A Survey")
    # No repository is known: the file must not name one.
    assert not any(k.startswith("repository") or k == "url" for k in cff)


def _code_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.S)


def test_readme_set_up_commands():
    blocks = _code_blocks("Set up")
    assert blocks[0].strip() == 'pip install ".[demo]" && congruence demo'
    # The test command is the script CI runs (as `bash .ci/run`).
    assert blocks[1].strip() == "bash .ci/run"
    assert (ROOT / ".ci" / "run").is_file()


def test_readme_states_the_python_versions_of_the_metadata():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["requires-python"] == ">=3.9"
    text = (ROOT / "README.md").read_text()
    assert "CPython 3.9 or newer" in text and "CPython 3.11" in text
    assert "cp39-abi3" in text


def test_readme_install_names_the_wheel_of_this_version():
    blocks = _code_blocks("Install")
    wheels = re.findall(
        r"congruence-([^-\s]+)-cp39-abi3-(manylinux_\d+_\d+)_x86_64\.whl", blocks[0]
    )
    assert wheels and {v for v, _ in wheels} == {_cargo_version()}
    with open(ROOT / "pyproject.toml", "rb") as f:
        compatibility = tomllib.load(f)["tool"]["maturin"]["compatibility"]
    assert {tag for _, tag in wheels} == {compatibility}


def test_the_package_under_test_is_the_expected_one():
    # CI (.ci/run) sets CONGRUENCE_EXPECT_INSTALLED=1: the suite must then test the installed
    # wheel in the virtual environment's site-packages, never the repository's python/ tree.
    where = Path(cg.__file__).resolve().parent
    assert (where / "_core.pyi").is_file()
    assert any(p.name.startswith("_core.") and p.suffix == ".so" for p in where.iterdir())
    if os.environ.get("CONGRUENCE_EXPECT_INSTALLED") == "1":
        assert sys.prefix != sys.base_prefix, "not in a virtual environment"
        assert where.parent == Path(sysconfig.get_paths()["platlib"]).resolve(), where
        assert ROOT not in where.parents
        script = shutil.which("congruence")
        assert script is not None and Path(script).parent == Path(sys.executable).parent
