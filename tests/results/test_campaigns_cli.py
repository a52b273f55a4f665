"""`h2ot campaign list`, and `--campaign` naming several campaigns (their trials together) on the reading
commands."""

from __future__ import annotations

import json

import pytest
from smoke_data import complete, smoke_spec
from typer.testing import CliRunner

from orchestrator.cli import app
from results.store import LeaderboardStore

runner = CliRunner()


@pytest.fixture
def db(smoke_store: LeaderboardStore, sqlite_url: str) -> list[str]:
    """Campaign ``smoke`` (the fixture's) and ``other``: one more complete trial, and one shared with smoke."""
    smoke_store.ensure_campaign("other", grid_path="search_spaces/other.yaml")
    extra = smoke_spec("tps", "tra", "1:13")
    smoke_store.upsert_result(complete(extra, 50.0, 38.0, 1.0, 5.0), campaign="other")
    smoke_store.link("other", [smoke_spec("tpc", "tra", "1:9").trial_key])
    return ["--db-url", sqlite_url]


def test_campaign_list_shows_every_campaign_with_its_counts(db: list[str]) -> None:
    res = runner.invoke(app, ["campaign", "list", "--format", "json", *db])
    assert res.exit_code == 0, res.output
    rows = {r["campaign"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"other", "smoke"}
    assert rows["other"]["grid"] == "search_spaces/other.yaml"
    assert (rows["other"]["trials"], rows["other"]["complete"]) == (2, 2)
    assert (rows["smoke"]["failed"], rows["smoke"]["running"]) == (1, 1)
    table = runner.invoke(app, ["campaign", "list", *db])
    assert table.exit_code == 0 and "other" in table.stdout and "search_spaces/other.yaml" in table.stdout


def test_campaign_takes_several_names_on_the_reading_commands(db: list[str], tmp_path) -> None:
    def keys(*names: str) -> set[str]:
        res = runner.invoke(app, ["leaderboard", "--campaign", ",".join(names), "--format", "json", *db])
        assert res.exit_code == 0, res.output
        return {r["trial_key"] for r in json.loads(res.stdout)}

    assert keys("smoke", "other") == keys("smoke") | keys("other") and len(keys("other")) == 2
    assert keys("smoke") & keys("other")  # the shared trial counts once
    bad = runner.invoke(app, ["leaderboard", "--campaign", "smoke,othr", *db])
    assert bad.exit_code == 2 and "othr" in bad.stderr and "Did you mean: other" in bad.stderr
    front = runner.invoke(app, ["pareto", "--campaign", "smoke,other", "--format", "json", *db])
    assert front.exit_code == 0, front.output
    shown = {r["trial_key"] for r in json.loads(front.stdout)}
    assert smoke_spec("tps", "tra", "1:13").trial_key in shown and len(shown) > 1  # one front over both
    pages = runner.invoke(app, ["report", "smoke,other", "--out", str(tmp_path / "r"), "--no-video", *db])
    assert pages.exit_code == 0, pages.output
    assert (tmp_path / "r" / "smoke.md").is_file() and (tmp_path / "r" / "other.md").is_file()


def test_tables_build_for_several_campaigns_writes_a_folder_each(db: list[str], tmp_path) -> None:
    res = runner.invoke(app, ["tables", "build", "smoke", "--campaign", "smoke,other", "--out", str(tmp_path / "t"),
                              *db])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t" / "smoke" / "smoke.md").is_file() and (tmp_path / "t" / "other" / "smoke.md").is_file()
    assert (tmp_path / "t" / "smoke" / "smoke.md").read_text() != (tmp_path / "t" / "other" / "smoke.md").read_text()
