"""``h2ot data synth`` and ``h2ot data check`` through the real typer app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def test_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "h36m"
    result = runner.invoke(app, ["data", "synth", str(out), "--seed", "2", "--minutes", "0.2"])
    assert result.exit_code == 0, result.output
    assert "data_3d_h36m.npz" in result.stdout
    with np.load(out / "data_3d_h36m.npz", allow_pickle=True) as f:
        assert "S11" in f["positions_3d"].item()
    result = runner.invoke(app, ["data", "check", str(out), "--source", "gt"])
    assert result.exit_code == 0, result.output
    for word in ("S1", "S11", "train", "test", "17 joints", "gt"):
        assert word in result.stdout


def test_check_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert "data_3d_h36m.npz: file not found" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--dataset", "h3.6m"])
    assert result.exit_code == 2 and "Unknown dataset 'h3.6m'" in result.stderr
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), "--minutes", "-1"])
    assert result.exit_code == 2 and "minutes must be > 0" in result.stderr
