"""``h2ot campaign estimate``: a grid priced by timing its backbone sizes (cached), refused for a missing device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from h2ot_core.estimate import CACHE_FILE, Rates, makespan_hours, on_line
from orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
runner = CliRunner()


def test_estimate_prices_the_smoke_grid_and_caches_its_timings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H2OT_CACHE", str(tmp_path / "cache"))
    args = ["campaign", "estimate", str(SMOKE), "--format", "json", "--devices", "2", "--price-per-device-hour", "3"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert (row["backbone"], row["trials"], row["epochs"], row["steps_per_epoch"]) == ("mixste", 4, 1, 4)
    assert row["device_hours"] == pytest.approx(4 * row["device_hours_per_trial"]) and row["device_hours"] > 0
    assert "timing mixste" in res.stderr and "4 trial(s):" in res.stderr and "on 2 device(s)" in res.stderr
    assert "at $3/device-hour" in res.stderr
    cached = json.loads((tmp_path / "cache" / CACHE_FILE).read_text())
    assert len(cached) == 2  # the dearest and the cheapest configuration of the one backbone size
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "timing" not in again.stderr  # read from the cache
    assert json.loads(again.stdout) == [row]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the device")
def test_estimate_for_a_device_this_machine_lacks_is_refused(tmp_path: Path) -> None:
    res = runner.invoke(app, ["campaign", "estimate", str(SMOKE), "--device", "cuda"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--device cuda" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(app, ["campaign", "estimate", str(SMOKE), "--devices", "0"])
    assert res.exit_code == 2 and "--devices: 0 must be at least 1" in res.stderr


def test_pricing_line_and_wall_time() -> None:
    dear, cheap = Rates(0.4, 0.04), Rates(0.2, 0.02)
    assert on_line(1.5, [(1.0, cheap), (2.0, dear)]) == Rates(pytest.approx(0.3), pytest.approx(0.03))
    assert on_line(7.0, [(1.0, cheap)]) == cheap
    assert on_line(0.0, [(1.0, cheap), (2.0, dear)]).step_s == pytest.approx(0.1)  # never below half the cheaper
    assert makespan_hours([3, 2, 2, 1], 2) == 4 and makespan_hours([3, 2, 2, 1], 1) == 8
