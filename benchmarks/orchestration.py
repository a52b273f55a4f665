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
(Ray's raylet and workers, sampled from /proc) over wall time × cores, for the CPU-bound run.

4. At scale (``--sizes``, default 100, 500 and 2,000 trials): campaigns of trivial trials — no training; the
   trainable reports once, with a TrialResult shaped like a real one (per-action test metrics, cost, one epoch
   of history, provenance) — through the real path: ``run_campaign`` → Ray Tune on the local Ray (as many
   trials at once as cores, reused actors) → ``ResultsSink`` → leaderboard (SQLite) and MLflow (SQLite
   store; a fresh leaderboard and store per size). Per size: wall time / trials (the fixed cost included), the trial phase (first trial start to
   last trial end, from the leaderboard) / trials, the driver's peak RSS during that campaign (``VmHWM``,
   reset before each campaign through ``/proc/self/clear_refs``; else ``ru_maxrss``; the sizes run in one
   process, smallest first), and the time the sink
   spends in leaderboard calls (``mark_running`` + ``upsert_result``) and in MLflow calls (``start_trial``,
   ``log_epoch``, ``finish_trial``; the end-of-campaign backfill separately), each per trial. The launcher
   submits more than ``$H2OT_TUNE_CHUNK`` (500) trials as several ``Tuner.fit`` calls in one Ray session;
   ``--unchunked 2000`` runs that size again as a single ``Tuner.fit``, side by side (about 5 more minutes).

Everything is written under a temporary folder.

    python -m benchmarks.orchestration [--trials 6] [--backbone mixste] [--sizes 100,500,2000] [--unchunked 2000]
        [--scale-only] [--out benchmarks/results/orchestration.md]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from unittest import mock

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


# --- at scale: trivial trials through the real path ------------------------------------------------------------

#: the test split's actions of a real (Human3.6M-shaped) result: one metric row per action and metric
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
           "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")


def trivial_result(spec: Any) -> Any:
    """A complete TrialResult shaped like a one-epoch real one, for ``spec``, without training."""
    from h2ot_core.contracts import Cost, MetricRecord, TrialResult

    seed = int(spec.to_dict().get("seed", 0))
    metrics = [MetricRecord(name, "test", 50.0 + seed % 7 + i + (5.0 if name == "p_mpjpe" else 0.0), action, 1)
               for i, action in enumerate(("avg", *ACTIONS)) for name in ("mpjpe", "p_mpjpe")]
    metrics.append(MetricRecord("loss", "train", 0.5, "avg", 1))
    history = [{"epoch": 1, "train_loss": 0.5, "test_mpjpe": metrics[0].value, "test_p_mpjpe": metrics[1].value,
                "lr": 1e-3, "epoch_s": 0.01}]
    return TrialResult(spec.trial_key, spec.to_dict(), "complete", metrics=metrics,
                       cost=Cost(params=1000, gflops=0.01, gflops_total=0.012, latency_ms=1.0, latency_batch=1,
                                 latency_device="cpu", latency_contended=False),
                       epochs_run=1, best_epoch=1, provenance={"torch": "bench", "numpy": "bench"},
                       history=history)


def trivial_trainable(config: dict[str, Any]) -> None:
    """Stands in for :func:`orchestrator.trainable.trainable`: no training, one final report (its own)."""
    from h2ot_core.contracts import TrialSpec
    from orchestrator.trainable import _final_report

    _final_report(trivial_result(TrialSpec.from_dict(config["spec"])))


@contextlib.contextmanager
def trivial_trials() -> Iterator[None]:
    """Campaigns train with :func:`trivial_trainable` (the launcher imports ``trainable`` at each fit)."""
    import orchestrator.trainable as module

    with mock.patch.object(module, "trainable", trivial_trainable):
        yield


