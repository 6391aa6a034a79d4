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
