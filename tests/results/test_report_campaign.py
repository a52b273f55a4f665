"""``h2ot report --campaign NAME``: a profiled campaign gets its grid's tables; stopped trials are counted."""

from __future__ import annotations

from pathlib import Path

import yaml
from smoke_data import SMOKE_VALUES, complete, smoke_spec
from typer.testing import CliRunner

from h2ot_core.contracts import TrialResult, Usage
from orchestrator.cli import app
from results.store import LeaderboardStore

runner = CliRunner()


def test_report_of_a_profiled_campaign_has_its_grids_tables(sqlite_url: str, tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("smoke-tiny", grid_yaml=yaml.safe_dump({"name": "smoke", "profile": "tiny"}),
                          max_device_hours=2.0, price_per_device_hour=3.0)
    for (pruner, recoverer, schedule, seed), values in SMOKE_VALUES.items():
        spec = smoke_spec(pruner, recoverer, schedule, seed)
        store.mark_running(spec, "smoke-tiny")
        store.upsert_result(complete(spec, *values), campaign="smoke-tiny")
    stopped = smoke_spec("tpa", "tra", "1:9")
    store.mark_running(stopped, "smoke-tiny")
    store.upsert_result(TrialResult(stopped.trial_key, stopped.to_dict(), "stopped",
                                    usage=Usage(1700.0, 100.0, 0.5, 20.0, 300.0, "cpu_peak_rss", "Test CPU")),
                        campaign="smoke-tiny")

    res = runner.invoke(app, ["report", "--campaign", "smoke-tiny", "--out", str(tmp_path / "r"),
                              "--db-url", sqlite_url])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r" / "smoke-tiny.md").read_text(encoding="utf-8")
    assert "**smoke**" in page and "Campaign: `smoke-tiny` (profile `tiny`), a run of grid `smoke`." in page
    assert "| stopped | 1 |" in page and "1 stopped" in page
    # what it cost: only the stopped trial measured its device time (the others predate it)
    assert ("- device-hours: 0.500 spent ($1.50 at $3/device-hour); 0.500 of it on failed or stopped trials; "
            f"{len(SMOKE_VALUES)} trial(s) without device time") in page
    assert "- budget: 2.00 device-hours, 1.50 left" in page
    assert (tmp_path / "r" / "tables" / "smoke.md").is_file()
    assert "| package versions | python 3.11.9, torch 2.13.0 |" in page
    assert (tmp_path / "r" / "figures" / "pareto.png").is_file()


def test_report_needs_one_campaign(sqlite_url: str) -> None:
    LeaderboardStore(sqlite_url).ensure_campaign("a")
    res = runner.invoke(app, ["report", "--db-url", sqlite_url])
    assert res.exit_code != 0 and "name the campaign" in res.output
    res = runner.invoke(app, ["report", "a", "--campaign", "b", "--db-url", sqlite_url])
    assert res.exit_code != 0 and "two campaigns given" in res.output


def test_report_draws_the_loss_curves_the_leaderboard_keeps(sqlite_url: str, tmp_path: Path) -> None:
    import dataclasses

    from smoke_data import complete, smoke_spec

    from results.db import make_engine
    from results.report import build_report
    from results.store import LeaderboardStore

    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("curves")
    for i, pruner in enumerate(("tpc", "tps")):
        spec = smoke_spec(pruner, "tra", "1:9")
        history = [{"epoch": e, "train_loss": 1.0 / e + i, "test_mpjpe": 100.0 - e} for e in (1, 2)]
        store.upsert_result(dataclasses.replace(complete(spec, 40.0 + i, 30.0, 1.0, 5.0), history=history),
                            campaign="curves")
    page = build_report(make_engine(sqlite_url), "curves", tmp_path).read_text()
    assert "![Learning curves](figures/curves.png)" in page
    assert (tmp_path / "figures" / "curves.png").stat().st_size > 0


def test_report_lists_each_launch_and_says_when_they_ran_different_grids(sqlite_url: str, tmp_path: Path) -> None:
    """``--append`` lets a campaign run a second grid: its report names every launch's grid, not only the last."""
    from results.claims import ClaimOwner
    from results.db import make_engine
    from results.report import build_report

    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("mixed")
    store.upsert_result(complete(smoke_spec("tpc", "tra", "1:9"), 40.0, 30.0, 1.0, 5.0), campaign="mixed")
    for path, digest in (("grids/a.yaml", "a" * 64), ("grids/b.yaml", "b" * 64)):
        owner = ClaimOwner("mixed")
        store.begin_run(owner, grid_path=path, grid_hash=digest)
        store.end_run(owner, "complete")
    page = build_report(make_engine(sqlite_url), "mixed", tmp_path).read_text()
    launches = page[page.index("## Launches"):]
    assert "These launches ran 2 different grids" in launches
    assert "`grids/a.yaml`" in launches and "`grids/b.yaml`" in launches and launches.count("| complete |") == 2
