"""``h2ot db upgrade | version``: the leaderboard's schema revision, shown and upgraded on request.

Opening a leaderboard upgrades it anyway (``results.db.make_engine``); these commands make that an
explicit step, e.g. before a campaign's Ray workers all open the database at once, or to check
which revision a shared PostgreSQL leaderboard is at without changing it.
"""

from __future__ import annotations

import typer

from orchestrator.commands.options import DbUrlOpt
from orchestrator.console import out, user_errors

db_app = typer.Typer(no_args_is_help=True, help="The leaderboard database: schema revision and upgrades.")


@user_errors
def upgrade(db_url: DbUrlOpt = None) -> None:
    """Upgrade the leaderboard's schema to this h2ot-lab's head revision (every row kept)."""
    from results.db import mask_url, resolve_url, upgrade_database

    change = upgrade_database(db_url)
    where = mask_url(resolve_url(db_url))
    if change is None:
        out.print(f"leaderboard {where}: already at head", highlight=False)
    else:
        out.print(f"leaderboard {where}: schema upgraded {change.before or 'empty'} -> {change.after}",
                  highlight=False)


@user_errors
def version(db_url: DbUrlOpt = None) -> None:
    """Show the leaderboard's schema revision and the head revision this h2ot-lab knows."""
    from results.db import database_revision

    current, head = database_revision(db_url)
    out.print(f"current {current or 'none (empty database)'}\nhead    {head}", highlight=False)


def register(app: typer.Typer) -> None:
    db_app.command("upgrade")(upgrade)
    db_app.command("version")(version)
    app.add_typer(db_app, name="db")
