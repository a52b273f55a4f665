"""What the plots, tables and report show is what the trials hold: seeds averaged with the tables' intervals,
no point averaging two configurations, contended latencies marked, percentages not labelled ms, and numbers
rounded to the protocol's 0.1 mm so a ranking stays visible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from smoke_data import complete, smoke_spec

from results.numbers import CONTENDED_NOTE
from results.plots import pareto_chart, seed_means, staircase, token_series, tokens_chart
from results.queries import leaderboard
from results.render import build_tables, delta_label
from results.report import build_report
from results.store import LeaderboardStore
from results.table_campaigns import resolve_specs
from results.tables import build_table

SMOKE_SPEC = Path(__file__).resolve().parents[2] / "search_spaces" / "tables" / "smoke.yaml"


def add(store: LeaderboardStore, campaign: str, pruner: str, recoverer: str, schedule: str, seed: int,
        mpjpe: float, gflops: float = 1.0, latency: float = 5.0, contended: bool = False) -> None:
    spec = smoke_spec(pruner, recoverer, schedule, seed)
    result = complete(spec, mpjpe, mpjpe - 10, gflops, latency)
    assert result.cost is not None
    result.cost = dataclasses.replace(result.cost, latency_contended=contended)
    store.mark_running(spec, campaign)
    store.upsert_result(result, campaign=campaign)


def test_the_tokens_plot_draws_one_series_per_recoverer_and_never_averages_them(sqlite_url: str,
                                                                              tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("tok")
    for seed, noise in enumerate((0.0, 1.0, -1.0)):
        add(store, "tok", "tpc", "tra", "1:9", seed, 40.0 + noise)
        add(store, "tok", "tpc", "tri", "1:9", seed, 50.0 + noise)
        add(store, "tok", "tpc", "tra", "1:13", seed, 38.0 + noise)
    rows = leaderboard(store.engine, campaign="tok", status=["complete"])
    series, baselines = token_series(rows)
    assert {k: [(p.x, p.y, p.n) for p in v] for k, v in series.items()} == {
        "tpc+tra": [(9, 40.0, 3), (13, 38.0, 3)], "tpc+tri": [(9, 50.0, 3)]}  # 45.0 would be no trial's
    assert baselines == {}
    assert [p.name for p in tokens_chart(rows, tmp_path / "tokens")] == ["tokens.png", "tokens.pdf"]


def test_the_pareto_plot_uses_seed_means_with_the_tables_intervals(smoke_store: LeaderboardStore) -> None:
    rows = leaderboard(smoke_store.engine, campaign="smoke", status=["complete"])
    points = {(p.row["pruner"], p.row["recoverer"]): p for p in seed_means(rows, "mpjpe", "gflops")}
    assert len(points) == 5 and points[("tpc", "tra")].n == 2  # seeds 0 and 1 are one point
    table = build_table(smoke_store.engine, resolve_specs(smoke_store.engine, [SMOKE_SPEC])[0])
    cell = next(c for (rk, ck), c in table.cells.items() if rk == ("tpc",) and ck[0] == "tra")
    p = points[("tpc", "tra")]
    assert (p.y, p.ci_low, p.ci_high) == (cell.mean, cell.ci_low, cell.ci_high) == (42.5, 41.0, 44.0)
    assert points[("tps", "tri")].yerr == (0.0, 0.0)  # one seed: no interval


def test_the_front_is_a_staircase() -> None:
    # (GFLOPs, MPJPE), both lower-better: along x, then down to the next point
    assert staircase([(2.0, 41.0), (1.1, 43.5), (1.2, 42.5)]) == (
        [1.1, 1.2, 1.2, 2.0, 2.0], [43.5, 43.5, 42.5, 42.5, 41.0])


def test_contended_latencies_are_marked_in_tables_and_the_report(smoke_store: LeaderboardStore,
                                                                 tmp_path: Path) -> None:
    add(smoke_store, "smoke", "tpmo", "tra", "1:9", 0, 44.0, 1.2, 7.5, contended=True)
    build_tables(smoke_store.engine, [SMOKE_SPEC], tmp_path / "t", skip_empty=False)
    md = (tmp_path / "t" / "smoke.md").read_text(encoding="utf-8")
    assert "| TPMo | 44.0 | – | 1.20 | −40.0% | 7.50† | −25.0%† |" in md
    assert "| TPC | 42.5 ± 2.1 [41.0, 44.0] | 43.5 | 1.17 | −41.7% | 5.67 | −43.3% |" in md  # not contended
    assert CONTENDED_NOTE in md and "ΔLatency (%)" in md and "ΔLatency (ms)" not in md
    assert r"7.50\textdagger{} & $-$25.0\%\textdagger{}" in (tmp_path / "t" / "smoke.tex").read_text(encoding="utf-8")

    page = build_report(smoke_store.engine, "smoke", tmp_path / "r").read_text(encoding="utf-8")
    assert "Latency: 1 of 8 timed trials were timed while other trials shared the CPU (contended)" in page
    tpmo = next(line for line in page.splitlines() if line.startswith("| ") and "| tpmo |" in line)
    assert "| 7.50† |" in tpmo
    assert "ΔLatency (%)" in page and "ΔLatency (ms)" not in page


def test_a_report_without_contention_says_nothing_about_it(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    page = build_report(smoke_store.engine, "smoke", tmp_path / "r").read_text(encoding="utf-8")
    assert "contended" not in page and "†" not in page


def test_the_report_rounds_to_a_tenth_of_a_millimetre(sqlite_url: str, tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("close")
    for i, (pruner, mpjpe) in enumerate((("tpc", 591.24), ("tps", 591.31), ("tpa", 591.38), ("tpmo", 591.16))):
        add(store, "close", pruner, "tra", "1:9", 0, mpjpe, gflops=0.02013 + i / 1e4, latency=12.345)
    page = build_report(store.engine, "close", tmp_path / "r").read_text(encoding="utf-8")
    leader = [line for line in page.split("## Leaderboard")[1].split("##")[0].splitlines() if line.startswith("| ")]
    cells = [line.split(" | ") for line in leader[1:]]
    assert [c[6] for c in cells] == ["591.2", "591.2", "591.3", "591.4"]  # 3 s.f. printed "591" four times
    assert [c[7] for c in cells] == ["581.2", "581.2", "581.3", "581.4"]
    assert {c[8] for c in cells} == {"0.0201", "0.0202", "0.0203", "0.0204"} and {c[10] for c in cells} == {"12.35"}


@pytest.mark.parametrize(("label", "expected"), [("Latency (ms)", "ΔLatency (%)"), ("GFLOPs", "ΔGFLOPs (%)"),
                                                  ("latency_ms", "Δlatency_ms (%)")])
def test_a_change_is_labelled_a_percentage(label: str, expected: str) -> None:
    assert delta_label(label) == expected


def test_pareto_chart_marks_contended_latencies(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    add(smoke_store, "smoke", "tpmo", "tra", "1:9", 0, 44.0, 1.2, 7.5, contended=True)
    rows = leaderboard(smoke_store.engine, campaign="smoke", status=["complete"])
    points = seed_means(rows, "mpjpe", "latency_ms")
    assert [p.row["pruner"] for p in points if p.contended] == ["tpmo"]
    assert not any(p.contended for p in seed_means(rows, "mpjpe", "gflops"))  # a FLOPs plot has no latency
    assert pareto_chart(rows, tmp_path / "lat", cost="latency_ms")[0].is_file()
