"""The public API is typed: every public parameter carries an annotation, and mypy accepts a
file that uses the API as a user does (and rejects a wrong use, so the check can fail)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import congruence as cg

HERE = Path(__file__).parent


def _public_callables():
    for name in cg.__all__:
        obj = getattr(cg, name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if callable(member) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{name}.{attr}", member
        elif callable(obj):
            yield name, obj


def test_every_public_parameter_is_annotated():
    missing, total = [], 0
    for name, func in _public_callables():
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        for p in sig.parameters.values():
            if p.name in ("self", "cls"):
                continue
            total += 1
            if p.annotation is inspect.Parameter.empty:
                missing.append(f"{name}({p.name})")
    assert total > 200, total  # the walk found the API
    assert not missing, f"parameters without a type annotation: {missing}"


def _mypy(path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent"]
    cmd += ["--ignore-missing-imports", "--disallow-untyped-calls", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=path.parent)


def test_mypy_accepts_the_public_api_as_users_call_it():
    proc = _mypy(HERE / "typing" / "public_api.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "line, error",
    [
        ("v: str = cg.cka(X, X)", "Incompatible types in assignment"),
        ('cg.compare_layers({"h": X}, progress="yes")', "incompatible type"),
        ("cg.permutation_test(X, X, n_permutations=1.5)", "incompatible type"),
        ('cg.cka(X, X, kernel="gaussian")', "incompatible type"),
        ('cg.compare_layers({"h": X}, on_error="ignore")', "incompatible type"),
        ('cg.bootstrap(X, X, method="basic")', "incompatible type"),
    ],
)
def test_mypy_rejects_a_wrong_use(tmp_path, line, error):
    bad = tmp_path / "bad.py"
    bad.write_text(f"import numpy as np\nimport congruence as cg\nX = np.zeros((4, 2))\n{line}\n")
    proc = _mypy(bad)
    assert proc.returncode != 0 and error in proc.stdout, proc.stdout + proc.stderr