class CallTimer:
    """Wall seconds spent in chosen methods of a class, summed per group (installed on the class)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, cls: type, names: tuple[str, ...], group: str) -> None:
        for name in names:
            real = getattr(cls, name)

            @functools.wraps(real)
            def timed(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    self.seconds[group] = self.seconds.get(group, 0.0) + time.perf_counter() - t0
                    self.calls[group] = self.calls.get(group, 0) + 1

            setattr(cls, name, timed)
            self._undo.append(functools.partial(setattr, cls, name, real))

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs`` 5); ``False`` where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """This process's RSS high-water mark in MiB (``VmHWM``, else ``ru_maxrss``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_grid_yaml(trials: int) -> str:
    return grid_yaml(trials, "mixste").replace("orchestration_bench", f"orchestration_scale{trials}")


def scale(tmp: Path, sizes: list[int], cores: int, unchunked: list[int]) -> list[dict[str, Any]]:
    """One trivial-trial campaign per size (ascending) in this process, then one per ``unchunked`` size
    submitted as a single ``Tuner.fit`` (no ``H2OT_TUNE_CHUNK`` chunks); the figures of each."""
    from h2ot_core.environment import TUNE_CHUNK
    from orchestrator.cluster import LaunchOptions
    from orchestrator.grid import load_grid
    from orchestrator.launcher import run_campaign, tune_chunk
    from orchestrator.tracking import CampaignTracker, init_store
    from results.store import LeaderboardStore

    timer = CallTimer()
    timer.wrap(LeaderboardStore, ("mark_running", "upsert_result"), "leaderboard")
    timer.wrap(CampaignTracker, ("start_trial", "log_epoch", "finish_trial"), "mlflow")
    timer.wrap(CampaignTracker, ("sync", "close"), "backfill")
    rows = []
    try:
        with trivial_trials():
            chunk = tune_chunk()
            runs = [(10, chunk, False), *((n, chunk, False) for n in sorted(sizes)),
                    *((n, n, True) for n in sorted(unchunked))]
            for size, chunk, onefit in runs:  # 10: this process's one-time costs (imports, MLflow schema)
                label = f"{size}-onefit" if onefit else f"{size}"
                os.environ[TUNE_CHUNK.name] = str(chunk)
                path = tmp / f"scale{label}.yaml"
                path.write_text(scale_grid_yaml(size))
                grid = load_grid(path)
                db_url = f"sqlite:///{tmp / f'scale{label}.sqlite'}"
                # a store per run (its schema made before the clock starts): the runs do not share MLflow rows
                os.environ["MLFLOW_TRACKING_URI"] = init_store(f"sqlite:///{tmp / f'mlflow-scale{label}.db'}")
                opts = LaunchOptions(num_cpus=cores, cpus_per_trial=1, retries=0, db_url=db_url)
                timer.reset()
                exact = reset_peak_rss()
                t0 = time.perf_counter()
                outcome = run_campaign(grid, f"bench-scale{label}", opts)
                wall = time.perf_counter() - t0
                assert outcome.exit_code == 0 and len(outcome.statuses) == size, outcome.errors
                first, last = trial_phase(db_url)
                row = {"trials": size, "chunk": chunk, "onefit": onefit, "wall": wall, "phase": last - first, "rss_mb": peak_rss_mb(),
                       "rss_exact": exact, **{k: timer.seconds.get(k, 0.0)
                                              for k in ("leaderboard", "mlflow", "backfill")}}
                print(f"{size:5d} trivial trials, Tune chunks of {chunk}: {wall:7.1f} s wall = {wall / size:.3f} s/trial; trial phase "
                      f"{row['phase'] / size:.3f} s/trial; driver peak RSS {row['rss_mb']:.0f} MiB; leaderboard "
                      f"{1000 * row['leaderboard'] / size:.1f} ms/trial, MLflow {1000 * row['mlflow'] / size:.1f} "
                      f"ms/trial, backfill {row['backfill']:.1f} s", flush=True)
                if size != 10:
                    rows.append(row)
    finally:
        timer.restore()
    return rows


