"""A campaign name stands for one grid: another grid under a used name is refused unless --append (checked
before anything starts; the dry run says the same)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.grid import load_grid
from results.store import LeaderboardStore

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "search_spaces" / "_base" / "tiny_model.yaml")
runner = CliRunner()


def grid(tmp_path: Path, name: str, pruners: list[str]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "include": TINY,
                                    "grid": {"pruner": pruners, "recoverer": "tra", "schedule": "1:9"}}))
    return path


def test_another_grid_under_a_used_campaign_name_needs_append(tmp_path, monkeypatch):
    monkeypatch.setenv("H2OT_RUNS_DIR", str(tmp_path / "runs"))
    db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    first = grid(tmp_path, "ablation", ["tpc"])
    spec = load_grid(first)
    LeaderboardStore(db).ensure_campaign("ablation", grid_path=str(first), grid_yaml=spec.resolved_yaml)

    other = grid(tmp_path, "sweep", ["tps"])
    res = runner.invoke(app, ["campaign", "run", str(other), "--name", "ablation", "--dry-run", "--db-url", db])
    assert res.exit_code == 2, res.output
    line = " ".join(res.stderr.split())
    assert f"campaign 'ablation' already ran another grid ({first})" in line
    assert "--name NAME" in line and "--append" in line

    res = runner.invoke(app, ["campaign", "run", str(other), "--name", "ablation", "--dry-run", "--append",
                              "--db-url", db])
    assert res.exit_code == 0, res.output

    # the same grid file, edited (an axis value added), is still the same campaign: resuming it needs no flag
    grid(tmp_path, "ablation", ["tpc", "tps"])
    res = runner.invoke(app, ["campaign", "run", str(first), "--dry-run", "--db-url", db])
    assert res.exit_code == 0, res.output
    # a copy of it elsewhere (as a Ray job runs it) is the same grid; another file of that name is not
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / "ablation.yaml").write_bytes(first.read_bytes())
    res = runner.invoke(app, ["campaign", "run", str(elsewhere / "ablation.yaml"), "--dry-run", "--db-url", db])
    assert res.exit_code == 0, res.output
    changed = grid(elsewhere, "ablation", ["tpa"])
    res = runner.invoke(app, ["campaign", "run", str(changed), "--dry-run", "--db-url", db])
    assert res.exit_code == 2 and "already ran another grid" in res.stderr
