"""The single writer: a Tune callback on the driver storing every trial in the leaderboard and MLflow.

Workers only report; this callback turns those reports into leaderboard rows (``mark_running`` at start,
``upsert_result`` at the end, ``failed`` with the error once Tune gives up on a trial, ``stopped`` when
the scheduler ends it early: ``stop_reason`` asha, or when the driver was interrupted: ``interrupted``,
for every trial still in flight) and MLflow runs
(per-epoch metrics, final metrics, cost, provenance and artifacts at the end).
An epoch reported with a checkpoint reaches MLflow only once Tune has registered that checkpoint: Tune saves
it in a second call to the worker, and a worker lost in between is resumed from the checkpoint before, so
it trains that epoch again. Logged only when committed, every epoch of a resumed trial appears exactly once.
Leaderboard upserts are idempotent by ``trial_key`` and never overwrite a complete row, so Tune
re-delivering a finished trial after a restore is harmless.

The leaderboard is the record and MLflow the browser: every MLflow call goes through the tracker's circuit
breaker (:mod:`orchestrator.tracking`), so a tracking outage costs one warning, not a stalled or failed
campaign. Each trial's row keeps its per-epoch history (the committed reports, also for a trial stopped or
failed without a result of its own), and at the end of the campaign MLflow is backfilled from the
leaderboard with whatever it missed, in this run or an earlier one.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS, DONE, EXPERIMENT_TAG, SHOULD_CHECKPOINT, TRIAL_ID

from h2ot_core.contracts import (
    EPOCH_EVAL_SECONDS,
    EPOCH_TRAIN_SECONDS,
    MetricRecord,
    StopReason,
    TrialResult,
    TrialSpec,
    TrialStatus,
    Usage,
    parse_metric_key,
)
from orchestrator import interrupt
from orchestrator.trainable import RESULT_KEY, SCHEDULER_PREFIX, trial_spec
from results.errors import ResultsError

if TYPE_CHECKING:
    from results.store import LeaderboardStore

log = logging.getLogger(__name__)

#: result keys Tune adds beyond AUTO_RESULT_KEYS
TUNE_EXTRA_KEYS = frozenset({DONE, TRIAL_ID, EXPERIMENT_TAG, SHOULD_CHECKPOINT})
#: the most error text kept per trial (the tail of the traceback, where the cause is)
ERROR_CHARS = 4000


def trial_error(trial: Any) -> str:
    """The error Tune recorded for a trial: the end of its traceback file, or the exception text."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace").strip()
        if text:
            tail = text[-ERROR_CHARS:]
            return tail if len(tail) == len(text) else tail.partition("\n")[2]
    return "trial errored without an error file (worker lost?)"


def stopped_result(spec: TrialSpec, last: dict[str, Any], reason: StopReason) -> TrialResult:
    """A trial that ended without a TrialResult (stopped early by the scheduler): status ``stopped`` for
    ``reason``, with the metrics of its last reported epoch."""
    metrics = []
    for key, value in last.items():
        parsed = parse_metric_key(key)
        if parsed and isinstance(value, int | float) and not isinstance(value, bool):
            split, name, action = parsed
            metrics.append(MetricRecord(name, split, float(value), action, epoch=last.get("epoch")))
    return TrialResult(spec.trial_key, spec.to_dict(), TrialStatus.STOPPED, metrics=metrics,
                       epochs_run=int(last.get("epoch", 0)), stop_reason=reason)


