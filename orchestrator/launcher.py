"""Run a campaign: skip what the leaderboard already has, then one Ray Tune trial per remaining spec.

The only place Ray is initialised and ``TuneConfig``/``RunConfig`` are built. Resume is by content:
re-running the same command after a crash, Ctrl-C or a killed driver submits only the trials whose
``trial_key`` is not complete in the leaderboard (a new campaign sharing trials reuses them too), so
``Tuner.restore`` is never needed.

Exit status policy (``CampaignOutcome.exit_code``): 0 when every trial ended complete or diverged (or was
stopped early by ASHA on purpose), 1 when any trial failed for good or did not finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from h2ot_core.contracts import FINISHED_STATUSES, KEPT_ON_RERUN, TrialSpec, metric_key, parse_metric_key
from h2ot_core.device import ALLOW_SLOW_BF16_ENV, cpu_bf16_refusal
from h2ot_core.errors import ConfigError, H2OTError
from orchestrator.grid import GridSpec
from orchestrator.provenance import REPO_ROOT, git_sha
from orchestrator.trainable import DATA_DIR_ENV, scheduler_key

log = logging.getLogger(__name__)

#: environment passed to every worker (local or cluster) when set on the driver
FORWARDED_ENV = (DATA_DIR_ENV, "H2OT_CACHE", "OMP_NUM_THREADS", ALLOW_SLOW_BF16_ENV)
#: what a cluster run does not upload with the working directory
UPLOAD_EXCLUDES = [".venv", ".git", "results/runs", "**/__pycache__", "*.egg-info", ".pytest_cache",
                   ".ruff_cache", "data", "paper_tables"]


#: where a cluster address comes from when ``--address`` is not given, first set wins: Ray's own variable (the
#: job supervisor sets it for every Ray job's driver), then ours, an alias kept for existing set-ups
ADDRESS_ENV = ("RAY_ADDRESS", "H2OT_RAY_ADDRESS")
#: the error text of a trial ended by ``h2ot campaign stop`` (resumable: re-run by the next run of its grid),
#: unlike a trial the scheduler stopped early ("stopped early by the scheduler", kept on re-runs)
USER_STOPPED = "stopped by campaign stop"
#: set by Ray's job supervisor in a job's driver: the job's runtime_env (working_dir included) and submission id
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
#: most trials one ``Tuner.fit`` is given (``$H2OT_TUNE_CHUNK``): Tune's variant generation deep-copies the
#: whole grid for every trial, so its cost grows with the square of the grid (about 60 s before the first of
#: 2,000 trials started; ``make bench-orchestration``); a longer campaign is submitted in chunks, one
#: ``Tuner.fit`` after another in the same Ray session. Not with ASHA, whose rungs must see every trial.
TUNE_CHUNK_ENV = "H2OT_TUNE_CHUNK"
DEFAULT_TUNE_CHUNK = 500


class ClusterError(H2OTError):
    """The Ray cluster named by ``--address`` cannot be reached."""


def resolve_address(explicit: str | None) -> str | None:
    """The cluster to join: ``explicit`` (``--address``), else ``RAY_ADDRESS``, else ``H2OT_RAY_ADDRESS``;
    ``None`` (or ``local``) means a local Ray instance."""
    if explicit:
        return None if explicit == "local" else explicit
    for var in ADDRESS_ENV:
        value = os.environ.get(var, "").strip()
        if value:
            return None if value == "local" else value
    return None


def _address_source(opts_address: str | None) -> str:
    if opts_address:
        return "--address"
    return next((v for v in ADDRESS_ENV if os.environ.get(v, "").strip()), "--address")


def current_job_id() -> str | None:
    """The Ray job's submission id when this process is a Ray job's driver, else ``None``."""
    import json

    raw = os.environ.get(JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        return json.loads(raw).get("metadata", {}).get("job_submission_id") or None
    except (ValueError, AttributeError):
        return None


def in_ray_job() -> bool:
    """Whether this process is a Ray job's driver: the cluster already shipped its working_dir and env."""
    return bool(os.environ.get(JOB_CONFIG_ENV))


def check_address(address: str, source: str = "--address") -> None:
    """Refuse addresses ``campaign run`` cannot drive a campaign through, with what to use instead."""
    if address.startswith("ray://"):
        raise ClusterError(
            f"{source} {address!r}: Ray Client addresses are not supported: under Ray Client Tune's bookkeeping, "
            f"the leaderboard sink and the progress display would all run on the head, not here; submit the "
            f"campaign as a Ray job instead: h2ot campaign submit GRID --address http://HEAD:8265")
    if address.startswith(("http://", "https://")):
        raise ClusterError(
            f"{source} {address!r} is a dashboard (Job Submission) address: `h2ot campaign submit GRID --address "
            f"{address}` runs the campaign there as a Ray job; `campaign run` joins a cluster by its own address "
            f"(auto, or HEAD:6379)")


