"""Name → class registries for benchmarks, models and methods (one decorator each).

Torch-free: implementations register themselves when `engine.catalog.load_all()` imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from engine.errors import ConfigError, suggest

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components of one kind (e.g. 'method')."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The component called `name`; unknown names raise ConfigError with close names."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{suggest(name, self._items)} "
                f"Known: {', '.join(sorted(self._items))}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
