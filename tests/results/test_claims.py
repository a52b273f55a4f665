"""Claims with leases (results.claims) on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time

import pytest
from smoke_data import complete, smoke_spec
from sqlalchemy import delete, select
from writers import claim_keys

from h2ot_core.contracts import TrialResult
from results.claims import ClaimOwner
from results.db import make_engine
from results.schema import Campaign, CampaignRun, CampaignTrial, Claim, Metric, Trial
from results.store import LeaderboardStore

RACERS = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    pg = request.getfixturevalue("pg_server_db")
    engine = make_engine(pg)
    with engine.begin() as conn:  # each test starts from empty tables
        for model in (Metric, CampaignTrial, Trial, Campaign, Claim, CampaignRun):
            conn.execute(delete(model))
    engine.dispose()
    return pg


def test_a_live_lease_is_kept_and_an_expired_one_taken_over(url: str) -> None:
    store = LeaderboardStore(url)
    first, second = ClaimOwner("c1"), ClaimOwner("c2")
    assert store.claim("k1", first, 30.0) is None
    assert store.claim("k1", first, 30.0) is None  # its own claim: renewed
    held = store.claim("k1", second, 30.0)
    assert held is not None and (held.run_id, held.campaign) == (first.run_id, "c1")
    assert "campaign c1" in held.describe()
    assert store.claim("k2", first, 0.0) is None  # a lease that is already over
    assert store.claim("k2", second, 30.0) is None
    holder = store.holder_of("k2")
    assert holder is not None and holder.run_id == second.run_id and not holder.expired()
    assert store.holder_of("nobody") is None


def test_renew_release_and_end_run(url: str) -> None:
    store = LeaderboardStore(url)
    owner = ClaimOwner("c1")
    store.begin_run(owner, grid_path="g.yaml", grid_hash="abc")
    for key in ("a", "b", "c"):
        store.claim(key, owner, 0.0)
    assert store.live_claims() == 0
    assert store.renew(owner, 30.0) == 3
    assert store.live_claims() == 3
    assert store.claim("a", ClaimOwner("c2"), 30.0) is not None  # renewed: live again
    assert store.release(owner, ["a"]) == 1
    assert store.holder_of("a") is None
    store.end_run(owner, "complete")
    assert store.holders(["a", "b", "c"]) == {}
    with store.engine.connect() as conn:
        row = conn.execute(select(CampaignRun.__table__)).one()
    assert (row.campaign, row.grid_hash, row.outcome, row.ended_at is not None) == ("c1", "abc", "complete", True)


def test_hand_out_keeps_finished_trials_and_skips_held_ones(url: str) -> None:
    store = LeaderboardStore(url)
    done, held, free = (smoke_spec(p, "tra", "1:9") for p in ("tpc", "tps", "tome"))
    store.upsert_result(complete(done, 41.0, 30.5, 1.2, 6.0), campaign="c1")
    other = ClaimOwner("c1")
    store.claim(held.trial_key, other, 30.0)
    mine = ClaimOwner("c2")
    out = store.hand_out([done.trial_key, held.trial_key, free.trial_key], mine, 30.0, keep=["complete"])
    assert out.claimed == [free.trial_key]
    assert out.kept == {done.trial_key: "complete"}
    assert out.held[held.trial_key].run_id == other.run_id
    assert done.trial_key in {r.trial_key for r in store.campaign_results("c2")[0]}  # linked to c2


def test_a_result_is_published_only_under_the_claim(url: str) -> None:
    store = LeaderboardStore(url)
    spec = smoke_spec("tpc", "tra", "1:9")
    gone, taker = ClaimOwner("c1"), ClaimOwner("c2")
    store.claim(spec.trial_key, gone, 0.0)
    assert store.mark_running(spec, "c1", run_id=gone.run_id)
    store.claim(spec.trial_key, taker, 30.0)  # the lease expired: taken over
    assert not store.mark_running(spec, "c1", run_id=gone.run_id)
    late = TrialResult(spec.trial_key, spec.to_dict(), "failed", error="worker of a driver that lost its claim")
    assert not store.upsert_result(late, campaign="c1", run_id=gone.run_id)
    assert store.trial_status(spec.trial_key) == "running"
    assert store.upsert_result(complete(spec, 41.0, 30.5, 1.2, 6.0), campaign="c2", run_id=taker.run_id)
    assert store.trial_status(spec.trial_key) == "complete"


def test_processes_racing_for_the_same_keys_each_get_a_disjoint_share(url: str) -> None:
    LeaderboardStore(url)  # the schema, before the racers open it
    keys = [f"key{i:03d}" for i in range(40)]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start = time.time() + 3.0  # spawned interpreters take a moment to import
    procs = [ctx.Process(target=claim_keys, args=(url, f"c{i}", keys, start, queue)) for i in range(RACERS)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [k for _, ks in got for k in ks]
    assert sorted(claimed) == keys  # every key claimed, by exactly one racer
    holders = LeaderboardStore(url).holders(keys)
    owner_of = {k: run for run, ks in got for k in ks}
    assert {k: h.run_id for k, h in holders.items()} == owner_of


@pytest.mark.postgres
def test_a_trial_finished_and_released_during_the_hand_out_is_kept(pg_server_db: str) -> None:
    """PostgreSQL reads each statement's committed state: a trial another driver completes and releases between
    the hand-out's first read and its claim is read again after the claim, and kept (never trained twice)."""
    url = pg_server_db
    first, second = LeaderboardStore(url), LeaderboardStore(url)
    spec = smoke_spec("tome", "tri", "1:9")
    a, b = ClaimOwner("ca"), ClaimOwner("cb")
    first.claim(spec.trial_key, a, 30.0)
    claim = second._claim

    def finished_meanwhile(conn, key, owner, lease_s, at):
        first.upsert_result(complete(spec, 41.0, 30.5, 1.2, 6.0), campaign="ca", run_id=a.run_id)
        first.release(a)
        return claim(conn, key, owner, lease_s, at)

    second._claim = finished_meanwhile  # type: ignore[method-assign]
    out = second.hand_out([spec.trial_key], b, 30.0, keep=["complete"])
    assert (out.claimed, out.kept, out.held) == ([], {spec.trial_key: "complete"}, {})
    assert second.holder_of(spec.trial_key) is None  # the claim taken meanwhile is given back


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(url: str) -> None:
    store = LeaderboardStore(url)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone, alive = ClaimOwner("c1", pid=int(dead.stdout)), ClaimOwner("c2")
    store.claim("k", gone, 30.0)
    holder = store.claim("k", alive, 30.0)
    assert holder is not None and holder.dead_here()
    assert store.take_over({"k": holder.run_id}, alive, 30.0) == 1
    assert store.take_over({"k": holder.run_id}, alive, 30.0) == 0  # it is no longer that run's
    taken = store.holder_of("k")
    assert taken is not None and taken.run_id == alive.run_id and not taken.dead_here()
