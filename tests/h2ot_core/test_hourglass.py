"""Every backbone × pruner × recoverer × schedule builds, runs, keeps sorted frames and trains."""

from __future__ import annotations

import itertools

import pytest
import torch
from tiny import SCHEDULES, TINY, TINY_FRAMES

from h2ot_core.errors import ConfigError
from h2ot_core.factory import create_model
from h2ot_core.names import BACKBONE_INFO, BACKBONES, PRUNERS, RECOVERERS
from h2ot_core.registry import UnknownNameError
from h2ot_core.schedule import ScheduleError


def _combos():
    for backbone, pruner, recoverer in itertools.product(BACKBONES.names(), PRUNERS.names(), RECOVERERS.names()):
        pipeline = BACKBONE_INFO[backbone].pipeline
        if pipeline == "seq2frame" and recoverer != "none":
            continue
        for schedule in SCHEDULES if pruner != "none" else ("",):
            if pipeline == "seq2seq" and schedule and recoverer == "none":
                continue
            yield backbone, pruner, recoverer, schedule


COMBOS = list(_combos())


@pytest.mark.parametrize(("backbone", "pruner", "recoverer", "schedule"), COMBOS,
                         ids=["-".join(c).replace(":", "_").replace(",", "+") or "x" for c in COMBOS])
def test_every_combination_runs_and_trains(backbone, pruner, recoverer, schedule):
    torch.manual_seed(0)
    model = create_model(backbone, pruner, recoverer, schedule, **TINY[backbone])
    bb = model.backbone
    x = torch.randn(2, TINY_FRAMES, bb.num_joints, bb.in_chans)
    model.train()
    out = model(x)
    frames_out = 1 if model.pipeline == "seq2frame" else TINY_FRAMES
    assert out.pose3d.shape == (2, frames_out, bb.num_joints, 3)
    assert torch.isfinite(out.pose3d).all()
    kept = out.kept_index
    expected_kept = int(schedule.split(",")[-1].split(":")[1]) if schedule else TINY_FRAMES
    assert kept.shape == (2, expected_kept)
    assert (kept.diff(dim=1) > 0).all(), "kept frames must be sorted and unique"
    assert kept.min() >= 0 and kept.max() < TINY_FRAMES
    if model.pipeline == "seq2frame":
        assert (kept == TINY_FRAMES // 2).any(dim=1).all(), "seq2frame must keep the centre frame"
    out.pose3d.square().mean().backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("backbone", sorted(TINY))
def test_flops_fall_as_tokens_fall(backbone):
    from h2ot_core.cost import count_cost

    seq2frame = BACKBONE_INFO[backbone].pipeline == "seq2frame"
    recoverer = "none" if seq2frame else "tri"
    previous = None
    for schedule in ("", "1:21", "1:13", "1:9", "1:3"):
        pruner = "tps" if schedule else "none"
        model = create_model(backbone, pruner, recoverer if schedule else "none", schedule, **TINY[backbone])
        cost = count_cost(model)
        assert cost.gflops > 0 and cost.gflops_total >= cost.gflops
        if previous is not None:
            assert cost.gflops < previous.gflops and cost.gflops_total < previous.gflops_total, schedule
        previous = cost


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(pruner="tpc", recoverer="tra", schedule="1:27"), "fewer than the number of frames"),
        (dict(pruner="tpc", recoverer="tra", schedule="1:9,2:9"), "fewer than the previous stage"),
        (dict(pruner="tpc", recoverer="tra", schedule="1:9,2:13"), "fewer than the previous stage"),
        (dict(pruner="tpc", recoverer="tra", schedule="3:9"), "outside the model's depth"),
        (dict(pruner="tpc", recoverer="tra", schedule="0:9"), "outside the model's depth"),
        (dict(pruner="tpc", recoverer="tra", schedule="2:13,1:5"), "strictly increase"),
        (dict(pruner="tpc", recoverer="tra", schedule="1-9"), "LAYER:TOKENS"),
        (dict(pruner="tpc", recoverer="none", schedule="1:9"), "needs a recoverer"),
        (dict(pruner="none", recoverer="none", schedule="1:9"), "takes no schedule"),
        (dict(pruner="tpc", recoverer="tra", schedule=""), "needs a schedule"),
    ],
)
def test_bad_schedules_are_refused_before_building(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("mixste", **kwargs, **TINY["mixste"])


def test_seq2frame_rules():
    with pytest.raises(ScheduleError, match="drops the centre frame"):
        create_model("mhformer", "tps", "none", "1:10", **TINY["mhformer"])
    with pytest.raises(ConfigError, match="recoverer 'none'"):
        create_model("mhformer", "tpc", "tra", "1:9", **TINY["mhformer"])
    with pytest.raises(ScheduleError, match="odd number of frames"):
        create_model("mixste", "tpc", "none", "1:9", pipeline="seq2frame", **{**TINY["mixste"], "num_frames": 28})


@pytest.mark.parametrize(("call", "kind", "suggestion"), [
    (lambda: create_model("mixtse"), "backbone", "mixste"),
    (lambda: create_model("mixste", "tcp", "tra", "1:9"), "pruner", "tpc"),
    (lambda: create_model("mixste", "tpc", "tri_", "1:9"), "recoverer", "tri"),
])
def test_unknown_names_suggest(call, kind, suggestion):
    with pytest.raises(UnknownNameError, match=f"Unknown {kind} .*Did you mean: {suggestion}"):
        call()


def test_unknown_model_setting_is_named():
    with pytest.raises(ConfigError, match="Unknown model setting 'width'"):
        create_model("mixste", width=3)
