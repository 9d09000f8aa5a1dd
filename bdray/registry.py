"""Name -> object registries (methods, models, attacks, datasets) with clear unknown-name errors."""
from __future__ import annotations

from typing import Dict, Generic, Iterator, TypeVar

from bdray.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects (factories, specs) with clear unknown-name errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""

        def add(o: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._entries:
            raise ConfigError(field or self.kind, name, f"one of {sorted(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
