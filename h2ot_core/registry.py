"""A small generic registry: the names in grids, CLIs and tables are registry keys.

Entries are either registered objects or lazy ``"module:attr"`` targets, so listing names and
validating a grid never imports torch model code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from h2ot_core.errors import H2OTError

T = TypeVar("T")


class UnknownNameError(H2OTError, KeyError):
    """Raised for a name that is not in a registry; the message carries a did-you-mean hint."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return unknown_message(self.kind, self.name, self.known)

    def __str__(self) -> str:
        return self.message


def unknown_message(kind: str, name: object, known: list[str]) -> str:
    """``Unknown pruner 'tcp'. Did you mean: tpc? Known: none, tpa, tpc, ...``."""
    typed = str(name)
    close = difflib.get_close_matches(typed, known, n=3, cutoff=0.5)
    # Swapped letters ('tcp' for 'tpc') are the commonest typo, but difflib scores them no better than a
    # changed letter ('tps'); put same-letter candidates first (the sort is stable within each group).
    close.sort(key=lambda c: sorted(c) != sorted(typed))
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}"


class Registry(Generic[T]):
    """Maps lower-snake-case names to objects or lazy ``"module:attr"`` import targets."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str | None = None) -> Callable[[T], T] | None:
        """Register ``target`` under ``name``; without a target, return a decorator."""
        if target is not None:
            self._entries[name] = target
            return None

        def deco(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The object for ``name`` (importing a lazy target on first use)."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def check(self, name: str) -> str:
        """Validate ``name`` without importing anything; returns it."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return name

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def describe(self) -> dict[str, Any]:
        return {n: (e if isinstance(e, str) else f"{e.__module__}:{getattr(e, '__qualname__', e)}")
                for n, e in sorted(self._entries.items())}
