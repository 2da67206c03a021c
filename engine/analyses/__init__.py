"""Analyses: read-only observers any run can turn on (see base.py), one module each.

`MODULES` lists them explicitly (no directory scan); `load()` imports them so that their
`@ANALYSES.register` decorators run. Importing an analysis module loads torch.
"""

from __future__ import annotations

import importlib

MODULES = ("engine.analyses.curves",)


def load() -> None:
    for name in MODULES:
        importlib.import_module(name)
