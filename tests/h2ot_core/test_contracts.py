"""The trial vocabulary: flat metric keys, metric directions, statuses and spec building from user input."""

from __future__ import annotations

import pytest

from h2ot_core.contracts import (
    METRICS,
    STATUSES,
    TrialSpec,
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


def test_from_mapping_builds_a_spec_and_keeps_schedules_as_text():
    spec = TrialSpec.from_mapping({"backbone": "mixste", "pruner": "tpc", "recoverer": "tra", "schedule": 3,
                                   "frames": 27, "trial_key": "ignored"}, "t.yaml")
    assert spec.schedule == "3" and spec.frames == 27


@pytest.mark.parametrize(("raw", "needles"), [
    ({}, ["t.yaml", "backbone", "missing"]),
    ({"backbone": "mixtse"}, ["t.yaml", "backbone", "'mixtse'", "mixste"]),
    ({"backbone": "mixste", "pruner": "tcp"}, ["t.yaml", "pruner", "'tcp'", "Did you mean: tpc"]),
    ({"backbone": "mixste", "frames": "27"}, ["t.yaml", "frames", "'27'", "must be an integer"]),
    ({"backbone": "mixste", "frames": True}, ["t.yaml", "frames", "True"]),
    ({"backbone": "mixste", "frames": 0}, ["t.yaml", "frames", "0", "positive"]),
    ({"backbone": "mixste", "model": [1]}, ["t.yaml", "model", "[1]", "mapping"]),
    ({"backbone": "mixste", "pipeline": "seq2one"}, ["t.yaml", "pipeline", "'seq2one'", "seq2seq"]),
    ({"backbone": "mixste", "selection": "best"}, ["t.yaml", "selection", "'best'", "best_on_test"]),
    ({"backbone": "mixste", "epochs": 3}, ["t.yaml", "trial field", "'epochs'"]),
])
def test_from_mapping_names_source_field_and_value(raw, needles):
    with pytest.raises(ConfigError) as info:
        TrialSpec.from_mapping(raw, "t.yaml")
    for needle in needles:
        assert needle in str(info.value)
