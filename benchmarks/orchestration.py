"""What the orchestration costs per trial, and whether it keeps the cores busy.

Runs the same N trivial trials (a 9-frame, 16-channel MixSTE by default, one epoch over 2 windows) three ways:

1. ``run_trial`` in a plain loop (no Ray, no leaderboard, no MLflow): the trials' own cost;
2. ``h2ot campaign run``'s code path (Ray Tune + leaderboard + MLflow), one trial at a time, for N and for
   2N trials: the difference divided by N is the marginal cost of a trial in a campaign, and what is
   left of the N-trial run is the fixed cost (Ray start/stop, store setup, worker imports);
3. 2N trials with as many concurrent trials as cores, and 2 x cores CPU-bound trials (a few hundred
   training windows each) the same way, for the CPU use — over the whole campaign and over its trial phase
   (first trial start to last trial end, from the leaderboard's timestamps).

Per-trial orchestration overhead = marginal cost − plain-loop cost: Tune scheduling with reused actors,
reporting, leaderboard and MLflow writes. CPU use = CPU seconds of the driver and every process it spawned
(Ray's raylet and workers, sampled from /proc) over wall time × cores, for the CPU-bound run. Everything is written
under a temporary folder.

    python -m benchmarks.orchestration [--trials 6] [--backbone mixste] [--out benchmarks/results/orchestration.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from datetime import UTC
from pathlib import Path

import numpy as np

from benchmarks.output import add_out_argument, md_table, measured_line, write_result

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def grid_yaml(trials: int, backbone: str, windows: int = 2) -> str:
    seeds = ", ".join(str(i) for i in range(trials))
    return f"""
name: orchestration_bench
grid: {{backbone: {backbone}, pruner: tps, recoverer: tri, schedule: "1:3", frames: 9, seed: [{seeds}]}}
fixed:
  model: {{dim: 16, depth: 2, num_heads: 2}}
  train: {{epochs: 1, batch_size: 2, max_train_windows: {windows}, max_test_windows: 2, num_threads: 1,
          flip_test: false}}
  data: {{minutes: 0.1}}
"""


class TreeCpu:
    """Samples the CPU seconds of a process and all its descendants (max seen per pid) from /proc."""

    def __init__(self, root: int, interval: float = 0.25):
        self.root, self.interval = root, interval
        self.seen: dict[int, float] = {}
        self.series: list[tuple[float, float]] = []  # (UTC epoch seconds, CPU seconds of the tree so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _stat(pid: int) -> tuple[int, float] | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _sample(self) -> None:
        stats = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit()
                 if (s := self._stat(int(p.name))) is not None}
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        stack = [self.root]
        while stack:
            pid = stack.pop()
            if pid in stats:
                self.seen[pid] = max(self.seen.get(pid, 0.0), stats[pid][1])
            stack.extend(children.get(pid, []))
        self.series.append((time.time(), sum(self.seen.values())))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeCpu:
        self._sample()
        self.start = sum(self.seen.values())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.seen.values()) - self.start

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree used between two UTC epoch times (linear between samples)."""
        times, totals = zip(*self.series, strict=True)
        return float(np.interp(end, times, totals) - np.interp(start, times, totals))


