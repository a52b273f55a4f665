"""Schema migrations: a leaderboard written by the pre-Alembic code is upgraded in place, row for row.

The fixture ``fixtures/leaderboard_v1.sqlite`` was written by commit a09de28 (see
``fixtures/make_leaderboard_v1.py``). Expected values are read from that file with ``sqlite3`` before
each upgrade, then transformed by the documented vocabulary changes, never hard-coded.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, func, select, text
from testkit import TABLES, USAGE_ADDED, Snapshot, fresh_pg_database, snapshot_engine, snapshot_file
from typer.testing import CliRunner

from orchestrator.cli import app
from results import migrations
from results.db import database_revision, make_engine, upgrade_database
from results.errors import ResultsError
from results.export import export_trials
from results.queries import leaderboard
from results.schema import Base, Trial
from results.store import LeaderboardStore
from results.table_spec import load_spec
from results.tables import build_table

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard_v1.sqlite"
HEAD = migrations.head_revision()
#: table -> primary key columns (the order rows are compared in)
runner = CliRunner()
# -- helpers -----------------------------------------------------------------------------------------------
#: columns added by 0006 (usage and budget), and the value each older row gets: none, not made up
#: columns added after 0002, and the value each older row gets (0003 cluster/devices, 0004 history,
#: 0005 stop reason, 0006 usage)
ADDED_COLUMNS = {
    "trials": {"resumed_from_epoch": 0, "precision": "fp32", "latency_batch": None, "latency_device": None,
               "latency_contended": None, "history_json": None, "stop_reason": None, **USAGE_ADDED["trials"]},
    "campaigns": {"ray_job_id": None, "storage": None, **USAGE_ADDED["campaigns"]},
}


def after_head(before: Snapshot) -> Snapshot:
    """What the revisions up to head must make of ``before``: ASHA-stopped trials ``stopped``,
    ``train_loss`` → ``loss`` (0002), the later columns at their defaults and ``model_json`` without a
    ``pipeline`` key (0003, 0004), and the stop reason read from the error text (0005)."""
    after = {table: [{**dict(r), **ADDED_COLUMNS.get(table, {})} for r in rows] for table, rows in before.items()}
    for row in after["trials"]:
        if row["status"] in ("failed", "stopped") and (row["error"] or "").startswith("stopped early"):
            row["status"], row["stop_reason"] = "stopped", "asha"
        elif row["status"] == "stopped" and (row["error"] or "").startswith("stopped by campaign stop"):
            row["stop_reason"] = "user"
        model = json.loads(row["model_json"] or "{}")
        if model.pop("pipeline", None) is not None:
            row["model_json"] = json.dumps(model, sort_keys=True, separators=(",", ":"))
    for row in after["metrics"]:
        if (row["name"], row["split"]) == ("train_loss", "train"):
            row["name"] = "loss"
    return after


def revision_of(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return conn.execute("SELECT version_num FROM h2ot_schema_version").fetchone()[0] \
            if "h2ot_schema_version" in tables else None


def sqlite_schema(path: Path) -> list[tuple[str, str, str | None]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name != 'h2ot_schema_version' "
                            "AND name != 'sqlite_autoindex_h2ot_schema_version_1'").fetchall()
    # a table rebuilt by a batch migration is stored with its name quoted: the same schema
    return sorted((kind, name, sql.replace(f'"{name}"', name) if sql else sql) for kind, name, sql in rows)


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the pre-Alembic leaderboard (the fixture itself is never opened for writing)."""
    path = tmp_path / "leaderboard_v1.sqlite"
    shutil.copyfile(FIXTURE, path)
    return path


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def pg_fresh_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database("h2ot_mig") as url:
        yield url


# -- the fixture and revision 0001 -------------------------------------------------------------------------
def test_fixture_is_a_pre_alembic_leaderboard() -> None:
    assert revision_of(FIXTURE) is None
    with closing(sqlite3.connect(FIXTURE)) as conn:
        assert conn.execute("SELECT key, value FROM schema_info").fetchall() == [("schema_version", "1")]
    rows = snapshot_file(FIXTURE)
    assert sum(r["status"] == "failed" and r["error"].startswith("stopped early") for r in rows["trials"]) == 1
    assert {r["status"] for r in rows["trials"]} == {"complete", "diverged", "failed", "running"}
    assert any(r["name"] == "train_loss" for r in rows["metrics"])


def test_revision_0001_is_the_pre_alembic_schema(tmp_path: Path) -> None:
    path = tmp_path / "at_0001.sqlite"
    engine = create_engine(url_of(path))
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), migrations.LEGACY_REVISION)
    engine.dispose()
    assert revision_of(path) == migrations.LEGACY_REVISION
    assert sqlite_schema(path) == sqlite_schema(FIXTURE)


