"""What the pages compute, without a server: pending trials from the stored plan, a search's hypervolume, the
grouped statistics as ``h2ot leaderboard --agg mean`` gives them, and query strings that round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from smoke_data import fill_smoke

from orchestrator.grid import load_grid
from orchestrator.web import views
from orchestrator.web.plan import plan_of
from results.errors import ResultsError
from results.front import campaign_front
from results.queries import leaderboard
from results.store import LeaderboardStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path) -> LeaderboardStore:
    store = LeaderboardStore(f"sqlite:///{tmp_path / 'leaderboard.sqlite'}")
    fill_smoke(store)
    return store


def test_pending_trials_come_from_the_stored_grid(store):
    grid = load_grid(REPO / "search_spaces" / "smoke.yaml")
    keys = [s.trial_key for s in grid.expand()]
    store.ensure_campaign("half", grid_yaml=grid.resolved_yaml)
    for spec in grid.expand()[:1]:
        store.mark_running(spec, "half")
    (row,) = views.campaign_rows(store.engine, ["half"])
    assert (row["running"], row["pending"], row["total"]) == ("1", str(len(keys) - 1), str(len(keys)))
    assert (row["kind"], row["dataset"], row["profile"]) == ("grid", "synthetic", "–")
    assert row["eta"] == "–"  # no trial finished yet: no estimate


def test_a_search_shows_its_hypervolume_a_grid_does_not(store):
    engine = store.engine
    grid_data = views.pareto(engine, "smoke", "gflops", "mpjpe")
    assert grid_data["hypervolume"] is None and "non-dominated of 7" in grid_data["note"]
    search = load_grid(REPO / "search_spaces" / "search" / "smoke.yaml")
    store.ensure_campaign("smoke", grid_yaml=search.resolved_yaml)
    plan = plan_of(search.resolved_yaml)
    assert plan.kind == "search" and plan.trials == 6 and plan.pending(set()) == 6
    data = views.pareto(engine, "smoke", "gflops", "mpjpe")
    front = campaign_front(engine, "smoke", "gflops", "mpjpe")
    assert data["hypervolume"] == front.hypervolume and "Hypervolume" in data["note"]
    assert [data["keys"][i] for i in data["front"]] == [r["trial_key"] for r in front.front]
    with pytest.raises(ResultsError, match="Did you mean"):
        views.pareto(engine, "smoke", "gflops", "mpjep")


def test_grouped_rows_are_the_clis_numbers(store):
    engine = store.engine
    q = views.BoardQuery.parse(engine, {"group": ["seeds"], "status": ["complete"]}, "smoke")
    board = views.board(engine, q)
    cli = leaderboard(engine, campaign="smoke", status=["complete"], group_by=list(views.SEED_GROUP), agg="mean")
    assert board["total"] == len(cli) == 5
    by_config = {(r["cells"]["pruner"], r["cells"]["recoverer"]): r for r in board["rows"]}
    tpc = next(r for r in cli if r["pruner"] == "tpc" and r["recoverer"] == "tra")
    cells = by_config[("tpc", "tra")]["cells"]
    assert cells["n"] == "2" and cells["p_vs_baseline"] == f"{tpc['p_vs_baseline']:.3g}"
    assert cells["mpjpe"].startswith(f"{tpc['mpjpe']:.2f} ± {tpc['mpjpe_std']:.2f} [")


def test_query_strings_round_trip_and_bad_values_are_user_errors(store):
    engine = store.engine
    params = {"pruner": ["tpc", "tps"], "status": ["complete"], "sort": ["gflops"], "dir": ["desc"], "page": ["2"],
              "per": ["2"], "x": ["latency_ms"]}
    q = views.BoardQuery.parse(engine, params, "smoke")
    again = views.BoardQuery.parse(engine, {k: [v for kk, v in q.params(page=2) if kk == k]
                                            for k, _ in q.params(page=2)}, "smoke")
    assert again == q
    board = views.board(engine, q)
    assert board["total"] == 5 and board["pages"] == 3 and len(board["rows"]) == 2
    for bad, match in (({"sort": ["mpjep"]}, "Did you mean"), ({"status": ["done"]}, "status"),
                       ({"page": ["two"]}, "whole number"), ({"pruner": ["tpc"], "frames": ["x"]}, "whole numbers"),
                       ({"x": ["params"]}, "Pareto x axis")):
        with pytest.raises(ResultsError, match=match):
            views.board(engine, views.BoardQuery.parse(engine, bad, "smoke"))
    with pytest.raises(ResultsError, match="Did you mean"):
        views.BoardQuery.parse(engine, {}, "smok")
