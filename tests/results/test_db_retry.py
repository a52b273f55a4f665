"""Leaderboard writes across a PostgreSQL restart: retried within ``H2OT_DB_RETRY_S``, loud after it.

The server is the test's own (``initdb`` into a temporary folder, ``pg_ctl`` on a free port), never the
machine's shared one, so it can be stopped and started at will. Writes are single transactions: an attempt
cut off by the server shutting down leaves nothing behind, and the retry writes everything once.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select, text
from testkit import free_port

from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec
from h2ot_core.environment import DB_RETRY_S
from orchestrator.console import user_errors
from results.db import DatabaseUnavailable
from results.errors import ResultsError
from results.schema import Campaign, Metric, Trial
from results.store import LeaderboardStore

pytestmark = [pytest.mark.postgres, pytest.mark.server]

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
PASSWORD = "s3cret-pw"  # trust auth ignores it: it is there to be masked


class PgServer:
    """A throw-away PostgreSQL cluster, run as the ``postgres`` OS user when the tests run as root."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="h2ot_pg_"))
        self.data, self.port = self.root / "data", free_port()
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.root, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        # a stop that returned may leave the old postmaster exiting for a moment: start only once it is gone
        deadline = time.monotonic() + 30
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        # fast: open sessions are ended with "terminating connection due to administrator command"
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = PgServer()
    server.start()
    yield server
    server.close()


def result(seed: int) -> TrialResult:
    spec = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=seed)
    return TrialResult(spec.trial_key, spec.to_dict(), "complete",
                       [MetricRecord("mpjpe", "test", 40.0 + seed), MetricRecord("p_mpjpe", "test", 30.0 + seed)],
                       Cost(100, 1.0, 1.2, 3.0), epochs_run=2,
                       history=[{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}])


def counts(store: LeaderboardStore, key: str) -> tuple[int, int]:
    """(trial rows, metric rows) of ``key``."""
    with store.engine.connect() as conn:
        trials = conn.execute(select(func.count()).select_from(Trial).where(Trial.trial_key == key)).scalar_one()
        metrics = conn.execute(select(func.count()).select_from(Metric).join(Trial, Trial.id == Metric.trial_id)
                               .where(Trial.trial_key == key)).scalar_one()
    return trials, metrics


class Restart(threading.Thread):
    """Starts the server again after ``delay_s``; :meth:`join` re-raises what went wrong in the thread."""

    def __init__(self, pg: PgServer, delay_s: float):
        super().__init__(daemon=True)
        self.pg, self.delay_s, self.error = pg, delay_s, None

    def run(self) -> None:
        time.sleep(self.delay_s)
        try:
            self.pg.start()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def restart_later(pg: PgServer, delay_s: float) -> Restart:
    thread = Restart(pg, delay_s)
    thread.start()
    return thread


def test_write_issued_while_the_server_is_down_lands_once_it_is_back(pg, monkeypatch, caplog):
    monkeypatch.setenv(DB_RETRY_S.name, "120")
    store = LeaderboardStore(pg.url)
    store.upsert_result(result(0), campaign="c")  # a pooled connection, which the restart will kill
    pg.stop()
    assert not pg.running()
    thread = restart_later(pg, 3.0)
    with caplog.at_level(logging.WARNING, logger="results.db"):
        store.upsert_result(result(1), campaign="c")
    thread.join()
    retried = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(retried) == 1 and "***" in retried[0] and PASSWORD not in retried[0]  # one line, masked
    assert counts(store, result(1).trial_key) == (1, 2)
    assert counts(store, result(0).trial_key) == (1, 2)
    with store.engine.connect() as conn:
        history = conn.execute(select(Trial.history_json).where(Trial.trial_key == result(1).trial_key)).scalar_one()
    assert '"train_loss":0.4' in history
    store.engine.dispose()


