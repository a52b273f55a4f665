"""Table specs: golden Markdown/LaTeX/CSV, byte-identical rebuilds, mean ± std, empty/named specs."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from smoke_data import GOLDEN, SMOKE_VALUES

from results.errors import ResultsError
from results.render import build_tables, to_csv, to_latex, to_markdown
from results.store import LeaderboardStore
from results.tables import SPEC_DIR, build_table, load_spec, spec_paths

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
    assert table.text(cell, "{:.2f}") == f"{statistics.fmean(tpc_tra):.2f} ± {statistics.stdev(tpc_tra):.2f}"
    # the unpruned row has no TRI trial: a missing cell, shown as a dash
    assert table.cells[(("none",), ("tri", "mpjpe"))].mean is None
    assert "| Unpruned | **41.0 ± 1.4** | – |" in to_markdown(table)
    # GFLOPs change vs the unpruned row: TPC row mean (1.2 + 1.2 + 1.1) / 3 against 2.0
    assert table.deltas[(("tpc",), "gflops")] == pytest.approx(100 * ((1.2 + 1.2 + 1.1) / 3 / 2.0 - 1))


def test_best_bold_second_underlined(smoke_store: LeaderboardStore) -> None:
    tex = to_latex(build_table(smoke_store.engine, load_spec(SMOKE_SPEC)))
    assert r"\textbf{41.0 $\pm$ 1.4}" in tex and r"\underline{42.5 $\pm$ 2.1}" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex


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
