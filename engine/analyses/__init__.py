"""Analyses: read-only observers any run can turn on (see base.py), one module each.

`MODULES` lists them explicitly (no directory scan), as the component packages do; `load()`
imports them so that their `@ANALYSES.register` decorators run. Importing this package is cheap
and torch-free; `load()` imports torch.
"""

from __future__ import annotations

import importlib

MODULES = ("curves",)


def load() -> None:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
