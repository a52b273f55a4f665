"""``h2ot campaign estimate`` against the device time a campaign then measures.

Prices a small grid (``search_spaces/demo.yaml`` by default: 7 tiny MixSTE trials) with
:func:`h2ot_core.estimate.estimate_trials` on the CPU, first with an empty cache (it times each backbone size)
and again from the cache, then runs the grid with ``h2ot campaign run`` (real Ray Tune, leaderboard, MLflow)
and reads every trial's measured device time back from the leaderboard (``trials.device_seconds_*``). Per
trial: estimated and measured device seconds and their ratio; for the campaign: total device-hours both ways,
the median per-trial ratio and whether the total is within +-20 % (the target). The estimate's own cost is
shown beside the campaign's wall time.

Everything is written under a temporary folder.

    python -m benchmarks.estimate [--grid search_spaces/demo.yaml] [--max-concurrent N] [--out ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.output import add_out_argument, md_table, measured_line, write_result

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.20


def _estimate(grid_path: Path) -> tuple[dict[str, float], float]:
    """``trial_key -> estimated device seconds`` and the estimate's wall seconds."""
    from h2ot_core.device import resolve_device
    from h2ot_core.environment import CACHE
    from h2ot_core.estimate import RateCache, estimate_trials
    from h2ot_core.resolve import resolve_settings
    from orchestrator.grid import load_grid
    from orchestrator.trainable import data_dir

    t0 = time.perf_counter()
    specs = load_grid(grid_path).expand()
    found = estimate_trials(specs, lambda s: resolve_settings(s.backbone, s.train), resolve_device("cpu"),
                            cache=RateCache(str(CACHE.value())), threads=1, data_dir_of=data_dir)
    return {e.spec.trial_key: e.device_hours * 3600 for e in found}, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default=str(REPO / "search_spaces" / "demo.yaml"))
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="trials at once in the campaign (default: as many as cores)")
    add_out_argument(parser, "estimate")
    args = parser.parse_args()
    grid_path = Path(args.grid).resolve()
    with tempfile.TemporaryDirectory(prefix="h2ot-bench-estimate-") as tmp:
        root = Path(tmp)
        env = {"H2OT_RUNS_DIR": str(root / "runs"), "H2OT_DB_URL": f"sqlite:///{root / 'leaderboard.sqlite'}",
               "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "H2OT_CACHE": str(root / "cache"),
               "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
        os.environ.update(env)
        estimated, cold_s = _estimate(grid_path)
        _, cached_s = _estimate(grid_path)
        command = [str(Path(sys.executable).with_name("h2ot")), "campaign", "run", str(grid_path), "--retries", "0",
                   *(["--max-concurrent", str(args.max_concurrent)] if args.max_concurrent else [])]
        t0 = time.perf_counter()
        run = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
        campaign_s = time.perf_counter() - t0
        if run.returncode != 0:
            sys.exit(f"campaign run failed ({run.returncode}):\n{run.stderr[-3000:]}")
        from orchestrator.grid import campaign_name, load_grid
        from results.store import LeaderboardStore

        grid = load_grid(grid_path)
        results, _ = LeaderboardStore().campaign_results(campaign_name(grid, None))
    measured = {r.trial_key: r.usage.device_seconds_train + r.usage.device_seconds_eval
                for r in results if r.usage is not None}
    specs = {s.trial_key: s for s in grid.expand()}
    rows, ratios = [], []
    for key, spec in specs.items():
        ratio = measured[key] / estimated[key]
        ratios.append(ratio)
        rows.append([key, f"{spec.pruner}/{spec.recoverer} {spec.schedule or '-'}", f"{estimated[key]:.2f}",
                     f"{measured[key]:.2f}", f"{ratio:.2f}x"])
    total_est, total_meas = sum(estimated.values()) / 3600, sum(measured.values()) / 3600
    error = total_meas / total_est - 1
    lines = [f"`h2ot campaign estimate` vs the measured device time of `{grid_path.relative_to(REPO)}` "
             f"({len(specs)} trials, {'as many trials at once as cores' if not args.max_concurrent else f'{args.max_concurrent} at once'}):", "",
             *md_table(["trial", "configuration", "estimated device s", "measured device s", "measured / estimated"],
                       rows), "",
             *md_table(["", "estimate", "measured", "measured / estimated"], [
                 ["campaign device-hours", f"{total_est:.5f}", f"{total_meas:.5f}", f"{1 + error:.2f}x"],
                 ["median per trial", "", "", f"{statistics.median(ratios):.2f}x"],
             ]), "",
             f"Total within +-{TARGET:.0%}: **{'yes' if abs(error) <= TARGET else 'no'}** ({error:+.0%}). "
             f"The estimate took {cold_s:.1f} s with an empty cache (timing each backbone size) and {cached_s:.1f} s "
             f"from the cache; the campaign took {campaign_s:.0f} s of wall time.", "",
             measured_line("benchmarks.estimate", threads=1)]
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
