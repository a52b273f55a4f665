"""Reading results in a terminal: tables fit it (never forced to 200 columns), columns equal in every row are
stated once, --columns picks columns, and --format speaks one vocabulary on every command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from orchestrator import console
from orchestrator.cli import app
from results.store import LeaderboardStore

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(smoke_store: LeaderboardStore, sqlite_url: str) -> list[str]:
    return ["--db-url", sqlite_url]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch):
    """Stdout as a terminal of a given width; returns a function giving what was printed."""
    def make(width: int) -> io.StringIO:
        buf = io.StringIO()
        monkeypatch.setattr(console, "out", Console(file=buf, width=width, force_terminal=True, color_system=None))
        return buf
    return make


def test_the_leaderboard_fits_a_100_column_terminal(db: list[str], terminal) -> None:
    buf = terminal(100)
    res = runner.invoke(app, ["leaderboard", "--status", "complete", *db])
    assert res.exit_code == 0, res.output
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("every row: status complete, backbone mixste, frames 27, dataset synthetic, "
                               "protocol real_frames")
    assert "selection last_epoch" in buf.getvalue()  # the protocol and the selection are always stated
    assert max(len(line) for line in lines) <= 100 and "…" not in buf.getvalue()
    assert any(line.startswith("59fe64ab6400725f ") or "59fe64ab6400725f" in line for line in lines)  # keys whole
    assert "not shown in 100 columns: params" in res.stderr and "--columns" in res.stderr
    assert " 45.2 " in buf.getvalue()  # 0.1 mm, not 3 significant figures


def test_a_wide_terminal_shows_every_column(db: list[str], terminal) -> None:
    buf = terminal(200)
    res = runner.invoke(app, ["leaderboard", "--status", "complete", *db])
    assert res.exit_code == 0 and "not shown" not in res.stderr
    assert "speedup_latency" in buf.getvalue() and "params" in buf.getvalue()


def test_a_pipe_is_never_wrapped(db: list[str]) -> None:
    res = runner.invoke(app, ["leaderboard", "--status", "complete", *db])  # CliRunner: not a terminal
    rows = [line for line in res.stdout.splitlines() if "tpc" in line]
    assert len(rows) == 3 and all(len(line.split()) == 12 for line in rows)  # one line each, nothing cut


def test_columns_picks_the_columns(db: list[str]) -> None:
    res = runner.invoke(app, ["leaderboard", "--columns", "pruner,mpjpe,git_sha", "--status", "complete", *db])
    assert res.exit_code == 0, res.output
    header, _, *rows = res.stdout.splitlines()
    assert header.split() == ["pruner", "mpjpe", "git_sha"]  # git_sha equal everywhere, but asked for
    assert len(rows) == 7 and all(r.split()[-1] == "abc123" for r in rows)
    res = runner.invoke(app, ["leaderboard", "--columns", "pruner,mpjpe", "--format", "json", *db])
    assert {tuple(r) for r in json.loads(res.stdout)} == {("pruner", "mpjpe")}
    res = runner.invoke(app, ["leaderboard", "--columns", "pruner,mpjep", *db])
    assert res.exit_code == 2 and "--columns: Unknown column 'mpjep'. Did you mean: mpjpe" in res.stderr


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "table"])
def test_campaign_status_speaks_format(db: list[str], fmt: str) -> None:
    res = runner.invoke(app, ["campaign", "status", "smoke", "--format", fmt, *db])
    assert res.exit_code == 0, res.output
    if fmt == "json":
        # device_hours: none of these trials measured it (written as before issue 18)
        assert json.loads(res.stdout) == [{"status": "complete", "trials": 7, "device_hours": None},
                                          {"status": "failed", "trials": 1, "device_hours": None},
                                          {"status": "interrupted", "trials": 1, "device_hours": None}]
        # the running row has no live claim (no driver renews it): shown interrupted, not live
        assert "1 trial(s) interrupted" in res.stderr
    elif fmt == "csv":
        assert res.stdout.splitlines() == ["status,trials,device_hours", "complete,7,", "failed,1,", "interrupted,1,"]
    elif fmt == "markdown":
        assert "| complete | 7 |" in res.stdout
    else:
        assert "complete" in res.stdout and "7" in res.stdout


def test_campaign_validate_speaks_format() -> None:
    res = runner.invoke(app, ["campaign", "validate", str(REPO / "search_spaces" / "smoke.yaml"), "--format", "json"])
    assert res.exit_code == 0, res.output
    trials = json.loads(res.stdout)
    assert len(trials) == 4 and {t["pruner"] for t in trials} == {"tpc", "tps"} and "valid, 4 trials" in res.stderr
    res = runner.invoke(app, ["campaign", "validate", str(REPO / "search_spaces" / "smoke.yaml"), "--format", "yml"])
    assert res.exit_code == 2 and "Unknown format 'yml'" in res.stderr


def test_pareto_speaks_format(db: list[str]) -> None:
    res = runner.invoke(app, ["pareto", "--campaign", "smoke", "--format", "json", *db])
    assert res.exit_code == 0, res.output
    front = json.loads(res.stdout)
    assert front and {"trial_key", "gflops", "mpjpe"} <= set(front[0]) and "Hypervolume" in res.stderr
    for fmt, needle in (("table", "trial_key"), ("markdown", "| trial_key |"), ("latex", r"\toprule")):
        res = runner.invoke(app, ["pareto", "--campaign", "smoke", "--format", fmt, *db])
        assert res.exit_code == 0 and needle in res.stdout, res.output
    res = runner.invoke(app, ["pareto", "--campaign", "smoke", "--format", "xml", *db])
    assert res.exit_code == 2 and "Unknown format 'xml'" in res.stderr


def test_evaluate_and_train_print_their_metrics_in_any_format(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.commands.train import print_metrics

    metrics = {"mpjpe": {"Walking": 41.26, "avg": 40.0}, "p_mpjpe": {"avg": 30.04}}
    buf = io.StringIO()
    monkeypatch.setattr(console, "out", Console(file=buf, width=120))
    print_metrics(metrics, "m", "json")
    assert json.loads(buf.getvalue()) == [{"action": "Walking", "mpjpe": 41.26, "p_mpjpe": None},
                                          {"action": "avg", "mpjpe": 40.0, "p_mpjpe": 30.04}]
    buf.truncate(0), buf.seek(0)
    print_metrics(metrics, "m", "csv")
    assert buf.getvalue().splitlines() == ["action,mpjpe,p_mpjpe", "Walking,41.26,", "avg,40.0,30.04"]
    for command in ("train", "evaluate"):
        assert "--format" in runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
