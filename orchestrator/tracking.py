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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec
from orchestrator.provenance import git_sha, package_versions, runs_dir

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient
    from sqlalchemy import Engine

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
#: MLflow's HTTP client settings for this process (values the user exported win): 2 retries 1 s and 2 s
#: apart instead of 7 over ~4 minutes, and 20 s per request instead of 120
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
PROBE_ENV_VAR = "H2OT_MLFLOW_PROBE_S"
DEFAULT_PROBE_S = 30.0
#: MLflow error codes that are about the request, not the server being away
_REQUEST_ERRORS = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS",
                             "BAD_REQUEST", "INVALID_STATE", "PERMISSION_DENIED", "UNAUTHENTICATED",
                             "CUSTOMER_UNAUTHORIZED"})


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the absolute local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir() / 'mlflow.db'}"


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (tracking URIs may carry ``user:password@``)."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable tracking URI>"


def http_defaults() -> None:
    """Short MLflow HTTP retries and timeout for this process (see :data:`HTTP_DEFAULTS`)."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def probe_interval_s() -> float:
    raw = os.environ.get(PROBE_ENV_VAR, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_PROBE_S
    except ValueError:
        return DEFAULT_PROBE_S


def _artifact_root(uri: str) -> str | None:
    # A local SQLite store would otherwise put artifacts under ./mlruns of whatever the cwd is.
    return (runs_dir() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None


def _flat_numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def _reason(exc: BaseException) -> str:
    """The gist of an error: the OS error of a failed connection, else its first line (shortened)."""
    text = str(exc).strip()
    os_error = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    if os_error:
        return os_error.group(0).strip()
    if "timed out" in text or "timeout" in text.lower():
        return "timed out"
    lines = text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _is_request_error(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) in _REQUEST_ERRORS


@contextlib.contextmanager
def _quiet_urllib3() -> Iterator[None]:
    # urllib3 logs one warning per HTTP retry: the breaker's single warning says it all.
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool.setLevel(level)


class Breaker:
    """Circuit breaker in front of the tracking server.

    Closed: calls go through. The first failure opens it (one warning); while open, calls are skipped at
    once, and at most every ``probe_s`` seconds one call is let through (for an ``http(s)`` URI only after
    the server's ``/health`` answered) to find the server back.
    """

    def __init__(self, uri: str, probe_s: float | None = None):
        self.uri = uri
        self.probe_s = probe_interval_s() if probe_s is None else probe_s
        self.down_since: float | None = None
        self.next_probe = 0.0
        self.skipped = 0
        self.failed = 0
        self.outages = 0
        self.first_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self.down_since is not None

    def probe_soon(self) -> None:
        """Let the next call probe a server found down without waiting for the interval."""
        self.next_probe = 0.0

    def allow(self) -> bool:
        """Whether a call may go through now."""
        if self.down_since is None:
            return True
        now = time.monotonic()
        if now < self.next_probe:
            self.skipped += 1
            return False
        self.next_probe = now + self.probe_s
        if not self._healthy():
            self.skipped += 1
            return False
        return True

    def _healthy(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return True  # a local store: the call itself is the probe
        import requests

        try:
            with _quiet_urllib3():
                return requests.get(self.uri.rstrip("/") + "/health", timeout=5).ok
        except requests.RequestException:
            return False

    def trip(self, what: str, exc: BaseException) -> None:
        self.failed += 1
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.next_probe = self.down_since + self.probe_s
        self.outages += 1
        self.first_error = _reason(exc)
        log.warning("MLflow tracking server %s unreachable (%s: %s); training goes on and the leaderboard "
                    "keeps every result; MLflow calls are skipped until it answers again (checked every %g s), "
                    "then backfilled (or run `h2ot campaign sync`)", mask_uri(self.uri), what,
                    self.first_error, self.probe_s)

    def reset(self) -> None:
        if self.down_since is None:
            return
        log.warning("MLflow tracking server %s answers again after %.0f s (%d call(s) skipped); backfilling "
                    "what it missed", mask_uri(self.uri), time.monotonic() - self.down_since, self.skipped)
        self.down_since = None


@dataclass
class SyncReport:
    """What a backfill did: counts per kind of thing written, and what it could not do."""

    trials: int = 0
    in_sync: int = 0
    runs_created: int = 0
    runs_updated: int = 0
    params: int = 0
    steps: int = 0
    finals: int = 0
    unfinished: int = 0
    #: trials whose record could not be written (tracking server down, or a request MLflow refused)
    missed: list[str] = field(default_factory=list)
    #: trial_key -> number of runs, where an older version of H2OT Lab left more than one
    duplicates: dict[str, int] = field(default_factory=dict)
    #: trial_key -> its MLflow run, for every trial found in sync or synced now
    run_ids: dict[str, str] = field(default_factory=dict)
    #: False when the tracking server could not be reached to compare runs at all
    reachable: bool = True
    #: the first error of an outage met during the sync
    error: str | None = None
    #: the MLflow experiment synced
    experiment: str = ""

    @property
    def not_synced(self) -> int:
        """Finished trials MLflow may still lack after this sync."""
        return len(self.missed) if self.reachable else self.trials - self.unfinished

    @property
    def changed(self) -> bool:
        return bool(self.runs_created or self.runs_updated)

    def summary(self) -> str:
        text = (f"{self.trials} trial(s): {self.in_sync} already in MLflow, {self.runs_created} run(s) created, "
                f"{self.runs_updated} updated ({self.steps} epoch step(s), {self.finals} final value(s), "
                f"{self.params} param(s) logged)")
        if self.unfinished:
            text += f"; {self.unfinished} unfinished trial(s) left for their campaign run"
        if not self.reachable:
            text = f"{self.trials} trial(s): the tracking server did not answer, nothing compared"
        elif self.missed:
            text += f"; {len(self.missed)} not synced"
        return text


@dataclass
class _Counts:
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
        http_defaults()
        from mlflow.tracking import MlflowClient

        self.uri = uri or tracking_uri()
        self.campaign = campaign
        self.experiment = experiment
        self.live = live
        self.client: MlflowClient = MlflowClient(self.uri)
        self.breaker = Breaker(self.uri, probe_s)
        sha = git_sha()
        self.tags = {CAMPAIGN_TAG: campaign, **({"git_sha": sha} if sha else {}),
                     **{f"version.{k}": v for k, v in package_versions().items()}, **(tags or {})}
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        #: trial keys whose run may lack part of their record
        self.partial: set[str] = set()
        #: run id -> epoch steps this tracker logged to it (``None``: unknown, ask MLflow)
        self._steps: dict[str, set[int] | None] = {}
        self._keys: dict[str, str] = {}
        self._ready()

    # -- guarded calls ------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
        """``("ok", value)``, ``("skipped", None)`` while the breaker is open, or ``("failed", None)``."""
        if not self.breaker.allow():
            return "skipped", None
        try:
            with _quiet_urllib3():
                value = fn(*args)
        except Exception as exc:  # MLflow is the browser: nothing it raises may stop training
            if _is_request_error(exc):
                log.warning("MLflow refused %s: %s", what, _reason(exc))
            else:
                self.breaker.trip(what, exc)
            return "failed", None
        self.breaker.reset()
        return "ok", value

    def _ready(self) -> bool:
        """The experiment and the campaign's parent run exist (created now if the server answers)."""
        if self.parent_run_id is not None:
            return True
        state, _ = self._call(f"opening campaign {self.campaign}", self._open)
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
        if not self._ready():
            self.partial.add(key)
            return None
        state, run_id = self._call(f"the run of trial {key}", self._trial_run, spec)
        if state != "ok":
            self.partial.add(key)
            return None
        return run_id

    def _find_trial(self, key: str) -> list[Run]:
        assert self.experiment_id is not None
        return list(self.client.search_runs(
            [self.experiment_id], f"tags.`{TRIAL_TAG}` = '{_quote(key)}' and tags.`{ROLE_TAG}` = 'trial'",
            max_results=10, order_by=["attributes.start_time ASC"]))

    def _create_trial_run(self, spec: TrialSpec) -> str:
        assert self.experiment_id is not None and self.parent_run_id is not None
        key = spec.trial_key
        run = self.client.create_run(
            self.experiment_id, run_name=key,
            tags={**self.tags, PARENT_TAG: self.parent_run_id, TRIAL_TAG: key, ROLE_TAG: "trial",
                  LOGGED_TAG: "partial"})
        run_id = run.info.run_id
        self._keys[run_id] = key
        self._steps[run_id] = set()
        return run_id

    def _trial_run(self, spec: TrialSpec) -> str:
        found = self._find_trial(spec.trial_key)
        if found:  # a resumed campaign, a re-run or a backfill: the trial keeps its one run
            run = found[0]
            run_id = run.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, LOGGED_TAG, "partial")
            self._keys[run_id] = spec.trial_key
            self._steps[run_id] = None
            self._log_params(run_id, spec, run.data.params)
            return run_id
        run_id = self._create_trial_run(spec)
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

        state, _ = self._call(f"epoch {step} of trial {self._keys.get(run_id, run_id)}", send)
        steps = self._steps.get(run_id)
        if state == "ok":
            if steps is not None:
                steps.add(step)
            return
        self.partial.add(self._keys.get(run_id, run_id))
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
        state, _ = self._call(f"the result of trial {key}", self._record, run_id, result, self._steps.get(run_id))
        if state == "ok":
            self.partial.discard(key)
        else:
            self.partial.add(key)
        return run_id

    def _close_parent(self, status: str) -> None:
        assert self.parent_run_id is not None
        if self.client.get_run(self.parent_run_id).info.status == "RUNNING":
            self.client.set_terminated(self.parent_run_id, status=status)

    def close(self, failed: bool = False) -> None:
        """End the campaign's parent run."""
        if self.parent_run_id is None:
            return
        self._call(f"closing campaign {self.campaign}", self.client.set_terminated, self.parent_run_id,
                   "FAILED" if failed else "FINISHED")

    # -- the record of one trial --------------------------------------------------------------------------
    def _record(self, run_id: str, result: TrialResult, known_steps: set[int] | None) -> _Counts:
        """Log what the run lacks of ``result`` (``known_steps``: the epochs it has, ``None``: ask MLflow)."""
        from mlflow.entities import Metric, RunTag

        counts = _Counts()
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
        status = "FAILED" if result.status == "failed" else "FINISHED"
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

    # -- backfill from the leaderboard ----------------------------------------------------------------------
    def _trial_runs(self) -> dict[str, list[Run]]:
        """trial_key -> its runs in the experiment (oldest first)."""
        assert self.experiment_id is not None
        found: dict[str, list[Run]] = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'",
                                           max_results=1000, order_by=["attributes.start_time ASC"],
                                           page_token=token)
            for run in page:
                key = run.data.tags.get(TRIAL_TAG)
                if key:
                    found.setdefault(key, []).append(run)
            token = page.token
            if not token:
                return found

    def sync(self, results: list[TrialResult]) -> SyncReport:
        """Backfill MLflow from the leaderboard's ``results`` (finished trials; others are counted only)."""
        report = SyncReport(trials=len(results))
        self.breaker.probe_soon()  # a sync is one request: ask a server found down once more right away
        if not self._ready():
            report.reachable = False
            return report
        state, runs = self._call("listing the experiment's runs", self._trial_runs)
        if state != "ok":
            report.reachable = False
            return report
        for result in results:
            key = result.trial_key
            if result.status in ("running", "pending"):
                report.unfinished += 1
                continue
            found = runs.get(key, [])
            if len(found) > 1:
                report.duplicates[key] = len(found)
            run = found[0] if found else None
            if run is not None and run.data.tags.get(LOGGED_TAG) == "complete" \
                    and run.data.tags.get(STATUS_TAG) == result.status:
                report.in_sync += 1
                report.run_ids[key] = run.info.run_id
                continue
            if run is None:
                state, run_id = self._call(f"the run of trial {key}", self._create_trial_run,
                                           TrialSpec.from_dict(result.spec))
                known: set[int] | None = set()
            else:
                state, run_id, known = "ok", run.info.run_id, None
                self._keys[run_id] = key
            if state == "ok":
                state, counts = self._call(f"the result of trial {key}", self._record, run_id, result, known)
            if state != "ok":
                report.missed.append(key)
                self.partial.add(key)
                continue
            self.partial.discard(key)
            if run is None:
                report.runs_created += 1
            else:
                report.runs_updated += 1
            report.params += counts.params
            report.steps += counts.steps
            report.finals += counts.finals
            report.run_ids[key] = run_id
        if not self.live and not report.unfinished and self.parent_run_id is not None:
            # the campaign's run was left RUNNING by a campaign that could not close it: every trial is done
            failed = any(r.status == "failed" for r in results)
            self._call(f"closing campaign {self.campaign}", self._close_parent, "FAILED" if failed else "FINISHED")
        if report.duplicates:
            log.warning("MLflow experiment %s has several runs for %d trial(s) (left by an older version); "
                        "the oldest one of each was synced", self.experiment, len(report.duplicates))
        return report


