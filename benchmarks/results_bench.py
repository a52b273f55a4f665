"""Leaderboard benchmark: a SQLite file with 100,000 trials and 2,000,000 metric rows.

Times (medians of ``--repeats``) a filtered, sorted leaderboard query (target < 100 ms) and building
every table spec in ``search_spaces/tables`` (target < 5 s). The database is filled with bulk core
inserts (executemany), with trials spread over the campaigns the table specs select.

    python -m benchmarks.results_bench [--trials 100000] [--metrics-per-trial 20] [--repeats 5] [--db PATH]
                                       [--out benchmarks/results/results.md]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, insert

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from results.db import make_engine
from results.queries import leaderboard
from results.render import build_tables
from results.schema import Campaign, CampaignTrial, Metric, Trial
from results.table_spec import spec_paths

BACKBONES = ("mixste", "motionbert", "motionagformer", "mhformer")
PRUNERS = ("none", "tpc", "tpa", "tpmo", "tps", "dpc_multigrain")
RECOVERERS = ("tra", "tri", "none")
SCHEDULES = ("3:81", "1:121,3:81,5:41", "2:121,4:61", "7:61", "3:27", "3:41", "3:121")
CAMPAIGNS = ("pruning_strategies", "token_sweep", "layer_sweep", "hierarchical", "seq2seq_vs_seq2frame", "smoke",
             "demo")
ACTIONS = ("avg", "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
           "Walking")
BATCH = 20_000


def fill(engine: Engine, n_trials: int, per_trial: int, seed: int = 0) -> None:
    """Insert ``n_trials`` trials with ``per_trial`` metric rows each, linked round-robin to campaigns."""
    rng = random.Random(seed)
    combos = list(itertools.product(BACKBONES, PRUNERS, RECOVERERS, SCHEDULES))
    metric_keys = list(itertools.product(("mpjpe", "p_mpjpe", "n_mpjpe"), ACTIONS))[:per_trial]
    stamp = datetime(2026, 1, 1)
    with engine.begin() as conn:
        conn.execute(insert(Campaign), [{"id": i + 1, "name": c, "created_at": stamp} for i, c in enumerate(CAMPAIGNS)])
    for start in range(0, n_trials, BATCH):
        trials, links, metrics = [], [], []
        for tid in range(start + 1, min(start + BATCH, n_trials) + 1):
            backbone, pruner, recoverer, schedule = combos[tid % len(combos)]
            schedule = "" if pruner == "none" else schedule
            stages = [tuple(map(int, s.split(":"))) for s in schedule.split(",")] if schedule else []
            base = {"mixste": 40.0, "motionbert": 39.0, "motionagformer": 38.0, "mhformer": 43.0}[backbone]
            mpjpe = base + rng.gauss(0, 1.5) + (0 if pruner == "none" else 0.8)
            gflops = 1000.0 * (1 if not stages else 0.4 + 0.6 * stages[-1][1] / 243)
            trials.append({
                "id": tid, "trial_key": f"{tid:016x}", "backbone": backbone, "pruner": pruner,
                "recoverer": recoverer, "schedule": schedule, "frames": 243,
                "dataset": "h36m" if tid % 5 else "mpi_inf_3dhp", "seed": tid // len(combos),
                "pipeline": "seq2frame" if backbone == "mhformer" else "seq2seq",
                "tokens": stages[-1][1] if stages else None, "layer": stages[0][0] if stages else None,
                "stages": len(stages), "spec_json": "{}", "status": "complete" if tid % 50 else "failed",
                "selection": "last_epoch", "epochs_run": 120, "params": 33_000_000, "gflops": gflops,
                "gflops_total": gflops * 1.1, "latency_ms": gflops / 40, "created_at": stamp,
            })
            links.append({"campaign_id": tid % len(CAMPAIGNS) + 1, "trial_id": tid})
            metrics += [{"trial_id": tid, "name": name, "split": "test", "action": action,
                         "value": mpjpe * (0.8 if name == "p_mpjpe" else 1.0) + (0 if action == "avg" else 3.0)}
                        for name, action in metric_keys]
        with engine.begin() as conn:
            conn.execute(insert(Trial), trials)
            conn.execute(insert(CampaignTrial), links)
            conn.execute(insert(Metric), metrics)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--metrics-per-trial", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary one)")
    add_out_argument(parser, "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.sqlite"
        db.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{db}")
        t0 = time.perf_counter()
        fill(engine, args.trials, args.metrics_per_trial)
        fill_s = time.perf_counter() - t0
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(f"fill: {args.trials} trials, {args.trials * args.metrics_per_trial} metric rows in {fill_s:.1f} s")

        def query() -> list[dict[str, object]]:
            return leaderboard(engine, {"backbone": ["mixste"], "dataset": ["h36m"], "pruner": ["tpc", "tps"]},
                               status=["complete"], sort="mpjpe", top=20)

        rows = query()
        query_s = median_seconds(query, args.repeats * 4)
        print(f"leaderboard (mixste, h36m, tpc|tps, complete, sort mpjpe, top 20 of the filtered trials): "
              f"median {1000 * query_s:.1f} ms (target < 100 ms), best mpjpe {rows[0]['mpjpe']:.2f}")
        grouped = median_seconds(lambda: leaderboard(engine, {"dataset": ["h36m"]}, group_by=["backbone", "pruner"],
                                                     agg="mean"), args.repeats)
        print(f"leaderboard grouped by backbone,pruner (mean over ~80k trials): median {1000 * grouped:.0f} ms")
        out = Path(tmp) / "tables"
        specs = spec_paths()
        build_s = median_seconds(lambda: build_tables(engine, specs, out, skip_empty=True), args.repeats)
        print(f"tables build ({len(specs)} specs, {len(list(out.glob('*.md')))} written): median {build_s:.2f} s "
              f"(target < 5 s)")
        engine.dispose()
    table = md_table(("query", "median", "target"), [
        ("filtered, sorted leaderboard (mixste, h36m, tpc|tps, complete, by MPJPE, top 20)",
         f"{1000 * query_s:.1f} ms", "< 100 ms"),
        (f"all {len(specs)} table specs built (Markdown, LaTeX, CSV)", f"{build_s:.2f} s", "< 5 s"),
        ("leaderboard grouped by backbone, pruner (mean over ~80k trials)", f"{grouped:.2f} s", "–"),
    ])
    write_result([*table, "", f"{args.trials:,} trials, {args.trials * args.metrics_per_trial:,} metric rows in "
                  f"SQLite, filled in {fill_s:.1f} s. " + measured_line("benchmarks.results_bench")], args.out)


if __name__ == "__main__":
    main()