@dataclass(frozen=True)
class LaunchOptions:
    """How a campaign runs.

    Attributes:
        address: the cluster to join, ``auto`` or ``host:port``; ``None``: ``RAY_ADDRESS`` or ``H2OT_RAY_ADDRESS``
            when set (a Ray job's driver always has ``RAY_ADDRESS``), else a local Ray instance.
        num_cpus: CPUs of a local instance (default: what Ray detects, container limits included); refused
            with a cluster, whose CPUs ``ray start`` sets.
        cpus_per_trial, gpus_per_trial: Tune resources of one trial (fractions allowed; GPU shares are
            logical, Ray does not cap memory). ``gpus_per_trial=None``: 1 when the cluster has GPUs, else 0.
        max_concurrent: most trials at once (``None``: as many as resources allow).
        retries: times a crashed trial is restarted (from its last checkpoint).
        asha: stop poor trials early with ASHA on the grid's metric.
        db_url: leaderboard URL (``None``: ``H2OT_DB_URL`` or the default SQLite file).
        connect_timeout_s: how long to wait for a cluster address to answer.
        storage: campaign storage URI (:mod:`orchestrator.storage`): Ray's experiment folders under
            ``<storage>/ray``, trial checkpoints and models under ``<storage>/trials/<trial_key>``; a path, or
            ``s3://bucket/prefix`` / ``gs://...`` for multi-node runs (``None``: ``H2OT_STORAGE`` or the runs folder).
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    retries: int = 2
    asha: bool = False
    db_url: str | None = None
    connect_timeout_s: float = 30.0
    storage: str | None = None


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

    @property
    def unfinished(self) -> list[str]:
        return [k for k, s in self.statuses.items() if s not in FINISHED_STATUSES]

    @property
    def exit_code(self) -> int:
        return 1 if self.unfinished else 0


def _quiet_ray_env() -> None:
    # Must be set before ray.tune is imported: Tune's new output engine prints to stdout even at verbose=0,
    # and the auto CSV/JSON/TensorBoard loggers cost ~170 MB of driver memory on long campaigns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _split_host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", str(default_port))
    if not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected host:port, ray://host:port or auto")
    return host or "127.0.0.1", int(port)


def _auto_address() -> str:
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "auto":
        return env
    current = Path("/tmp/ray/ray_current_cluster")
    if not current.is_file():
        raise ClusterError("--address auto: no Ray cluster is running on this machine "
                           "(no /tmp/ray/ray_current_cluster); start one with `ray start --head` "
                           "or leave out --address to run locally")
    return current.read_text().strip()


def check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast with a clear message when a cluster address does not answer (Ray itself retries for minutes)."""
    target = _auto_address() if address == "auto" else address
    is_client = target.startswith("ray://")
    host, port = _split_host_port(target.removeprefix("ray://"), 10001 if is_client else 6379)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        stale = " (a stale /tmp/ray/ray_current_cluster?)" if address == "auto" else ""
        raise ClusterError(f"--address {address!r}: nothing answers at {host}:{port}{stale}: {exc}. Start "
                           f"the head with `ray start --head --port {port}`, or run locally without "
                           f"--address") from None


def _worker_env() -> dict[str, str]:
    return {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}


def preflight(opts: LaunchOptions) -> None:
    """Everything about where the campaign runs that can be refused before anything is written."""
    address = resolve_address(opts.address)
    if address is None:
        return
    source = _address_source(opts.address)
    check_address(address, source)
    if opts.num_cpus is not None:
        raise ClusterError(f"--num-cpus sizes a local Ray instance; the cluster at {source} {address!r} has the "
                           f"CPUs its nodes were started with (`ray start --num-cpus`)")
    check_reachable(address, opts.connect_timeout_s)