def final_values(result: TrialResult) -> dict[str, float]:
    """The final metrics and cost of ``result`` under their MLflow names (``final.test_mpjpe``, ``cost.gflops``)."""
    values: dict[str, float] = {}
    for m in result.metrics:
        suffix = "" if m.action == "avg" else f".{m.action}"
        values[f"final.{m.split}_{m.name}{suffix}"] = float(m.value)
    if result.cost is not None:
        values.update({"cost.params": float(result.cost.params), "cost.gflops": float(result.cost.gflops),
                       "cost.gflops_total": float(result.cost.gflops_total)})
        if result.cost.latency_ms is not None:
            values["cost.latency_ms"] = float(result.cost.latency_ms)
    return values


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def result_tags(result: TrialResult) -> dict[str, str]:
    """Provenance, status, selection and error of ``result`` as MLflow tags."""
    tags = {f"provenance.{k}": str(v)[:5000] for k, v in sorted(result.provenance.items())}
    tags.update({STATUS_TAG: result.status, "h2ot.selection": result.selection})
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
        with _quiet_urllib3():
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # the campaign's tracker says it again and backfills later
        # the campaign's tracker meets the same outage and warns once; no second warning here
        log.info("MLflow tracking store %s not ready (%s); the campaign runs on and backfills it later",
                 mask_uri(uri), _reason(exc))
    return uri


