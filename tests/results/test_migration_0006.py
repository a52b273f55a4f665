"""Revision 0006 (issue 18, usage and budget) upgrades a leaderboard written at 0005 in place, row for row.

The fixture ``fixtures/leaderboard_0005.sqlite`` was written by the code of revision 0005 (commit 15f74dd; see
``fixtures/make_leaderboard_0005.py``): complete, stopped (asha, user), failed and running trials. Their device
time was never measured, so every new column reads ``NULL`` after the upgrade, and a downgrade gives the 0005
rows back.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, create_engine, func, select
from testkit import TABLES, USAGE_ADDED, Snapshot, fresh_pg_database, snapshot_engine, snapshot_file

from h2ot_core.contracts import TrialStatus, Usage
from results import migrations
from results.queries import leaderboard
from results.store import LeaderboardStore

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard_0005.sqlite"


def with_usage_columns(before: Snapshot) -> Snapshot:
    return {table: [{**row, **USAGE_ADDED.get(table, {})} for row in rows] for table, rows in before.items()}


@pytest.fixture
def v0005(tmp_path: Path) -> Path:
    path = tmp_path / "leaderboard_0005.sqlite"
    shutil.copyfile(FIXTURE, path)
    return path


def test_0005_leaderboard_gains_null_usage_row_for_row_and_downgrades_back(v0005: Path) -> None:
    before = snapshot_file(v0005)
    assert {r["status"] for r in before["trials"]} == {"complete", "stopped", "failed", "running"}
    store = LeaderboardStore(f"sqlite:///{v0005}")
    results, _ = store.campaign_results("costs")
    assert len(results) == len(before["trials"]) and all(r.usage is None for r in results)
    assert store.campaign_row("costs")["max_device_hours"] is None
    store.engine.dispose()
    assert snapshot_file(v0005) == with_usage_columns(before)
    engine = create_engine(f"sqlite:///{v0005}")  # as `alembic downgrade` runs: no foreign-key cascades
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0005")
    engine.dispose()
    assert snapshot_file(v0005) == before


def test_upgraded_row_takes_a_measured_usage(v0005: Path) -> None:
    store = LeaderboardStore(f"sqlite:///{v0005}")
    old, _ = store.campaign_results("costs")
    failed = next(r for r in old if r.status == TrialStatus.FAILED)
    usage = Usage(30.0, 6.0, 0.01, 12.5, 512.0, "cpu_peak_rss", "Test CPU")
    failed.usage = usage
    store.upsert_result(failed, campaign="costs")
    again = {r.trial_key: r for r in store.campaign_results("costs")[0]}
    assert again[failed.trial_key].usage == usage
    rows = {r["trial_key"]: r for r in leaderboard(store.engine, {}, status=["failed"])}
    assert rows[failed.trial_key]["device_hours"] == pytest.approx(0.01)
    assert rows[failed.trial_key]["device_name"] == "Test CPU"
    store.engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database("h2ot_mig6") as url:
        yield url


@pytest.mark.postgres
def test_postgres_0005_leaderboard_is_upgraded_row_for_row(pg_url: str) -> None:
    engine = create_engine(pg_url)
    source = create_engine(f"sqlite:///{FIXTURE}")
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0005")
        old = MetaData()
        old.reflect(conn, only=list(TABLES))
        with source.connect() as src:
            for name in TABLES:
                conn.execute(old.tables[name].insert(), [dict(r) for r in src.execute(select(old.tables[name])).mappings()])
        for name in ("campaigns", "trials", "metrics"):
            table = old.tables[name]
            conn.execute(select(func.setval(func.pg_get_serial_sequence(name, "id"),
                                            select(func.max(table.c.id)).scalar_subquery())))
    engine.dispose()
    source.dispose()
    before = snapshot_file(FIXTURE)
    store = LeaderboardStore(pg_url)
    assert snapshot_engine(store.engine) == with_usage_columns(before)
    store.engine.dispose()
