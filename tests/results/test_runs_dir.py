"""``H2OT_RUNS_DIR`` moves everything the commands write, the default leaderboard included (one definition)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from h2ot_core.environment import DB_URL, REPO_ROOT, runs_dir
from orchestrator.cli import app


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("H2OT_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("H2OT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_default_leaderboard_follows_the_runs_dir(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runs_dir() == runs.resolve()
    assert DB_URL.value() == f"sqlite:///{runs.resolve() / 'leaderboard.sqlite'}"
    monkeypatch.delenv("H2OT_RUNS_DIR")
    assert runs_dir() == REPO_ROOT / "results" / "runs"


def test_every_reader_of_the_runs_dir_agrees(runs: Path) -> None:
    from orchestrator import storage, tracking

    assert storage.resolve() == str(runs_dir()) == str(runs.resolve())
    assert tracking.tracking_uri() == f"sqlite:///{runs.resolve() / 'mlflow.db'}"


def test_cli_reads_the_leaderboard_under_the_runs_dir(runs: Path) -> None:
    # a read-only command names the default file it looked for, and creates nothing
    res = CliRunner().invoke(app, ["leaderboard", "--format", "json"])
    assert res.exit_code == 2 and f"No leaderboard at {runs.resolve() / 'leaderboard.sqlite'}" in res.stderr
    assert not runs.exists()
    from results.store import LeaderboardStore

    LeaderboardStore().ensure_campaign("c")  # a writer creates it there
    assert (runs / "leaderboard.sqlite").is_file()
    res = CliRunner().invoke(app, ["leaderboard", "--format", "json"])
    assert res.exit_code == 0 and res.stdout.strip() == "[]", res.output
