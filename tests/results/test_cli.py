"""The results commands through the real ``h2ot`` app: output formats, files, exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from smoke_data import GOLDEN, SMOKE_VALUES
from typer.testing import CliRunner

from orchestrator.cli import app
from results.store import LeaderboardStore

runner = CliRunner()


@pytest.fixture
def db(smoke_store: LeaderboardStore, sqlite_url: str) -> list[str]:
    return ["--db-url", sqlite_url]


def test_leaderboard_json_has_every_column(db: list[str]) -> None:
    res = runner.invoke(app, ["leaderboard", "--backbone", "mixste", "--pruner", "tpc,tps", "--status",
                              "complete", "--format", "json", *db])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    expected = sorted(v[0] for (p, *_), v in SMOKE_VALUES.items() if p in ("tpc", "tps"))
    assert [r["mpjpe"] for r in rows] == expected
    for key in ("trial_key", "status", "backbone", "pruner", "recoverer", "schedule", "frames", "dataset",
                "seed", "params", "gflops", "speedup_flops", "git_sha", "model"):
        assert key in rows[0]


def test_leaderboard_csv_grouped_and_env_url(smoke_store: LeaderboardStore, sqlite_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H2OT_DB_URL", sqlite_url)
    res = runner.invoke(app, ["leaderboard", "--group-by", "pruner", "--agg", "mean", "--status", "complete",
                              "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("pruner,n,mpjpe") and [line.split(",")[0] for line in lines[1:]] == \
        ["none", "tpc", "tps"]


@pytest.mark.parametrize(("args", "message"), [
    (["leaderboard", "--group-by", "prunr"], "Did you mean: pruner"),
    (["leaderboard", "--sort", "mpjep"], "Did you mean: mpjpe"),
    (["leaderboard", "--campaign", "smok"], "Did you mean: smoke"),
    (["leaderboard", "--format", "yaml"], "Unknown format 'yaml'"),
    (["tables", "build", "token_sweep"], "Unknown campaign 'token_sweep'"),
    (["tables", "build", "nope"], "Unknown table spec 'nope'"),
    (["export", "--out", "x.bin", "--format", "bin"], "Unknown export format 'bin'"),
    (["report", "nope"], "Unknown campaign 'nope'"),
])
def test_bad_input_exits_2_with_one_line(db: list[str], args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, *db])
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.output


def test_tables_build_all_skips_empty_specs(db: list[str], tmp_path: Path) -> None:
    res = runner.invoke(app, ["tables", "build", "--out", str(tmp_path / "t"), *db])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["smoke.csv", "smoke.md", "smoke.tex"]
    assert "skipped token_sweep" in res.stderr
    assert (tmp_path / "t" / "smoke.md").read_bytes() == (GOLDEN / "smoke.md").read_bytes()


def test_export_and_report(db: list[str], tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", "--format", "parquet", "--out", str(tmp_path / "lb.parquet"),
                              "--campaign", "smoke", "--recoverer", "tri", *db])
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "lb.parquet")
    assert sorted(table.column("pruner").to_pylist()) == ["tpa", "tpc", "tps"]
    res = runner.invoke(app, ["report", "smoke", "--out", str(tmp_path / "report"), *db])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "report" / "smoke.md").read_text(encoding="utf-8")
    for part in ("## What ran", "| failed | 1 |", "RuntimeError: boom", "![MPJPE vs GFLOPs](figures/pareto.png)",
                 "**smoke**", "| git_sha | abc123 |"):
        assert part in page
    assert (tmp_path / "report" / "figures" / "pareto.png").exists()
    res = runner.invoke(app, ["plots", "--out", str(tmp_path / "fig"), "--kind", "pareto", *db])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fig" / "pareto.pdf").exists()


def test_export_takes_the_shared_filters(db: list[str], tmp_path: Path) -> None:
    def export(*args: str) -> list[dict]:
        out = tmp_path / "x.parquet"
        res = runner.invoke(app, ["export", "--out", str(out), *args, *db])
        assert res.exit_code == 0, res.output
        return pq.read_table(out).to_pylist()

    assert sorted(r["status"] for r in export("--status", "failed,running")) == ["failed", "running"]
    assert len(export("--pipeline", "seq2seq", "--status", "complete")) == len(SMOKE_VALUES)
    assert export("--pipeline", "seq2frame") == []
    assert {r["seed"] for r in export("--seed", "1", "--tokens", "9")} == {1}


def test_plots_take_the_shared_filters(db: list[str], tmp_path: Path) -> None:
    res = runner.invoke(app, ["plots", "--out", str(tmp_path / "a"), "--kind", "pareto", "--pipeline", "seq2seq",
                              "--status", "complete", "--seed", "0", *db])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["pareto.pdf", "pareto.png"]
    for args in (["--pipeline", "seq2frame"], ["--status", "failed"]):
        res = runner.invoke(app, ["plots", "--out", str(tmp_path / "b"), "--kind", "pareto", *args, *db])
        assert res.exit_code == 2 and "nothing to plot" in res.stderr, res.output
    res = runner.invoke(app, ["plots", "--kind", "paretto", *db])
    assert res.exit_code == 2 and "Did you mean: pareto" in res.stderr
    res = runner.invoke(app, ["plots", "--status", "complet", *db])
    assert res.exit_code == 2 and "Did you mean: complete" in res.stderr


def test_filter_options_are_the_leaderboard_axes() -> None:
    from orchestrator.commands.options import FILTER_AXES
    from results.queries import AXES

    assert FILTER_AXES == AXES
    for command in ("leaderboard", "export", "plots"):
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
        for option in (*FILTER_AXES, "campaign", "status", "db-url"):
            assert f"--{option}" in help_text, (command, option)


def test_leaderboard_markdown_is_one_table(db: list[str]) -> None:
    res = runner.invoke(app, ["leaderboard", "--pruner", "tpc", "--status", "complete", "--format", "markdown", *db])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("| trial_key | status |") and set(lines[1]) == {"|", "-"}
    assert len(lines) == 2 + 3 and all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
