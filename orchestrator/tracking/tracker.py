"""The campaign's MLflow writer on the driver: one parent run per campaign, one nested run per trial.

Every call goes through the :class:`~orchestrator.tracking.breaker.Breaker`, so nothing MLflow raises stops
training. A trial's run is found by its ``h2ot.trial_key`` tag before one is created, and :meth:`record`
logs only what a run lacks, so recording twice changes nothing.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h2ot_core.contracts import COST_METRICS, USAGE_METRICS, TrialResult, TrialSpec, TrialStatus, metric_key
from h2ot_core.environment import MLFLOW_TRACKING_URI, mask_secret, runs_dir
from orchestrator.provenance import git_sha, package_versions
from orchestrator.tracking.breaker import (
    Breaker,
    error_gist,
    http_defaults,
    quiet_clients,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CAMPAIGN_TAG = "h2ot.campaign"
TRIAL_TAG = "h2ot.trial_key"
ROLE_TAG = "h2ot.role"
STATUS_TAG = "h2ot.status"
#: ``complete`` once a run holds the trial's whole record (``partial`` while it may lack some of it)
LOGGED_TAG = "h2ot.logged"
PARENT_TAG = "mlflow.parentRunId"
#: MLflow's own limits on one log_batch call
_BATCH = 1000
_PARAM_BATCH = 100


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the absolute local SQLite store."""
    return str(MLFLOW_TRACKING_URI.value())