class ResultsSink(Callback):
    """Writes the leaderboard and MLflow from the driver.

    Args:
        campaign: campaign name (leaderboard campaign and MLflow parent run).
        experiment: MLflow experiment name (the grid's name).
        store: the campaign run's leaderboard store (one engine for the whole run on the driver).
        tracking_uri: MLflow URI (``None``: :func:`orchestrator.tracking.tracking_uri`).
        tags: extra MLflow tags for every run.
        run_id: the launch holding the trials' claims (:mod:`orchestrator.claiming`): a result is written only
            while it still holds its trial's claim.

    The MLflow client is created lazily; the live objects are dropped when Tune pickles the callback (into its
    experiment folder, for a restore this project never does).
    """

    def __init__(self, campaign: str, experiment: str, store: LeaderboardStore, *,
                 tracking_uri: str | None = None, tags: dict[str, str] | None = None, run_id: str | None = None):
        self.campaign, self.experiment = campaign, experiment
        #: the launch whose claims the trials are under; ``None``: no claims (a lone ``h2ot train``)
        self.run_id = run_id
        #: trials whose claim this launch lost (taken over after its lease expired): their results not recorded
        self.lost: set[str] = set()
        self.tracking_uri, self.tags = tracking_uri, dict(tags or {})
        self.run_ids: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        #: trial_key -> the Tune trial, for every trial started (those without an outcome are in flight)
        self.started: dict[str, Any] = {}
        #: trial_key -> (step, metrics) of the epoch whose checkpoint Tune is still saving
        self.pending: dict[str, tuple[int, dict[str, Any]]] = {}
        #: trial_key -> step -> committed report, the history of a trial that ends without a TrialResult
        self.history: dict[str, dict[int, dict[str, Any]]] = {}
        self._store: LeaderboardStore | None = store
        self._tracker: Any = None
        #: a leaderboard write that failed for good: Tune swallows errors of on_trial_complete/error, so it is
        #: raised again from the next callback whose errors do end ``Tuner.fit`` (and at the end)
        self.fatal: Exception | None = None
        #: the launcher submits a long campaign in chunks: MLflow is backfilled and closed after the last one
        self.more_to_come = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = state["_tracker"] = state["fatal"] = None
        state["started"] = {}
        return state

    def _check(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    @property
    def store(self) -> LeaderboardStore:
        if self._store is None:
            raise RuntimeError("a ResultsSink unpickled from Tune's experiment folder has no leaderboard store")
        return self._store

    @property
    def tracker(self) -> Any:
        if self._tracker is None:
            from orchestrator.tracking import CampaignTracker

            self._tracker = CampaignTracker(self.campaign, self.experiment, uri=self.tracking_uri,
                                            tags=self.tags)
        return self._tracker

    def _run_id(self, spec: TrialSpec) -> str | None:
        """The trial's MLflow run; ``None`` while the tracking server is away (asked again next time)."""
        key = spec.trial_key
        if key not in self.run_ids:
            run_id = self.tracker.start_trial(spec)
            if run_id is None:
                return None
            self.run_ids[key] = run_id
        return self.run_ids[key]

    def _log_epoch(self, spec: TrialSpec, step: int, reported: dict[str, Any]) -> None:
        self.history.setdefault(spec.trial_key, {})[step] = reported
        self.tracker.log_epoch(self._run_id(spec), reported, step)

    def in_flight_hours(self) -> float:
        """Device-hours the reported epochs of trials not written yet took (a budget counts them before the
        leaderboard has them)."""
        reports = [*(r for steps in self.history.values() for r in steps.values()), *(r for _, r in self.pending.values())]
        return sum(float(r.get(EPOCH_TRAIN_SECONDS, 0.0)) + float(r.get(EPOCH_EVAL_SECONDS, 0.0)) for r in reports) / 3600

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check()
        spec = trial_spec(trial)
        self.started[spec.trial_key] = trial
        if not self.store.mark_running(spec, self.campaign, run_id=self.run_id):
            self._lose(spec)
            return
        self._run_id(spec)

    def _lose(self, spec: TrialSpec) -> None:
        holder = self.store.holder_of(spec.trial_key)
        where = holder.describe() if holder is not None else "no one (released)"
        log.warning("trial %s: this campaign's claim expired and is now held by %s; its result is not recorded "
                    "here", spec.trial_key, where)
        self.lost.add(spec.trial_key)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._check()
        if RESULT_KEY in result:
            return
        spec = trial_spec(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        # Only what the trial reported: not Tune's bookkeeping (pid, timestamps) nor the scheduler's copies.
        reported = {k: v for k, v in result.items()
                    if k not in AUTO_RESULT_KEYS and k not in TUNE_EXTRA_KEYS and not k.startswith(SCHEDULER_PREFIX)}
        if result.get(SHOULD_CHECKPOINT):
            self.pending[spec.trial_key] = (step, reported)
        else:
            self._log_epoch(spec, step, reported)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        self._flush(trial_spec(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # The worker died before its last checkpoint was saved: the retry trains that epoch again.
        self.pending.pop(trial_spec(trial).trial_key, None)

    def _flush(self, spec: TrialSpec) -> None:
        if spec.trial_key in self.pending:
            step, reported = self.pending.pop(spec.trial_key)
            self._log_epoch(spec, step, reported)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = trial_spec(trial)
        last = trial.last_result or {}
        if RESULT_KEY in last:
            result = TrialResult.from_json(last[RESULT_KEY])
        else:
            result = stopped_result(spec, last, StopReason.ASHA)  # the scheduler ended it: its only way out
        self._write(spec, result)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = trial_spec(trial)
        result = TrialResult(spec.trial_key, spec.to_dict(), TrialStatus.FAILED, error=trial_error(trial))
        self._write(spec, result)

    def _write(self, spec: TrialSpec, result: TrialResult) -> None:
        self._check()  # the leaderboard is gone for good: no second retry window per trial
        key = spec.trial_key
        if key in self.lost:
            self.outcomes[key] = result.status
            return
        self._flush(spec)  # a trial that ends with no retry left: its last epoch did run
        seen = self.history.pop(key, {})
        if not result.history and seen:  # stopped or failed: keep the epochs it did report
            result = dataclasses.replace(result, history=[seen[step] for step in sorted(seen)])
        if result.usage is None:  # its device time is what those epochs measured (the one cut short is lost)
            result = dataclasses.replace(result, usage=Usage.from_history(result.history))
        # MLflow first, guarded (it never raises): the run id goes into the row; the row is the record.
        run_id = self.tracker.finish_trial(spec, result, run_id=self.run_ids.get(key))
        if run_id is not None:
            self.run_ids[key] = run_id
        try:
            published = self.store.upsert_result(result, campaign=self.campaign, mlflow_run_id=run_id,
                                                 run_id=self.run_id)
        except ResultsError as exc:  # DatabaseUnavailable after $H2OT_DB_RETRY_S: never silent
            self.fatal = self.fatal or exc
            raise
        self.outcomes[key] = result.status
        if not published:
            self._lose(spec)
            return
        if result.error:
            self.errors[key] = result.error.strip().splitlines()[-1]
        elif result.stop_reason:
            self.errors[key] = f"stopped: {result.stop_reason}"

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._check()
        if interrupt.received() is not None:
            self.record_interrupted()
        elif self.more_to_come and all(t.status in ("TERMINATED", "ERROR") for t in trials):
            return  # a chunk of the campaign ended, not the campaign
        tracker = self.tracker
        self.backfill(tracker)
        tracker.close(failed=TrialStatus.FAILED in self.outcomes.values())

    def record_interrupted(self) -> None:
        """Every trial started and not ended: ``stopped`` (interrupted), with the epochs it did report."""
        for key, trial in list(self.started.items()):
            if key not in self.outcomes:
                spec = TrialSpec.from_dict(trial.config["spec"])
                self._write(spec, stopped_result(spec, trial.last_result or {}, StopReason.INTERRUPTED))

    def backfill(self, tracker: Any) -> None:
        """Give MLflow every finished trial of the campaign it lacks (this run's or an earlier run's)."""
        from sqlalchemy.exc import SQLAlchemyError

        from h2ot_core.environment import mask_secret
        from orchestrator.tracking.backfill import sync

        try:
            results, _ = self.store.campaign_results(self.campaign)
            report = sync(tracker, results)
            self.store.record_run_ids(report.run_ids)
        except (ResultsError, SQLAlchemyError, OSError) as exc:  # the rows are written; only their MLflow copy waits
            log.warning("MLflow backfill of campaign %s skipped: %s; run `h2ot campaign sync %s`",
                        self.campaign, exc, self.campaign)
            return
        if report.not_synced:
            missed = len(report.missed) if report.reachable else len(tracker.partial)
            what = f"lacks {missed} trial(s)" if missed else "could not be checked for trials"
            log.warning("MLflow %s of campaign %s (the leaderboard has all of them): run `h2ot campaign sync %s` "
                        "once %s answers", what, self.campaign, self.campaign, mask_secret(tracker.uri))
        elif report.changed:
            log.warning("MLflow backfilled from the leaderboard: %s", report.summary())
