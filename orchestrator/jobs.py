"""Campaigns as Ray jobs: submit, follow, status and stop through Ray's Job Submission API.

``h2ot campaign submit`` validates the grid here, then submits ``h2ot campaign run GRID ...`` as a Ray job
whose runtime_env uploads the working directory (without :data:`~orchestrator.cluster.UPLOAD_EXCLUDES`)
and carries the leaderboard, MLflow, storage and data settings as env vars (names printed, values never).
The job's driver runs on the cluster (``RAY_ADDRESS`` set by Ray's job supervisor), so a laptop that
disconnects does not stop the campaign; the job id is recorded on the campaign's leaderboard row.

``h2ot campaign stop`` stops the job and then ends every trial row of the campaign still ``running`` as
``stopped`` by the user (``trials.stop_reason = user``): resumable, the next run of the grid trains it
again (the driver that would have written those rows is gone).

The dashboard address is ``--address``, else ``RAY_API_SERVER_ADDRESS``, ``RAY_ADDRESS`` or
``H2OT_RAY_ADDRESS``: ``http(s)://HEAD:8265`` (a bare ``HEAD:8265`` means http), or ``auto`` on a node of the
cluster. Ray imports happen inside the functions, so the CLI's help stays fast.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from h2ot_core import environment
from h2ot_core.contracts import StopReason
from h2ot_core.environment import DASHBOARD_SETTINGS, DB_URL, RAY_ADDRESS, RAY_API_SERVER_ADDRESS
from h2ot_core.errors import H2OTError
from orchestrator.cluster import UPLOAD_EXCLUDES, ClusterError

if TYPE_CHECKING:
    from datetime import datetime

    from results.store import LeaderboardStore

#: Ray's job states that do not change any more
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
#: how long a submission waits for a freshly started head's job agent
AGENT_WAIT_S = 60.0
#: metadata key naming the campaign on every job ``campaign submit`` creates
CAMPAIGN_META = "h2ot_campaign"
START_HINT = ("start the head with `ray start --head --dashboard-host 127.0.0.1 --dashboard-port 8265` "
              "(with the dashboard extra of ray installed there), or forward its port (`ray dashboard cluster.yaml`, "
              "`kubectl port-forward svc/<cluster>-head-svc 8265`)")


class JobError(H2OTError):
    """A Ray job that does not exist, or a job command that cannot do what was asked."""


def dashboard_address(explicit: str | None) -> str:
    """The dashboard to talk to: ``explicit`` (``HEAD:8265`` means ``http://HEAD:8265``), else the first of
    :data:`~h2ot_core.environment.DASHBOARD_SETTINGS` that is set. A variable without a scheme (``RAY_ADDRESS=HEAD:6379`` on a node of
    the cluster, or ``auto``) is the cluster's own address, from which Ray looks the dashboard up."""
    source = "--address"
    address = explicit
    if not address:
        source, address = next(((s.name, v) for s in DASHBOARD_SETTINGS if (v := s.raw()) is not None),
                               (source, None))
    if not address:
        raise ClusterError("no Ray dashboard address: give --address http://HEAD:8265 (or set RAY_ADDRESS); "
                           + START_HINT)
    if address.startswith("ray://"):
        raise ClusterError(f"{source} {address!r}: jobs go to the dashboard, not through Ray Client: use "
                           f"--address http://HEAD:8265")
    if address == "auto" or "://" in address or explicit is None:
        return address
    return f"http://{address}"


@contextlib.contextmanager
def _without_address_env() -> Iterator[None]:
    # JobSubmissionClient lets RAY_ADDRESS / RAY_API_SERVER_ADDRESS override the address it is given.
    saved = {k: os.environ.pop(k) for k in (RAY_API_SERVER_ADDRESS.name, RAY_ADDRESS.name) if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def job_client(address: str | None, timeout_s: float = 10.0) -> Any:
    """A ``JobSubmissionClient`` for the dashboard at ``address``; one clear line when it does not answer."""
    url = dashboard_address(address)
    if url != "auto":
        parsed = urlparse(url if "://" in url else f"ray://{url}")
        port = parsed.port or (443 if parsed.scheme == "https" else 8265 if parsed.scheme == "http" else 6379)
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout_s):
                pass
        except OSError as exc:
            raise ClusterError(f"Ray dashboard {url}: nothing answers at {parsed.hostname}:{port} ({exc}); "
                               + START_HINT) from None
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    _quiet_ray_logs()

    try:
        with _without_address_env():  # the address decided here is the one used
            return JobSubmissionClient(url)
    except AuthenticationError:
        raise ClusterError(f"Ray dashboard {url} wants the cluster's auth token: export RAY_AUTH_MODE=token with "
                           f"the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token") from None
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"Ray dashboard {url}: {first}; {START_HINT}") from None


def _quiet_ray_logs() -> None:
    # The SDK logs every file it leaves out of the upload at INFO; the CLI prints what matters itself.
    import logging

    for name in ("ray", "ray._private.runtime_env.packaging", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.ERROR)


def job_env(db_url: str | None = None) -> dict[str, str]:
    """The job's env vars: the settings that go with a job (:func:`h2ot_core.environment.job_env`) as set
    here, ``db_url`` (``--db-url``) as ``H2OT_DB_URL``."""
    env = environment.job_env()
    if db_url:
        env[DB_URL.name] = db_url
    return env


