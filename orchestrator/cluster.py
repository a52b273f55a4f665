"""Where a campaign runs: the Ray cluster's address, the Ray session, and what each trial gets.

``--address``, else ``RAY_ADDRESS``, else ``H2OT_RAY_ADDRESS`` names a cluster to join; none (or ``local``)
starts a local Ray instance. Everything that can be refused about the cluster is checked by
:func:`preflight` before anything is written. The only place Ray is initialised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from h2ot_core.environment import ADDRESS_SETTINGS, RAY_ADDRESS, RAY_DASHBOARD, worker_env
from h2ot_core.errors import H2OTError
from orchestrator.provenance import REPO_ROOT

#: what a cluster run does not upload with the working directory (gitignore patterns: a leading / anchors a
#: name at the top, so the datasets folder ``/data`` goes and the package ``h2ot_core/data`` stays)
UPLOAD_EXCLUDES = [".venv", ".git", "/results/runs", "**/__pycache__", "*.egg-info", ".pytest_cache",
                   ".ruff_cache", ".mypy_cache", "/data", "/paper_tables"]



#: set by Ray's job supervisor in a job's driver: the job's runtime_env (working_dir included) and submission id
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class ClusterError(H2OTError):
    """The Ray cluster named by ``--address`` cannot be reached."""


def resolve_address(explicit: str | None) -> str | None:
    """The cluster to join: ``explicit`` (``--address``), else ``RAY_ADDRESS``, else ``H2OT_RAY_ADDRESS``;
    ``None`` (or ``local``) means a local Ray instance."""
    if explicit:
        return None if explicit == "local" else explicit
    value = next((v for s in ADDRESS_SETTINGS if (v := s.raw()) is not None), None)
    return None if value in (None, "local") else value


def _address_source(opts_address: str | None) -> str:
    if opts_address:
        return "--address"
    return next((s.name for s in ADDRESS_SETTINGS if s.raw() is not None), "--address")


def current_job_id() -> str | None:
    """The Ray job's submission id when this process is a Ray job's driver, else ``None``."""
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
        prepared: :func:`prepare` checked the cluster and the storage already (``storage`` is then resolved).
        ray_job_id: the Ray job this process is the driver of (set by :func:`prepare`; ``None`` outside a job).
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
    prepared: bool = False
    ray_job_id: str | None = None



def quiet_ray_env() -> None:
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
    env = RAY_ADDRESS.raw()
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


def prepare(opts: LaunchOptions) -> LaunchOptions:
    """Check where the campaign runs once, before anything is written: the cluster address
    (:func:`preflight`), then the storage (which writes and deletes a marker); and quiet Ray before it is
    imported. Returns ``opts`` with the storage resolved, the Ray job (if this is a job's driver) and
    ``prepared`` set (a second call changes nothing)."""
    if opts.prepared:
        return opts
    from orchestrator.storage import check as check_storage

    preflight(opts)
    quiet_ray_env()
    return replace(opts, storage=check_storage(opts.storage), prepared=True, ray_job_id=current_job_id())


#: what Ray's dashboard needs beyond Ray's core (the ``ray[default]`` extra)
DASHBOARD_MODULES = ("aiohttp", "aiohttp_cors", "prometheus_client", "opencensus", "grpc")


def local_dashboard() -> bool:
    """Whether a local Ray instance serves Ray's dashboard: ``ray[default]`` is installed and
    ``H2OT_RAY_DASHBOARD`` is not ``0``."""
    import importlib.util

    if RAY_DASHBOARD.value() == "0":
        return False
    return all(importlib.util.find_spec(name) is not None for name in DASHBOARD_MODULES)


@contextlib.contextmanager
def ray_session(opts: LaunchOptions) -> Iterator[tuple[LaunchOptions, str]]:
    """Join the cluster (``--address``, ``RAY_ADDRESS``, ``H2OT_RAY_ADDRESS``), or start a local instance
    (after :func:`prepare` checked the address).

    A local instance gets the CPUs and GPUs Ray detects (container limits included) unless ``--num-cpus``
    says otherwise. Joining never sizes anything (Ray refuses resources for an existing cluster). From
    outside the cluster the repository is uploaded as the runtime_env's ``working_dir``; a Ray job's driver
    already runs in the job's uploaded working_dir with its env, so it joins with nothing more.

    Yields ``opts`` with what each trial gets decided, and the plan line saying so (:func:`trial_resources`).
    """
    import ray

    if ray.is_initialized():  # an embedding caller owns the session
        yield trial_resources(opts)
        return
    common: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    address = resolve_address(opts.address)
    if address:
        if in_ray_job():
            runtime_env = None  # the job's runtime_env (working_dir, env_vars) is inherited by every worker
        else:
            runtime_env = {"working_dir": str(REPO_ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": worker_env()}
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
        dashboard = local_dashboard()
        context = ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=dashboard,
                           dashboard_host="127.0.0.1", runtime_env={"env_vars": worker_env()}, **common)
        from orchestrator.reaper import watch

        watch()  # this instance's processes end with the driver, even a SIGKILLed one
        if dashboard and context.dashboard_url:
            from orchestrator.console import err

            err.print(f"Ray dashboard: http://{context.dashboard_url} (trials, logs, CPU and memory per worker; "
                      f"{RAY_DASHBOARD.name}=0: none)", highlight=False, markup=False)
    try:
        yield trial_resources(opts)
    finally:
        ray.shutdown()


def trial_resources(opts: LaunchOptions) -> tuple[LaunchOptions, str]:
    """``opts`` with ``gpus_per_trial`` decided (``None``: 1 when the joined cluster has GPUs, else 0), and the
    plan line saying so (:func:`ray_session` yields it)."""
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


