"""Leaderboards for the web tests and the README's screenshots, written through the store (the trials' writer).

``fill_demo``: the demo grid (``search_spaces/demo.yaml``, expanded by ``load_grid`` with two seeds) as campaign
``demo``, every trial complete with per-action metrics, two epochs of history and its cost; the numbers are
made up but shaped like the real ones (pruning costs accuracy, saves FLOPs). ``fill_hostile``: a campaign whose
name, and a failed trial whose error text, hold ``<script>``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec
from orchestrator.grid import load_grid
from results.store import LeaderboardStore

REPO = Path(__file__).resolve().parents[2]

DEMO = REPO / "search_spaces" / "demo.yaml"
HOSTILE_CAMPAIGN = "<script>window.__pwned_campaign = 1</script>"
HOSTILE_ERROR = "RuntimeError: <script>window.__pwned_error = 1</script> & <b>bold</b>"
ACTIONS = ("Directions", "Eating", "Walking")
_PRUNER_COST = {"none": 0.0, "tpc": 1.5, "tps": 3.0}
_RECOVERER_COST = {"none": 0.0, "tra": 0.0, "tri": 0.8}


def demo_result(spec: TrialSpec) -> TrialResult:
    stages = [s for s in spec.schedule.split(",") if s]
    tokens = int(stages[-1].split(":")[1]) if stages else spec.frames
    mpjpe = (52.0 + _PRUNER_COST[spec.pruner] + _RECOVERER_COST[spec.recoverer] + 0.9 * len(stages)
             + 0.35 * spec.seed + 0.1 * (spec.seed * 7 % 3))
    gflops = 0.05 * (0.35 + 0.65 * tokens / spec.frames)
    metrics = [MetricRecord("mpjpe", "test", mpjpe, epoch=2), MetricRecord("p_mpjpe", "test", 0.72 * mpjpe, epoch=2),
               MetricRecord("n_mpjpe", "test", 0.95 * mpjpe, epoch=2), MetricRecord("loss", "train", mpjpe / 900)]
    metrics += [MetricRecord("mpjpe", "test", mpjpe + 2.0 * i - 2.0, action=a, epoch=2)
                for i, a in enumerate(ACTIONS)]
    history = [{"epoch": e, "train_loss": mpjpe / 900 * (1.6 - 0.3 * e), "test_mpjpe": mpjpe * (1.3 - 0.15 * e),
                "test_p_mpjpe": 0.72 * mpjpe * (1.3 - 0.15 * e), "lr": 4e-4 * 0.9 ** e} for e in (1, 2)]
    return TrialResult(spec.trial_key, spec.to_dict(), "complete", metrics,
                       Cost(params=41_000 + 100 * len(stages), gflops=gflops, gflops_total=1.25 * gflops,
                            latency_ms=200 * gflops, latency_batch=1, latency_device="cpu"),
                       epochs_run=2, best_epoch=2, checkpoint_uri=f"/runs/trials/{spec.trial_key}/model.pt",
                       provenance={"torch": "2.13.0", "device": "cpu", "data_fingerprint": "synthetic-7f3a",
                                   "git_sha": "0123abcd", "python": "3.11.9"}, history=history)


def fill_demo(store: LeaderboardStore, seeds: int = 2) -> list[TrialSpec]:
    """Campaign ``demo``: the demo grid with ``seeds`` seeds, every trial complete; returns its specs."""
    grid = load_grid(DEMO)
    store.ensure_campaign("demo", grid_path=str(DEMO), grid_yaml=grid.resolved_yaml, git_sha="0123abcd")
    specs = [replace(spec, seed=seed) for spec in grid.expand() for seed in range(seeds)]
    for spec in specs:
        store.mark_running(spec, "demo")
        store.upsert_result(demo_result(spec), campaign="demo", mlflow_run_id=f"run{spec.trial_key}")
    return specs


def fill_hostile(store: LeaderboardStore) -> TrialSpec:
    """A campaign named :data:`HOSTILE_CAMPAIGN` with one failed trial whose error is :data:`HOSTILE_ERROR`."""
    spec = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=99, model={"dim": 32, "depth": 2, "num_heads": 2})
    store.ensure_campaign(HOSTILE_CAMPAIGN)
    store.mark_running(spec, HOSTILE_CAMPAIGN)
    store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "failed", error=HOSTILE_ERROR),
                        campaign=HOSTILE_CAMPAIGN)
    return spec
