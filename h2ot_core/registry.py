"""A small generic registry: the names in grids, CLIs and tables are registry keys.

Entries are either registered objects or lazy ``"module:attr"`` targets, so listing names and
validating a grid never imports torch model code. A registry may require every entry to carry an info
object of one class (a backbone's :class:`~h2ot_core.names.BackboneInfo`), readable without importing the
target. A name registered twice, or a target or info of the wrong kind, is refused when registered.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from h2ot_core.errors import H2OTError, RegistrationError

T = TypeVar("T")
InfoT = TypeVar("InfoT")

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_LAZY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


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


def unknown_message(kind: str, name: object, known: Iterable[str]) -> str:
    """``Unknown pruner 'tcp'. Did you mean: tpc? Known: none, tpa, tpc, ...``.

    The one did-you-mean of the project: registries, grids, the CLI and ``results`` all word it so.
    """
    typed, known = str(name), sorted(known)
    close = difflib.get_close_matches(typed, known, n=3, cutoff=0.5)
    # Swapped letters ('tcp' for 'tpc') are the commonest typo, but difflib scores them no better than a
    # changed letter ('tps'); put same-letter candidates first (the sort is stable within each group).
    close.sort(key=lambda c: sorted(c) != sorted(typed))
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"


class Registry(Generic[T, InfoT]):
    """Maps lower-snake-case names to objects or lazy ``"module:attr"`` import targets, each with its info.

    Args:
        kind: what an entry is, for messages (``backbone``, ``dataset``).
        target_type: what a non-lazy target must be: a type it is an instance of (``type`` for classes),
            or ``callable``. Lazy targets are checked when first imported.
        info_type: the class every entry's info must be an instance of; ``None``: entries carry no info.
    """

    def __init__(self, kind: str, *, target_type: type | Callable[[object], bool] = object,
                 info_type: type[InfoT] | None = None):
        self.kind = kind
        self.target_type = target_type
        self.info_type = info_type
        self._entries: dict[str, T | str] = {}
        self._infos: dict[str, InfoT] = {}
        self._descriptions: dict[str, str] = {}

    def _target_ok(self, target: object) -> bool:
        if isinstance(self.target_type, type):
            return isinstance(target, self.target_type)
        return bool(self.target_type(target))

    def _expected(self) -> str:
        if self.target_type is type:
            return "a class"
        if self.target_type is callable:
            return "a callable"
        return f"a {getattr(self.target_type, '__name__', self.target_type)}"

    def register(self, name: str, target: T | str | None = None, info: InfoT | None = None, *,
                 description: str = "") -> Callable[[T], T] | None:
        """Register ``target`` (an object or a lazy ``"module:attr"``) and its ``info`` under ``name``;
        ``description`` is the one line ``h2ot ls`` shows.

        Without a target, return a decorator that registers the decorated object. Raises
        :class:`~h2ot_core.errors.RegistrationError` for a name that is taken or not lower snake case, a
        target that is neither of this registry's kind nor a ``"module:attr"`` string, or an info that is
        missing or of the wrong class.
        """
        where = f"{self.kind} {name!r}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RegistrationError(f"{self.kind} name {name!r} must be lower snake case (e.g. 'my_{self.kind}')")
        if name in self._entries:
            raise RegistrationError(f"{where} is already registered (to {self._describe(name)}); "
                                    f"each name is registered once")
        if self.info_type is None and info is not None:
            raise RegistrationError(f"{where}: {self.kind} entries carry no info, got a "
                                    f"{type(info).__name__}")
        if self.info_type is not None and not isinstance(info, self.info_type):
            got = "none" if info is None else f"a {type(info).__name__}"
            raise RegistrationError(f"{where}: info must be a {self.info_type.__name__}, got {got}")

        def add(obj: T | str) -> None:
            if isinstance(obj, str):
                if not _LAZY.fullmatch(obj):
                    raise RegistrationError(f"{where}: lazy target {obj!r} must read 'package.module:attribute'")
            elif not self._target_ok(obj):
                raise RegistrationError(f"{where}: target must be {self._expected()} or a 'module:attr' "
                                        f"string, got {type(obj).__name__} {obj!r}")
            self._entries[name] = obj
            if info is not None:
                self._infos[name] = info
            if description:
                self._descriptions[name] = description

        if target is not None:
            add(target)
            return None

        def deco(obj: T) -> T:
            add(obj)
            return obj

        return deco

    def _describe(self, name: str) -> str:
        entry = self._entries[name]
        return entry if isinstance(entry, str) else f"{getattr(entry, '__module__', '?')}:" \
            f"{getattr(entry, '__qualname__', entry)}"

    def info(self, name: str) -> InfoT:
        """The info registered with ``name`` (did-you-mean error for unknown names); imports nothing."""
        self.check(name)
        if self.info_type is None:
            raise RegistrationError(f"{self.kind} entries carry no info")
        return self._infos[name]

    def description(self, name: str) -> str:
        """The one-line description registered with ``name`` (empty when none); imports nothing."""
        self.check(name)
        return self._descriptions.get(name, "")

    @property
    def infos(self) -> Mapping[str, InfoT]:
        """A read-only, live ``name -> info`` view of every entry; imports nothing."""
        return MappingProxyType(self._infos)

    def get(self, name: str) -> T:
        """The object for ``name`` (importing a lazy target on first use)."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        entry = self._entries[name]
        if not isinstance(entry, str):
            return entry
        module, _, attr = entry.partition(":")
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        if not self._target_ok(target):
            raise RegistrationError(f"{self.kind} {name!r}: {entry} is "
                                    f"{type(target).__name__} {target!r}, expected {self._expected()}")
        self._entries[name] = target
        return target

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