@contextlib.contextmanager
def ray_session(opts: LaunchOptions) -> Iterator[None]:
    """Join the cluster (``--address``, ``RAY_ADDRESS``, ``H2OT_RAY_ADDRESS``), or start a local instance.

    A local instance gets the CPUs and GPUs Ray detects (container limits included) unless ``--num-cpus``
    says otherwise. Joining never sizes anything (Ray refuses resources for an existing cluster). From
    outside the cluster the repository is uploaded as the runtime_env's ``working_dir``; a Ray job's driver
    already runs in the job's uploaded working_dir with its env, so it joins with nothing more.
    """
    import ray

    if ray.is_initialized():  # an embedding caller owns the session
        yield
        return
    common: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    address = resolve_address(opts.address)
    if address:
        preflight(opts)
        if in_ray_job():
            runtime_env = None  # the job's runtime_env (working_dir, env_vars) is inherited by every worker
        else:
            runtime_env = {"working_dir": str(REPO_ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": _worker_env()}
        try:
            ray.init(address=address, runtime_env=runtime_env, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"{_address_source(opts.address)} {address!r}: could not join the Ray cluster: {exc}. An explicit "
                f"host:port needs token auth on Ray >= 2.59: export RAY_AUTH_MODE=token (the token is read from "
                f"~/.ray/auth_token or RAY_AUTH_TOKEN), or use --address auto on the head node"
            ) from None
    else:
        # address="local": never Ray's own look-up of RAY_ADDRESS or /tmp/ray/ray_current_cluster
        ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": _worker_env()}, **common)
    try:
        yield
    finally:
        ray.shutdown()


def trial_resources(opts: LaunchOptions) -> tuple[LaunchOptions, str]:
    """``opts`` with ``gpus_per_trial`` decided (``None``: 1 when the joined cluster has GPUs, else 0), and the
    plan line saying so. Call inside :func:`ray_session`."""
    import ray

    gpus_total = float(ray.cluster_resources().get("GPU", 0) or 0)
    gpus = opts.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if gpus_total > 0 else 0.0
        why = (f" (the cluster has {gpus_total:g} GPU(s); --gpus-per-trial 0 trains on CPU)" if gpus
               else " (the cluster has no GPU)")
    elif gpus and not gpus_total:
        why = " (the cluster has no GPU now: trials wait until a GPU node joins)"
    else:
        why = f" (the cluster has {gpus_total:g} GPU(s))" if gpus_total else ""
    line = f"{opts.cpus_per_trial:g} CPU + {gpus:g} GPU per trial{why}"
    return replace(opts, gpus_per_trial=gpus), line


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
    return TrialSpec.from_dict(trial.config["spec"]).trial_key


def _trial_dirname(trial: Any) -> str:
    # The key names the folder; the Tune id keeps a re-submitted trial from writing over an old attempt.
    return f"{_trial_name(trial)}_{trial.trial_id}"


def grid_metric_key(grid: GridSpec) -> str:
    """The flat report key of the grid's metric on the test split (``mpjpe`` -> ``test_mpjpe``)."""
    return grid.metric if parse_metric_key(grid.metric) else metric_key("test", grid.metric)


def _fit(campaign: str, specs: list[TrialSpec], opts: LaunchOptions, callbacks: list[Any], *,
         metric: str, mode: str) -> None:
    """One Tune run of ``specs``; ``metric`` (a flat key) and ``mode`` are what ASHA watches."""
    from ray import tune

    from orchestrator import storage
    from orchestrator.trainable import trainable

    campaign_storage = storage.resolve(opts.storage)
    tune_path, tune_fs = storage.tune_storage(campaign_storage)
    scheduler = None
    if opts.asha:
        from ray.tune.schedulers import ASHAScheduler

        from h2ot_core.engine.recipes import resolve_settings

        max_epochs = max(resolve_settings(s.backbone, s.train).epochs for s in specs)
        # The last epoch's report deliberately lacks the scheduler's metric (see below).
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
        # Rungs at epochs 1, 4, 16, ... below the longest trial; a trial's last epoch is never judged (see
        # trainable.tune_reporter), so every trial that is not stopped records its full result.
        scheduler = ASHAScheduler(metric=scheduler_key(metric), mode=mode, time_attr="epoch",
                                  max_t=max(max_epochs, 2), grace_period=1, stop_last_trials=False)
    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"spec": tune.grid_search([s.to_dict() for s in specs]),
                     "storage": campaign_storage, "storage_env": storage.public_env()},
        tune_config=tune.TuneConfig(
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
            verbose=0,
        ),
    )
    # Belt and braces for clean stdout: anything Tune still prints goes to stderr. Tune's own error logs
    # (a traceback per failed attempt) are silenced: the sink records each error and the CLI summarises.
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
    finally:
        tune_log.setLevel(level)


def partition(specs: list[TrialSpec], *, db_url: str | None = None, rerun: bool = False,
              rerun_stopped: bool = False) -> tuple[list[TrialSpec], list[TrialSpec]]:
    """``(to_run, kept)`` by the leaderboard's record of each ``trial_key`` (read only).

    Kept: complete trials, and trials the scheduler (ASHA) stopped early on purpose unless ``rerun_stopped``;
    ``rerun`` keeps none. Trials a user stopped (``h2ot campaign stop``: error :data:`USER_STOPPED`) were cut
    short, not judged, so they are always trained again.
    """
    from results.store import LeaderboardStore

    kept_statuses = set() if rerun else KEPT_ON_RERUN - ({"stopped"} if rerun_stopped else set())
    store = LeaderboardStore(db_url)
    keys = [s.trial_key for s in specs]
    done = store.keys_with_status(keys, kept_statuses) if kept_statuses else set()
    if "stopped" in kept_statuses:
        done -= user_stopped_keys(store, keys)
    return [s for s in specs if s.trial_key not in done], [s for s in specs if s.trial_key in done]


