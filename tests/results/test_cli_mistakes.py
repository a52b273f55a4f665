"""Mistakes that must not pass silently: typo'd filter values, a leaderboard URL that points nowhere or at a
file that is not a database, an export file type we do not write. One line, exit 2, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from results.store import LeaderboardStore

runner = CliRunner()


@pytest.fixture
def db(smoke_store: LeaderboardStore, sqlite_url: str) -> list[str]:
    return ["--db-url", sqlite_url]


def one_line_exit_2(args: list[str], *needles: str) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    (line,) = res.stderr.strip().splitlines()
    for needle in needles:
        assert needle in line, line
    return line


@pytest.mark.parametrize(("args", "needles"), [
    (["leaderboard", "--pruner", "tcp"], ("--pruner", "Unknown pruner 'tcp'", "Did you mean: tpc")),
    (["leaderboard", "--backbone", "mixtse"], ("Unknown backbone 'mixtse'", "Did you mean: mixste")),
    (["leaderboard", "--recoverer", "tra,trj"], ("Unknown recoverer 'trj'", "Did you mean: tri, tra")),
    (["leaderboard", "--dataset", "h36"], ("Unknown dataset 'h36'", "Did you mean: h36m")),
    (["leaderboard", "--pipeline", "seq2fram"], ("Unknown pipeline 'seq2fram'", "Did you mean: seq2frame")),
    (["leaderboard", "--split", "val"], ("Unknown split 'val'", "Known: test, train")),
    (["leaderboard", "--action", "Walkin"], ("Unknown action 'Walkin'", "Did you mean: Walking")),
    (["plots", "--pruner", "tcp"], ("Did you mean: tpc",)),
    (["export", "--out", "x.parquet", "--backbone", "mixtse"], ("Did you mean: mixste",)),
])
def test_typo_d_filter_values_get_a_did_you_mean(db: list[str], args: list[str], needles: tuple[str, ...]) -> None:
    one_line_exit_2([*args, *db], *needles)


def test_an_action_no_metric_has_is_refused(sqlite_url: str) -> None:
    from smoke_data import complete, smoke_spec

    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("c")
    spec = smoke_spec("tpc", "tra", "1:9")
    result = complete(spec, 40.0, 30.0, 1.0, 5.0)
    result.metrics = [m for m in result.metrics if m.action == "avg"]
    store.mark_running(spec, "c")
    store.upsert_result(result, campaign="c")
    one_line_exit_2(["leaderboard", "--action", "Walking", "--db-url", sqlite_url], "Unknown action 'Walking'")
    res = runner.invoke(app, ["leaderboard", "--db-url", sqlite_url])  # the valid filters still work
    assert res.exit_code == 0 and spec.trial_key in res.stdout


@pytest.mark.parametrize("command", [["leaderboard"], ["plots"], ["report", "c"], ["pareto", "--campaign", "c"],
                                     ["export", "--out", "e.csv"], ["tables", "build"], ["db", "version"]])
def test_read_only_commands_never_create_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line_exit_2([*command, "--db-url", "sqlite:///typo/x.sqlite"], "No leaderboard at typo/x.sqlite",
                           "does not exist")
    assert "run a campaign first" in line
    assert list(tmp_path.iterdir()) == []  # no folder, no file, no output folder


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    one_line_exit_2(["leaderboard", "--db-url", f"sqlite:///{text}"], "Cannot open leaderboard",
                    "file is not a database")
    one_line_exit_2(["campaign", "status", "x", "--db-url", f"sqlite:///{text}"], "file is not a database")
    assert text.read_text() == "not a database\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_empty_database_is_not_a_leaderboard(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (a)").connection.close()
    one_line_exit_2(["leaderboard", "--db-url", f"sqlite:///{tmp_path / 'other.sqlite'}"], "is empty",
                    "nothing has been recorded there")


@pytest.mark.parametrize(("out", "fmt", "needles"), [
    ("x.xlsx", None, ("--out x.xlsx: unknown file type '.xlsx'", "*.parquet", "or give --format")),
    ("x", None, ("unknown file type '(no suffix)'",)),
    ("x.csv", "parquet", ("--out x.csv: a csv file name, but --format parquet", "*.parquet")),
])
def test_export_writes_only_what_its_file_name_says(db: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    out: str, fmt: str | None, needles: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    one_line_exit_2(["export", "--out", out, *(["--format", fmt] if fmt else []), *db], *needles)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(("out", "magic"), [("t.csv", b"\"trial_key"), ("t.arrow", b"ARROW1"), ("t.parquet", b"PAR1"),
                                            ("t.data", b"PAR1")])
def test_export_picks_the_format_by_suffix(db: list[str], tmp_path: Path, out: str, magic: bytes) -> None:
    fmt = ["--format", "parquet"] if out.endswith(".data") else []  # an unusual name with an explicit format
    res = runner.invoke(app, ["export", "--out", str(tmp_path / out), *fmt, *db])
    assert res.exit_code == 0, res.output
    assert (tmp_path / out).read_bytes().startswith(magic)


def test_a_table_spec_name_that_is_not_a_name_is_refused(db: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_text("name: ../../escape\nrows: [pruner]\ncolumns: [seed]\n")
    one_line_exit_2(["tables", "build", str(spec), "--out", str(tmp_path / "out"), *db],
                    f"{spec}: name:", "'../../escape'", "is not a name")
    assert not (tmp_path / "out").exists()


def test_a_report_for_a_campaign_that_is_not_a_name_writes_nothing(db: list[str], tmp_path: Path) -> None:
    one_line_exit_2(["report", "../../escape", "--out", str(tmp_path / "r"), "--no-video", *db],
                    "campaign:", "'../../escape'")
    assert not (tmp_path / "r").exists()


def test_status_and_dry_run_create_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "leaderbaord" / "lb.sqlite"
    one_line_exit_2(["campaign", "status", "smoke", "--db-url", f"sqlite:///{typo}"], str(typo), "does not exist")
    smoke = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"
    res = runner.invoke(app, ["campaign", "run", str(smoke), "--dry-run", "--db-url", f"sqlite:///{typo}"])
    assert res.exit_code == 0, res.output
    assert f"no leaderboard at {typo} yet" in res.stderr and "4 to run, 0 kept" in res.stderr
    assert not typo.parent.exists()
