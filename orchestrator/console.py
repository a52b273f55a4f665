"""Terminal output discipline: data on stdout, progress and errors on stderr."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

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


#: what ``--format`` accepts on every command that prints a table
TABLE_FORMATS = ("table", "json", "csv", "markdown")


def cell_text(value: Any) -> str:
    """One cell as text: empty for ``None``, 4 significant digits for floats."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table_cell(value: Any) -> str:
    # for reading, not parsing: thousands separators on integers
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else cell_text(value)


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, *, title: str = "") -> None:
    """``rows`` on stdout as a rich table, JSON (every key of every row), CSV or Markdown (``columns`` only).

    ``title`` heads the rich table; in the other formats it goes to stderr, so stdout stays parseable.
    """
    if fmt == "json":
        out.print_json(json.dumps(rows, default=str), indent=2) if rows else out.print("[]", highlight=False)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[cell_text(r.get(c)) for c in columns] for r in rows])
        out.print(buf.getvalue(), end="", highlight=False, markup=False)
    elif fmt == "markdown":
        from results.markdown import markdown_table

        out.print(markdown_table(columns, [[cell_text(r.get(c)) for c in columns] for r in rows]),
                  highlight=False, markup=False)
    else:
        table = Table(*columns, title=title or None)
        for r in rows:
            table.add_row(*(_table_cell(r.get(c)) for c in columns))
        Console(width=max(out.width, 200), soft_wrap=True).print(table)
    if title and fmt != "table":
        err.print(title, highlight=False, markup=False)


def print_record(record: dict[str, Any], fmt: str) -> None:
    """One record: a JSON object, a field/value table, or a one-row CSV / Markdown table."""
    if fmt == "json":
        out.print_json(json.dumps(record, default=str))
    elif fmt == "table":
        table = Table("field", "value")
        for k, v in record.items():
            table.add_row(k, _table_cell(v) if isinstance(v, int) else str(v))
        out.print(table)
    else:
        print_rows([record], list(record), fmt)
