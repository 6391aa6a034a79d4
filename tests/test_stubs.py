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
        if not name.startswith("_") and callable(getattr(_core, name))
    }
    assert _stub_functions() == compiled