def user_stopped_keys(store: Any, trial_keys: list[str]) -> set[str]:
    """The subset of ``trial_keys`` whose rows are ``stopped`` by ``h2ot campaign stop`` (not by ASHA)."""
    from sqlalchemy import select

    from results.schema import Trial

    found: set[str] = set()
    with store.engine.connect() as conn:
        for i in range(0, len(trial_keys), 500):
            found.update(conn.execute(select(Trial.trial_key).where(
                Trial.trial_key.in_(trial_keys[i:i + 500]), Trial.status == "stopped",
                Trial.error.like(f"{USER_STOPPED}%"))).scalars())
    return found


def run_campaign(grid: GridSpec, campaign: str, opts: LaunchOptions, *, rerun: bool = False,
                 rerun_stopped: bool = False) -> CampaignOutcome:
    """Train every trial of ``grid`` not yet complete in the leaderboard; returns each trial's status."""
    preflight(opts)  # before anything is written: a typo in --address should leave no trace
    _quiet_ray_env()
    from results.store import LeaderboardStore

    store = LeaderboardStore(opts.db_url)
    store.ensure_campaign(campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml,
                          version=grid.version, metric=grid.metric, mode=grid.mode, git_sha=git_sha(),
                          ray_job_id=current_job_id(), storage=opts.storage)
    todo, done = partition(grid.expand(), db_url=opts.db_url, rerun=rerun, rerun_stopped=rerun_stopped)
    if rerun:  # train again from scratch, not from the epoch checkpoints of the earlier run
        from orchestrator.storage import discard_checkpoints

        discard_checkpoints(opts.storage, [s.trial_key for s in todo])
    store.link(campaign, [s.trial_key for s in done])
    stopped = store.keys_with_status([s.trial_key for s in done], {"stopped"})
    outcome = CampaignOutcome(campaign, kept={s.trial_key: "stopped" if s.trial_key in stopped else "complete"
                                              for s in done})
    if not todo:  # nothing to train: still backfill what a tracking outage kept from MLflow
        from orchestrator.tracking import sync_campaign

        sync_campaign(campaign, db_url=opts.db_url, store=store, warn=True)
        return outcome
    sink = train_specs(campaign, grid.name, todo, opts, metric=grid_metric_key(grid), mode=grid.mode,
                       tags={"grid": str(grid.path), "profile": grid.profile or ""}, kept=len(done))
    for spec in todo:
        key = spec.trial_key
        outcome.statuses[key] = sink.outcomes.get(key) or store.trial_status(key) or "pending"
    outcome.errors = dict(sink.errors)
    return outcome


def train_specs(campaign: str, experiment: str, specs: list[TrialSpec], opts: LaunchOptions, *, metric: str,
                mode: str, tags: dict[str, str], kept: int = 0) -> Any:
    """Train ``specs`` on Ray Tune with the leaderboard/MLflow sink and progress; returns the sink.

    Joins the Ray session the caller opened (:func:`ray_session`), or opens one for this call.
    """
    from orchestrator.console import err
    from orchestrator.progress import CampaignProgress
    from orchestrator.sink import ResultsSink
    from orchestrator.tracking import init_store

    uri = init_store()
    sink = ResultsSink(campaign, experiment, db_url=opts.db_url, tracking_uri=uri, tags=tags)
    progress = CampaignProgress(len(specs), skipped=kept, metric_key=metric, mode=mode)
    with ray_session(opts):
        opts, plan = trial_resources(opts)
        check_precisions_fit(specs, opts, tags.get("grid") or campaign)
        err.print(f"campaign {campaign}: {len(specs)} trial(s) to run, {kept} kept; {plan}", highlight=False)
        size = max(len(specs), 1) if opts.asha else tune_chunk()
        chunks = [specs[i:i + size] for i in range(0, len(specs), size)] or [specs]
        for i, chunk in enumerate(chunks):
            # the sink and the display close the campaign after the last chunk (or one cut short)
            sink.more_to_come = progress.more_to_come = i < len(chunks) - 1
            _fit(campaign, chunk, opts, [sink, progress], metric=metric, mode=mode)
            if any(s.trial_key not in sink.outcomes for s in chunk):  # interrupted: submit no more
                break
    return sink


def tune_chunk() -> int:
    """The most trials one ``Tuner.fit`` gets: ``$H2OT_TUNE_CHUNK``, else :data:`DEFAULT_TUNE_CHUNK`."""
    raw = os.environ.get(TUNE_CHUNK_ENV, "").strip()
    try:
        return max(1, int(raw)) if raw else DEFAULT_TUNE_CHUNK
    except ValueError:
        raise H2OTError(f"{TUNE_CHUNK_ENV}={raw!r}: expected a number of trials") from None
