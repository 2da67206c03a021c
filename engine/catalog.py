"""Import every benchmark, model and method module so their registry decorators run.

Modules are discovered from the packages, so adding `engine/methods/foo.py` is all it takes to
register a method; this module is the only place that imports them all (and so loads torch).
"""

from __future__ import annotations

import importlib
import pkgutil

_PACKAGES = ("engine.benchmarks", "engine.models", "engine.methods")
_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    for pkg_name in _PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name != "options":
                importlib.import_module(f"{pkg_name}.{info.name}")
    _loaded = True
