"""MLflow tracking, written from the driver only: one parent run per campaign, one nested run per trial.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set (a tracking server for clusters), else an absolute
SQLite file ``results/runs/mlflow.db`` with artifacts under ``results/runs/mlartifacts``. Browse it with::

    mlflow ui --backend-store-uri sqlite:///$PWD/results/runs/mlflow.db \\
        --default-artifact-root $PWD/results/runs/mlartifacts

MLflow is the run and artifact browser; the SQL leaderboard stays the source of truth for tables.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h2ot_core.contracts import TrialResult, TrialSpec
from orchestrator.provenance import git_sha, package_versions, runs_dir

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CAMPAIGN_TAG = "h2ot.campaign"
TRIAL_TAG = "h2ot.trial_key"
PARENT_TAG = "mlflow.parentRunId"
#: MLflow's own limit on one log_batch call
_BATCH = 1000


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the absolute local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir() / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    # A local SQLite store would otherwise put artifacts under ./mlruns of whatever the cwd is.
    return (runs_dir() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None


def _flat_numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class CampaignTracker:
    """The campaign's MLflow writer (driver side; not shared across processes).

    Args:
        campaign: campaign name; the parent run is found again by its tag, so a resumed campaign
            keeps one parent run.
        experiment: MLflow experiment (the grid's name).
        uri: tracking URI (default :func:`tracking_uri`).
        tags: extra tags for the parent and every trial run (grid path, profile, ...).
    """

    def __init__(self, campaign: str, experiment: str, *, uri: str | None = None,
                 tags: Mapping[str, str] | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or tracking_uri()
        self.campaign = campaign
        self.client: MlflowClient = MlflowClient(self.uri)
        sha = git_sha()
        self.tags = {CAMPAIGN_TAG: campaign, **({"git_sha": sha} if sha else {}),
                     **{f"version.{k}": v for k, v in package_versions().items()}, **(tags or {})}
        self.experiment_id = self._experiment(experiment)
        self.parent_run_id = self._parent()

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        return self.client.create_experiment(name, artifact_location=_artifact_root(self.uri))

    def _find(self, filter_string: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id], filter_string, max_results=1,
                                       order_by=["attributes.start_time DESC"])
        return runs[0].info.run_id if runs else None

    def _parent(self) -> str:
        found = self._find(f"tags.`{CAMPAIGN_TAG}` = '{_quote(self.campaign)}' and tags.`h2ot.role` = 'campaign'")
        if found:
            self.client.update_run(found, status="RUNNING")
            return found
        run = self.client.create_run(self.experiment_id, run_name=self.campaign,
                                     tags={**self.tags, "h2ot.role": "campaign"})
        return run.info.run_id

    def start_trial(self, spec: TrialSpec) -> str:
        """The trial's nested run (reused when a resumed campaign meets the trial again); logs its axes."""
        key = spec.trial_key
        found = self._find(f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{key}'")
        if found:
            self.client.update_run(found, status="RUNNING")
            return found
        run = self.client.create_run(
            self.experiment_id, run_name=key,
            tags={**self.tags, PARENT_TAG: self.parent_run_id, TRIAL_TAG: key, "h2ot.role": "trial"},
        )
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in sorted(spec.axes().items())]
        for i in range(0, len(params), 100):  # MLflow caps params per batch at 100
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])
        return run.info.run_id

    def log_epoch(self, run_id: str, metrics: Mapping[str, Any], step: int) -> None:
        """One epoch's report, as one batch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _flat_numbers(metrics).items()]
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(run_id, metrics=batch[i:i + _BATCH])

    def finish_trial(self, run_id: str, result: TrialResult) -> None:
        """Final metrics, cost, provenance tags, the resolved spec and checkpoint as artifacts."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        step = result.epochs_run
        values: dict[str, float] = {}
        for m in result.metrics:
            suffix = "" if m.action == "avg" else f".{m.action}"
            values[f"final.{m.split}_{m.name}{suffix}"] = m.value
        if result.cost is not None:
            values.update({"cost.params": result.cost.params, "cost.gflops": result.cost.gflops,
                           "cost.gflops_total": result.cost.gflops_total})
            if result.cost.latency_ms is not None:
                values["cost.latency_ms"] = result.cost.latency_ms
        metrics = [Metric(k, float(v), now, step) for k, v in sorted(values.items())]
        tags = [RunTag(f"provenance.{k}", str(v)[:5000]) for k, v in sorted(result.provenance.items())]
        tags += [RunTag("h2ot.status", result.status), RunTag("h2ot.selection", result.selection)]
        if result.error:
            tags.append(RunTag("h2ot.error", result.error[-5000:]))
        for i in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[i:i + _BATCH])
        self.client.log_batch(run_id, tags=tags)
        self._log_artifacts(run_id, result)
        self.client.set_terminated(run_id, status="FAILED" if result.status == "failed" else "FINISHED")

    def _log_artifacts(self, run_id: str, result: TrialResult) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            spec_file = Path(tmp) / "spec.json"
            spec_file.write_text(json.dumps(result.spec, indent=2, sort_keys=True))
            self.client.log_artifact(run_id, str(spec_file))
            ckpt = Path(result.checkpoint_uri) if result.checkpoint_uri else None
            if ckpt is not None and ckpt.is_file():
                self.client.log_artifact(run_id, str(ckpt), artifact_path="checkpoint")
            elif result.checkpoint_uri:
                log.info("checkpoint %s of %s is not on this node; not logged as an artifact",
                         result.checkpoint_uri, result.trial_key)

    def close(self, failed: bool = False) -> None:
        """End the campaign's parent run."""
        self.client.set_terminated(self.parent_run_id, status="FAILED" if failed else "FINISHED")


def _quote(value: str) -> str:
    # MLflow's filter grammar has no parameters; campaign names are the only free text placed in one.
    return value.replace("\\", "\\\\").replace("'", "\\'")


def init_store(uri: str | None = None) -> str:
    """Create the tracking store's schema once, before trials log concurrently; returns the URI."""
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:"):
        runs_dir().mkdir(parents=True, exist_ok=True)
    MlflowClient(uri).search_experiments(max_results=1)
    return uri