def new_job_id(campaign: str) -> str:
    """A readable, unique submission id: ``h2ot-<campaign>-<8 hex>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in campaign)[:60]
    return f"h2ot-{safe}-{uuid.uuid4().hex[:8]}"


def submit(client: Any, entrypoint: str, *, working_dir: Path, env: dict[str, str], campaign: str) -> str:
    """Submit ``entrypoint`` with ``working_dir`` uploaded and ``env`` set; returns the job id."""
    runtime_env = {"working_dir": str(working_dir), "excludes": UPLOAD_EXCLUDES, "env_vars": env}
    job_id = new_job_id(campaign)
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=job_id,
                                     metadata={CAMPAIGN_META: campaign})
        except (RuntimeError, ValueError, OSError) as exc:
            # A head that just started answers before its job agent is up: "No available agent ...".
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1)
                continue
            raise ClusterError(f"Ray dashboard refused the job: {str(exc).strip().splitlines()[-1]}") from None


@dataclass
class JobState:
    """A job's state as the dashboard reports it."""

    job_id: str
    status: str
    exit_code: int | None
    message: str
    campaign: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def job_state(client: Any, job_id: str) -> JobState:
    """The job's status, exit code and message; :class:`JobError` when no such job exists."""
    try:
        info = client.get_job_info(job_id)
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            raise JobError(f"no Ray job {job_id!r} on this cluster (`ray job list` lists them)") from None
        raise
    status = getattr(info.status, "value", str(info.status))
    return JobState(job_id, status, info.driver_exit_code, info.message or "",
                    (info.metadata or {}).get(CAMPAIGN_META))


def exit_code(state: JobState) -> int:
    """The campaign's exit code from a finished job: the driver's own (0, 1, 2) when Ray knows it."""
    if state.exit_code is not None:
        return int(state.exit_code)
    return 0 if state.status == "SUCCEEDED" else 1


#: lines of a failed job's driver log the CLI shows
LOG_TAIL_LINES = 12


def log_tail(client: Any, job_id: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-blank lines of the job's driver log (best effort: ``[]`` when unreadable)."""
    try:
        text = client.get_job_logs(job_id)
    except Exception:  # the dashboard went away or lost the log: the state line still stands
        return []
    return [ln.rstrip() for ln in str(text).splitlines() if ln.strip()][-lines:]


def follow(client: Any, job_id: str, out: Any = None, poll_s: float = 1.0) -> JobState:
    """Print the job's log as it grows until the job ends; returns its final state."""
    import asyncio

    stream = out or sys.stdout
    seen = 0  # characters of the log written so far

    async def tail() -> None:
        nonlocal seen
        async for chunk in client.tail_job_logs(job_id):
            stream.write(chunk)
            stream.flush()
            seen += len(chunk)

    try:
        asyncio.run(tail())
    except Exception:  # the log socket broke (proxy, restart): poll the whole log, write what is new
        while not job_state(client, job_id).finished:
            text = client.get_job_logs(job_id)
            stream.write(text[seen:])
            stream.flush()
            seen = len(text)
            time.sleep(poll_s)
        stream.write(client.get_job_logs(job_id)[seen:])
        stream.flush()
    return wait_finished(client, job_id, timeout_s=60, poll_s=poll_s)


def wait_finished(client: Any, job_id: str, *, timeout_s: float, poll_s: float = 0.5) -> JobState:
    """Poll until the job is in a terminal state (or ``timeout_s`` passed); returns the last state seen."""
    deadline = time.monotonic() + timeout_s
    state = job_state(client, job_id)
    while not state.finished and time.monotonic() < deadline:
        time.sleep(poll_s)
        state = job_state(client, job_id)
    return state


def stop(client: Any, job_id: str, *, timeout_s: float = 60.0) -> JobState:
    """Ask Ray to stop the job (SIGTERM, then SIGKILL) and wait until it has ended."""
    state = job_state(client, job_id)
    if state.finished:
        return state
    client.stop_job(job_id)
    return wait_finished(client, job_id, timeout_s=timeout_s)


def end_running_trials(store: LeaderboardStore, campaign: str, since: datetime | None = None) -> list[str]:
    """Trials of ``campaign`` still ``running`` become ``stopped`` by the user (``StopReason.USER``: the next
    run of the grid trains them again), and so do those the job's driver recorded ``interrupted`` on the
    SIGTERM of a stop asked at ``since``; returns their keys.

    Only after the job has ended: nothing else writes these rows any more. Their MLflow runs are ended as
    KILLED (best effort: MLflow is the browser, the leaderboard the record).
    """
    ended = store.end_running_trials(campaign, StopReason.USER, since=since)
    run_ids = [run_id for _, run_id in ended if run_id]
    if run_ids:
        _kill_mlflow_runs(run_ids)
    return [key for key, _ in ended]


def _kill_mlflow_runs(run_ids: list[str]) -> None:
    import logging

    try:
        from mlflow.tracking import MlflowClient

        from orchestrator.tracking import tracking_uri

        client = MlflowClient(tracking_uri())
        for run_id in run_ids:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, "KILLED")
    except Exception as exc:  # a different or unreachable tracking store: the leaderboard is the record
        logging.getLogger(__name__).info("could not end the MLflow runs of stopped trials: %s", exc)


def campaign_of_job(store: LeaderboardStore, job_id: str) -> str | None:
    """The campaign whose recorded Ray job id is ``job_id``."""
    return next((c["name"] for c in store.campaigns() if c.get("ray_job_id") == job_id), None)