def scale_table(rows: list[dict[str, Any]], cores: int) -> list[str]:
    chunked = [r for r in rows if not r["onefit"]] or rows

    def growth(key: str) -> str:
        lo, hi = chunked[0], chunked[-1]
        a, b = lo[key] / (lo["trials"] if key != "rss_mb" else 1), hi[key] / (hi["trials"] if key != "rss_mb" else 1)
        return f"{b / a:.2f}×" if a else "–"

    def cell(row: dict[str, float], key: str) -> str:
        n = row["trials"]
        if key == "wall":
            return f"{row['wall'] / n:.3f} s" + (" ✓" if row["wall"] / n <= 0.3 else " ✗")
        if key == "phase":
            return f"{row['phase'] / n:.3f} s"
        if key == "rss_mb":
            return f"{row['rss_mb']:.0f} MiB" + (" ✓" if row["rss_mb"] < 1536 else " ✗")
        return f"{1000 * row[key] / n:.1f} ms"

    what = {"wall": "**orchestration overhead per trial** (wall / trials; target ≤ 0.3 s)",
            "phase": "per trial in the trial phase (first start to last end / trials)",
            "rss_mb": "**driver peak RSS** (target < 1.5 GB)",
            "leaderboard": "leaderboard writes per trial (`mark_running` + `upsert_result`)",
            "mlflow": "MLflow writes per trial (`start_trial` + `finish_trial`)",
            "backfill": "MLflow backfill at campaign end, per trial"}
    def column(row: dict[str, Any]) -> str:
        n, chunk = int(row["trials"]), int(row["chunk"])
        if row["onefit"]:
            return f"{n:,} in one `Tuner.fit`"
        return f"{n:,}" + (f" ({-(-n // chunk)} fits of ≤ {chunk})" if chunk < n else "")

    header = (f"trivial trials, {cores} at a time", *(column(r) for r in chunked),
              f"{int(chunked[-1]['trials']):,} vs {int(chunked[0]['trials']):,}" if len(chunked) > 1 else "growth",
              *(column(r) for r in rows if r["onefit"]))
    body = [(label, *(cell(r, key) for r in chunked), growth(key), *(cell(r, key) for r in rows if r["onefit"]))
            for key, label in what.items()]
    return md_table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="N (the sequential campaigns run N and 2N)")
    parser.add_argument("--backbone", default="mixste")
    parser.add_argument("--heavy-windows", type=int, default=400, help="training windows of the CPU-bound trials")
    parser.add_argument("--sizes", default="100,500,2000",
                        help="campaign sizes of the trivial-trial runs, comma-separated ('' skips them)")
    parser.add_argument("--unchunked", default="",
                        help="sizes to run again as a single Tuner.fit (H2OT_TUNE_CHUNK = the size), e.g. 2000")
    parser.add_argument("--scale-only", action="store_true", help="only the trivial-trial runs at --sizes")
    add_out_argument(parser, "orchestration")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.replace(" ", "").split(",") if v]
    tmp = Path(tempfile.mkdtemp(prefix="h2ot-orch-bench-"))
    os.environ["H2OT_RUNS_DIR"] = str(tmp / "runs")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"

    cores = os.cpu_count() or 1
    lines = [] if args.scale_only else overhead(args, tmp, cores)
    if sizes:
        rows = scale(tmp, sizes, cores, [int(v) for v in args.unchunked.replace(" ", "").split(",") if v])
        lines += [*([""] if lines else []), *scale_table(rows, cores)]
    print(f"results under {tmp}")
    write_result([*lines, "", measured_line("benchmarks.orchestration")], args.out)


def overhead(args: argparse.Namespace, tmp: Path, cores: int) -> list[str]:
    """Parts 1-3: the table of the trials' own cost, the orchestration overhead and the CPU use."""
    from h2ot_core.api import run_trial
    from orchestrator.cluster import LaunchOptions
    from orchestrator.grid import load_grid
    from orchestrator.launcher import run_campaign

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
    return md_table(("what", "figure"), rows)


if __name__ == "__main__":
    main()