# -- the leaderboard side of the backfill ---------------------------------------------------------------------
def campaign_results(engine: Engine, campaign: str) -> tuple[list[TrialResult], str]:
    """Every trial of ``campaign`` as stored in the leaderboard (with its per-epoch history), and the MLflow
    experiment its runs belong to (the grid's name)."""
    import yaml
    from sqlalchemy import select

    from results.errors import unknown
    from results.schema import Campaign, CampaignTrial, Metric, Trial

    t = Trial.__table__.c
    with engine.connect() as conn:
        found = conn.execute(select(Campaign.id, Campaign.grid_yaml).where(Campaign.name == campaign)).first()
        if found is None:
            known = conn.execute(select(Campaign.name).order_by(Campaign.name)).scalars().all()
            raise unknown("campaign (in the leaderboard)", campaign, list(known))
        rows = conn.execute(select(Trial.__table__).join(CampaignTrial, CampaignTrial.trial_id == t.id)
                            .where(CampaignTrial.campaign_id == found.id).order_by(t.trial_key)).mappings().all()
        metrics: dict[int, list[MetricRecord]] = {}
        ids = [r["id"] for r in rows]
        for i in range(0, len(ids), 500):
            for m in conn.execute(select(Metric.trial_id, Metric.name, Metric.split, Metric.value, Metric.action,
                                         Metric.epoch).where(Metric.trial_id.in_(ids[i:i + 500]))
                                  .order_by(Metric.id)):
                metrics.setdefault(m.trial_id, []).append(MetricRecord(m.name, m.split, m.value, m.action,
                                                                       epoch=m.epoch))
    experiment = campaign
    try:
        doc = yaml.safe_load(found.grid_yaml or "") or {}
        experiment = str(doc.get("name") or campaign) if isinstance(doc, dict) else campaign
    except yaml.YAMLError:
        pass
    return [_result_of(row, metrics.get(row["id"], [])) for row in rows], experiment


