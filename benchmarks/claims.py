"""What claims cost per trial, and whether many drivers over one leaderboard train anything twice.

1. Overhead at scale (``--trials``, default 2,000), on a SQLite file and on PostgreSQL: one driver's claim
   work for a campaign of that many trials, through :class:`results.store.LeaderboardStore`: the hand-out (one
   transaction claiming every trial), one heartbeat renewal per ``--lease-s / 3`` of an assumed
   ``--trial-s`` per trial, the claim check inside ``mark_running`` and ``upsert_result`` (each write with and
   without it, the difference counted), and the release. Per trial = all of it / trials; it adds to the
   orchestration cost per trial that ``benchmarks.orchestration`` measures (0.144 s at 2,000 trials, target
   <= 0.3 s). The driver's peak RSS is this process's ``VmHWM`` (target < 1.5 GB).
2. Many drivers (``--drivers``, default 8 processes) over one PostgreSQL leaderboard, ``--shared`` (200)
   trivial trials (a sleep of ``--trivial-s``, then the result written under the claim), each driver given
   half of them (overlapping 50 %: driver i the 100 from ``i * 200 / drivers`` on, wrapping), all started
   at once through :func:`orchestrator.claiming.train_claimed` (the launcher's own hand-out and wait loop):
   trials trained twice (by any two drivers) = 0, rows lost (not complete at the end) = 0, and the wall time
   against one driver training all of them alone.

Everything is written under a temporary folder and in fresh PostgreSQL databases (``--pg``, an admin URL).

    python -m benchmarks.claims [--trials 2000] [--drivers 8] [--shared 200] [--pg postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.output import add_out_argument, md_table, measured_line, write_result

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def pg_database(admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"h2ot_bench_claims_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def specs(n: int, offset: int = 0) -> list[Any]:
    from h2ot_core.contracts import TrialSpec

    return [TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=offset + i) for i in range(n)]


def result(spec: Any) -> Any:
    from h2ot_core.contracts import Cost, MetricRecord, TrialResult

    metrics = [MetricRecord("mpjpe", "test", 40.0), MetricRecord("p_mpjpe", "test", 30.0)]
    return TrialResult(spec.trial_key, spec.to_dict(), "complete", metrics, Cost(100, 1.0, 1.2, 3.0), epochs_run=1)


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overhead(url: str, trials: int, lease: float, trial_s: float) -> dict[str, float]:
    """Seconds per trial of each part of one driver's claim work (see the module docstring)."""
    from results.claims import ClaimOwner
    from results.store import LeaderboardStore

    store = LeaderboardStore(url)
    todo = specs(trials)
    keys = [s.trial_key for s in todo]
    owner = ClaimOwner("bench")
    store.begin_run(owner, grid_path="bench.yaml", grid_hash="0" * 64)
    hand_out = timed(lambda: store.hand_out(keys, owner, lease, keep=["complete"]))
    renew = statistics.median(timed(lambda: store.renew(owner, lease)) for _ in range(5))
    beats = trials * trial_s / (lease / 3)  # renewals over the campaign, trials one after another
    sample = todo[: min(200, trials)]
    plain = timed(lambda: [store.mark_running(s, "bench") or store.upsert_result(result(s), campaign="bench")
                           for s in sample])
    checked = timed(lambda: [store.mark_running(s, "bench", run_id=owner.run_id)
                             or store.upsert_result(result(s), campaign="bench", run_id=owner.run_id)
                             for s in sample])
    release = timed(lambda: store.end_run(owner, "complete"))
    store.engine.dispose()
    check = max(0.0, checked - plain) / len(sample)
    parts = {"hand-out (every trial claimed, one transaction)": hand_out / trials,
             "heartbeat renewals": renew * beats / trials,
             "claim check in mark_running + upsert_result": check,
             "release at the end": release / trials}
    parts["total"] = sum(parts.values())
    return parts


def trivial_trainer(trained_log: Path, trivial_s: float) -> Callable[..., Any]:
    """A ``train_claimed`` trainer: each trial sleeps ``trivial_s`` and is written under the claim; every trial
    trained is appended to ``trained_log`` (one key a line)."""
    def train(campaign: str, experiment: str, todo: list[Any], opts: Any, store: Any, *, run_id: str,
              **_: Any) -> SimpleNamespace:
        outcomes: dict[str, str] = {}
        lost: set[str] = set()
        for spec in todo:
            if not store.mark_running(spec, campaign, run_id=run_id):
                lost.add(spec.trial_key)
                outcomes[spec.trial_key] = "lost"
                continue
            time.sleep(trivial_s)
            with trained_log.open("a") as f:
                f.write(spec.trial_key + "\n")
            if store.upsert_result(result(spec), campaign=campaign, run_id=run_id):
                outcomes[spec.trial_key] = "complete"
            else:
                lost.add(spec.trial_key)
                outcomes[spec.trial_key] = "lost"
        return SimpleNamespace(outcomes=outcomes, errors={}, lost=lost)

    return train


