"""Terminal output discipline: data on stdout, progress and errors on stderr."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from h2ot_core.contracts import METRICS
from h2ot_core.errors import H2OTError
from h2ot_core.registry import unknown_message

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


def cell_text(column: str, value: Any) -> str:
    """One cell as text: empty for ``None``, floats at their metric's precision (:mod:`results.numbers`)."""
    from results.numbers import number_text

    return number_text(column, value)


def table_cell(column: str, value: Any) -> str:
    """A table cell for reading (the terminal, the web page), not parsing: thousands separators on integers."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else cell_text(column, value)


def check_columns(wanted: Sequence[str], rows: list[dict[str, Any]], shown: Sequence[str]) -> list[str]:
    """``--columns``: each must be a key of the rows (or a default column), else a did-you-mean error."""
    known = list(dict.fromkeys([*shown, *(k for r in rows[:1] for k in r)]))
    for c in wanted:
        if c not in known:
            raise H2OTError(f"--columns: {unknown_message('column', c, known)}")
    return list(wanted)


def constant_columns(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """The columns with one value over every row (none for fewer than two rows)."""
    if len(rows) < 2:
        return []
    return [c for c in columns if len({json.dumps(r.get(c), default=str, sort_keys=True) for r in rows}) == 1]


def natural_width(table: Table) -> int:
    """The characters ``table`` takes without wrapping anything."""
    return Measurement.get(out, out.options.update_width(100_000), table).maximum


#: characters between two columns of :func:`_rows_table` (padding, rule, padding)
_GAP = 3


def _width(rows: list[dict[str, Any]], columns: Sequence[str], *, stacked: bool) -> int:
    """The width of :func:`_rows_table` (no cell cut); ``stacked``: headers one word per line."""
    widths = [max([max(map(cell_len, c.split("_"))) if stacked else cell_len(c),
                   *(cell_len(table_cell(c, r.get(c))) for r in rows)]) for c in columns]
    return sum(widths) + _GAP * max(len(columns) - 1, 0)


def print_table(table: Table) -> None:
    """A rich table on stdout: fitted to a terminal's width; elsewhere (a pipe, a file) at its natural width,
    never wrapped at 80 columns."""
    if out.is_terminal:
        out.print(table)
        return
    Console(width=max(natural_width(table), 20), soft_wrap=True).print(table)


def _rows_table(rows: list[dict[str, Any]], columns: Sequence[str], title: str, *, stacked: bool = False
                ) -> Table:
    # cells are never wrapped or cut (a number or a key cut in two is misread); ``stacked`` headers put one
    # word per line (``speedup`` over ``latency``) to save width
    table = Table(title=title or None, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in columns:
        numeric = c in METRICS or all(isinstance(v, int | float) and not isinstance(v, bool)
                                      for r in rows if (v := r.get(c)) is not None)
        table.add_column(c.replace("_", "\n") if stacked else c, no_wrap=True,
                         justify="right" if numeric else "left")
    for r in rows:  # as Text: a cell's "[mocap]" is data, not console markup
        table.add_row(*(Text(table_cell(c, r.get(c))) for c in columns))
    return table


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, *, title: str = "",
               compact: bool = True, droppable: Sequence[str] = ()) -> list[str]:
    """``rows`` on stdout as a rich table, JSON (every key of every row), CSV or Markdown (``columns`` only).
    Tables and Markdown round each number to its metric's precision; JSON and CSV keep every digit.

    ``title`` heads the rich table; in the other formats it goes to stderr, so stdout stays parseable. A
    ``compact`` table leaves out the columns with the same value in every row and states them once above it;
    in a terminal too narrow for it, the ``droppable`` columns are left out in that order (and named on
    stderr) until it fits. Returns the columns shown.
    """
    if fmt == "json":
        out.print_json(json.dumps(rows, default=str), indent=2) if rows else out.print("[]", highlight=False)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        # every digit, as JSON: a CSV is read by programs (tables and Markdown round for people)
        writer.writerows([["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows])
        out.print(buf.getvalue(), end="", highlight=False, markup=False)
    elif fmt == "markdown":
        from results.markdown import markdown_table

        out.print(markdown_table(columns, [[cell_text(c, r.get(c)) for c in columns] for r in rows]),
                  highlight=False, markup=False)
    else:
        same = constant_columns(rows, columns) if compact else []
        if same and len(same) < len(columns):
            out.print("every row: " + ", ".join(f"{c} {table_cell(c, rows[0].get(c)) or '–'}" for c in same),
                      highlight=False, markup=False)
            columns = [c for c in columns if c not in same]
        hidden: list[str] = []
        stacked = out.is_terminal and _width(rows, columns, stacked=False) > out.width
        for c in droppable if stacked else ():
            if _width(rows, columns, stacked=True) <= out.width:
                break
            if c in columns:
                columns = [k for k in columns if k != c]
                hidden.append(c)
        print_table(_rows_table(rows, columns, title, stacked=stacked))
        if hidden:
            err.print(f"not shown in {out.width} columns: {', '.join(hidden)} (--columns picks the columns, "
                      f"--format csv/json shows all)", highlight=False, markup=False)
    if title and fmt != "table":
        err.print(title, highlight=False, markup=False)
    return list(columns)


def print_record(record: dict[str, Any], fmt: str) -> None:
    """One record: a JSON object, a field/value table, or a one-row CSV / Markdown table."""
    if fmt == "json":
        out.print_json(json.dumps(record, default=str))
    elif fmt == "table":
        table = Table("field", "value")
        for k, v in record.items():
            table.add_row(k, Text(table_cell(k, v)))
        print_table(table)
    else:
        print_rows([record], list(record), fmt)


def ago(when: datetime) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``: how long before now ``when`` (naive UTC) was."""
    seconds = max(0.0, (datetime.now(UTC).replace(tzinfo=None) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"
