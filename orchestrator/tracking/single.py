"""A trial trained outside a campaign (``h2ot train``) recorded like any campaign trial: its leaderboard row
(under its ``trial_key``, in the campaign it names, ``train`` by default) and its MLflow run (in the
experiment of that name, with every epoch, the final metrics, cost and the model)."""

from __future__ import annotations

from h2ot_core.contracts import TrialResult, TrialSpec, TrialStatus

#: the campaign (and MLflow experiment) ``h2ot train`` records into unless told otherwise
TRAIN_CAMPAIGN = "train"


def record_trial(spec: TrialSpec, result: TrialResult, *, campaign: str = TRAIN_CAMPAIGN,
                 db_url: str | None = None) -> str | None:
    """Write ``result`` to the leaderboard and MLflow; returns the MLflow run id (``None``: MLflow was
    unreachable; `h2ot campaign sync CAMPAIGN` backfills it from the leaderboard later)."""
    from orchestrator.tracking.tracker import CampaignTracker, init_store
    from results.store import LeaderboardStore

    store = LeaderboardStore(db_url)  # the row links the trial to the campaign, created if new (a grid's keeps its grid)
    tracker = CampaignTracker(campaign, campaign, uri=init_store(), tags={"h2ot.source": "h2ot train"})
    run_id = tracker.finish_trial(spec, result)
    tracker.close(failed=result.status != TrialStatus.COMPLETE)
    store.upsert_result(result, campaign=campaign, mlflow_run_id=run_id)
    return run_id
