"""Web leaderboard benchmark: ``h2ot serve`` over the synthetic 10,000-trial leaderboard, SQLite and PostgreSQL.

The leaderboard is :mod:`benchmarks.results_bench`'s (``fill``: trials spread over its seven campaigns, 20 metric
rows each), plus one campaign ``all`` that holds every trial, so a campaign page lists 10,000 trials. For each
database the app of ``h2ot serve`` (uvicorn, read-only engine) answers HTTP requests; the times are medians of ``--repeats`` requests
after one warm-up, as an HTTP client on the same machine sees them (the app in a thread of this process):

- the campaign page of ``all`` (the live counts, the first 50 rows ranked by MPJPE, the filter choices):
  target < 300 ms;
- the Pareto data of ``all`` (``/api/pareto``, every complete trial with its speed-ups and the front): < 500 ms;
- for scale, a round-robin campaign (~1,430 trials) and the campaigns page.

    python -m benchmarks.web [--trials 10000] [--repeats 15] [--no-postgres] [--out benchmarks/results/web.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, insert, select

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from benchmarks.results_bench import CAMPAIGNS, fill
from results.db import make_engine
from results.schema import Campaign, CampaignTrial, Trial

TARGETS_MS = {"campaign page": 300.0, "Pareto data": 500.0}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def link_all(engine: Engine) -> None:
    """Campaign ``all``: every trial of the leaderboard."""
    with engine.begin() as conn:
        # fill() gave its campaigns explicit ids (a PostgreSQL sequence did not see them): take the next one
        cid = len(CAMPAIGNS) + 1
        conn.execute(insert(Campaign).values(id=cid, name="all", created_at=conn.execute(
            select(Campaign.created_at).limit(1)).scalar_one()))
        ids = list(conn.execute(select(Trial.id)).scalars())
        conn.execute(insert(CampaignTrial), [{"campaign_id": cid, "trial_id": t} for t in ids])


def prepare(url: str, trials: int) -> None:
    engine = make_engine(url)
    fill(engine, trials, 20)
    link_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    import uuid

    import psycopg
    from psycopg import sql

    name = f"h2ot_bench_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def median_ms(url: str, repeats: int) -> float:
    """Median wall time of ``repeats`` GETs of ``url`` (after one warm-up), in ms; the (gzipped) body read fully."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})  # as a browser asks

    def get() -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            assert response.status == 200, url
        return 1000 * (time.perf_counter() - t0)

    get()
    return statistics.median(get() for _ in range(repeats))


@contextmanager
def served(db_url: str) -> Iterator[str]:
    """The app of ``h2ot serve`` (read-only engine, uvicorn) on a free loopback port, in a thread; its base URL."""
    import uvicorn

    from orchestrator.web.app import Settings, create_app
    from results.db import mask_url, open_read_only

    settings = Settings(open_read_only(db_url, upgrade=False), mask_url(db_url))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        settings.engine.dispose()


def measure(db_url: str, repeats: int) -> dict[str, float]:
    small = CAMPAIGNS[0]
    with served(db_url) as base:
        return {
            "campaign page": median_ms(f"{base}/campaign?name=all", repeats),
            "Pareto data": median_ms(f"{base}/api/pareto?name=all&x=gflops&y=mpjpe", repeats),
            "Pareto data, latency axis": median_ms(f"{base}/api/pareto?name=all&x=latency_ms&y=mpjpe", repeats),
            f"campaign page ({small}, ~1/7 of the trials)": median_ms(f"{base}/campaign?name={small}", repeats),
            "campaign page, filtered (pruner tpc, h36m)":
                median_ms(f"{base}/campaign?name=all&pruner=tpc&dataset=h36m", repeats),
            "campaign page, page 20": median_ms(f"{base}/campaign?name=all&page=20", repeats),
            "campaigns page (8 campaigns)": median_ms(f"{base}/", repeats),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    add_out_argument(parser, "web")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        prepare(sqlite_url, args.trials)
        results["SQLite"] = measure(sqlite_url, args.repeats)
        print("SQLite:", {k: f"{v:.0f} ms" for k, v in results["SQLite"].items()}, flush=True)
    if not args.no_postgres:
        with postgres_url() as pg_url:
            prepare(pg_url, args.trials)
            results["PostgreSQL"] = measure(pg_url, args.repeats)
            print("PostgreSQL:", {k: f"{v:.0f} ms" for k, v in results["PostgreSQL"].items()}, flush=True)
    names = list(next(iter(results.values())))
    rows = [(name, *(f"{results[db][name]:.0f} ms" for db in results),
             f"< {TARGETS_MS[name]:.0f} ms" if name in TARGETS_MS else "–") for name in names]
    table = md_table(("request", *(f"median, {db}" for db in results), "target"), rows)
    write_result([*table, "", f"`h2ot serve` over {args.trials:,} trials ({20 * args.trials:,} metric rows); campaign "
                  f"`all` holds every trial; medians of {args.repeats} HTTP requests after a warm-up, client and "
                  f"server on this machine; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
                  f"(other work shared the cores). " + measured_line("benchmarks.web")], args.out)


if __name__ == "__main__":
    main()
