"""A writer process for the concurrency tests (a module of its own so ``spawn`` children can import it)."""

from __future__ import annotations

from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec


def write_trials(url: str, worker: int, count: int) -> None:
    """Mark ``count`` trials running, then complete them, in campaign ``conc`` (its own engine, as in Ray)."""
    from results.store import LeaderboardStore

    store = LeaderboardStore(url)
    store.ensure_campaign("conc")
    for i in range(count):
        spec = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=worker * 1000 + i)
        store.mark_running(spec, "conc")
        metrics = [MetricRecord("mpjpe", "test", 40.0 + i), MetricRecord("p_mpjpe", "test", 30.0 + i)]
        store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "complete", metrics,
                                        Cost(100, 1.0, 1.2, 3.0)), campaign="conc")


def claim_keys(url: str, campaign: str, keys: list[str], start: float, queue: object) -> None:
    """Wait until ``start`` (a ``time.time()``), then hand out ``keys`` for a fresh owner of ``campaign``; puts
    ``(run_id, claimed keys)`` on ``queue`` (a claims race between processes)."""
    import time

    from results.claims import ClaimOwner
    from results.store import LeaderboardStore

    store = LeaderboardStore(url)
    owner = ClaimOwner(campaign)
    time.sleep(max(0.0, start - time.time()))
    handout = store.hand_out(keys, owner, 30.0, keep=["complete"])
    queue.put((owner.run_id, handout.claimed))  # type: ignore[attr-defined]
