"""Overlapping campaigns over one leaderboard: every trial trained exactly once, provenance true.

Two ``h2ot campaign run`` processes (each its own local Ray) start 0.5 s apart over the same grid under two
campaign names: the first claims the trials, the second waits for them and links their results. With shared
storage on SQLite, and with separate storage (two hosts) on PostgreSQL.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from test_campaign import pg_url  # noqa: F401 - a fixture
from test_campaign_recovery import logged_steps
from testkit import finish, grid_file, start

from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def trial_rows(url: str, keys: list[str]) -> list[dict]:
    engine = sa.create_engine(url)
    trials = sa.table("trials", sa.column("trial_key"), sa.column("status"), sa.column("epochs_run"),
                      sa.column("resumed_from_epoch"))
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(trials).where(trials.c.trial_key.in_(keys))).mappings()]
    finally:
        engine.dispose()


def campaign_members(url: str, campaign: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(
                "select t.trial_key from trials t join campaign_trials ct on ct.trial_id = t.id "
                "join campaigns c on c.id = ct.campaign_id where c.name = :c"), {"c": campaign}).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("storage", ["shared", pytest.param("separate", marks=pytest.mark.postgres)])
def test_two_campaigns_half_a_second_apart_train_each_trial_once(tmp_path, env, storage, request):
    """The second campaign waits for the first one's claims and links its results: nothing trained twice."""
    if storage == "separate":  # two hosts: one PostgreSQL leaderboard, each its own storage
        env = {**env, "H2OT_DB_URL": request.getfixturevalue("pg_url")}
    path = grid_file(tmp_path, "overlap", seeds=[0, 1], train={"epochs": 2, "max_train_windows": 64})
    keys = [s.trial_key for s in load_grid(path).expand()]
    second_storage = ["--storage", str(tmp_path / "host2")] if storage == "separate" else []
    first = start([str(path), "--name", "first", "--retries", "0"], env)
    time.sleep(0.5)
    second = start([str(path), "--name", "second", "--retries", "0", *second_storage], env)
    for proc in (first, second):
        rc, _, err = finish(proc, timeout=400)
        assert rc == 0, err[-3000:]
    rows = trial_rows(env["H2OT_DB_URL"], keys)
    assert sorted(r["trial_key"] for r in rows) == sorted(keys)  # one row each
    assert {(r["status"], r["epochs_run"], r["resumed_from_epoch"]) for r in rows} == {("complete", 2, 0)}
    for key in keys:  # one MLflow run per trial, every epoch once: trained once
        assert logged_steps(env, "overlap", key) == [1, 2]
    assert campaign_members(env["H2OT_DB_URL"], "first") == set(keys)
    assert campaign_members(env["H2OT_DB_URL"], "second") == set(keys)
