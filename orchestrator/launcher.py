"""Run a campaign: skip what the leaderboard already has, then one Ray Tune trial per remaining spec.

The only place ``TuneConfig``/``RunConfig`` are built (the Ray session itself: :mod:`orchestrator.cluster`).
Resume is by content:
re-running the same command after a crash, Ctrl-C or a killed driver submits only the trials whose
``trial_key`` is not complete in the leaderboard (a new campaign sharing trials reuses them too), so
``Tuner.restore`` is never needed.

Exit status policy (``CampaignOutcome.exit_code``): 0 when every trial ended complete or diverged (or was
stopped early by ASHA on purpose), 1 when any trial failed for good or did not finish, 130 / 143 when the
driver was interrupted by SIGINT / SIGTERM (:mod:`orchestrator.interrupt`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from h2ot_core.contracts import (
    FINISHED_STATUSES,
    KEPT_ON_RERUN,
    KEPT_STOP_REASONS,
    StopReason,
    TrialResult,
    TrialSpec,
    TrialStatus,
)
from h2ot_core.device import cpu_bf16_refusal
from h2ot_core.environment import TUNE_CHUNK, storage_env
from h2ot_core.errors import ConfigError
from orchestrator import interrupt
from orchestrator.cluster import (
    LaunchOptions,
    prepare,
    ray_session,
    resolve_address,
)
from orchestrator.provenance import git_sha
from orchestrator.trainable import scheduler_key, trial_spec

if TYPE_CHECKING:
    from orchestrator.budget import DeviceBudget
    from orchestrator.grid import GridSpec
    from results.store import LeaderboardStore

log = logging.getLogger(__name__)



@dataclass
class CampaignOutcome:
    """What happened to each trial of the campaign: ``trial_key -> status`` (and the error's last line).

    ``kept`` maps the trials kept from earlier runs (complete, or stopped early) to their status; the
    others were submitted to Tune.
    """

    campaign: str
    kept: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: the signal that interrupted the driver (``None``: it was not)
    interrupted: int | None = None

    @property
    def unfinished(self) -> list[str]:
        return [k for k, s in self.statuses.items() if s not in FINISHED_STATUSES]

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return interrupt.exit_code(self.interrupted)
        return 1 if self.unfinished else 0


def check_precisions_fit(specs: list[TrialSpec], opts: LaunchOptions, source: str) -> None:
    """Refuse, before any trial starts, precisions the trials' devices cannot run, instead of letting every
    such trial fail on its worker: ``fp16`` on trials that get no GPU (fp16 autocast and its loss scaler need
    CUDA), and ``bf16`` on CPU trials of a local instance whose CPU has no bf16 kernels (a cluster's workers
    are not this machine: there each trial checks its own node)."""
    if opts.gpus_per_trial:
        return
    fp16 = [s for s in specs if s.train.get("precision") == "fp16"]
    if fp16:
        raise ConfigError(f"{source}: train.precision 'fp16' ({len(fp16)} trial(s)) needs a GPU per trial, and "
                          "these trials run on the CPU (no GPU in the cluster, or --gpus-per-trial 0); use fp32 "
                          "(or bf16 on a CPU with AVX-512/AMX), or give the trials GPUs")
    bf16 = [s for s in specs if s.train.get("precision") == "bf16"]
    if bf16 and resolve_address(opts.address) is None:
        refusal = cpu_bf16_refusal(f"{source}: train.precision 'bf16' ({len(bf16)} trial(s) on this machine's CPU)")
        if refusal is not None:
            raise refusal


def _trial_name(trial: Any) -> str:
    return trial_spec(trial).trial_key


def _trial_dirname(trial: Any) -> str:
    # The key names the folder; the Tune id keeps a re-submitted trial from writing over an old attempt.
    return f"{_trial_name(trial)}_{trial.trial_id}"


def _fit(campaign: str, specs: list[TrialSpec], opts: LaunchOptions, callbacks: list[Any], *,
         metric: str, mode: str, searcher: Any = None) -> None:
    """One Tune run of ``specs``; ``metric`` (a flat key) and ``mode`` are what ASHA watches. ``searcher`` (a
    :class:`orchestrator.budget_search.BudgetedTrials` of ``specs``) suggests the trials instead of a grid."""
    from ray import tune

    from orchestrator import storage
    from orchestrator.trainable import trainable

    campaign_storage = str(opts.storage)  # resolved by prepare()
    tune_path, tune_fs = storage.tune_storage(campaign_storage)
    scheduler = None
    if opts.asha:
        from ray.tune.schedulers import ASHAScheduler

        from h2ot_core.resolve import resolve_settings

        max_epochs = max(resolve_settings(s.backbone, s.train).epochs for s in specs)
        # The last epoch's report deliberately lacks the scheduler's metric (see below).
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
        # Rungs at epochs 1, 4, 16, ... below the longest trial; a trial's last epoch is never judged (see
        # trainable.tune_reporter), so every trial that is not stopped records its full result.
        scheduler = ASHAScheduler(metric=scheduler_key(metric), mode=mode, time_attr="epoch",
                                  max_t=max(max_epochs, 2), grace_period=1, stop_last_trials=False)
    assert opts.gpus_per_trial is not None, "cluster.trial_resources decides it before any Tune run"
    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={**({} if searcher else {"spec": tune.grid_search([s.to_dict() for s in specs])}),
                     "storage": campaign_storage, "storage_env": storage_env()},
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=-1 if searcher else 1,  # a searcher: until it says FINISHED
            max_concurrent_trials=opts.max_concurrent,
            # Reusing actors saves ~1 s per trial; GPU trials get fresh processes (clean CUDA state).
            reuse_actors=opts.gpus_per_trial == 0,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=campaign,
            storage_path=tune_path, storage_filesystem=tune_fs,
            failure_config=tune.FailureConfig(max_failures=opts.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            stop=interrupt.stopper(),
            verbose=0,
        ),
    )
    # Belt and braces for clean stdout: anything Tune still prints goes to stderr. Tune's own error logs
    # (a traceback per failed attempt) are silenced: the sink records each error and the CLI summarises.
    interrupt.arm()  # after ray.init, which installs its own SIGTERM handler
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
    except (EOFError, OSError) as exc:
        # After the run Tune reads every trial's error file back from the storage, for a ResultGrid this
        # project never uses; a storage that filled up leaves them empty. The sink has recorded each trial.
        log.warning("Tune could not read its trial records back from storage %s: %s", campaign_storage, exc)
    finally:
        tune_log.setLevel(level)


def partition(specs: list[TrialSpec], store: LeaderboardStore, *, rerun: bool = False,
              rerun_stopped: bool = False) -> tuple[list[TrialSpec], list[TrialSpec]]:
    """``(to_run, kept)`` by the leaderboard's record of each ``trial_key`` (read only).

    Kept: complete trials, and stopped trials that were judged (:data:`~h2ot_core.contracts.KEPT_STOP_REASONS`:
    the early-stopping scheduler) unless ``rerun_stopped``; ``rerun`` keeps none. Trials stopped for another
    reason (``h2ot campaign stop``, an interrupted driver) were cut short, not judged: always trained again.
    """
    done = store.keys_with_status([s.trial_key for s in specs], kept_statuses(rerun, rerun_stopped),
                                  stop_reasons=KEPT_STOP_REASONS)
    return [s for s in specs if s.trial_key not in done], [s for s in specs if s.trial_key in done]


def kept_statuses(rerun: bool, rerun_stopped: bool) -> frozenset[TrialStatus]:
    """The statuses a run keeps from the record (stopped ones only for :data:`KEPT_STOP_REASONS`)."""
    if rerun:
        return frozenset()
    return KEPT_ON_RERUN - ({TrialStatus.STOPPED} if rerun_stopped else set())


def run_campaign(grid: GridSpec, campaign: str, opts: LaunchOptions, *, store: LeaderboardStore | None = None,
                 rerun: bool = False, rerun_stopped: bool = False) -> CampaignOutcome:
    """Train every trial of ``grid`` not yet complete in the leaderboard; returns each trial's status.

    ``store``: the campaign's one leaderboard store (opened here when not given, after :func:`prepare` checked
    the cluster and the storage: a typo in --address leaves no trace).
    """
    from orchestrator.claiming import launch, train_claimed

    opts = opts if opts.prepared else prepare(opts)
    if store is None:
        from results.store import LeaderboardStore

        store = LeaderboardStore(opts.db_url)
    specs = grid.expand()
    keep = kept_statuses(rerun, rerun_stopped)
    kept = store.begin_campaign(campaign, [s.trial_key for s in specs], keep=keep,
                                keep_stop_reasons=KEPT_STOP_REASONS, **campaign_fields(grid, opts))
    todo = [s for s in specs if s.trial_key not in kept]
    outcome = CampaignOutcome(campaign, kept=dict(kept))
    if not todo:  # nothing to train: still backfill what a tracking outage kept from MLflow
        from orchestrator.tracking import sync_campaign

        sync_campaign(campaign, store=store, warn=True)
        return outcome
    from results.store import mlflow_experiment

    with launch(store, campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml) as run:
        # --rerun trains again from scratch, not from the epoch checkpoints of the earlier run
        done = train_claimed(run, mlflow_experiment(grid.name, grid.profile, campaign), todo, opts, store,
                             keep=keep, keep_stop_reasons=KEPT_STOP_REASONS, trainer=train_specs, fresh=rerun,
                             metric=grid.metric_key, mode=grid.mode,
                             tags={"grid": str(grid.path), "profile": grid.profile or ""}, kept=len(kept),
                             budget=grid.budget)
        run.outcome = "interrupted" if done.interrupted else "complete"
    outcome.kept.update(done.kept)
    outcome.interrupted = interrupt.received()
    trained = [s for s in todo if s.trial_key not in done.kept]
    # an interrupted run started nothing more: its record of an untouched trial (complete before a --rerun,
    # failed last time) is not this run's outcome
    recorded = {} if outcome.interrupted else store.trial_statuses([s.trial_key for s in trained
                                                                     if s.trial_key not in done.outcomes])
    for spec in trained:
        key = spec.trial_key
        outcome.statuses[key] = done.outcomes.get(key) or recorded.get(key) or TrialStatus.PENDING
    outcome.errors = dict(done.errors)
    return outcome


def campaign_fields(grid: GridSpec, opts: LaunchOptions) -> dict[str, Any]:
    """What the campaign's row records about this run: its grid (path, resolved YAML, version, metric, budget),
    the code (git SHA), the Ray job and the storage."""
    return dict(grid_path=str(grid.path), grid_yaml=grid.resolved_yaml, version=grid.version, metric=grid.metric,
                mode=grid.mode, git_sha=git_sha(), ray_job_id=opts.ray_job_id, storage=opts.storage,
                max_device_hours=grid.budget.max_device_hours, price_per_device_hour=grid.budget.price_per_device_hour)


def train_specs(campaign: str, experiment: str, specs: list[TrialSpec], opts: LaunchOptions,
                store: LeaderboardStore, *, metric: str, mode: str, tags: dict[str, str], kept: int = 0,
                budget: DeviceBudget | None = None, run_id: str | None = None) -> Any:
    """Train ``specs`` on Ray Tune with the leaderboard/MLflow sink and progress; returns the sink.

    Joins the Ray session the caller opened (:func:`ray_session`), or opens one for this call. With
    ``budget.max_device_hours`` no trial starts once the campaign has spent it: those are recorded ``stopped``
    (:attr:`StopReason.BUDGET`) and the sink's outcomes say so. ``run_id``: the launch whose claims the trials
    are under (:mod:`orchestrator.claiming`); a result is recorded only while that launch holds its trial.
    """
    from orchestrator.console import err
    from orchestrator.progress import CampaignProgress
    from orchestrator.sink import ResultsSink
    from orchestrator.tracking import init_store

    uri = init_store()
    sink = ResultsSink(campaign, experiment, store, tracking_uri=uri, tags=tags, run_id=run_id)
    progress = CampaignProgress(len(specs), skipped=kept, metric_key=metric, mode=mode)
    opts = opts if opts.prepared else prepare(opts)
    limit = budget.max_device_hours if budget is not None else None
    if limit is not None:
        from results.usage import campaign_usage

        if campaign_usage(store.engine, campaign).total >= limit:  # spent already: start no Ray for nothing
            record_budget_stopped(sink, specs)
            return sink
    with ray_session(opts) as (opts, plan):
        check_precisions_fit(specs, opts, tags.get("grid") or campaign)
        err.print(f"campaign {campaign}: {len(specs)} trial(s) to run, {kept} kept; {plan}", highlight=False)
        size = max(len(specs), 1) if opts.asha else tune_chunk()
        chunks = [specs[i:i + size] for i in range(0, len(specs), size)] or [specs]
        refused: list[TrialSpec] = []
        for i, chunk in enumerate(chunks):
            # the sink and the display close the campaign after the last chunk (or one cut short)
            sink.more_to_come = progress.more_to_come = i < len(chunks) - 1
            searcher = None
            if limit is not None:
                from orchestrator.budget_search import BudgetedTrials

                searcher = BudgetedTrials(chunk, lambda: campaign_usage(store.engine, campaign).total
                                          + sink.in_flight_hours(), limit)
            _fit(campaign, chunk, opts, [sink, progress], metric=metric, mode=mode, searcher=searcher)
            if searcher is not None and searcher.refused:
                refused = [*searcher.refused, *(s for later in chunks[i + 1:] for s in later)]
                break
            if interrupt.received() is not None or any(s.trial_key not in sink.outcomes for s in chunk):
                break  # interrupted: submit no more
    record_budget_stopped(sink, refused)
    return sink


def record_budget_stopped(sink: Any, specs: list[TrialSpec]) -> None:
    """Record ``specs`` (never started: the budget was spent) ``stopped`` for :attr:`StopReason.BUDGET`."""
    for spec in specs:
        sink.store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), TrialStatus.STOPPED,
                                             stop_reason=StopReason.BUDGET), campaign=sink.campaign)
        sink.outcomes[spec.trial_key] = TrialStatus.STOPPED
        sink.errors[spec.trial_key] = f"stopped: {StopReason.BUDGET}"


def tune_chunk() -> int:
    """The most trials one ``Tuner.fit`` gets (``$H2OT_TUNE_CHUNK``, default 500): Tune's variant generation
    deep-copies the whole grid for every trial, so its cost grows with the square of the grid (about 60 s
    before the first of 2,000 trials started; ``make bench-orchestration``); a longer campaign is submitted in
    chunks, one ``Tuner.fit`` after another in the same Ray session. Not with ASHA, whose rungs must see every
    trial."""
    return int(TUNE_CHUNK.number(minimum=1, what="a number of trials"))
