"""Helpers every test folder shares, in one place: ports, the environment of a CLI subprocess, grid files,
campaign subprocesses, and the servers the end-to-end tests start (``mlflow server``, a moto S3 server, a
throw-away PostgreSQL database).

Importable as ``testkit`` from any test (``tests/`` is on ``sys.path`` through the root ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: the tiny model every end-to-end grid includes (trains in seconds on one core)
TINY = REPO / "search_spaces" / "_base" / "tiny_model.yaml"
SMOKE = REPO / "search_spaces" / "smoke.yaml"
MLFLOW = Path(sys.executable).parent / "mlflow"
#: the PostgreSQL server the postgres-marked tests use (trust auth, user postgres)
PG_ADMIN = os.environ.get("H2OT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# -- ports ------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 60, proc: subprocess.Popen | None = None, what: str = "server") -> None:
    """Until something listens on ``port``; fails the test after ``timeout`` s or when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen on port {port} (rc {proc.poll() if proc else None})")
        time.sleep(0.2)


# -- the CLI in a subprocess --------------------------------------------------------------------------------
def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment with a runs dir, a SQLite leaderboard, an MLflow store and a scratch folder
    under ``tmp_path`` (and no ``H2OT_STORAGE`` of the user's: the runs dir is the storage); claims last 3 s (a
    killed driver's trials are free 3 s after its last heartbeat)."""
    env = {**os.environ, "H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": f"sqlite:///{tmp_path / 'lb.sqlite'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "RAY_AIR_NEW_OUTPUT": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "H2OT_SCRATCH_DIR": str(tmp_path / "scratch"), "H2OT_CLAIM_LEASE_S": "3",
           **extra}
    env.pop("H2OT_STORAGE", None)
    return env


def grid_file(tmp_path: Path, name: str, *, grid: Mapping[str, Any] | None = None, seeds: list[int] | None = None,
              train: Mapping[str, Any] | None = None, **top: Any) -> Path:
    """``tmp_path/<name>.yaml``: a grid over the tiny model (default axes: TPS + TRI at ``1:9``)."""
    axes = dict(grid if grid is not None else {"pruner": "tps", "recoverer": "tri", "schedule": "1:9"})
    if seeds is not None:
        axes["seed"] = seeds
    doc: dict[str, Any] = {"name": name, "include": str(TINY), "grid": axes, **top}
    if train is not None:
        doc.setdefault("fixed", {})["train"] = dict(train)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def h2ot(args: list[str], env: Mapping[str, str], **kw: Any) -> subprocess.Popen:
    """``h2ot ARGS`` started in its own process group, stdout and stderr piped."""
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, env=dict(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def start(args: list[str], env: Mapping[str, str]) -> subprocess.Popen:
    """``h2ot campaign run ARGS`` started (see :func:`h2ot`)."""
    return h2ot(["campaign", "run", *args], env)


def kill(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGKILL the campaign like a lost node: its process group and every descendant, then reap them all.

    Returns what the campaign had printed (stdout, stderr).
    """
    import psutil

    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(tree, timeout=30)
    return proc.communicate()


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """``(returncode, stdout, stderr)`` once ``proc`` ends; killed and failed after ``timeout`` s."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = kill(proc)
        pytest.fail(f"campaign did not finish in {timeout} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 240, what: str = "") -> None:
    """Until ``predicate()``; fails the test if ``proc`` ends first or after ``timeout`` s (killing it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            assert proc.stderr is not None
            pytest.fail(f"campaign ended (rc {proc.returncode}) before {what}:\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    kill(proc)
    pytest.fail(f"timed out waiting for {what}")


def rows(env: Mapping[str, str], keys: list[str]) -> dict[str, list[str]]:
    """trial_key -> statuses of its leaderboard rows (a list, so duplicates would show)."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["H2OT_DB_URL"])
    trials = sa.table("trials", sa.column("trial_key"), sa.column("status"))
    out: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            query = sa.select(trials.c.trial_key, trials.c.status).where(trials.c.trial_key.in_(keys))
            for key, status in conn.execute(query):
                out.setdefault(key, []).append(status)
    except sa.exc.OperationalError:  # the campaign has not created the leaderboard yet
        return {}
    finally:
        engine.dispose()
    return out


# -- servers ------------------------------------------------------------------------------------------------
class MlflowServer:
    """``mlflow server`` on 127.0.0.1:``port`` over one SQLite store, in its own process group."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        log = (self.root / "mlflow_server.log").open("a")
        self.proc = subprocess.Popen(
            [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--default-artifact-root", str(self.root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited {self.proc.returncode}:\n"
                            f"{(self.root / 'mlflow_server.log').read_text()[-3000:]}")
            if self.answers():
                return
            time.sleep(0.5)
        self.kill()
        pytest.fail("mlflow server did not answer")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its uvicorn workers
        self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + 30
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.2)


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1; yields its endpoint URL, killed on exit."""
    port = free_port()
    log = (log_dir / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, proc=proc, what="moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the test server, dropped on exit."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    base, _, _ = admin.rpartition("/")
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


# -- what a running or finished campaign left -----------------------------------------------------------------
def manifest_epoch(checkpoint_dir: Path) -> int | None:
    """The epoch of the trial's complete checkpoint in the storage (``None``: none yet)."""
    import json

    try:
        return int(json.loads((checkpoint_dir / "MANIFEST.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def live_steps(env: Mapping[str, str], key: str) -> list[int]:
    """``train_loss`` steps a running campaign has logged for the trial (read-only SQL on MLflow's SQLite file)."""
    import sqlalchemy as sa

    path = env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    metrics = sa.table("metrics", sa.column("run_uuid"), sa.column("key"), sa.column("step"))
    tags = sa.table("tags", sa.column("run_uuid"), sa.column("key"), sa.column("value"))
    query = (sa.select(metrics.c.step).select_from(metrics.join(tags, metrics.c.run_uuid == tags.c.run_uuid))
             .where(metrics.c.key == "train_loss", tags.c.key == "h2ot.trial_key", tags.c.value == key))
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(query).scalars())
    except sa.exc.OperationalError:  # no database or no tables yet
        return []
    finally:
        engine.dispose()


def trial_rows(env: Mapping[str, str], key: str) -> list[dict[str, Any]]:
    """The leaderboard rows of ``key``: status, epochs run, resumed-from epoch, checkpoint URI."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["H2OT_DB_URL"])
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                "select status, epochs_run, resumed_from_epoch, checkpoint_uri from trials where trial_key = :k"),
                {"k": key}).mappings()]
    finally:
        engine.dispose()


# -- leaderboard files, row for row (the migration tests) --------------------------------------------------
#: table -> primary key columns (the order rows are compared in)
TABLES = {"campaigns": ("id",), "trials": ("id",), "campaign_trials": ("campaign_id", "trial_id"),
          "metrics": ("id",)}
Snapshot = dict[str, list[dict[str, Any]]]
#: columns added by 0006 (usage and budget), and the value each older row gets: none, not made up
USAGE_ADDED = {
    "trials": {"device_seconds_train": None, "device_seconds_eval": None, "device_hours": None, "clips_per_s": None,
               "peak_memory_mb": None, "peak_memory_kind": None, "device_name": None},
    "campaigns": {"max_device_hours": None, "price_per_device_hour": None},
}


def snapshot_file(path: Path) -> Snapshot:
    """Every leaderboard row of the SQLite file at ``path``, read with plain ``sqlite3``."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return {table: [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(pk)}")]
                for table, pk in TABLES.items()}


def _plain(value: Any) -> Any:
    # SQLAlchemy's SQLite storage format, so rows read from PostgreSQL compare with the fixture's text
    from datetime import datetime

    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def snapshot_engine(engine: Any) -> Snapshot:
    """Every leaderboard row through SQLAlchemy (for PostgreSQL), timestamps as SQLite stores them."""
    from sqlalchemy import select

    from results.schema import Base

    with engine.connect() as conn:
        return {name: [{k: _plain(v) for k, v in row.items()} for row in conn.execute(
                    select(Base.metadata.tables[name]).order_by(*pk)).mappings()]
                for name, pk in TABLES.items()}
