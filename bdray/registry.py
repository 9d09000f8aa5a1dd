"""Name -> object registries (methods, models, attacks, datasets) with clear unknown-name errors."""
from __future__ import annotations

import difflib
import re
from typing import Dict, Generic, Iterator, TypeVar

from bdray.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects (factories, specs) with clear unknown-name errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}
        self._descriptions: Dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, description: str | None = None):
        """Register ``obj`` under ``name`` (with a one-line ``description``, default the first line of
        its docstring); usable as ``@registry.register("name")``."""

        def add(o: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = o
            if description:
                self._descriptions[name] = description
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._entries:
            near = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f" (nearest: {', '.join(near)})" if near else ""
            raise ConfigError(field or self.kind, name, f"one of {sorted(self._entries)}{hint}")
        return self._entries[name]

    def describe(self, name: str) -> str:
        """The one-line description of ``name``: the registered one, else its docstring's first line."""
        if name in self._descriptions:
            return self._descriptions[name]
        obj = self._entries[name]
        doc = (getattr(obj, "__doc__", None) or "").strip()
        if not doc or doc.startswith(getattr(obj, "__name__", type(obj).__name__) + "("):
            return ""  # none, or a dataclass's generated signature
        line = re.sub(r"\s*\(methods\.md §[\d.]+\)", "", doc.split("\n")[0].strip())
        return line.rstrip(".")

    def help(self) -> str:
        """Every registered name with its description, for a command line's ``--help``."""
        return "; ".join(f"{n} ({d})" if (d := self.describe(n)) else n for n in self.names())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
