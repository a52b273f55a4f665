"""Terminal output discipline: data on stdout, progress and errors on stderr."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from h2ot_core.errors import H2OTError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

#: exit code for user mistakes (bad input, names, files); 1 is left for failures of the work itself
USER_ERROR = 2


def fail(message: str, code: int = USER_ERROR) -> typer.Exit:
    """Print ``Error: message`` on stderr and return the ``typer.Exit`` to raise."""
    err.print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Decorator for CLI commands: a :class:`H2OTError` becomes one clear line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except H2OTError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]
