"""The read-only engine and the reads of ``results.browse`` (what ``h2ot serve`` adds to the CLI's queries).

Read-only means: a write through the engine fails in the database itself (SQLite ``mode=ro``, PostgreSQL
read-only sessions); a missing file is an error, not a new database; an older schema is reported, never upgraded.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from smoke_data import fill_smoke
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from testkit import fresh_pg_database

from results import browse
from results.db import open_read_only
from results.errors import ResultsError
from results.queries import leaderboard
from results.store import LeaderboardStore

V1 = Path(__file__).parent / "fixtures" / "leaderboard_v1.sqlite"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_read_only_engine_reads_and_cannot_write(smoke_store, sqlite_url, tmp_path):
    smoke_store.engine.dispose()
    engine = open_read_only(sqlite_url)
    assert leaderboard(engine, campaign="smoke") == leaderboard(smoke_store.engine, campaign="smoke")
    with pytest.raises(DBAPIError, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM metrics"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar() > 0

    missing = tmp_path / "nowhere" / "leaderboard.sqlite"
    with pytest.raises(ResultsError, match="does not exist"):
        open_read_only(f"sqlite:///{missing}")
    assert not missing.parent.exists()  # nothing created


def test_an_older_schema_is_reported_not_upgraded_by_a_view(tmp_path):
    path = tmp_path / "v1.sqlite"
    shutil.copy(V1, path)
    before = digest(path)
    with pytest.raises(ResultsError, match="h2ot db upgrade"):
        open_read_only(f"sqlite:///{path}", upgrade=False)
    assert digest(path) == before
    # a read command upgrades it in place (the one write), then reads it through the read-only engine
    engine = open_read_only(f"sqlite:///{path}")
    assert digest(path) != before
    assert leaderboard(engine)


def test_a_read_only_copy_of_a_leaderboard_reads(smoke_store, sqlite_url, tmp_path, monkeypatch):
    smoke_store.engine.dispose()
    source = Path(sqlite_url.removeprefix("sqlite:///"))
    folder = tmp_path / "copy"
    folder.mkdir()
    copy = folder / "leaderboard.sqlite"
    shutil.copy(source, copy)
    before = digest(copy)
    expected = leaderboard(open_read_only(sqlite_url), campaign="smoke")
    assert leaderboard(open_read_only(f"sqlite:///{copy}"), campaign="smoke") == expected
    assert digest(copy) == before
    # a folder this user cannot write (root can write anywhere, so the check is what is patched): SQLite opens
    # the file immutable, since a WAL database's -shm/-wal could not be made there
    (folder / "leaderboard.sqlite-wal").unlink(missing_ok=True)
    (folder / "leaderboard.sqlite-shm").unlink(missing_ok=True)
    monkeypatch.setattr("results.db._writable", lambda path: False)
    assert leaderboard(open_read_only(f"sqlite:///{copy}"), campaign="smoke") == expected
    assert sorted(p.name for p in folder.iterdir()) == ["leaderboard.sqlite"]
    assert digest(copy) == before


@pytest.mark.postgres
def test_postgres_read_only_engine_refuses_writes():
    with fresh_pg_database("h2ot_browse") as url:
        store = LeaderboardStore(url)
        fill_smoke(store)
        store.engine.dispose()
        engine = open_read_only(url.replace("postgres@", "postgres:pw-never-shown@"))
        try:
            assert len(leaderboard(engine, campaign="smoke")) == 9
            with pytest.raises(DBAPIError, match="read-only transaction"), engine.begin() as conn:
                conn.execute(text("DELETE FROM metrics"))
        finally:
            engine.dispose()


def test_campaign_activity_counts_times_and_eta(smoke_store):
    engine = smoke_store.engine
    (act,) = browse.campaign_activity(engine, ["smoke"])
    counts = smoke_store.campaign_status("smoke")
    assert act.counts == counts and act.total == sum(counts.values())
    records = browse.trial_records(engine, browse.campaign_trial_keys(engine, "smoke"))
    starts = [r["started_at"] for r in records.values()]
    assert act.started_at == min(starts)
    assert act.updated_at == max([*starts, *(r["finished_at"] for r in records.values() if r["finished_at"])])
    # the running trial counts from its start to "now"; finished ones from start to finish
    later = act.updated_at + timedelta(seconds=60)
    (then,) = browse.campaign_activity(engine, ["smoke"], now=later)
    running = next(r for r in records.values() if r["status"] == "running")
    assert then.device_s - then.finished_s == pytest.approx((later - running["started_at"]).total_seconds(), abs=0.01)
    walls = [(r["finished_at"] - r["started_at"]).total_seconds() for r in records.values() if r["finished_at"]]
    assert act.finished == len(walls) == 8 and act.finished_s == pytest.approx(sum(walls), abs=0.01)  # SQLite: ms
    # ETA: (running + pending) x mean finished trial / running trials
    act.with_pending(3)
    assert act.counts["pending"] == 3
    assert act.eta_s() == pytest.approx(4 * act.finished_s / 8 / 1)


def test_counts_axis_values_and_records(smoke_store):
    engine = smoke_store.engine
    filters = {"pruner": ["tpc", "tps"]}
    rows = leaderboard(engine, filters, campaign="smoke")
    assert browse.count_trials(engine, filters, "smoke") == len(rows) == 5
    assert browse.count_trials(engine, filters, "smoke", ["complete"]) == 5
    assert browse.status_counts(engine, campaign="smoke") == {"complete": 7, "failed": 1, "running": 1}
    values = browse.axis_values(engine, "smoke")
    assert values["pruner"] == ["none", "tpa", "tpc", "tps"] and values["seed"] == [0, 1]
    assert values["tokens"] == [None, 9]
    key = rows[0]["trial_key"]
    rec = browse.trial_records(engine, [key, "no-such-key"])
    assert list(rec) == [key]
    assert rec[key]["campaigns"] == ["smoke"] and rec[key]["spec"]["pruner"] == rows[0]["pruner"]
    assert {(m["name"], m["action"]) for m in rec[key]["metrics"]} >= {("mpjpe", "avg"), ("mpjpe", "Walking")}
    assert browse.campaign_grid(engine, "smoke") == "" and browse.campaign_grid(engine, "nope") is None


@pytest.mark.parametrize("x", ["gflops", "latency_ms"])
def test_plot_rows_give_the_front_of_campaign_front(smoke_store, x):
    from results.front import campaign_front, front_of

    engine = smoke_store.engine
    full = campaign_front(engine, "smoke", x, "mpjpe")
    lean = front_of(browse.plot_rows(engine, "smoke", x, "mpjpe", ("pruner", "seed")), x, "mpjpe")
    assert [(r["trial_key"], r["on_front"], r[x], r["mpjpe"]) for r in lean.rows] == \
        [(r["trial_key"], r["on_front"], r[x], r["mpjpe"]) for r in full.rows]
    assert (lean.hypervolume, lean.reference) == (full.hypervolume, full.reference) and 0 < len(lean.front) < 7
    with pytest.raises(ResultsError, match="Did you mean"):
        browse.plot_rows(engine, "smoke", x, "mpjep", ())