def _artifact_root(uri: str) -> str | None:
    # A local SQLite store would otherwise put artifacts under ./mlruns of whatever the cwd is.
    return (runs_dir() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None


def _flat_numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass
class Counts:
    """What :meth:`CampaignTracker.record` logged to a run."""

    params: int = 0
    steps: int = 0
    finals: int = 0


class CampaignTracker:
    """The campaign's MLflow writer (driver side; not shared across processes). Never raises for MLflow.

    Args:
        campaign: campaign name; the parent run is found again by its tag, so a resumed campaign
            keeps one parent run.
        experiment: MLflow experiment (the grid's name).
        uri: tracking URI (default :func:`tracking_uri`).
        tags: extra tags for the parent and every trial run (grid path, profile, ...).
        probe_s: seconds between probes of a server found down (default ``$H2OT_MLFLOW_PROBE_S`` or 30).
        live: the campaign is running (its parent run is marked ``RUNNING`` until :meth:`close`); a backfill
            outside a campaign run (``h2ot campaign sync``) leaves the parent run's status alone.
    """

    def __init__(self, campaign: str, experiment: str, *, uri: str | None = None,
                 tags: Mapping[str, str] | None = None, probe_s: float | None = None, live: bool = True):
        self.breaker = Breaker(uri or tracking_uri(), probe_s)  # first: it sets MLflow's HTTP client up
        from mlflow.tracking import MlflowClient

        self.uri = self.breaker.uri
        self.campaign = campaign
        self.experiment = experiment
        self.live = live
        self.client: MlflowClient = MlflowClient(self.uri)
        sha = git_sha()
        self.tags = {CAMPAIGN_TAG: campaign, **({"git_sha": sha} if sha else {}),
                     **{f"version.{k}": v for k, v in package_versions().items()}, **(tags or {})}
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        #: trial keys whose run may lack part of their record
        self.partial: set[str] = set()
        #: run id -> epoch steps this tracker logged to it (``None``: unknown, ask MLflow)
        self._steps: dict[str, set[int] | None] = {}
        #: run id -> trial_key of the runs this tracker wrote or found
        self.run_keys: dict[str, str] = {}
        self.ready()

    # -- guarded calls ------------------------------------------------------------------------------------
    def guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
        """``fn(*args)`` through the breaker (:meth:`Breaker.call`): ``("ok", value)``, ``("skipped", None)`` or
        ``("failed", None)``."""
        return self.breaker.call(what, fn, *args)

    def ready(self) -> bool:
        """The experiment and the campaign's parent run exist (created now if the server answers)."""
        if self.parent_run_id is not None:
            return True
        state, _ = self.guarded(f"opening campaign {self.campaign}", self._open)
        return state == "ok"

    def _open(self) -> None:
        if self.experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(
                self.experiment, artifact_location=_artifact_root(self.uri))
        self.parent_run_id = self._parent()

    def _parent(self) -> str:
        assert self.experiment_id is not None
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{CAMPAIGN_TAG}` = '{_quote(self.campaign)}' and tags.`{ROLE_TAG}` = 'campaign'",
            max_results=1, order_by=["attributes.start_time ASC"])
        if runs:
            if self.live:
                self.client.update_run(runs[0].info.run_id, status="RUNNING")
            return runs[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=self.campaign,
                                     tags={**self.tags, ROLE_TAG: "campaign"})
        if not self.live:
            self.client.set_terminated(run.info.run_id, status="FINISHED")
        return run.info.run_id

    # -- live logging (the sink) ----------------------------------------------------------------------------
    def start_trial(self, spec: TrialSpec) -> str | None:
        """The trial's run (the one its trial_key already has in the experiment, else a new nested run);
        ``None`` when the tracking server cannot be reached (the trial is then backfilled later)."""
        key = spec.trial_key
        if not self.ready():
            self.partial.add(key)
            return None
        state, run_id = self.guarded(f"the run of trial {key}", self._trial_run, spec)
        if state != "ok":
            self.partial.add(key)
            return None
        return run_id

    def _find_trial(self, key: str) -> list[Run]:
        assert self.experiment_id is not None
        return list(self.client.search_runs(
            [self.experiment_id], f"tags.`{TRIAL_TAG}` = '{_quote(key)}' and tags.`{ROLE_TAG}` = 'trial'",
            max_results=10, order_by=["attributes.start_time ASC"]))

    def create_trial_run(self, spec: TrialSpec) -> str:
        assert self.experiment_id is not None and self.parent_run_id is not None
        key = spec.trial_key
        run = self.client.create_run(
            self.experiment_id, run_name=run_name(spec),
            tags={**self.tags, PARENT_TAG: self.parent_run_id, TRIAL_TAG: key, ROLE_TAG: "trial",
                  LOGGED_TAG: "partial"})
        run_id = run.info.run_id
        self.run_keys[run_id] = key
        self._steps[run_id] = set()
        return run_id

    def _trial_run(self, spec: TrialSpec) -> str:
        found = self._find_trial(spec.trial_key)
        if found:  # a resumed campaign, a re-run or a backfill: the trial keeps its one run
            run = found[0]
            run_id = run.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, LOGGED_TAG, "partial")
            self.run_keys[run_id] = spec.trial_key
            self._steps[run_id] = None
            self._log_params(run_id, spec, run.data.params)
            return run_id
        run_id = self.create_trial_run(spec)
        self._log_params(run_id, spec, {})  # the fresh run has none
        return run_id

    def _log_params(self, run_id: str, spec: TrialSpec, have: Mapping[str, str]) -> int:
        """The trial's axes the run has not got (params are immutable in MLflow); returns how many."""
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in sorted(spec.axes().items()) if k not in have]
        for i in range(0, len(params), _PARAM_BATCH):
            self.client.log_batch(run_id, params=params[i:i + _PARAM_BATCH])
        return len(params)

    def log_epoch(self, run_id: str | None, metrics: Mapping[str, Any], step: int) -> None:
        """One epoch's report, as one batch (skipped, and left for the backfill, while the server is away)."""
        from mlflow.entities import Metric

        if run_id is None:
            return
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _flat_numbers(metrics).items()]

        def send() -> None:
            for i in range(0, len(batch), _BATCH):
                self.client.log_batch(run_id, metrics=batch[i:i + _BATCH])

        state, _ = self.guarded(f"epoch {step} of trial {self.run_keys.get(run_id, run_id)}", send)
        steps = self._steps.get(run_id)
        if state == "ok":
            if steps is not None:
                steps.add(step)
            return
        self.partial.add(self.run_keys.get(run_id, run_id))
        if state == "failed":  # the server may have stored it before the connection broke
            self._steps[run_id] = None

    def finish_trial(self, spec: TrialSpec, result: TrialResult, run_id: str | None = None) -> str | None:
        """The trial's whole record: epochs the run lacks (from ``result.history``), final metrics, cost,
        provenance tags, the spec and checkpoint as artifacts, its end status. Returns the run id (``None``
        when the server cannot be reached: the trial stays for the backfill)."""
        key = spec.trial_key
        if run_id is None:
            run_id = self.start_trial(spec)
        if run_id is None:
            self.partial.add(key)
            return None
        state, _ = self.guarded(f"the result of trial {key}", self.record, run_id, result, self._steps.get(run_id))
        if state == "ok":
            self.partial.discard(key)
        else:
            self.partial.add(key)
        return run_id

    def close_parent(self, status: str) -> None:
        assert self.parent_run_id is not None
        if self.client.get_run(self.parent_run_id).info.status == "RUNNING":
            self.client.set_terminated(self.parent_run_id, status=status)

    def close(self, failed: bool = False) -> None:
        """End the campaign's parent run."""
        if self.parent_run_id is None:
            return
        self.guarded(f"closing campaign {self.campaign}", self.client.set_terminated, self.parent_run_id,
                   "FAILED" if failed else "FINISHED")

    # -- the record of one trial --------------------------------------------------------------------------
    def record(self, run_id: str, result: TrialResult, known_steps: set[int] | None) -> Counts:
        """Log what the run lacks of ``result`` (``known_steps``: the epochs it has, ``None``: ask MLflow)."""
        from mlflow.entities import Metric, RunTag

        counts = Counts()
        run = self.client.get_run(run_id)
        counts.params = self._log_params(run_id, TrialSpec.from_dict(result.spec), run.data.params)
        now = int(time.time() * 1000)
        batch: list[Metric] = []
        # per-epoch history at its steps, the steps the run has not got
        rows = [(int(row.get("epoch", i + 1)), _flat_numbers(row)) for i, row in enumerate(result.history)]
        names = sorted({name for _, values in rows for name in values})
        for name in names:
            if known_steps is not None:
                have = known_steps
            else:
                have = {m.step for m in self.client.get_metric_history(run_id, name)}
            for step, values in rows:
                if name in values and step not in have:
                    batch.append(Metric(name, values[name], now, step))
        counts.steps = len({m.step for m in batch})
        # final values: logged when the run has not got them (or has another value: a re-run)
        latest = run.data.metrics
        finals = [Metric(k, v, now, result.epochs_run) for k, v in sorted(final_values(result).items())
                  if k not in latest or not _same(latest[k], v)]
        counts.finals = len(finals)
        batch += finals
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(run_id, metrics=batch[i:i + _BATCH])
        tags = {k: v for k, v in result_tags(result).items() if run.data.tags.get(k) != v}
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(tags.items())])
        self._log_artifacts(run_id, result)
        status = "FAILED" if result.status == TrialStatus.FAILED else "FINISHED"
        if run.info.status != status or run.info.end_time is None:
            self.client.set_terminated(run_id, status=status)
        self.client.set_tag(run_id, LOGGED_TAG, "complete")
        return counts

    def _log_artifacts(self, run_id: str, result: TrialResult) -> None:
        have = {a.path for a in self.client.list_artifacts(run_id)}
        with tempfile.TemporaryDirectory() as tmp:
            if "spec.json" not in have:
                spec_file = Path(tmp) / "spec.json"
                spec_file.write_text(json.dumps(result.spec, indent=2, sort_keys=True))
                self.client.log_artifact(run_id, str(spec_file))
            ckpt = Path(result.checkpoint_uri) if result.checkpoint_uri else None
            if "checkpoint" in have:
                return
            if ckpt is not None and ckpt.is_file():
                self.client.log_artifact(run_id, str(ckpt), artifact_path="checkpoint")
            elif result.checkpoint_uri:
                log.info("checkpoint %s of %s is not on this node; not logged as an artifact",
                         result.checkpoint_uri, result.trial_key)

def run_name(spec: TrialSpec) -> str:
    """A trial's MLflow run name a person can read: ``backbone-pruner+recoverer-schedule-seedN``
    (``mixste-tpc+tra-1:9-seed0``; the unpruned model: ``mixste-unpruned-seed0``). Not unique across
    settings outside the axes (model size, training): the run's ``h2ot.trial_key`` tag is its identity."""
    model = f"{spec.pruner}+{spec.recoverer}-{spec.schedule}" if spec.schedule else "unpruned"
    return f"{spec.backbone}-{model}-seed{spec.seed}"


def final_values(result: TrialResult) -> dict[str, float]:
    """The final metrics and cost of ``result`` under their MLflow names: ``final.`` and the flat key of each
    metric (``final.test_mpjpe``, ``final.test_mpjpe__Walking``), ``cost.`` and each cost that is a number
    (``cost.gflops``), ``usage.`` and each number of its device usage (``usage.device_hours``)."""
    values = {f"final.{metric_key(m.split, m.name, m.action)}": float(m.value) for m in result.metrics}
    for prefix, record, names in (("cost", result.cost, COST_METRICS), ("usage", result.usage, USAGE_METRICS)):
        for name in names if record is not None else ():
            value = getattr(record, name)
            if value is not None:
                values[f"{prefix}.{name}"] = float(value)
    return values


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def result_tags(result: TrialResult) -> dict[str, str]:
    """Provenance, status, selection and error of ``result`` as MLflow tags."""
    tags = {f"provenance.{k}": str(v)[:5000] for k, v in sorted(result.provenance.items())}
    tags.update({STATUS_TAG: result.status, "h2ot.selection": result.selection})
    if result.usage is not None:
        tags.update({f"usage.{k}": str(v) for k in ("device_name", "peak_memory_kind")
                     if (v := getattr(result.usage, k)) is not None})
    if result.error:
        tags["h2ot.error"] = result.error[-5000:]
    return tags


def _quote(value: str) -> str:
    # MLflow's filter grammar has no parameters; campaign names are the only free text placed in one.
    return value.replace("\\", "\\\\").replace("'", "\\'")


def init_store(uri: str | None = None) -> str:
    """Create the tracking store's schema once, before trials log concurrently; returns the URI.

    A tracking server that does not answer is one warning, not an error: the campaign runs without it.
    """
    http_defaults()
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:"):
        runs_dir().mkdir(parents=True, exist_ok=True)
    try:
        with quiet_clients():
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # the campaign's tracker says it again and backfills later
        # the campaign's tracker meets the same outage and warns once; no second warning here
        log.info("MLflow tracking store %s not ready (%s); the campaign runs on and backfills it later",
                 mask_secret(uri), error_gist(exc))
    return uri


