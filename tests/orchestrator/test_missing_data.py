"""Missing data is refused where the driver can see it, in one line saying to set H2OT_DATA_DIR, before
anything starts (validate, --dry-run, a local run); it never reaches the trials."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]
TOKEN_SWEEP = str(REPO / "search_spaces" / "paper" / "token_sweep.yaml")  # h36m at the paper profile
runner = CliRunner()


def _one_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.stderr
    return lines[0]


@pytest.mark.parametrize("args", [["campaign", "validate", TOKEN_SWEEP],
                                  ["campaign", "run", TOKEN_SWEEP, "--dry-run"],
                                  ["campaign", "run", TOKEN_SWEEP]])
def test_missing_data_is_one_line_naming_h2ot_data_dir(tmp_path, monkeypatch, args):
    monkeypatch.delenv("H2OT_DATA_DIR", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("H2OT_RUNS_DIR", str(tmp_path / "runs"))
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert f"{TOKEN_SWEEP}: dataset 'h36m' (6 trial(s)): no data: H2OT_DATA_DIR is not set" in line
    assert "export H2OT_DATA_DIR=" in line and "data_dir" not in line
    assert not (tmp_path / "runs").exists()  # refused before anything was written

    monkeypatch.setenv("H2OT_DATA_DIR", str(tmp_path))
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert f"H2OT_DATA_DIR={tmp_path} has no h36m/ folder" in _one_line(res)

    (tmp_path / "h36m").mkdir()
    (tmp_path / "h36m" / "data_3d_h36m.npz").write_bytes(b"")
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    line = _one_line(res)
    assert f"{tmp_path / 'h36m'} lacks data_2d_h36m_cpn_ft_h36m_dbb.npz" in line
    assert f"h2ot data check {tmp_path / 'h36m'}" in line


def test_a_profile_on_self_contained_data_needs_no_folder(monkeypatch):
    monkeypatch.delenv("H2OT_DATA_DIR", raising=False)
    res = runner.invoke(app, ["campaign", "validate", TOKEN_SWEEP, "--profile", "tiny"])
    assert res.exit_code == 0, res.output
