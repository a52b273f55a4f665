"""A campaign's cost from its trials' device time: totals by status, the share lost, budget left, ETA."""

from __future__ import annotations

import pytest
from smoke_data import smoke_spec

from h2ot_core.contracts import StopReason, TrialResult, TrialStatus, Usage
from results.store import LeaderboardStore
from results.usage import CampaignUsage, campaign_usage


def _usage(hours: float) -> Usage:
    return Usage(hours * 3000, hours * 600, hours, 10.0, 100.0, "cpu_peak_rss", "Test CPU")


def test_campaign_usage_sums_device_hours_by_status(sqlite_url: str) -> None:
    store = LeaderboardStore(sqlite_url)
    store.ensure_campaign("c", max_device_hours=3.0, price_per_device_hour=2.0)
    outcomes = {("tpc", 0): (TrialStatus.COMPLETE, 1.0), ("tpc", 1): (TrialStatus.COMPLETE, 0.5),
                ("tps", 0): (TrialStatus.FAILED, 0.25), ("tps", 1): (TrialStatus.STOPPED, 0.125)}
    for (pruner, seed), (status, hours) in outcomes.items():
        spec = smoke_spec(pruner, "tra", "1:9", seed)
        store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), status, usage=_usage(hours),
                                        stop_reason=StopReason.USER if status == TrialStatus.STOPPED else None),
                            campaign="c")
    store.mark_running(smoke_spec("tpa", "tra", "1:9"), "c")
    usage = campaign_usage(store.engine, "c")
    assert usage.total == pytest.approx(1.875) and usage.lost == pytest.approx(0.375)
    assert usage.unmeasured == 1 and usage.left == pytest.approx(1.125) and not usage.spent_budget()
    assert usage.dollars(usage.total) == pytest.approx(3.75)
    # 2 pending + 1 running, at the complete trials' mean 0.75 h, one at a time
    assert usage.eta_hours(pending=2, running=1) == pytest.approx(2.25)
    lines = usage.lines(pending=2)
    assert lines[0].startswith("device-hours: 1.88 spent ($3.75 at $2/device-hour); 0.375 of it on failed or stopped")
    assert lines[1] == "budget: 3.00 device-hours, 1.12 left"
    assert lines[2].startswith("ETA: about 2.2 h for 3 trial(s) still owed (1 running)")


def test_no_eta_without_a_measured_complete_trial() -> None:
    usage = CampaignUsage(hours={"failed": 0.5}, trials={"failed": 1, "running": 2}, measured={"failed": 1},
                          max_device_hours=0.5)
    assert usage.eta_hours(pending=3, running=2) is None
    assert usage.spent_budget() and usage.left == 0.0
    spent = CampaignUsage(hours={"complete": 1.0}, trials={"complete": 1, "running": 1}, measured={"complete": 1},
                          max_device_hours=0.5)
    assert spent.lines(pending=5)[-1].startswith("ETA: about 1.0 h for 1 trial(s) still owed (1 running)")
