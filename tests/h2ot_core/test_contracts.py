"""The trial vocabulary: flat metric keys, metric directions, statuses and spec building from user input."""

from __future__ import annotations

import pytest

from h2ot_core.contracts import (
    METRICS,
    STATUSES,
    lower_is_better,
    metric_def,
    metric_key,
    parse_metric_key,
)
from h2ot_core.errors import ConfigError


@pytest.mark.parametrize(("split", "name", "action", "key"), [
    ("test", "mpjpe", "avg", "test_mpjpe"),
    ("train", "loss", "avg", "train_loss"),
    ("test", "p_mpjpe", "avg", "test_p_mpjpe"),
    ("test", "mpjpe", "Walking", "test_mpjpe__Walking"),
])
def test_metric_keys_round_trip(split, name, action, key):
    assert metric_key(split, name, action) == key
    assert parse_metric_key(key) == (split, name, action)


@pytest.mark.parametrize("key", ["epoch", "lr", "p_mpjpe", "test_", "sched_test_mpjpe", "train"])
def test_other_report_keys_are_not_metric_keys(key):
    assert parse_metric_key(key) is None


def test_directions_are_declared_with_the_metric():
    assert lower_is_better("mpjpe") and lower_is_better("test_mpjpe") and lower_is_better("gflops")
    assert not lower_is_better("pck") and not lower_is_better("speedup_latency")
    assert metric_def("mpjpe").label == "MPJPE (mm)"
    with pytest.raises(ConfigError, match=r"Unknown metric 'mpjep'.*Did you mean: mpjpe"):
        lower_is_better("mpjep")
    assert all(m.name == n for n, m in METRICS.items())


def test_status_vocabulary():
    assert STATUSES == ("complete", "diverged", "failed", "stopped", "running", "pending")


