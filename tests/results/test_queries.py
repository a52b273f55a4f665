"""Leaderboard queries: combined filters, sorting, grouping, speed-ups and did-you-mean errors."""

from __future__ import annotations

import statistics

import pytest
from smoke_data import SMOKE_VALUES, fill_smoke

from results.errors import ResultsError
from results.queries import leaderboard
from results.store import LeaderboardStore


def test_combined_filters_sort_and_top(smoke_store: LeaderboardStore) -> None:
    rows = leaderboard(smoke_store.engine, {"pruner": ["tpc", "tps"], "recoverer": ["tra"], "seed": ["0"]},
                       campaign="smoke", status=["complete"])
    expected = sorted((v[0], p) for (p, r, _, s), v in SMOKE_VALUES.items()
                      if p in ("tpc", "tps") and r == "tra" and s == 0)
    assert [(r["mpjpe"], r["pruner"]) for r in rows] == expected
    top = leaderboard(smoke_store.engine, {}, sort="p_mpjpe", top=2)
    assert [r["p_mpjpe"] for r in top] == sorted(v[1] for v in SMOKE_VALUES.values())[:2]
    worst = leaderboard(smoke_store.engine, {}, status=["complete"], descending=True, top=1)
    assert worst[0]["mpjpe"] == max(v[0] for v in SMOKE_VALUES.values())


def test_incomplete_trials_sort_last(smoke_store: LeaderboardStore) -> None:
    rows = leaderboard(smoke_store.engine, {})
    assert len(rows) == len(SMOKE_VALUES) + 2
    assert {r["status"] for r in rows[-2:]} == {"failed", "running"}
    assert all(r["mpjpe"] is None for r in rows[-2:])


def test_speedup_against_unpruned_baseline(smoke_store: LeaderboardStore) -> None:
    row = leaderboard(smoke_store.engine, {"pruner": ["tps"], "recoverer": ["tri"]})[0]
    assert row["speedup_flops"] == pytest.approx(2.0 / 1.1)
    assert row["speedup_latency"] == pytest.approx(10.0 / 5.5)
    assert row["gflops_change_pct"] == pytest.approx(100 * (1.1 / 2.0 - 1))
    by_speed = leaderboard(smoke_store.engine, {}, sort="speedup_latency", status=["complete"])
    assert by_speed[0]["speedup_latency"] == pytest.approx(2.0)  # tpc/tri: 10 ms -> 5 ms


def test_group_by_mean_matches_hand_computed(smoke_store: LeaderboardStore) -> None:
    rows = leaderboard(smoke_store.engine, {}, status=["complete"], group_by=["pruner"], agg="mean")
    tpc = [v[0] for (p, *_), v in SMOKE_VALUES.items() if p == "tpc"]
    row = next(r for r in rows if r["pruner"] == "tpc")
    assert row["n"] == len(tpc)
    assert row["mpjpe"] == pytest.approx(statistics.fmean(tpc))
    assert row["mpjpe_std"] == pytest.approx(statistics.stdev(tpc))
    assert [r["pruner"] for r in rows] == ["none", "tpc", "tps"]  # ranked by mean MPJPE


def test_group_by_best_keeps_best_trial(smoke_store: LeaderboardStore) -> None:
    rows = leaderboard(smoke_store.engine, {}, group_by=["recoverer"], agg="best", status=["complete"])
    assert {r["recoverer"]: r["mpjpe"] for r in rows} == {"tra": 40.0, "tri": 43.5}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"filters": {"prunr": ["tpc"]}}, "Did you mean: pruner"),
    ({"group_by": ["recoverr"]}, "Did you mean: recoverer"),
    ({"sort": "mpjep"}, "Did you mean: mpjpe"),
    ({"campaign": "smok"}, "Did you mean: smoke"),
    ({"status": ["complet"]}, "Did you mean: complete"),
    ({"filters": {"frames": ["many"]}}, "frames takes whole numbers"),
    ({"agg": "median"}, "Unknown aggregation"),
])
def test_bad_query_input_is_a_clear_error(smoke_store: LeaderboardStore, kwargs: dict, message: str) -> None:
    kwargs.setdefault("filters", {})
    with pytest.raises(ResultsError, match=message):
        leaderboard(smoke_store.engine, **kwargs)


def test_sql_like_input_is_only_a_value(smoke_store: LeaderboardStore) -> None:
    assert leaderboard(smoke_store.engine, {"pruner": ["tpc' OR '1'='1"]}) == []


@pytest.mark.postgres
def test_queries_and_tables_on_postgresql(pg_server_db: str) -> None:
    from sqlalchemy import delete

    from results.schema import Campaign, CampaignTrial, Metric, Trial
    from results.table_spec import SPEC_DIR, load_spec
    from results.tables import build_table

    store = LeaderboardStore(pg_server_db)
    with store.engine.begin() as conn:  # the session database is shared with the store tests
        for model in (Metric, CampaignTrial, Trial, Campaign):
            conn.execute(delete(model))
    fill_smoke(store)
    rows = leaderboard(store.engine, {"pruner": ["tpc", "tps"]}, top=3)
    assert [r["mpjpe"] for r in rows] == sorted(v[0] for (p, *_), v in SMOKE_VALUES.items() if p != "none")[:3]
    grouped = leaderboard(store.engine, {}, status=["complete"], group_by=["pruner"], agg="mean")
    assert [r["pruner"] for r in grouped] == ["none", "tpc", "tps"]
    table = build_table(store.engine, load_spec(SPEC_DIR / "smoke.yaml"))
    assert table.cells[(("tpc",), ("tra", "mpjpe"))].mean == pytest.approx(42.5)


def test_grouped_mean_has_bootstrap_interval_and_paired_p_against_the_baseline(
        smoke_store: LeaderboardStore) -> None:
    from scipy.stats import ttest_rel

    rows = leaderboard(smoke_store.engine, {}, status=["complete"], group_by=["pruner", "recoverer"], agg="mean")
    by = {(r["pruner"], r["recoverer"]): r for r in rows}
    base = [SMOKE_VALUES[("none", "tra", "", s)][0] for s in (0, 1)]
    tpc = [SMOKE_VALUES[("tpc", "tra", "1:9", s)][0] for s in (0, 1)]
    # two seeds: the percentile bootstrap of the mean spans the two values
    assert (by[("none", "tra")]["mpjpe_ci_low"], by[("none", "tra")]["mpjpe_ci_high"]) == (min(base), max(base))
    assert by[("tpc", "tra")]["p_vs_baseline"] == pytest.approx(ttest_rel(tpc, base).pvalue)
    assert by[("none", "tra")]["p_vs_baseline"] is None  # the baseline itself
    assert by[("tps", "tri")]["p_vs_baseline"] is None  # seed 0 only: no paired test possible
