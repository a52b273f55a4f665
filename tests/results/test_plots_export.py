"""Pareto front on a hand-made set, figure files, and exports read back with pyarrow."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from smoke_data import SMOKE_VALUES

from results.errors import ResultsError
from results.export import export_table, write_export
from results.pareto import pareto_front
from results.plots import learning_curves, pareto_chart, tokens_chart
from results.queries import leaderboard
from results.store import LeaderboardStore

# (GFLOPs, MPJPE): 0, 2, 3 are the front; 1 is dominated by 0; 4 by 2; 5 duplicates 3
POINTS = [(1.0, 50.0), (1.5, 52.0), (2.0, 45.0), (4.0, 40.0), (2.5, 46.0), (4.0, 40.0)]


def test_pareto_front_hand_made() -> None:
    assert pareto_front(POINTS) == [0, 2, 3, 5]
    # maximising y (e.g. PCK): the highest y at each cost wins
    assert pareto_front([(1.0, 0.5), (2.0, 0.9), (3.0, 0.8)], (True, False)) == [0, 1]
    assert pareto_front([]) == []


def test_figures_are_written(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    rows = leaderboard(smoke_store.engine, {}, status=["complete"])
    paths = pareto_chart(rows, tmp_path / "pareto") + tokens_chart(rows, tmp_path / "tokens")
    assert sorted(p.name for p in paths) == ["pareto.pdf", "pareto.png", "tokens.pdf", "tokens.png"]
    assert all(p.read_bytes()[:4] in (b"\x89PNG", b"%PDF") for p in paths)
    first = (tmp_path / "pareto.pdf").read_bytes()
    pareto_chart(rows, tmp_path / "pareto")
    assert (tmp_path / "pareto.pdf").read_bytes() == first  # no timestamps in the file
    curves = learning_curves({"a": [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.3}]},
                             tmp_path / "curves")
    assert [p.suffix for p in curves] == [".png", ".pdf"]
    with pytest.raises(ResultsError, match="nothing to plot"):
        learning_curves({"a": [{"epoch": 1}]}, tmp_path / "none")


def test_parquet_export_types_and_rows(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    path = write_export(export_table(smoke_store.engine), tmp_path / "lb.parquet", "parquet")
    table = pq.read_table(path)
    assert table.num_rows == len(SMOKE_VALUES) + 2
    schema = table.schema
    assert schema.field("frames").type == pa.int64() and schema.field("params").type == pa.int64()
    assert schema.field("test_mpjpe").type == pa.float64() and schema.field("gflops").type == pa.float64()
    assert schema.field("pruner").type == pa.string() and schema.field("git_sha").type == pa.string()
    assert pa.types.is_timestamp(schema.field("created_at").type)
    rows = table.to_pylist()
    by_axes = {(r["pruner"], r["recoverer"], r["schedule"], r["seed"]): r for r in rows}
    for key, (mpjpe, p_mpjpe, gflops, _) in SMOKE_VALUES.items():
        assert (by_axes[key]["test_mpjpe"], by_axes[key]["test_p_mpjpe"], by_axes[key]["gflops"]) == \
            (mpjpe, p_mpjpe, gflops)
        assert by_axes[key]["campaigns"] == "smoke"
    assert by_axes[("tpa", "tra", "1:9", 0)]["error"] == "RuntimeError: boom"


def test_filtered_csv_and_arrow_exports(smoke_store: LeaderboardStore, tmp_path: Path) -> None:
    table = export_table(smoke_store.engine, filters={"pruner": ["tpc"]}, status=["complete"], actions=True)
    assert table.num_rows == 3 and "test_mpjpe__Walking" in table.column_names
    csv_rows = pa_csv.read_csv(write_export(table, tmp_path / "lb.csv", "csv"))
    assert csv_rows.num_rows == 3
    with ipc.open_file(write_export(table, tmp_path / "lb.arrow", "arrow")) as reader:
        assert reader.read_all().equals(table)
    with pytest.raises(ResultsError, match="Did you mean: parquet"):
        write_export(table, tmp_path / "x", "parquett")


def test_axis_labels_carry_units() -> None:
    from results.plots import axis_label

    assert axis_label("mpjpe") == "MPJPE (mm)" and axis_label("gflops") == "GFLOPs"
    assert axis_label("test_p_mpjpe") == "test P-MPJPE (mm)" and axis_label("latency_ms") == "latency (ms)"
    assert axis_label("tokens") == "tokens"


def test_markdown_table_aligns_and_escapes() -> None:
    from results.markdown import markdown_table

    text = markdown_table(["axis", "value"], [["a|b", 1.5], ["multi\nline", None]], align="lr")
    assert text.splitlines() == ["| axis | value |", "|---|---:|", "| a\\|b | 1.5 |", "| multi line | None |"]
    assert markdown_table(["x"], []).splitlines() == ["| x |", "|---|"]
    with pytest.raises(ValueError, match="align"):
        markdown_table(["x", "y"], [], align="lrr")