def test_downgrade_restores_the_pre_alembic_schema(v1: Path) -> None:
    before = snapshot_file(v1)
    assert upgrade_database(url_of(v1)) == migrations.SchemaChange(migrations.LEGACY_REVISION, HEAD)
    engine = create_engine(url_of(v1))
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), migrations.LEGACY_REVISION)
    engine.dispose()
    assert sqlite_schema(v1) == sqlite_schema(FIXTURE)
    expected = {table: [dict(r) for r in rows] for table, rows in before.items()}
    for row in expected["metrics"]:  # the old words: every training loss is ``train_loss`` again
        if (row["name"], row["split"]) == ("loss", "train"):
            row["name"] = "train_loss"
    assert snapshot_file(v1) == expected


# -- upgrade on open ---------------------------------------------------------------------------------------
def test_old_leaderboard_is_upgraded_on_open_row_for_row(v1: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = snapshot_file(v1)
    with caplog.at_level(logging.WARNING, logger="results.db"):
        store = LeaderboardStore(url_of(v1))
    notices = [r.getMessage() for r in caplog.records if "schema upgraded" in r.getMessage()]
    assert notices == [f"leaderboard {url_of(v1)}: schema upgraded {migrations.LEGACY_REVISION} -> {HEAD}"]
    store.engine.dispose()
    assert revision_of(v1) == HEAD
    after = snapshot_file(v1)
    assert after == after_head(before)
    assert after != before  # the fixture does exercise both data changes
    statuses = {r["trial_key"]: r["status"] for r in after["trials"]}
    assert sorted(statuses.values()).count("stopped") == 1
    assert not any(r["name"] == "train_loss" for r in after["metrics"])
    with closing(sqlite3.connect(v1)) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'schema_info'").fetchone() == (0,)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="results.db"):
        again = LeaderboardStore(url_of(v1))  # at head: silent, nothing changed
    assert not caplog.records
    assert again.trial_status(next(iter(statuses))) == next(iter(statuses.values()))
    again.engine.dispose()
    assert snapshot_file(v1) == after


def test_upgraded_leaderboard_serves_queries_tables_and_exports(v1: Path, tmp_path: Path) -> None:
    before = snapshot_file(v1)
    engine = make_engine(url_of(v1))
    rows = leaderboard(engine, {})
    assert sorted(r["trial_key"] for r in rows) == sorted(r["trial_key"] for r in before["trials"])
    assert {r["status"] for r in rows} == {"complete", "diverged", "failed", "stopped", "running"}
    assert len(leaderboard(engine, {}, status=["stopped"])) == 1
    complete = leaderboard(engine, {}, status=["complete"], campaign="pruning")
    assert all(r["mpjpe"] is not None for r in complete)

    spec = tmp_path / "t.yaml"
    spec.write_text("rows: [backbone]\ncolumns: [pruner]\nmetric: mpjpe\naggregate: mean\n"
                    "filters: {campaign: pruning}\n", encoding="utf-8")
    table = build_table(engine, load_spec(spec))
    assert table.trials == len(leaderboard(engine, {}, campaign="pruning"))
    assert sum(c.n for c in table.cells.values()) == len(complete)
    assert any("1 stopped" in note for note in table.notes)

    exported = export_trials(engine, tmp_path / "all.parquet", "parquet", actions=True)
    assert exported.num_rows == len(before["trials"])
    assert pq.read_table(tmp_path / "all.parquet").num_rows == len(before["trials"])
    export_trials(engine, tmp_path / "all.csv", "csv")
    assert len((tmp_path / "all.csv").read_text(encoding="utf-8").splitlines()) == len(before["trials"]) + 1
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_concurrent_opens_migrate_once(backend: str, v1: Path, request: pytest.FixtureRequest) -> None:
    before = snapshot_file(v1)
    if backend == "sqlite":
        url = url_of(v1)
    else:
        url = request.getfixturevalue("pg_fresh_url")
        _copy_fixture_rows(url)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=open_and_report, args=(url, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    notices = [queue.get(timeout=5) for _ in procs]
    assert sorted(notices) == [0, 0, 0, 1]
    engine = create_engine(url)
    assert snapshot_engine(engine) == after_head(before)
    engine.dispose()


def open_and_report(url: str, queue: Any) -> None:
    """Child process: open the leaderboard and report how many upgrade notices this process logged."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("results.db").addHandler(handler)
    make_engine(url).dispose()
    queue.put(sum("schema upgraded" in r.getMessage() for r in records))


# -- new databases: created by the migrations, equal to the models ----------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_new_database_matches_the_models(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = url_of(tmp_path / "new.sqlite") if backend == "sqlite" else request.getfixturevalue("pg_fresh_url")
    engine = make_engine(url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}).get_current_revision() == HEAD
        assert compare_metadata(MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}), Base.metadata) == []
    engine.dispose()
    assert database_revision(url) == (HEAD, HEAD)


# -- the CLI -----------------------------------------------------------------------------------------------
def test_cli_db_version_and_upgrade(v1: Path) -> None:
    db = ["--db-url", url_of(v1)]
    res = runner.invoke(app, ["db", "version", *db])
    assert res.exit_code == 0, res.output
    assert res.stdout.split() == ["current", migrations.LEGACY_REVISION, "head", HEAD]
    res = runner.invoke(app, ["db", "upgrade", *db])
    assert res.exit_code == 0, res.output
    assert f"schema upgraded {migrations.LEGACY_REVISION} -> {HEAD}" in res.stdout
    assert revision_of(v1) == HEAD
    res = runner.invoke(app, ["db", "upgrade", *db])
    assert res.exit_code == 0, res.output
    assert "already at head" in res.stdout
    res = runner.invoke(app, ["db", "version"], env={"H2OT_DB_URL": url_of(v1)})
    assert res.stdout.split() == ["current", HEAD, "head", HEAD]


# -- refusals and failures ---------------------------------------------------------------------------------
def test_newer_revision_is_refused(v1: Path) -> None:
    assert upgrade_database(url_of(v1)) == migrations.SchemaChange(migrations.LEGACY_REVISION, HEAD)
    with closing(sqlite3.connect(v1)) as conn, conn:
        conn.execute("UPDATE h2ot_schema_version SET version_num = '9999_future'")
    message = rf"schema revision 9999_future, newer than this h2ot-lab knows \(head {HEAD}\); upgrade h2ot-lab"
    with pytest.raises(ResultsError, match=message):
        make_engine(url_of(v1))
    for args in (["db", "upgrade"], ["leaderboard"]):
        res = runner.invoke(app, [*args, "--db-url", url_of(v1)])
        assert res.exit_code == 2, res.output
        assert "newer than this h2ot-lab knows" in res.stderr
        assert "Traceback" not in res.output


def test_failing_migration_leaves_the_database_as_it_was(v1: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, schema = snapshot_file(v1), sqlite_schema(v1)
    script = ScriptDirectory.from_config(migrations.alembic_config())
    module = script.get_revision(HEAD).module
    real = module.upgrade

    def upgrade_then_fail() -> None:
        real()  # the data changes and the DROP TABLE happen, then the revision fails
        raise RuntimeError("boom in the last revision")

    monkeypatch.setattr(module, "upgrade", upgrade_then_fail)
    monkeypatch.setattr(command.ScriptDirectory, "from_config", lambda _cfg: script)
    with pytest.raises(RuntimeError, match="boom"):
        make_engine(url_of(v1))
    assert revision_of(v1) is None
    assert sqlite_schema(v1) == schema
    assert snapshot_file(v1) == before


def test_unversioned_and_unknown_legacy_databases_are_refused(tmp_path: Path) -> None:
    odd = tmp_path / "odd.sqlite"
    with closing(sqlite3.connect(odd)) as conn, conn:
        conn.execute("CREATE TABLE schema_info (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO schema_info VALUES ('schema_version', '0')")
    with pytest.raises(ResultsError, match="schema_version' is 0"):
        make_engine(url_of(odd))


# -- PostgreSQL --------------------------------------------------------------------------------------------
def _copy_fixture_rows(url: str) -> None:
    """Give the PostgreSQL database at ``url`` the pre-Alembic schema (0001, no h2ot_schema_version) and the
    fixture's rows, ids included."""
    engine = create_engine(url)
    source = create_engine(url_of(FIXTURE))
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), migrations.LEGACY_REVISION)
        conn.execute(text("DROP TABLE h2ot_schema_version"))  # as the pre-Alembic code left it
        old = MetaData()  # the tables as revision 0001 made them, not as the models are now
        old.reflect(conn, only=list(TABLES))
        with source.connect() as src:
            for name in TABLES:
                table = old.tables[name]
                rows = [dict(r) for r in src.execute(select(table)).mappings()]
                conn.execute(table.insert(), rows)
        for name in ("campaigns", "trials", "metrics"):
            table = old.tables[name]
            conn.execute(select(func.setval(func.pg_get_serial_sequence(name, "id"),
                                            select(func.max(table.c.id)).scalar_subquery())))
    engine.dispose()
    source.dispose()


@pytest.mark.postgres
def test_postgres_leaderboard_is_upgraded_row_for_row(pg_fresh_url: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _copy_fixture_rows(pg_fresh_url)
    before = snapshot_file(FIXTURE)
    assert database_revision(pg_fresh_url) == (migrations.LEGACY_REVISION, HEAD)
    with caplog.at_level(logging.WARNING, logger="results.db"):
        store = LeaderboardStore(pg_fresh_url)
    assert any(f"schema upgraded {migrations.LEGACY_REVISION} -> {HEAD}" in r.getMessage() for r in caplog.records)
    assert snapshot_engine(store.engine) == after_head(before)
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}).get_current_revision() == HEAD
        assert compare_metadata(MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}), Base.metadata) == []
        assert conn.execute(select(func.count()).select_from(Trial).where(Trial.status == "stopped")).scalar() == 1
    assert len(leaderboard(store.engine, {})) == len(before["trials"])
    store.engine.dispose()