def _result_of(row: Mapping[str, Any], metrics: list[MetricRecord]) -> TrialResult:
    provenance: dict[str, Any] = json.loads(row["package_versions"] or "{}")
    for key, column in (("torch", "torch_version"), ("device", "device"), ("data_fingerprint", "data_fingerprint"),
                        ("git_sha", "git_sha")):
        if row[column] is not None:
            provenance[key] = row[column]
    cost = None
    if row["params"] is not None:
        cost = Cost(params=int(row["params"]), gflops=float(row["gflops"] or 0.0),
                    gflops_total=float(row["gflops_total"] or 0.0), latency_ms=row["latency_ms"])
    return TrialResult(
        trial_key=row["trial_key"], spec=TrialSpec.from_dict(json.loads(row["spec_json"])).to_dict(),
        status=row["status"], metrics=metrics, cost=cost, epochs_run=int(row["epochs_run"] or 0),
        best_epoch=row["best_epoch"], selection=row["selection"], checkpoint_uri=row["checkpoint_uri"],
        error=row["error"], provenance=provenance, history=json.loads(row.get("history_json") or "[]"))


def record_run_ids(store: Any, run_ids: Mapping[str, str]) -> None:
    """Fill the leaderboard's empty ``mlflow_run_id`` of trials the backfill found or gave a run."""
    from sqlalchemy import and_, update

    from results.schema import Trial

    if not run_ids:
        return

    def write(conn: Any) -> None:
        for key, run_id in sorted(run_ids.items()):
            conn.execute(update(Trial).where(and_(Trial.trial_key == key, Trial.mlflow_run_id.is_(None)))
                         .values(mlflow_run_id=run_id))

    store._write(write)


