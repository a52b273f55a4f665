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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h2ot_core.contracts import FINISHED_STATUSES, KEPT_ON_RERUN, TrialSpec, metric_key, parse_metric_key
from h2ot_core.errors import H2OTError
from orchestrator.grid import GridSpec
from orchestrator.provenance import REPO_ROOT, git_sha, runs_dir
from orchestrator.trainable import DATA_DIR_ENV, scheduler_key

log = logging.getLogger(__name__)

#: environment passed to every worker (local or cluster) when set on the driver
FORWARDED_ENV = (DATA_DIR_ENV, "H2OT_CACHE", "OMP_NUM_THREADS")
#: what a cluster run does not upload with the working directory
UPLOAD_EXCLUDES = [".venv", ".git", "results/runs", "**/__pycache__", "*.egg-info", ".pytest_cache",
                   ".ruff_cache", "data", "paper_tables"]


class ClusterError(H2OTError):
    """The Ray cluster named by ``--address`` cannot be reached."""


@dataclass(frozen=True)
class LaunchOptions:
    """How a campaign runs.

    Attributes:
        address: ``None`` for a local Ray instance, else ``auto``, ``host:port`` or ``ray://host:port``.
        num_cpus: CPUs of the local instance (default: all of this machine's).
        cpus_per_trial, gpus_per_trial: Tune resources of one trial (fractions allowed; GPU shares are
            logical, Ray does not cap memory).
        max_concurrent: most trials at once (``None``: as many as resources allow).
        retries: times a crashed trial is restarted (from its last checkpoint).
        asha: stop poor trials early with ASHA on the grid's metric.
        db_url: leaderboard URL (``None``: ``H2OT_DB_URL`` or the default SQLite file).
        connect_timeout_s: how long to wait for a cluster address to answer.
        storage: Tune storage (default ``results/runs/ray``; NFS or ``s3://`` for multi-node runs).
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
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
    env = os.environ.get("RAY_ADDRESS")
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


@contextlib.contextmanager
def ray_session(opts: LaunchOptions) -> Iterator[None]:
    """``ray.init`` with explicit resources (local) or an explicit, pre-checked address (cluster)."""
    import ray

    if ray.is_initialized():  # an embedding caller owns the session
        yield
        return
    common: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    if opts.address:
        check_reachable(opts.address, opts.connect_timeout_s)
        runtime_env = {"working_dir": str(REPO_ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": _worker_env()}
        try:
            ray.init(address=opts.address, runtime_env=runtime_env, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"--address {opts.address!r}: could not join the Ray cluster: {exc}. An explicit host:port "
                f"needs token auth on Ray >= 2.59: export RAY_AUTH_MODE=token (the token is read from "
                f"~/.ray/auth_token or RAY_AUTH_TOKEN), or use --address auto on the head node"
            ) from None
    else:
        ray.init(num_cpus=opts.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 runtime_env={"env_vars": _worker_env()}, **common)
    try:
        yield
    finally:
        ray.shutdown()


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

    from orchestrator.trainable import trainable

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
                     "workdir_root": str(runs_dir() / "trials")},
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
            storage_path=opts.storage or str(runs_dir() / "ray"),
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

    Kept: complete trials, and trials stopped early on purpose unless ``rerun_stopped``; ``rerun`` keeps none.
    """
    from results.store import LeaderboardStore

    kept_statuses = set() if rerun else KEPT_ON_RERUN - ({"stopped"} if rerun_stopped else set())
    done = LeaderboardStore(db_url).keys_with_status([s.trial_key for s in specs], kept_statuses) \
        if kept_statuses else set()
    return [s for s in specs if s.trial_key not in done], [s for s in specs if s.trial_key in done]


def run_campaign(grid: GridSpec, campaign: str, opts: LaunchOptions, *, rerun: bool = False,
                 rerun_stopped: bool = False) -> CampaignOutcome:
    """Train every trial of ``grid`` not yet complete in the leaderboard; returns each trial's status."""
    if opts.address:  # before anything is written: a typo in --address should leave no trace
        check_reachable(opts.address, opts.connect_timeout_s)
    _quiet_ray_env()
    from results.store import LeaderboardStore

    store = LeaderboardStore(opts.db_url)
    store.ensure_campaign(campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml,
                          version=grid.version, metric=grid.metric, mode=grid.mode, git_sha=git_sha())
    todo, done = partition(grid.expand(), db_url=opts.db_url, rerun=rerun, rerun_stopped=rerun_stopped)
    store.link(campaign, [s.trial_key for s in done])
    stopped = store.keys_with_status([s.trial_key for s in done], {"stopped"})
    outcome = CampaignOutcome(campaign, kept={s.trial_key: "stopped" if s.trial_key in stopped else "complete"
                                              for s in done})
    if not todo:
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
    from orchestrator.progress import CampaignProgress
    from orchestrator.sink import ResultsSink
    from orchestrator.tracking import init_store

    uri = init_store()
    sink = ResultsSink(campaign, experiment, db_url=opts.db_url, tracking_uri=uri, tags=tags)
    progress = CampaignProgress(len(specs), skipped=kept, metric_key=metric, mode=mode)
    with ray_session(opts):
        _fit(campaign, specs, opts, [sink, progress], metric=metric, mode=mode)
    return sink
