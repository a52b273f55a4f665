"""One intent, one trial: ``resolve_spec`` fills every default from the registry entries the same way for a
grid, a search and ``h2ot train``, and checks every field with the source, the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from h2ot_core.contracts import TrialSpec
from h2ot_core.engine.evaluate import Evaluation
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONE_INFO
from h2ot_core.resolve import AXIS_DEFAULTS, resolve_spec
from orchestrator.commands.train import cli_spec
from orchestrator.grid import load_grid

pytestmark = pytest.mark.timeout(120)


def _grid(tmp_path: Path, grid: dict, fixed: dict | None = None, metric: str | None = None) -> list[TrialSpec]:
    doc = {"grid": grid, **({"fixed": fixed} if fixed else {}), **({"metric": metric} if metric else {})}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_grid(path).expand()


def test_mhformer_trains_its_own_clip_length_under_the_grids_key(tmp_path):
    # The bug: `h2ot train --backbone mhformer` trained 243 frames (TrialSpec's default), a grid 351 (the entry's).
    trained = cli_spec(None, {"backbone": "mhformer", "pruner": "tpc", "schedule": "hot"}, [])
    (gridded,) = _grid(tmp_path, {"backbone": "mhformer", "pruner": "tpc", "schedule": "hot"})
    assert trained == gridded and trained.trial_key == gridded.trial_key
    assert trained.frames == BACKBONE_INFO["mhformer"].defaults["num_frames"] == 351
    assert (trained.schedule, trained.recoverer) == (BACKBONE_INFO["mhformer"].hot_schedule, "none")
    # pinned literally: a change to the defaults cannot move this key unnoticed
    assert trained.trial_key == "85161d4de903bfd3"
    assert cli_spec(None, {"backbone": "mhformer"}, []).trial_key == "67b10d159ea4ed05"


@pytest.mark.parametrize("backbone", sorted(BACKBONE_INFO))
@pytest.mark.parametrize("alias", ["hot", "h2ot"])
def test_train_takes_the_schedule_aliases_a_grid_takes(tmp_path, backbone, alias):
    pruner = {"hot": "tpc", "h2ot": "tps"}[alias]
    recoverer = "none" if BACKBONE_INFO[backbone].pipeline == "seq2frame" else "tra"
    intent = {"backbone": backbone, "pruner": pruner, "recoverer": recoverer, "schedule": alias}
    trained = cli_spec(None, intent, [])
    assert trained.schedule == getattr(BACKBONE_INFO[backbone], f"{alias}_schedule")
    assert trained == _grid(tmp_path, intent)[0]


def test_left_out_axes_take_the_specs_defaults():
    spec = resolve_spec({"backbone": "mixste"}, "t.yaml")
    assert {k: getattr(spec, k) for k in AXIS_DEFAULTS} == AXIS_DEFAULTS
    assert spec.frames == BACKBONE_INFO["mixste"].defaults["num_frames"]
    assert spec.trial_key == TrialSpec("mixste").trial_key  # the old default for seq2seq backbones: same key


def test_official_values_and_the_native_pipeline_are_dropped_from_the_key():
    plain = resolve_spec({"backbone": "mixste", "frames": 27}, "t")
    spelled = resolve_spec({"backbone": "mixste", "frames": 27, "pipeline": "seq2seq",
                            "model": {"dim": BACKBONE_INFO["mixste"].defaults["dim"]}}, "t")
    assert plain.trial_key == spelled.trial_key and spelled.model == {}


def test_unpruned_baseline_ignores_schedule_and_recoverer():
    spec = resolve_spec({"backbone": "mixste", "pruner": "none", "recoverer": "tra", "schedule": "1:9",
                         "frames": 27}, "t")
    assert (spec.schedule, spec.recoverer) == ("", "none")


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
    ({"backbone": "mixste", "pruner": "tpc", "recoverer": "tra", "schedule": 69}, ["t.yaml", "schedule", "69", "quote"]),
    ({"backbone": "mixste", "frames": 27, "pruner": "tpc", "recoverer": "tra", "schedule": "1:27"},
     ["t.yaml", "schedule", "'1:27'", "fewer than the frames (27)"]),
    ({"backbone": "mixste", "frames": 27, "pruner": "tpc", "recoverer": "tra", "tokens": 27, "layer": 1},
     ["t.yaml", "tokens", "27", "fewer than the frames (27)"]),
    ({"backbone": "mixste", "frames": 27, "pruner": "tpc", "recoverer": "none", "schedule": "1:9"},
     ["t.yaml", "needs a recoverer"]),
    ({"backbone": "mixste", "train": {"epoch": 1}}, ["t.yaml", "train.epoch"]),
])
def test_bad_intent_names_source_field_and_value(raw, needles):
    with pytest.raises(ConfigError) as info:
        resolve_spec(raw, "t.yaml")
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_the_spec_owns_its_settings_and_keeps_its_key():
    train = {"epochs": 2, "loss": {"mpjpe": 1.0}}
    spec = TrialSpec("mixste", train=train)
    key = spec.trial_key
    train["epochs"] = 3
    train["loss"]["mpjpe"] = 2.0
    assert spec.train == {"epochs": 2, "loss": {"mpjpe": 1.0}}
    assert spec.trial_key == key == TrialSpec("mixste", train={"epochs": 2, "loss": {"mpjpe": 1.0}}).trial_key


def test_best_on_test_selects_on_the_grids_metric_and_direction(tmp_path):
    grid = {"backbone": "mixste", "frames": 27, "dataset": "mpi_inf_3dhp"}
    (by_pck,) = _grid(tmp_path, grid, {"selection": "best_on_test"}, "pck")
    assert by_pck.selection_metric == "pck" and by_pck.selected_on.mode == "max"
    (by_mpjpe,) = _grid(tmp_path, grid, {"selection": "best_on_test"}, "mpjpe")
    assert by_mpjpe.selection_metric is None and by_mpjpe.selected_on.name == "mpjpe"
    assert by_pck.trial_key != by_mpjpe.trial_key  # a different checkpoint: a different trial
    (last,) = _grid(tmp_path, grid, None, "pck")
    assert last.selection_metric is None and last.trial_key == TrialSpec("mixste", frames=27,
                                                                           dataset="mpi_inf_3dhp").trial_key
    with pytest.raises(ConfigError, match=r"selection_metric.*'gflops' is not one"):
        _grid(tmp_path, grid, {"selection": "best_on_test"}, "gflops")
    with pytest.raises(ConfigError, match="on synthetic; 'pck' is not one"):
        _grid(tmp_path, {**grid, "dataset": "synthetic"}, {"selection": "best_on_test"}, "pck")


def test_a_better_epoch_is_better_in_the_metrics_direction():
    from h2ot_core.api import _is_better

    def ev(mpjpe: float, pck: float) -> Evaluation:
        return Evaluation({"mpjpe": {"avg": mpjpe}, "pck": {"avg": pck}}, frames=1)

    selected = {"metrics": ev(50.0, 80.0).metrics}
    by_pck = resolve_spec({"backbone": "mixste", "dataset": "mpi_inf_3dhp", "selection": "best_on_test",
                           "selection_metric": "pck"}, "t")
    by_mpjpe = resolve_spec({"backbone": "mixste", "selection": "best_on_test"}, "t")
    assert _is_better(by_pck, ev(60.0, 85.0), selected) and not _is_better(by_pck, ev(40.0, 75.0), selected)
    assert _is_better(by_mpjpe, ev(40.0, 75.0), selected) and not _is_better(by_mpjpe, ev(60.0, 85.0), selected)
    assert _is_better(resolve_spec({"backbone": "mixste"}, "t"), ev(99.0, 0.0), selected)  # last_epoch: always
