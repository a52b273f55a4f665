"""``h2ot recipe show BACKBONE``: a backbone's official training recipe and protocol, each ingredient with its
public source (:mod:`h2ot_core.recipes`)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import FormatOpt
from orchestrator.console import print_rows, user_errors

recipe_app = typer.Typer(no_args_is_help=True, help="The official training recipe and protocol per backbone.")


@user_errors
def show(backbone: Annotated[str, typer.Argument(help="backbone name (h2ot ls)")], fmt: FormatOpt = "table") -> None:
    """Every ingredient of BACKBONE's official recipe (what `train.recipe: official` trains with), with its source."""
    from h2ot_core.recipes import ingredients

    print_rows(ingredients(backbone), ["ingredient", "value", "source"], fmt,
               title=f"{backbone}: the official recipe (train.recipe: official)", compact=False)


def register(app: typer.Typer) -> None:
    recipe_app.command("show")(show)
    app.add_typer(recipe_app, name="recipe")
