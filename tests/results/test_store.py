"""LeaderboardStore against real SQLite files and a real PostgreSQL server (one fresh database per session)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from smoke_data import SMOKE_VALUES, complete, fill_smoke, smoke_spec
from sqlalchemy import Engine, create_engine, delete, func, select, text
from writers import write_trials

from h2ot_core.contracts import MetricRecord, TrialResult
from results.db import make_engine, mask_url
from results.errors import ResultsError
from results.schema import Campaign, CampaignTrial, Metric, Trial
from results.store import LeaderboardStore

WRITERS, PER_WRITER = 8, 12


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    pg = request.getfixturevalue("pg_server_db")
    engine = make_engine(pg)
    with engine.begin() as conn:  # each test starts from empty tables
        for model in (Metric, CampaignTrial, Trial, Campaign):
            conn.execute(delete(model))
    engine.dispose()
    return pg


def count(store: LeaderboardStore, model: type) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_upsert_is_idempotent(url: str) -> None:
    store = LeaderboardStore(url)
    spec = smoke_spec("tpc", "tra", "1:9")
    result = complete(spec, 41.0, 30.5, 1.2, 6.0)
    for _ in range(3):
        store.upsert_result(result, campaign="c1", mlflow_run_id="run-1")
    assert count(store, Trial) == 1
    assert count(store, Metric) == len(result.metrics)
    assert count(store, CampaignTrial) == 1
    assert store.trial_status(spec.trial_key) == "complete"
    with store.engine.connect() as conn:
        row = conn.execute(select(Trial.__table__).where(Trial.trial_key == spec.trial_key)).one()
        assert (row.backbone, row.pruner, row.tokens, row.layer, row.stages) == ("mixste", "tpc", 9, 1, 1)
        assert (row.gflops, row.latency_ms, row.mlflow_run_id, row.torch_version) == (1.2, 6.0, "run-1", "2.13.0")


def test_complete_row_is_never_overwritten(url: str) -> None:
    store = LeaderboardStore(url)
    spec = smoke_spec("tps", "tri", "1:9")
    store.upsert_result(complete(spec, 47.0, 35.5, 1.1, 5.5), campaign="c1")
    store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "failed", error="late crash"), campaign="c2")
    store.mark_running(spec, "c3")
    store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "diverged"), campaign="c3")
    assert store.trial_status(spec.trial_key) == "complete"
    with store.engine.connect() as conn:
        row = conn.execute(select(Trial.error, Trial.gflops).where(Trial.trial_key == spec.trial_key)).one()
        value = conn.execute(select(Metric.value).where(Metric.name == "mpjpe", Metric.action == "avg")).scalar()
    assert row == (None, 1.1) and value == 47.0
    # every campaign that tried it links to the one complete row
    for campaign in ("c1", "c2", "c3"):
        assert store.campaign_status(campaign) == {"complete": 1}


def test_failed_then_complete_replaces_metrics(url: str) -> None:
    store = LeaderboardStore(url)
    spec = smoke_spec("tpc", "tri", "1:9")
    store.mark_running(spec, "c1")
    assert store.trial_status(spec.trial_key) == "running"
    store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "failed", error="OOM"), campaign="c1")
    assert store.trial_status(spec.trial_key) == "failed"
    store.upsert_result(complete(spec, 43.5, 33.0, 1.1, 5.0), campaign="c1")
    newer = TrialResult(spec.trial_key, spec.to_dict(), "complete", [MetricRecord("mpjpe", "test", 39.0)])
    store.upsert_result(newer, campaign="c1")
    with store.engine.connect() as conn:
        rows = conn.execute(select(Metric.name, Metric.value)).all()
        error = conn.execute(select(Trial.error)).scalar()
    assert rows == [("mpjpe", 39.0)] and error is None
    assert store.campaign_status("c1") == {"complete": 1}


def test_link_completed_keys_and_status(url: str) -> None:
    store = LeaderboardStore(url)
    specs = fill_smoke(store)
    keys = [s.trial_key for s in specs.values()]
    assert store.keys_with_status([*keys, "0000000000000000"]) == {
        specs[f"{p}/{r}/{s}"].trial_key for (p, r, _, s) in SMOKE_VALUES}
    assert store.campaign_status("smoke") == {"complete": len(SMOKE_VALUES), "failed": 1, "running": 1}
    store.ensure_campaign("reuse", version=2)
    store.link("reuse", keys[:3])
    store.link("reuse", keys[:3])
    assert store.campaign_status("reuse") == {"complete": 3}
    assert store.trial_status("0000000000000000") is None
    assert store.ensure_campaign("reuse") == store.ensure_campaign("reuse")
    with pytest.raises(ResultsError, match="Did you mean: smoke"):
        store.campaign_status("smok")


def test_concurrent_writers_lose_nothing(url: str) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=write_trials, args=(url, w, PER_WRITER)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    store = LeaderboardStore(url)
    assert count(store, Trial) == WRITERS * PER_WRITER
    assert count(store, Metric) == 2 * WRITERS * PER_WRITER
    assert store.campaign_status("conc") == {"complete": WRITERS * PER_WRITER}


def test_newer_schema_revision_is_refused(url: str) -> None:
    # older databases are upgraded (tests/results/test_migrations.py); a newer one is refused
    store = LeaderboardStore(url)
    with store.engine.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM h2ot_schema_version")).scalar_one()
        conn.execute(text("UPDATE h2ot_schema_version SET version_num = '9999_future'"))
    store.engine.dispose()
    with pytest.raises(ResultsError, match=r"schema revision 9999_future, newer than this h2ot-lab knows"):
        LeaderboardStore(url)
    with make_engine_raw(url).begin() as conn:  # put it back for the PostgreSQL session database
        conn.execute(text("UPDATE h2ot_schema_version SET version_num = :head"), {"head": head})


def make_engine_raw(url: str) -> Engine:
    """A plain engine that skips the version check."""
    return create_engine(url)


def test_unversioned_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with make_engine_raw(url).begin() as conn:
        conn.execute(text("CREATE TABLE trials (id INTEGER PRIMARY KEY, trial_key TEXT)"))
    with pytest.raises(ResultsError, match="written before schema versions existed"):
        make_engine(url)


def test_sqlite_pragmas_and_default_location(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    monkeypatch.setenv("H2OT_DB_URL", sqlite_url)
    assert LeaderboardStore().url == sqlite_url


def test_password_is_masked() -> None:
    assert mask_url("postgresql+psycopg://bob:s3cret@db.example/h2ot") == "postgresql+psycopg://bob:***@db.example/h2ot"
    with pytest.raises(ResultsError) as info:
        make_engine("postgresql+psycopg://bob:s3cret@127.0.0.1:1/nope")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_bad_result_spec_is_a_clear_error(sqlite_url: str) -> None:
    store = LeaderboardStore(sqlite_url)
    spec = smoke_spec("tpc", "tra", "1:9")
    with pytest.raises(ResultsError, match="disagree"):
        store.upsert_result(TrialResult("ffffffffffffffff", spec.to_dict(), "complete"))


def test_a_stop_relabels_what_its_sigterm_interrupted(url: str) -> None:
    """`campaign stop` SIGTERMs the job's driver, which records its trials stopped (interrupted) itself: the
    stop's reason (user) wins for those, while an older interruption keeps its own."""
    from datetime import timedelta

    from h2ot_core.contracts import StopReason
    from results.rows import now

    store = LeaderboardStore(url)
    old, sigtermed, running = (smoke_spec(p, "tra", "1:9") for p in ("tpc", "tps", "tpa"))
    for spec in (old, sigtermed, running):
        store.mark_running(spec, "c")
    store.upsert_result(TrialResult(old.trial_key, old.to_dict(), "stopped", stop_reason=StopReason.INTERRUPTED),
                        campaign="c")
    asked = now() + timedelta(microseconds=1)
    store.upsert_result(TrialResult(sigtermed.trial_key, sigtermed.to_dict(), "stopped",
                                    stop_reason=StopReason.INTERRUPTED), campaign="c")
    ended = store.end_running_trials("c", StopReason.USER, since=asked)
    assert sorted(k for k, _ in ended) == sorted([sigtermed.trial_key, running.trial_key])
    with store.engine.connect() as conn:
        reasons = dict(conn.execute(select(Trial.trial_key, Trial.stop_reason)).all())
    assert reasons == {old.trial_key: "interrupted", sigtermed.trial_key: "user", running.trial_key: "user"}
