"""One leaderboard per released schema revision (``fixtures/leaderboard_v1.sqlite`` = 0001, written by the
pre-Alembic code; ``fixtures/leaderboard_at_000N.sqlite`` = 0002 ... 0005, see ``make_leaderboard_revisions.py``)
is upgraded to head, and every row comes through.

What a row must look like at head is derived, not listed: columns the file lacks get the schema's server default
(``NULL`` without one), and the data steps of the revisions after the file's own are applied to its rows. A new
revision that only adds columns needs no edit here; one that rewrites data adds its step to ``DATA_STEPS``, and
its release adds a ``leaderboard_at_<revision>.sqlite`` (the parametrization picks it up).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from results import migrations
from results.db import upgrade_database
from results.migrations import SchemaChange
from results.schema import Base
from results.store import LeaderboardStore

FIXTURES = Path(__file__).parent / "fixtures"
HEAD = migrations.head_revision()
#: revision -> the leaderboard file written at it
RELEASED = {"0001": FIXTURES / "leaderboard_v1.sqlite",
            **{p.stem.removeprefix("leaderboard_at_"): p for p in sorted(FIXTURES.glob("leaderboard_at_*.sqlite"))}}
#: table -> primary key columns (the order rows are compared in)
TABLES = {"campaigns": ("id",), "trials": ("id",), "campaign_trials": ("campaign_id", "trial_id"),
          "metrics": ("id",)}
Snapshot = dict[str, list[dict[str, Any]]]


def snapshot(path: Path) -> Snapshot:
    """Every leaderboard row of the SQLite file at ``path``, read with plain ``sqlite3``."""
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return {table: [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(pk)}")]
                for table, pk in TABLES.items()}


def revision_of(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "h2ot_schema_version" not in tables:
            return None
        return conn.execute("SELECT version_num FROM h2ot_schema_version").fetchone()[0]


def _server_default(column: sa.Column[Any]) -> Any:
    """What SQLite returns for ``column`` in a row written before the column existed."""
    default = column.server_default
    if default is None:
        return None
    text = str(getattr(default, "arg", default))
    kind = column.type.python_type
    return int(text) if kind is bool else kind(text)


# -- the data steps of the revisions (what each did to existing rows, from its docstring) ------------------
def _vocabulary(rows: Snapshot) -> None:  # 0002: ASHA-stopped trials are ``stopped``; ``train_loss`` is ``loss``
    for row in rows["trials"]:
        if row["status"] == "failed" and (row["error"] or "").startswith("stopped early"):
            row["status"] = "stopped"
    for row in rows["metrics"]:
        if (row["name"], row["split"]) == ("train_loss", "train"):
            row["name"] = "loss"


def _no_pipeline_in_model(rows: Snapshot) -> None:  # 0003: ``model_json`` without a ``pipeline`` key
    for row in rows["trials"]:
        model = json.loads(row["model_json"] or "{}")
        if model.pop("pipeline", None) is not None:
            row["model_json"] = json.dumps(model, sort_keys=True, separators=(",", ":"))


def _stop_reasons(rows: Snapshot) -> None:  # 0005: the stop reason read from the error text
    for row in rows["trials"]:
        error = row["error"] or ""
        if row["status"] == "stopped" and row["stop_reason"] is None:
            row["stop_reason"] = ("user" if error.startswith("stopped by campaign stop")
                                  else "asha" if error.startswith("stopped early") else None)


DATA_STEPS: dict[str, Callable[[Snapshot], None]] = {"0002": _vocabulary, "0003": _no_pipeline_in_model,
                                                     "0005": _stop_reasons}


def at_head(before: Snapshot, revision: str) -> Snapshot:
    """What the upgrade from ``revision`` to head must make of ``before``."""
    after: Snapshot = {}
    for table, rows in before.items():
        columns = Base.metadata.tables[table].columns
        after[table] = [{c.name: row[c.name] if c.name in row else _server_default(c) for c in columns}
                        for row in rows]
    for step_revision, step in sorted(DATA_STEPS.items()):
        if step_revision > revision:
            step(after)
    return after


def test_every_released_revision_has_a_fixture():
    assert {"0001", "0002", "0003", "0004", "0005"} <= set(RELEASED) <= migrations.known_revisions()


@pytest.mark.parametrize("revision", sorted(RELEASED))
def test_a_leaderboard_at_each_released_revision_is_upgraded_to_head_row_for_row(tmp_path, revision):
    path = tmp_path / "leaderboard.sqlite"
    shutil.copyfile(RELEASED[revision], path)
    assert revision_of(path) == (None if revision == "0001" else revision)
    before = snapshot(path)
    assert before["trials"], "a fixture holds trials"
    change = upgrade_database(f"sqlite:///{path}")
    assert change == (None if revision == HEAD else SchemaChange(revision, HEAD))
    assert revision_of(path) == HEAD
    assert snapshot(path) == at_head(before, revision)
    # and the current code reads every trial of it back
    store = LeaderboardStore(f"sqlite:///{path}")
    try:
        campaigns = {r["name"] for r in before["campaigns"]}
        found = {t.trial_key for name in campaigns for t in store.campaign_results(name)[0]}
    finally:
        store.engine.dispose()
    linked = {r["trial_id"] for r in before["campaign_trials"]}
    assert found == {r["trial_key"] for r in before["trials"] if r["id"] in linked}
