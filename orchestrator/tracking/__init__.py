"""MLflow tracking, written from the driver only: one parent run per campaign, one nested run per trial.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a tracking server for clusters), else an absolute
SQLite file ``results/runs/mlflow.db`` with artifacts under ``results/runs/mlartifacts``. Browse it with::

    mlflow ui --backend-store-uri sqlite:///$PWD/results/runs/mlflow.db \\
        --default-artifact-root $PWD/results/runs/mlartifacts

MLflow is the run and artifact browser; the SQL leaderboard is the record. A tracking outage therefore never
stops a campaign: every MLflow call goes through one :class:`Breaker`. The first failure is one warning;
later calls are skipped at once (no HTTP back-off) and the server is probed at most every
``$H2OT_MLFLOW_PROBE_S`` seconds (default 30) until it answers again. What was skipped is backfilled from the
leaderboard, which keeps every trial's per-epoch history (``trials.history_json``): at the end of the trial
when the server is back by then, at the end of the campaign, or with ``h2ot campaign sync NAME``.

One run per ``trial_key`` per experiment: a trial's run is found by its ``h2ot.trial_key`` tag before one is
created, and backfilling logs only what the run lacks (params it has not got, epoch steps absent from its
metric history, final values that differ), so syncing twice changes nothing. A run whose record is complete
carries the tag ``h2ot.logged = complete``.

The package: :mod:`~orchestrator.tracking.breaker` (the circuit breaker and the MLflow client's HTTP settings),
:mod:`~orchestrator.tracking.tracker` (the campaign's live writer and the record of one trial) and
:mod:`~orchestrator.tracking.backfill` (MLflow filled from the leaderboard: ``h2ot campaign sync``).
"""

from orchestrator.tracking.backfill import SyncReport, sync, sync_campaign
from orchestrator.tracking.breaker import Breaker
from orchestrator.tracking.tracker import CampaignTracker, final_values, init_store, tracking_uri

__all__ = ["Breaker", "CampaignTracker", "SyncReport", "final_values", "init_store", "sync",
           "sync_campaign", "tracking_uri"]
