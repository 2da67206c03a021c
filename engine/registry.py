"""Name → (options dataclass, implementation) registries: one registration per component.

A component registers itself once, in its own file, next to its options:

    @dataclass(frozen=True)
    class EwcOptions:
        ewc_lambda: float = opt(1.0, "penalty strength λ")

    @METHODS.register(EwcOptions)
    class Ewc(Method): ...

The name is the options class's name without the `Options` suffix in snake_case (`EwcOptions` →
`ewc`, `MaskingSiOptions` → `masking_si`), or `register(Options, name="...")`. The registries
themselves are torch-free; filling them means importing the component modules, which is
`engine.catalog.load_all()`'s job (and loads torch).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.errors import ConfigError, suggest

T = TypeVar("T")


def default_name(options: type) -> str:
    """`MaskingSiOptions` → `masking_si`."""
    stem = options.__name__.removesuffix("Options")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component."""

    name: str
    options: type
    """Frozen dataclass of the component's options; each field carries its help text."""
    impl: T
    """The class (or factory function) that builds the component from its options."""


class ComponentRegistry(Generic[T]):
    """The components of one kind (e.g. 'method'), by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Entry[T]] = {}

    def register(self, options: type, name: str | None = None) -> Callable[[T], T]:
        """Decorator binding `name`, the options dataclass and the decorated implementation."""
        if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
            raise TypeError(f"{self.kind}: register() takes the options dataclass, got {options!r}")
        key = name or default_name(options)

        def deco(impl: T) -> T:
            old = self._items.get(key)
            if old is not None and old.impl is not impl:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._items[key] = Entry(key, options, impl)
            return impl

        return deco

    def get(self, name: str) -> Entry[T]:
        """The entry called `name`; unknown names raise ConfigError naming the close ones."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{suggest(name, self._items)} "
                f"Known: {', '.join(sorted(self._items))}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def entries(self) -> list[Entry[T]]:
        return [self._items[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items


BENCHMARKS: ComponentRegistry[Any] = ComponentRegistry("benchmark")
MODELS: ComponentRegistry[Any] = ComponentRegistry("model")
METHODS: ComponentRegistry[Any] = ComponentRegistry("method")
ANALYSES: ComponentRegistry[Any] = ComponentRegistry("analysis")
"""Observers (read-only measurements any run can turn on), see engine/analyses/base.py."""

