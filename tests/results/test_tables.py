"""Table specs: golden Markdown/LaTeX/CSV, byte-identical rebuilds, mean ± std, empty/named specs."""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from smoke_data import GOLDEN, SMOKE_VALUES, complete, smoke_spec
from sqlalchemy import update

from h2ot_core.contracts import TrialResult
from results.errors import ResultsError
from results.render import build_tables, to_csv, to_latex, to_markdown
from results.schema import Campaign
from results.store import LeaderboardStore
from results.table_campaigns import pick_campaign, resolve_specs, stored_campaigns
from results.table_spec import SPEC_DIR, load_spec, spec_paths
from results.tables import build_table

SMOKE_SPEC = SPEC_DIR / "smoke.yaml"


def write_spec(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("ext", ["md", "tex", "csv"])
def test_smoke_table_matches_golden(smoke_store: LeaderboardStore, tmp_path: Path, ext: str) -> None:
    # regenerate after an intended change: build_tables(engine, [SMOKE_SPEC], "tests/results/golden", ...)
    written, _ = build_tables(smoke_store.engine, [SMOKE_SPEC], tmp_path, skip_empty=False)
    produced = next(p for p in written if p.suffix == f".{ext}")
    assert produced.read_bytes() == (GOLDEN / f"smoke.{ext}").read_bytes()


def test_rebuild_is_byte_identical(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    first, _ = build_tables(smoke_store.engine, spec_paths(), tmp_path / "a", skip_empty=True)
    second, _ = build_tables(smoke_store.engine, spec_paths(), tmp_path / "b", skip_empty=True)
    assert [p.name for p in first] == [p.name for p in second] and first
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


def test_mean_and_std_over_seeds(smoke_store: LeaderboardStore) -> None:
    table = build_table(smoke_store.engine, load_spec(SMOKE_SPEC))
    tpc_tra = [v[0] for (p, r, _, _), v in SMOKE_VALUES.items() if (p, r) == ("tpc", "tra")]
    cell = table.cells[(("tpc",), ("tra", "mpjpe"))]
    assert cell.n == len(tpc_tra) == 2
    assert cell.mean == pytest.approx(statistics.fmean(tpc_tra))
    assert cell.std == pytest.approx(statistics.stdev(tpc_tra))
    # two seeds: the 95 % percentile-bootstrap interval of their mean spans exactly the two values
    assert table.text(cell, "{:.2f}") == (f"{statistics.fmean(tpc_tra):.2f} ± {statistics.stdev(tpc_tra):.2f} "
                                          f"[{min(tpc_tra):.2f}, {max(tpc_tra):.2f}]")
    # the unpruned row has no TRI trial: a missing cell, shown as a dash
    assert table.cells[(("none",), ("tri", "mpjpe"))].mean is None
    # 41.0 vs 42.5 over two paired seeds (differences 1 and 3 mm): p = 0.2, a tie within noise, not bold
    assert "| Unpruned | 41.0 ± 1.4 [40.0, 42.0] | – |" in to_markdown(table)
    # GFLOPs change vs the unpruned row: TPC row mean (1.2 + 1.2 + 1.1) / 3 against 2.0
    assert table.deltas[(("tpc",), "gflops")] == pytest.approx(100 * ((1.2 + 1.2 + 1.1) / 3 / 2.0 - 1))


def test_best_is_not_bold_when_the_runner_up_is_within_noise(smoke_store: LeaderboardStore) -> None:
    table = build_table(smoke_store.engine, load_spec(SMOKE_SPEC))
    tex = to_latex(table)
    assert r"\textbf" not in tex and r"\underline" not in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert any("α = 0.05" in n and "paired t-test" in n for n in table.notes)


def _seeded(store: LeaderboardStore, values: dict[str, list[float]]) -> None:
    """Campaign ``smoke``: per pruner (TRA), one complete trial per seed with these MPJPEs."""
    store.ensure_campaign("smoke")
    for pruner, per_seed in values.items():
        for seed, mpjpe in enumerate(per_seed):
            spec = smoke_spec(pruner, "tra", "" if pruner == "none" else "1:9", seed)
            store.upsert_result(complete(spec, mpjpe, mpjpe - 10, 2.0, 10.0), campaign="smoke")


def test_best_is_bold_only_when_significantly_better(sqlite_url: str) -> None:
    store = LeaderboardStore(sqlite_url)
    # TPC beats TPS by 2 mm on every one of four seeds (seed effects shared): paired p << 0.05
    _seeded(store, {"tpc": [40.0, 41.0, 39.5, 40.4], "tps": [42.0, 43.1, 41.4, 42.5]})
    table = build_table(store.engine, load_spec(SMOKE_SPEC))
    best, runner_up = table.cells[(("tpc",), ("tra", "mpjpe"))], table.cells[(("tps",), ("tra", "mpjpe"))]
    assert (best.rank, runner_up.rank) == (1, 2)
    md = to_markdown(table)
    assert "| TPC | **40.2 ± 0.6" in md and "| TPS | _42.2 ± 0.7" in md


def test_a_mean_lower_by_chance_is_not_bold(sqlite_url: str) -> None:
    store = LeaderboardStore(sqlite_url)
    # lower mean, but the seeds disagree on which is better: paired p > 0.05
    _seeded(store, {"tpc": [40.0, 43.0, 39.0, 42.0], "tps": [41.0, 41.5, 41.0, 41.0]})
    table = build_table(store.engine, load_spec(SMOKE_SPEC))
    assert table.cells[(("tpc",), ("tra", "mpjpe"))].mean < table.cells[(("tps",), ("tra", "mpjpe"))].mean
    assert all(c.rank is None for c in table.cells.values())


def test_footnote_reports_incomplete_trials(smoke_store: LeaderboardStore) -> None:
    table = build_table(smoke_store.engine, load_spec(SMOKE_SPEC))
    assert any("2 of 9 source trials are not complete (1 failed, 1 running)" in n for n in table.notes)
    assert any("last_epoch" in n for n in table.notes)


def test_filters_and_multiple_metrics(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, """
rows: [recoverer]
metric: [mpjpe, p_mpjpe]
aggregate: mean
filters: {campaign: smoke, pruner: [tps], seed: [0]}
""")
    csv = to_csv(build_table(smoke_store.engine, load_spec(spec)))
    assert csv.splitlines() == [
        "recoverer,mpjpe:mean,mpjpe:std,mpjpe:n,p_mpjpe:mean,p_mpjpe:std,p_mpjpe:n",
        "tra,45.25,,1,34.0,,1",
        "tri,47.0,,1,35.5,,1",
    ]


def test_empty_specs_skipped_when_building_all_but_error_when_named(smoke_store: LeaderboardStore,
                                                                   tmp_path: Path) -> None:
    empty = write_spec(tmp_path, "rows: [pruner]\nfilters: {backbone: [motionbert]}\n", "empty.yaml")
    written, skipped = build_tables(smoke_store.engine, [SMOKE_SPEC, empty], tmp_path / "out", skip_empty=True)
    assert skipped == ["empty"] and {p.name for p in written} == {"smoke.md", "smoke.tex", "smoke.csv"}
    with pytest.raises(ResultsError, match="selects no complete trial"):
        build_tables(smoke_store.engine, [empty], tmp_path / "out", skip_empty=False)


@pytest.mark.parametrize(("text", "message"), [
    ("rows: [prunr]\n", "Did you mean: pruner"),
    ("rows: [pruner]\ncolums: [recoverer]\n", "Did you mean: columns"),
    ("rows: [pruner]\naggregate: median\n", "Unknown aggregation 'median'"),
    ("rows: [pruner]\nformat: '{:.1q}'\n", "not a number format"),
    ("rows: [pruner]\nextra: [gflop]\n", "Did you mean: gflops"),
    ("columns: [pruner]\n", "rows: give at least one axis"),
    ("rows: [pruner\n", "not valid YAML"),
    ("rows: [pruner]\nfilters: {protocol: offical}\n", "filters.protocol: Unknown protocol 'offical'"),
    ("rows: [pruner]\nfilters: {selection: [best_on_tst]}\n", "filters.selection: Unknown selection 'best_on_tst'"),
])
def test_bad_specs_name_file_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = write_spec(tmp_path, text)
    with pytest.raises(ResultsError, match=message) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_every_shipped_spec_loads() -> None:
    names = [load_spec(p).name for p in spec_paths()]
    assert {"smoke", "token_sweep", "layer_sweep", "hierarchical", "seq2seq_vs_seq2frame",
            "pruning_strategies_mixste"} <= set(names)
    with pytest.raises(ResultsError, match="Did you mean: smoke"):
        spec_paths(["smok"])


# -- which campaign a spec reads: grid name whatever the profile, --campaign, stopped trials ---------------

def _grid_yaml(name: str, profile: str | None) -> str:
    return yaml.safe_dump({"name": name, "profile": profile, "grid": {"backbone": ["mixste"]}})


def _fill(store: LeaderboardStore, campaign: str, *, grid: str | None = None, profile: str | None = None,
          created: datetime | None = None, mpjpe_offset: float = 0.0) -> None:
    """Campaign ``campaign`` (a run of ``grid`` under ``profile``) with the smoke grid's complete trials."""
    store.ensure_campaign(campaign, grid_yaml=_grid_yaml(grid, profile) if grid else "")
    for (pruner, recoverer, schedule, seed), (mpjpe, p_mpjpe, gflops, latency) in SMOKE_VALUES.items():
        spec = smoke_spec(pruner, recoverer, schedule, seed, train={"epochs": 1 + int(mpjpe_offset)})
        store.mark_running(spec, campaign)
        store.upsert_result(complete(spec, mpjpe + mpjpe_offset, p_mpjpe, gflops, latency), campaign=campaign)
    if created is not None:
        with store.engine.begin() as conn:
            conn.execute(update(Campaign).where(Campaign.name == campaign).values(created_at=created))


@pytest.fixture
def tiny_store(sqlite_url: str) -> LeaderboardStore:
    """Only a profiled run of the smoke grid: campaign ``smoke-tiny``, as ``campaign run --profile tiny`` names it."""
    store = LeaderboardStore(sqlite_url)
    _fill(store, "smoke-tiny", grid="smoke", profile="tiny")
    return store


def test_spec_reads_a_profiled_campaign_of_its_grid(tiny_store: LeaderboardStore, tmp_path: Path) -> None:
    written, skipped = build_tables(tiny_store.engine, [SMOKE_SPEC], tmp_path, skip_empty=True)
    assert not skipped and {p.name for p in written} == {"smoke.md", "smoke.tex", "smoke.csv"}
    md = (tmp_path / "smoke.md").read_text()
    assert "Campaign: `smoke-tiny` (profile `tiny`), a run of grid `smoke`." in md
    assert "| Unpruned | 41.0 ± 1.4 [40.0, 42.0] | – |" in md
    assert "profile `tiny`" in (tmp_path / "smoke.tex").read_text()


def test_campaign_matched_by_name_when_no_grid_was_stored(sqlite_url: str, tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    _fill(store, "smoke-paper")  # no grid_yaml: grid and profile come from the name
    (spec,) = resolve_specs(store.engine, [SMOKE_SPEC])
    assert spec.campaign == "smoke-paper" and "profile `paper`" in spec.source_note


def test_several_matches_prefer_no_profile_then_most_recent(sqlite_url: str) -> None:
    store = LeaderboardStore(sqlite_url)
    _fill(store, "smoke-tiny", grid="smoke", profile="tiny", created=datetime(2026, 1, 2))
    _fill(store, "smoke-paper", grid="smoke", profile="paper", created=datetime(2026, 1, 3), mpjpe_offset=1)
    _fill(store, "other", grid="not_smoke", created=datetime(2026, 1, 4), mpjpe_offset=2)
    assert resolve_specs(store.engine, [SMOKE_SPEC])[0].campaign == "smoke-paper"  # the most recent
    _fill(store, "smoke", grid="smoke", created=datetime(2026, 1, 1), mpjpe_offset=3)
    (spec,) = resolve_specs(store.engine, [SMOKE_SPEC])
    assert spec.campaign == "smoke" and spec.source_note == ""  # no profile wins, and needs no note
    # a campaign run with --name from the grid counts too (its stored grid says which grid it ran)
    refs = {c.name: c for c in stored_campaigns(store.engine)}
    assert pick_campaign(list(refs.values()), "not_smoke") == refs["other"]


def test_named_campaign_overrides_the_spec(sqlite_url: str, tmp_path: Path) -> None:
    store = LeaderboardStore(sqlite_url)
    _fill(store, "smoke", grid="smoke")
    _fill(store, "smoke-tiny", grid="smoke", profile="tiny", mpjpe_offset=10)
    (spec,) = resolve_specs(store.engine, spec_paths(), campaign="smoke-tiny")  # only the smoke grid's specs
    assert spec.name == "smoke" and spec.campaign == "smoke-tiny"
    table = build_table(store.engine, spec)
    assert table.cells[(("none",), ("tra", "mpjpe"))].mean == pytest.approx(51.0)
    with pytest.raises(ResultsError, match="Did you mean: smoke-tiny"):
        resolve_specs(store.engine, [SMOKE_SPEC], campaign="smoke-tyni")
    _fill(store, "other", grid="not_smoke")
    with pytest.raises(ResultsError, match="No table spec selects campaign 'other'"):
        resolve_specs(store.engine, spec_paths(), campaign="other")
    # a spec the user names is built from any campaign
    (named,) = resolve_specs(store.engine, [SMOKE_SPEC], campaign="other", named=True)
    assert named.campaign == "other" and "grid `smoke`" in named.source_note


def test_stopped_trials_are_footnoted_like_incomplete_ones(smoke_store: LeaderboardStore) -> None:
    stopped = smoke_spec("tps", "tri", "1:9", seed=1)
    smoke_store.mark_running(stopped, "smoke")
    smoke_store.upsert_result(TrialResult(stopped.trial_key, stopped.to_dict(), "stopped", epochs_run=1),
                              campaign="smoke")
    table = build_table(smoke_store.engine, load_spec(SMOKE_SPEC))
    assert any("3 of 10 source trials are not complete (1 failed, 1 running, 1 stopped)" in n for n in table.notes)
    assert table.cells[(("tps",), ("tri", "mpjpe"))].n == 1  # the stopped seed fills nothing


def test_cli_campaign_option_and_nothing_built_fails(tiny_store: LeaderboardStore, sqlite_url: str,
                                                     tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    runner = CliRunner()
    db = ["--db-url", sqlite_url]
    res = runner.invoke(app, ["tables", "build", "--campaign", "smoke-tiny", "--out", str(tmp_path / "a"), *db])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["smoke.csv", "smoke.md", "smoke.tex"]
    res = runner.invoke(app, ["tables", "build", "smoke", "--campaign", "smoke-tiny", "--out",
                              str(tmp_path / "b"), *db])
    assert res.exit_code == 0 and "profile `tiny`" in (tmp_path / "b" / "smoke.md").read_text()
    empty = LeaderboardStore(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    res = runner.invoke(app, ["tables", "build", "--out", str(tmp_path / "c"), "--db-url", empty.url])
    assert res.exit_code != 0 and "no table built" in res.output
    assert len(res.output.strip().splitlines()) <= len(spec_paths()) + 1  # the skips, then one line
