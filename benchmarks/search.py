"""Search vs hand-picked schedules at the same training budget (``make bench-search``).

Runs ``search_spaces/search/cpu_handpicked.yaml`` (24 trials, the papers' way: schedules chosen by hand)
and ``search_spaces/search/cpu.yaml`` (24 proposals of NSGA-II under a FLOPs cap at the grid's costliest
schedule) with several sampler seeds, in one leaderboard, and compares the hypervolume of each campaign's
(GFLOPs, MPJPE) front against one reference point for all (the nadir of every point, pushed out by 10 %
of each range). Proposals a grid or an earlier seed already trained are read back, not retrained, as in
any campaign; the FLOPs cap rejects proposals for free (counted). Target: search ≥ grid in median.

    python -m benchmarks.search [--seeds 0 1 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.output import add_out_argument, md_table, measured_line, write_result

SPACES = Path(__file__).resolve().parent.parent / "search_spaces" / "search"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds of the search")
    parser.add_argument("--workdir", type=Path, default=None, help="runs folder (default: a temporary one)")
    add_out_argument(parser, "search")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="h2ot-bench-search-"))
    os.environ["H2OT_RUNS_DIR"] = str(workdir)
    os.environ["H2OT_DB_URL"] = db_url = f"sqlite:///{workdir / 'leaderboard.sqlite'}"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")

    from orchestrator.cluster import LaunchOptions, ray_session
    from orchestrator.grid import load_grid
    from orchestrator.launcher import run_campaign
    from orchestrator.search import run_search
    from results.db import make_engine
    from results.front import campaign_front
    from results.pareto import hypervolume, reference_point

    opts = LaunchOptions(db_url=db_url, max_concurrent=2)
    grid = load_grid(SPACES / "cpu_handpicked.yaml")
    search = load_grid(SPACES / "cpu.yaml")
    rejected: dict[str, int] = {}
    seconds: dict[str, float] = {}
    with ray_session(opts):
        start = time.perf_counter()
        run_campaign(grid, grid.name, opts)
        seconds[grid.name] = time.perf_counter() - start
        campaigns = [grid.name]
        for seed in args.seeds:
            name = f"{search.name}-s{seed}"
            seeded = replace(search, search=replace(search.search, sampler_seed=seed))
            start = time.perf_counter()
            _, counts = run_search(seeded, name, opts)
            seconds[name] = time.perf_counter() - start
            rejected[name] = counts["over_budget"] + counts["invalid"]
            campaigns.append(name)

    engine = make_engine(db_url)
    fronts = {c: campaign_front(engine, c) for c in campaigns}
    everything = [(float(r["gflops"]), float(r["mpjpe"])) for f in fronts.values() for r in f.rows]
    ref = reference_point(everything)
    hv = {c: hypervolume([(float(r["gflops"]), float(r["mpjpe"])) for r in f.front], ref)
          for c, f in fronts.items()}
    searched = [hv[c] for c in campaigns[1:]]
    rows = [[c, "grid (hand-picked)" if c == grid.name else "search (NSGA-II)", len(f.rows), len(f.front),
             f"{hv[c]:.4g}", rejected.get(c, "–"), f"{seconds[c]:.0f}"] for c, f in fronts.items()]
    lines = md_table(["campaign", "how", "trained trials", "front", "hypervolume", "rejected for free",
                      "wall s"], rows)
    ratio = statistics.median(searched) / hv[grid.name] if hv[grid.name] else float("nan")
    lines += ["", f"Median search hypervolume / grid hypervolume: **{ratio:.2f}** (target ≥ 1.00); reference "
                  f"point (GFLOPs {ref[0]:.4g}, MPJPE {ref[1]:.4g} mm), common to all.", ""]
    for c, f in fronts.items():
        points = ", ".join(f"{r['schedule']} {r['pruner']}+{r['recoverer']} ({float(r['gflops']):.4f}, "
                           f"{float(r['mpjpe']):.1f})" for r in f.front)
        lines.append(f"- front of `{c}`: {points}")
    lines += ["", measured_line("benchmarks.search", threads=1)]
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
