"""Fill the component registries (engine.registry) by importing every benchmark, model and method.

Each package lists its modules in its `__init__` (`MODULES`); importing one runs its
`@BENCHMARKS/MODELS/METHODS.register(...)` decorator. This module is the only place that imports
them all, so calling `load_all()` loads torch; importing this module does not (the UI may import it,
and calls `load_all()` only inside functions or a worker thread).

`option_docs(cfg)` lists a resolved config's component options with their help texts, for
`cltui presets show` and the TUI; it reads the dataclasses' field metadata only (torch-free).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig

PACKAGES = ("engine.benchmarks", "engine.models", "engine.methods")
_loaded = False


def component_modules() -> list[str]:
    """Every component module, as the packages list them (importing the packages is cheap)."""
    out = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        out += [f"{pkg_name}.{m}" for m in pkg.MODULES]
    return out


def load_all() -> None:
    """Import every component module once (idempotent; thread-safe through the import lock)."""
    global _loaded
    if _loaded:
        return
    for name in component_modules():
        importlib.import_module(name)
    _loaded = True


@dataclass(frozen=True)
class OptionDoc:
    """One component option of a resolved config."""

    key: str
    """Dotted key as a preset or `--set` writes it, e.g. 'method.ewc_lambda'."""
    value: Any
    help: str


def option_docs(cfg: RunConfig, sections: tuple[str, ...] = ("benchmark", "model", "method")) -> list[OptionDoc]:
    """The options of the named component sections of `cfg`, in declaration order, with their help."""
    out = []
    for section in sections:
        comp = getattr(cfg, section)
        out.append(OptionDoc(f"{section}.name", comp.name, f"registered {section} name"))
        for f in dataclasses.fields(comp.options):
            out.append(OptionDoc(f"{section}.{f.name}", getattr(comp.options, f.name), f.metadata.get("help", "")))
    return out