def sync_campaign(campaign: str, *, db_url: str | None = None, uri: str | None = None,
                  store: Any = None, warn: bool = False) -> SyncReport:
    """Backfill MLflow with every finished trial of ``campaign`` from the leaderboard (idempotent), outside
    a campaign run (the campaign's parent run is closed once every trial is finished).

    ``warn``: say in one warning what MLflow still lacks (for callers that go on, e.g. a campaign run with
    nothing left to train); ``h2ot campaign sync`` reports it itself.
    """
    if store is None:
        from results.store import LeaderboardStore

        store = LeaderboardStore(db_url)
    results, experiment = campaign_results(store.engine, campaign)
    # One request, not a campaign: a server found down is asked again at once, not after the probe interval.
    tracker = CampaignTracker(campaign, experiment, uri=uri, probe_s=0.0, live=False)
    report = tracker.sync(results)
    report.error, report.experiment = tracker.breaker.first_error, experiment
    record_run_ids(store, report.run_ids)
    if warn and report.not_synced:
        log.warning("MLflow lacks %d trial(s) of campaign %s (the leaderboard has all of them): run "
                    "`h2ot campaign sync %s` once %s answers", report.not_synced, campaign, campaign,
                    mask_uri(tracker.uri))
    elif warn and report.changed:
        log.warning("MLflow backfilled from the leaderboard: %s", report.summary())
    return report