def trial_phase(db_url: str) -> tuple[float, float]:
    """UTC epoch seconds from the first trial's start to the last trial's end, from the leaderboard."""
    from sqlalchemy import create_engine, func, select

    from results.schema import Trial

    engine = create_engine(db_url)
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(Trial.started_at), func.max(Trial.finished_at))).one()
    engine.dispose()
    return first.replace(tzinfo=UTC).timestamp(), last.replace(tzinfo=UTC).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="N (the sequential campaigns run N and 2N)")
    parser.add_argument("--backbone", default="mixste")
    parser.add_argument("--heavy-windows", type=int, default=400, help="training windows of the CPU-bound trials")
    add_out_argument(parser, "orchestration")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="h2ot-orch-bench-"))
    os.environ["H2OT_RUNS_DIR"] = str(tmp / "runs")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"

    from h2ot_core.api import run_trial
    from orchestrator.grid import load_grid
    from orchestrator.launcher import LaunchOptions, run_campaign

    cores = os.cpu_count() or 1

    n = args.trials
    grids = {}
    for size in (1, n, 2 * n):
        path = tmp / f"grid{size}.yaml"
        path.write_text(grid_yaml(size, args.backbone))
        grids[size] = load_grid(path)
    heavy = tmp / "heavy.yaml"  # CPU-bound trials: each trains a few hundred windows on one thread
    heavy.write_text(grid_yaml(2 * cores, args.backbone, windows=args.heavy_windows).replace(
        "orchestration_bench", "orchestration_heavy"))
    grids[0] = load_grid(heavy)

    specs = grids[2 * n].expand()
    run_trial(specs[0], workdir=tmp / "warmup")  # generates the synthetic data once; imports
    t0 = time.perf_counter()
    for spec in specs:
        run_trial(spec, workdir=tmp / "loop" / spec.trial_key)
    loop_per_trial = (time.perf_counter() - t0) / len(specs)

    def campaign(size: int, concurrent: int, label: str) -> tuple[float, TreeCpu, str]:
        db_url = f"sqlite:///{tmp / f'{label}.sqlite'}"
        opts = LaunchOptions(num_cpus=cores, cpus_per_trial=1, max_concurrent=concurrent, retries=0, db_url=db_url)
        with TreeCpu(os.getpid()) as cpu:
            t0 = time.perf_counter()
            outcome = run_campaign(grids[size], f"bench-{label}", opts)
            wall = time.perf_counter() - t0
        assert outcome.exit_code == 0, outcome.statuses
        return wall, cpu, db_url

    campaign(1, 1, "warmup")  # one-time costs of this process: imports, MLflow schema creation
    seq_n, _, _ = campaign(n, 1, f"seq{n}")
    seq_2n, _, _ = campaign(2 * n, 1, f"seq{2 * n}")
    con_2n, _, _ = campaign(2 * n, cores, f"con{2 * n}")
    heavy_s, heavy_tree, heavy_db = campaign(0, cores, "heavy")
    heavy_cpu = heavy_tree.cpu_seconds
    first, last = trial_phase(heavy_db)
    phase_cpu = heavy_tree.cpu_between(first, last)
    marginal = (seq_2n - seq_n) / n
    fixed = seq_n - n * marginal

    print(f"backbone {args.backbone}, cores {cores}, results under {tmp}")
    print(f"plain run_trial loop:                 {loop_per_trial:6.2f} s/trial")
    print(f"campaign of {n:2d}, 1 trial at a time:    {seq_n:6.2f} s")
    print(f"campaign of {2 * n:2d}, 1 trial at a time:    {seq_2n:6.2f} s")
    print(f"campaign of {2 * n:2d}, {cores} trials at a time:   {con_2n:6.2f} s")
    print(f"per-trial cost in a campaign:         {marginal:6.2f} s/trial (marginal, from the N vs 2N runs)")
    print(f"per-trial orchestration overhead:     {marginal - loop_per_trial:6.2f} s/trial (marginal - loop)")
    print(f"fixed cost per campaign:              {fixed:6.2f} s (Ray start/stop, MLflow/leaderboard setup, "
          f"first import of torch in each worker)")
    print(f"CPU use, {2 * cores} CPU-bound trials, {cores} at a time: {heavy_cpu:6.1f} CPU-s over {heavy_s:.1f} s "
          f"wall = {100 * heavy_cpu / (heavy_s * cores):.0f}% of {cores} cores (incl. the fixed cost above)")
    print(f"  of which from the first trial's start to the last one's end: {phase_cpu:.1f} CPU-s over "
          f"{last - first:.1f} s = {100 * phase_cpu / ((last - first) * cores):.0f}% of {cores} cores")
    rows = [
        ("plain `run_trial` loop", f"{loop_per_trial:.2f} s/trial"),
        (f"marginal cost of a trial in a campaign ({2 * n} vs {n} trials)", f"{marginal:.2f} s/trial"),
        ("**orchestration overhead per trial**", f"**{marginal - loop_per_trial:.2f} s** (target < 1 s)"),
        ("fixed cost per campaign (Ray start/stop, stores, first torch import in each worker)", f"{fixed:.1f} s"),
        (f"CPU use, {2 * cores} CPU-bound trials {cores} at a time, whole campaign",
         f"{100 * heavy_cpu / (heavy_s * cores):.0f}% of {cores} cores (fixed cost included)"),
        ("CPU use from the first trial's start to the last one's end",
         f"**{100 * phase_cpu / ((last - first) * cores):.0f}% of {cores} cores**"),
    ]
    write_result([*md_table(("what", "figure"), rows), "", measured_line("benchmarks.orchestration")], args.out)


if __name__ == "__main__":
    main()
