"""Hand-made results for the results and web tests: a small smoke campaign written through the store API."""

from __future__ import annotations

from pathlib import Path

from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec
from results.store import LeaderboardStore

#: the results tests' golden tables
GOLDEN = Path(__file__).parent / "results" / "golden"
SMOKE_MODEL = {"dim": 32, "depth": 2, "num_heads": 2}

# (pruner, recoverer, schedule, seed) -> (mpjpe, p_mpjpe, gflops, latency_ms); the unpruned baseline
# costs 2.0 GFLOPs and 10 ms.
SMOKE_VALUES: dict[tuple[str, str, str, int], tuple[float, float, float, float]] = {
    ("none", "tra", "", 0): (40.0, 30.0, 2.0, 10.0),
    ("none", "tra", "", 1): (42.0, 31.0, 2.0, 10.0),
    ("tpc", "tra", "1:9", 0): (41.0, 30.5, 1.2, 6.0),
    ("tpc", "tra", "1:9", 1): (44.0, 32.5, 1.2, 6.0),
    ("tpc", "tri", "1:9", 0): (43.5, 33.0, 1.1, 5.0),
    ("tps", "tra", "1:9", 0): (45.25, 34.0, 1.2, 6.5),
    ("tps", "tri", "1:9", 0): (47.0, 35.5, 1.1, 5.5),
}


def smoke_spec(pruner: str, recoverer: str, schedule: str, seed: int = 0, **kw: object) -> TrialSpec:
    return TrialSpec(backbone="mixste", pruner=pruner, recoverer=recoverer, schedule=schedule, frames=27,
                     dataset="synthetic", seed=seed, model=SMOKE_MODEL, **kw)  # type: ignore[arg-type]


def complete(spec: TrialSpec, mpjpe: float, p_mpjpe: float, gflops: float, latency: float) -> TrialResult:
    metrics = [MetricRecord("mpjpe", "test", mpjpe), MetricRecord("p_mpjpe", "test", p_mpjpe),
               MetricRecord("mpjpe", "test", mpjpe + 5.0, action="Walking"),
               MetricRecord("loss", "train", mpjpe / 1000)]
    return TrialResult(spec.trial_key, spec.to_dict(), "complete", metrics,
                       Cost(params=1000 + int(gflops * 100), gflops=gflops, gflops_total=gflops * 1.25,
                            latency_ms=latency),
                       epochs_run=2, best_epoch=2, checkpoint_uri=f"/ckpt/{spec.trial_key}/model.pt",
                       provenance={"torch": "2.13.0", "device": "cpu", "data_fingerprint": "fp123",
                                   "git_sha": "abc123", "python": "3.11.9"})


def fill_smoke(store: LeaderboardStore) -> dict[str, TrialSpec]:
    """Campaign ``smoke``: the complete trials above, one failed (tpa/tra) and one running (tpa/tri)."""
    store.ensure_campaign("smoke", grid_path="search_spaces/smoke.yaml", git_sha="abc123")
    specs = {}
    for (pruner, recoverer, schedule, seed), values in SMOKE_VALUES.items():
        spec = smoke_spec(pruner, recoverer, schedule, seed)
        store.mark_running(spec, "smoke")
        store.upsert_result(complete(spec, *values), campaign="smoke", mlflow_run_id=f"run-{spec.trial_key}")
        specs[f"{pruner}/{recoverer}/{seed}"] = spec
    failed = smoke_spec("tpa", "tra", "1:9")
    store.mark_running(failed, "smoke")
    store.upsert_result(TrialResult(failed.trial_key, failed.to_dict(), "failed", error="RuntimeError: boom"),
                        campaign="smoke")
    running = smoke_spec("tpa", "tri", "1:9")
    store.mark_running(running, "smoke")
    specs["tpa/tra/0"], specs["tpa/tri/0"] = failed, running
    return specs
