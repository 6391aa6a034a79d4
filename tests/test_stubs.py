"""The type stubs of the compiled module list exactly its functions, with their parameters."""

import ast
import inspect
from pathlib import Path

import congruence
from congruence import _core

STUB = Path(congruence.__file__).with_name("_core.pyi")


def _stub_functions():
    tree = ast.parse(STUB.read_text())
    return {
        node.name: [a.arg for a in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def test_stub_lists_every_compiled_function_with_its_parameters():
    compiled = {
        name: list(inspect.signature(getattr(_core, name)).parameters)
        for name in dir(_core)
        if not name.startswith("_")
        and callable(getattr(_core, name))
        and not isinstance(getattr(_core, name), type)
    }
    assert _stub_functions() == compiled


def test_stub_lists_every_compiled_class_with_its_bases():
    tree = ast.parse(STUB.read_text())
    stubbed = {
        node.name: [ast.unparse(b) for b in node.bases]
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    compiled = {
        name: [b.__name__ for b in getattr(_core, name).__bases__]
        for name in dir(_core)
        if not name.startswith("_") and isinstance(getattr(_core, name), type)
    }
    assert stubbed == compiled


def test_every_compiled_function_is_called_by_the_package():
    """The compiled module's interface holds what the package uses; internals that only the
    tests call live in the private submodule ``_core._testing``."""
    package = Path(congruence.__file__).parent
    source = "\n".join(p.read_text() for p in package.rglob("*.py"))
    public = [
        name
        for name in dir(_core)
        if not name.startswith("_") and callable(getattr(_core, name))
        if not isinstance(getattr(_core, name), type)
    ]
    assert public
    unused = [name for name in public if f"_core.{name}(" not in source]
    assert unused == []


def test_the_testing_surface_is_a_submodule_outside_the_interface():
    from congruence._core import _testing

    assert set(_testing.__dict__) >= {"distance_matrix", "dcov_sums", "average_ranks"}
    assert "panic" in _testing.__dict__
    assert not any(name in _stub_functions() for name in _testing.__dict__)
