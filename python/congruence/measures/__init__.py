"""Measure families, one module per family; importing this package registers every measure.

Each module defines its measures with the :func:`congruence._registry.register` decorator, so
the registry (and with it ``compare``, ``compare_layers``, the CLI, the README table and the
common tests) learns about a new family just by its module existing here.
"""

import importlib
import pkgutil

__all__ = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))

for _name in __all__:
    importlib.import_module(f"{__name__}.{_name}")
