"""The ``h2ot`` command. Thin: each command parses, calls one library function, prints.

Heavy libraries (torch, ray, mlflow) are imported inside the commands that need them, so
``h2ot --help`` and leaderboard queries start fast.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Annotated

import typer

#: the distribution name in pyproject.toml
DISTRIBUTION = "h2ot-lab"

app = typer.Typer(
    name="h2ot",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"h2ot {importlib.metadata.version(DISTRIBUTION)}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the h2ot-lab version and exit.")] = False,
) -> None:
    """H2OT Lab: hourglass token pruning ablation campaigns for video pose transformers."""

# Each module registers its commands on ``app`` (or adds a sub-app) in ``register(app)``.
COMMAND_MODULES = (
    "orchestrator.commands.core",  # ls, profile
    "orchestrator.commands.checkpoint",  # checkpoint convert, predict
    "orchestrator.commands.data",  # data check, data synth
    "orchestrator.commands.train",  # train, evaluate
    "orchestrator.commands.recipe",  # recipe show
    "orchestrator.commands.campaign",  # campaign run/validate/status
    "orchestrator.commands.results",  # leaderboard, tables, export, report, plots
    "orchestrator.commands.db",  # db upgrade, db version
    "orchestrator.commands.config",  # config: the settings from the environment
    "orchestrator.commands.video",  # video
    "orchestrator.commands.serve",  # serve (the read-only web leaderboard)
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
