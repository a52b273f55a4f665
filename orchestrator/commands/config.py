"""``h2ot config``: every environment variable H2OT Lab reads, with its effective value here (secrets masked)."""

from __future__ import annotations

import typer

from h2ot_core.environment import SETTINGS
from orchestrator.commands.options import FormatOpt
from orchestrator.console import print_rows, user_errors

COLUMNS = ("variable", "value", "from", "to workers", "to job", "what it does")


@user_errors
def config(fmt: FormatOpt = "table") -> None:
    """The settings from the environment (h2ot_core.environment): effective value, where it comes from
    (env or default), whether a campaign's workers and a submitted Ray job get it. Passwords are masked."""
    rows = []
    for s in SETTINGS:
        source = "env" if s.raw() is not None else ("default" if s.default is not None else "unset")
        rows.append({"variable": s.name, "value": s.shown(), "from": source, "to workers": "yes" if s.workers else "",
                     "to job": "yes" if s.job else "", "what it does": s.doc})
    print_rows(rows, COLUMNS, fmt, title="settings (environment variables)")


def register(app: typer.Typer) -> None:
    app.command("config")(config)
