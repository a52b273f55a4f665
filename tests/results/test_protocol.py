"""The evaluation protocol of every trial: a leaderboard column read from the spec (no migration), a filter, an
export column, every table's footnote; a table never mixes protocols."""

from __future__ import annotations

from pathlib import Path

import pytest
from smoke_data import complete, smoke_spec
from sqlalchemy import delete

from results.db import make_engine
from results.errors import ResultsError
from results.export import export_table
from results.queries import leaderboard
from results.schema import Campaign, CampaignTrial, Metric, Trial
from results.store import LeaderboardStore
from results.table_spec import SPEC_DIR, load_spec
from results.tables import build_table


def _fill(store: LeaderboardStore, official: dict[str, float], real: dict[str, float]) -> None:
    store.ensure_campaign("smoke")
    for protocol, values in (("official", official), ("real_frames", real)):
        for pruner, mpjpe in values.items():
            spec = smoke_spec(pruner, "tra", "" if pruner == "none" else "1:9",
                              evaluate={"protocol": protocol}, selection="best_on_test")
            result = complete(spec, mpjpe, mpjpe - 10, 2.0, 10.0)
            result.selection = spec.selection
            store.upsert_result(result, campaign="smoke")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    pg = request.getfixturevalue("pg_server_db")
    engine = make_engine(pg)
    with engine.begin() as conn:  # the session database is shared with other tests
        for model in (Metric, CampaignTrial, Trial, Campaign):
            conn.execute(delete(model))
    engine.dispose()
    return pg


def test_protocol_is_a_column_a_filter_and_an_export_field(url: str) -> None:
    store = LeaderboardStore(url)
    _fill(store, {"tpc": 40.0, "tps": 41.0}, {"tpc": 40.6})
    rows = leaderboard(store.engine, campaign="smoke")
    assert sorted(r["protocol"] for r in rows) == ["official", "official", "real_frames"]
    official = leaderboard(store.engine, filters={"protocol": ["official"]}, campaign="smoke")
    assert {r["pruner"] for r in official} == {"tpc", "tps"}
    grouped = leaderboard(store.engine, group_by=["protocol"], campaign="smoke")
    assert {r["protocol"] for r in grouped} == {"official", "real_frames"}
    table = export_table(store.engine, campaign="smoke").to_pydict()
    assert sorted(table["protocol"]) == ["official", "official", "real_frames"]
    assert set(table["selection"]) == {"best_on_test"}


def test_a_table_never_mixes_protocols_and_its_footnote_states_them(sqlite_url: str, tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    _fill(store, {"tpc": 40.0, "tps": 41.0}, {"tpc": 40.6})
    spec = load_spec(SPEC_DIR / "smoke.yaml")
    with pytest.raises(ResultsError, match=r"different protocols \(2 official, 1 real_frames\)"):
        build_table(store.engine, spec)
    path = tmp_path / "official.yaml"
    text = (SPEC_DIR / "smoke.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("filters:", "filters:\n  protocol: official", 1) if "filters:" in text
                    else text + "\nfilters: {protocol: official}\n", encoding="utf-8")
    table = build_table(store.engine, load_spec(path))
    assert any(n.startswith("Protocol: official (P1/P2 averaged over every frame") for n in table.notes)
    assert any("best_on_test (the epoch best on the test set, the official practice)" in n for n in table.notes)


def test_leaderboard_protocol_filter_refuses_an_unknown_name(sqlite_url: str) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    LeaderboardStore(sqlite_url)
    result = CliRunner().invoke(app, ["leaderboard", "--db-url", sqlite_url, "--protocol", "offical"])
    assert result.exit_code == 2 and "--protocol" in result.stderr and "official" in result.stderr