def test_transaction_cut_by_an_admin_shutdown_is_retried_whole(pg, monkeypatch):
    """The server shuts down between two statements of one write: the retry writes both, once."""
    monkeypatch.setenv(DB_RETRY_S.name, "120")
    store = LeaderboardStore(pg.url)
    attempts: list[int] = []

    restarts: list[Restart] = []

    def write(conn) -> None:
        attempts.append(1)
        conn.execute(Campaign.__table__.insert().values(name="first", created_at=func.now()))
        if len(attempts) == 1:
            pg.stop()  # terminates this open transaction ("terminating connection due to administrator command")
            restarts.append(restart_later(pg, 2.0))
        conn.execute(Campaign.__table__.insert().values(name="second", created_at=func.now()))

    store._write(write)
    restarts[0].join()
    assert len(attempts) >= 2
    with store.engine.connect() as conn:
        names = conn.execute(select(Campaign.name).order_by(Campaign.name)).scalars().all()
    assert names == ["first", "second"]  # the cut attempt left nothing: no duplicate, no half
    store.engine.dispose()


def test_write_fails_loudly_after_the_window_and_writes_nothing(pg, monkeypatch):
    monkeypatch.setenv(DB_RETRY_S.name, "2")
    store = LeaderboardStore(pg.url)
    store.ensure_campaign("c")
    pg.stop()
    with pytest.raises(DatabaseUnavailable) as caught:
        store.upsert_result(result(2), campaign="c")
    message = str(caught.value)
    assert f"postgresql+psycopg://postgres:***@127.0.0.1:{pg.port}/postgres" in message
    assert PASSWORD not in message and DB_RETRY_S.name in message and "not made" in message
    assert isinstance(caught.value, ResultsError)

    # What the user sees: one line naming the database, a non-zero exit code, no traceback.
    @user_errors
    def command() -> None:
        raise caught.value

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code != 0

    pg.start()
    assert counts(store, result(2).trial_key) == (0, 0)  # nothing half-written
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from trials")).scalar_one() == 0
    store.engine.dispose()


def test_bad_retry_window_is_refused(pg, monkeypatch):
    monkeypatch.setenv(DB_RETRY_S.name, "soon")
    store = LeaderboardStore(pg.url)
    with pytest.raises(ResultsError, match=r"H2OT_DB_RETRY_S='soon': expected a number of seconds"):
        store.ensure_campaign("c")
    store.engine.dispose()


def test_campaign_sink_stops_the_campaign_loudly_when_a_write_fails_for_good(pg, monkeypatch, tmp_path):
    """Tune swallows errors raised in on_trial_complete: the sink raises the write's error from the next
    callback whose errors do end ``Tuner.fit``, and at the end of the experiment."""
    from types import SimpleNamespace

    from orchestrator.sink import ResultsSink
    from orchestrator.trainable import RESULT_KEY

    monkeypatch.setenv(DB_RETRY_S.name, "1")
    sink = ResultsSink("c", "exp", LeaderboardStore(pg.url), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = result(3)
    trial = SimpleNamespace(config={"spec": done.spec}, trial_id="t0001", last_result={RESULT_KEY: done.to_json()},
                            error_file=None)
    sink.on_trial_start(0, [], trial)
    pg.stop()
    with pytest.raises(DatabaseUnavailable):
        sink.on_trial_complete(0, [], trial)
    other = SimpleNamespace(config={"spec": result(4).spec}, trial_id="t0002", last_result={}, error_file=None)
    with pytest.raises(DatabaseUnavailable, match=r"postgres:\*\*\*@127\.0\.0\.1"):
        sink.on_trial_start(0, [], other)  # errors here do end Tuner.fit
    with pytest.raises(DatabaseUnavailable):
        sink.on_experiment_end([])
    assert sink.outcomes == {}  # nothing reported as recorded
    pg.start()
    assert sink.store.trial_status(done.trial_key) == "running"  # the row is as the last good write left it
    sink.store.engine.dispose()