def driver(url: str, index: int, keys_from: int, count: int, shared: int, folder: str, trivial_s: float,
           start_at: float) -> None:
    """One driver process: ``count`` of the ``shared`` trials from ``keys_from`` on (wrapping), under claims."""
    import os

    from orchestrator.claiming import launch, train_claimed
    from results.store import LeaderboardStore

    os.environ["H2OT_CLAIM_LEASE_S"] = "10"
    everything = specs(shared)
    mine = [everything[(keys_from + i) % shared] for i in range(count)]
    store = LeaderboardStore(url)
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    with launch(store, f"driver{index}") as run:
        train_claimed(run, "bench", mine, None, store, keep=["complete"],  # type: ignore[arg-type]
                      trainer=trivial_trainer(Path(folder) / f"trained{index}.txt", trivial_s))
    (Path(folder) / f"wall{index}.txt").write_text(f"{began} {time.time()}")
    store.engine.dispose()


def many_drivers(url: str, drivers: int, shared: int, trivial_s: float, folder: Path) -> dict[str, float]:
    """Run ``drivers`` processes at once (or one, given all trials); trained twice, rows lost and wall time."""
    from results.store import LeaderboardStore

    store = LeaderboardStore(url)
    ctx = mp.get_context("spawn")
    start_at = time.time() + 8.0  # spawned interpreters import SQLAlchemy and the store first
    count = shared // 2 if drivers > 1 else shared
    procs = [ctx.Process(target=driver, args=(url, i, i * shared // drivers, count, shared, str(folder), trivial_s,
                                              start_at)) for i in range(drivers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    logs = [folder / f"trained{i}.txt" for i in range(drivers)]
    trained = [key for log in logs if log.exists() for key in log.read_text().split()]
    walls = [tuple(map(float, (folder / f"wall{i}.txt").read_text().split())) for i in range(drivers)]
    statuses = store.trial_statuses([s.trial_key for s in specs(shared)])
    store.engine.dispose()
    return {"trained twice": len(trained) - len(set(trained)),
            "rows lost": shared - sum(v == "complete" for v in statuses.values()),
            "wall": max(e for _, e in walls) - min(b for b, _ in walls),
            "failed drivers": sum(p.exitcode != 0 for p in procs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--lease-s", type=float, default=60.0)
    parser.add_argument("--trial-s", type=float, default=0.144, help="seconds per trial the renewals are spread over")
    parser.add_argument("--drivers", type=int, default=8)
    parser.add_argument("--shared", type=int, default=200)
    parser.add_argument("--trivial-s", type=float, default=0.05)
    parser.add_argument("--pg", default=PG_ADMIN)
    add_out_argument(parser, "claims")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = overhead(f"sqlite:///{Path(tmp) / 'lb.sqlite'}", args.trials, args.lease_s, args.trial_s)
        with pg_database(args.pg) as url:
            pg = overhead(url, args.trials, args.lease_s, args.trial_s)
        rss = peak_rss_mib()
        runs = {}
        for n in (1, args.drivers):
            folder = Path(tmp) / f"drivers{n}"
            folder.mkdir()
            with pg_database(args.pg) as url:
                runs[n] = many_drivers(url, n, args.shared, args.trivial_s, folder)

    ms = "{:.2f} ms".format
    lines = [f"Claims at {args.trials:,} trials (one driver; lease {args.lease_s:g} s, renewed every third):", "",
             *md_table(["claim work per trial", "SQLite file", "PostgreSQL", "PostgreSQL / SQLite"],
                       [[f"**{k}**" if k == "total" else k, ms(v * 1e3), ms(pg[k] * 1e3),
                         f"{pg[k] / v:.2f}×" if v else "—"] for k, v in sqlite.items()]),
             "",
             f"Orchestration per trial at 2,000 trials (benchmarks/results/orchestration.md, 0.144 s) plus the "
             f"claim total: {0.144 + max(sqlite['total'], pg['total']):.3f} s (target ≤ 0.3 s). Peak RSS of this "
             f"process after both: {rss:.0f} MiB (the campaign driver measured 957 MiB at 2,000 trials; "
             f"target < 1.5 GB).", "",
             f"{args.drivers} drivers over one PostgreSQL leaderboard, {args.shared} trivial trials "
             f"({args.trivial_s:g} s each), every driver given {args.shared // 2} of them (overlap 50 %):", "",
             *md_table(["", "1 driver, all trials", f"{args.drivers} drivers, overlapping", "ratio"],
                       [["trials trained twice", runs[1]["trained twice"], f"**{runs[args.drivers]['trained twice']}**",
                         "—"],
                        ["rows lost", runs[1]["rows lost"], f"**{runs[args.drivers]['rows lost']}**", "—"],
                        ["drivers that failed", runs[1]["failed drivers"], runs[args.drivers]["failed drivers"], "—"],
                        ["wall time", f"{runs[1]['wall']:.1f} s", f"{runs[args.drivers]['wall']:.1f} s",
                         f"{runs[args.drivers]['wall'] / runs[1]['wall']:.2f}×"]]),
             "",
             measured_line("benchmarks.claims")]
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
