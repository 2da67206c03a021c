"""Fill the component registries (engine.registry) by importing every benchmark, model, method and analysis.

Each package lists its modules in its `__init__` (`MODULES`); importing one runs its
`@BENCHMARKS/MODELS/METHODS/ANALYSES.register(...)` decorator. This module is the only place that imports
them all, so calling `load_all()` loads torch; importing this module does not (the UI may import it,
and calls `load_all()` only inside functions or a worker thread).

`option_docs(cfg)` lists a resolved config's options (component options included) with their help
texts, for `cltui presets show` and the TUI; it reads dataclass field metadata only (torch-free).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig

PACKAGES = ("engine.benchmarks", "engine.models", "engine.methods", "engine.analyses")
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
    """One option of a resolved config, with its help text."""

    key: str
    """Dotted key as a preset or `--set` writes it, e.g. 'method.ewc_lambda'."""
    value: Any
    help: str

    @property
    def value_text(self) -> str:
        """The value as a preset would write it (JSON spelling, which TOML shares for these types)."""
        return json.dumps(self.value, ensure_ascii=False)


DOC_SECTIONS = ("benchmark", "model", "method", "training", "evaluation", "checkpoint", "analyses")


def option_docs(cfg: RunConfig, sections: tuple[str, ...] = DOC_SECTIONS) -> list[OptionDoc]:
    """Every option of the named sections of `cfg` (component tables: their name, then the options
    of the registered dataclass), in declaration order, with the help text its field declares."""
    from engine.config import Component

    out = []
    for section in sections:
        obj = getattr(cfg, section)
        if isinstance(obj, tuple):  # analyses: one [analyses.<name>] table per registered observer
            for comp in obj:
                out += _fields(f"{section}.{comp.name}", comp.options)
            continue
        if isinstance(obj, Component):  # its registered name, then its options dataclass
            out.append(OptionDoc(f"{section}.name", obj.name, f"which registered {section}"))
            obj = obj.options
        out += _fields(section, obj)
    return out


def _fields(prefix: str, obj: Any) -> list[OptionDoc]:
    return [OptionDoc(f"{prefix}.{f.name}", getattr(obj, f.name), f.metadata.get("help", ""))
            for f in dataclasses.fields(obj)]
