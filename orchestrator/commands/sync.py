"""``h2ot campaign sync NAME``: backfill MLflow from the leaderboard after a tracking outage.

The leaderboard is the record: every finished trial of the campaign gets its one MLflow run (found by its
``trial_key``, created if missing) with its params, the per-epoch metrics at their steps (only the steps
the run lacks), final metrics, cost, provenance and status. Idempotent: a second sync changes nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import DbUrlOpt
from orchestrator.console import err, fail, user_errors


@user_errors
def sync(
    name: Annotated[str, typer.Argument(help="campaign name (as printed by campaign run)", show_default=False)],
    db_url: DbUrlOpt = None,
) -> None:
    """Backfill MLflow with every finished trial of campaign NAME from the leaderboard (safe to repeat).

    Exit code 0 when MLflow has every finished trial, 1 when the tracking server did not answer (or refused
    a trial), 2 for an unknown campaign or leaderboard.
    """
    from h2ot_core.environment import mask_secret
    from orchestrator.tracking import sync_campaign, tracking_uri

    uri = tracking_uri()
    report = sync_campaign(name, db_url=db_url, uri=uri)
    err.print(f"campaign {name} -> MLflow {mask_secret(uri)} (experiment {report.experiment}): {report.summary()}",
              highlight=False, markup=False)
    if report.not_synced:
        cause = report.error or "MLflow refused part of the record"
        raise fail(f"MLflow at {mask_secret(uri)}: {report.not_synced} trial(s) of campaign {name} not synced "
                   f"({cause}); run `h2ot campaign sync {name}` again once it answers", code=1)
