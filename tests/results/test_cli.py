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
