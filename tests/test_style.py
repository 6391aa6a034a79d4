"""The code-quality gates run with the test suite: ruff's lint rules and formatter (settings in
pyproject.toml) on the repository's Python code, and mypy's stubtest of the compiled module (as
imported: the installed wheel in CI) against its stub ``_core.pyi``. The Rust lints (rustfmt,
clippy) need the Rust toolchain, which the test environment of CI does not have: ``.ci/run`` runs
them in its Rust stage."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["python", "tests", "benches", "examples"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
    res = _run([sys.executable, "-m", "ruff", *args, *PATHS])
    assert res.returncode == 0, res.stdout + res.stderr


def test_stub_matches_the_compiled_module():
    allow = os.path.join(ROOT, "tests", "stubtest_allowlist.txt")
    res = _run([sys.executable, "-m", "mypy.stubtest", "congruence._core", "--allowlist", allow])
    assert res.returncode == 0, res.stdout + res.stderr
