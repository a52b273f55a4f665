"""MotionAGFormer and MHFormer backbones: shapes, pruned frame counts, gradients, official size and cost."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY as ALL_TINY

from h2ot_core.errors import ConfigError
from h2ot_core.factory import create_model
from h2ot_core.models.mhformer import MHFormer
from h2ot_core.models.motionagformer import FrameBatchNorm, MotionAGFormer
from h2ot_core.names import resolved_model_config as official

TINY = {name: ALL_TINY[name] for name in ("motionagformer", "mhformer")}
IN_CHANS = {"motionagformer": 3, "mhformer": 2}
# Prune before block 1 (both have at least 2 prunable positions); seq2frame needs its centre, seq2seq TRA.
PRUNED = {"motionagformer": ("tpc", "tra", "1:9"), "mhformer": ("tpc", "none", "1:9")}


def tiny_input(name: str, frames: int = 27, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, frames, 17, IN_CHANS[name])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(TINY))
def test_unpruned_backbone_maps_every_frame_to_a_pose(name: str) -> None:
    net = create_model(name, **TINY[name]).backbone
    y = net(tiny_input(name))
    assert y.shape == (2, 27, 17, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_blocks_and_head_run_on_fewer_frames(name: str) -> None:
    net = create_model(name, **TINY[name]).backbone.eval()
    tokens = net.embed(tiny_input(name))
    kept = tokens[:, [0, 3, 4, 13, 20, 26]]
    out = net.forward_block(net.depth - 1, kept)
    assert out.shape == kept.shape
    assert not torch.allclose(out, kept)
    assert net.head(net.forward_norm(out)).shape == (2, 6, 17, 3)
    assert net.frame_features(out).shape[:2] == (2, 6)


@pytest.mark.parametrize("name", sorted(TINY))
def test_pruned_hourglass_trains_every_parameter(name: str) -> None:
    pruner, recoverer, schedule = PRUNED[name]
    model = create_model(name, pruner, recoverer, schedule, **TINY[name]).train()
    out = model(tiny_input(name))
    expected_frames = 27 if recoverer == "tra" else 1
    assert out.pose3d.shape == (2, expected_frames, 17, 3)
    assert out.kept_index.shape == (2, 9)
    out.pose3d.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


def test_mhformer_seq2frame_keeps_the_centre_frame_and_clusters_on_all_hypotheses() -> None:
    model = create_model("mhformer", "tpc", "none", "1:9", **TINY["mhformer"]).eval()
    out = model(tiny_input("mhformer"))
    assert (out.kept_index == 13).any(dim=1).all()
    tokens = model.backbone.embed(tiny_input("mhformer"))
    assert model.backbone.frame_features(tokens).shape == (2, 27, 3 * TINY["mhformer"]["dim"])


@pytest.mark.parametrize(("name", "rows"), [("motionagformer", 2 * 17), ("mhformer", 2 * 3)])
def test_temporal_qk_has_one_sequence_per_joint_token(name: str, rows: int) -> None:
    net = create_model(name, **TINY[name]).backbone
    q, k = net.temporal_qk(0, net.embed(tiny_input(name))[:, :11])
    heads = TINY[name]["num_heads"]
    assert q.shape == k.shape == (rows, heads, 11, TINY[name]["dim"] // heads)


def test_frame_norm_uses_and_updates_only_the_leading_frames() -> None:
    norm = FrameBatchNorm(10).train()
    x = torch.randn(4, 6, 8) * 3 + 2
    y = norm(x)
    expected = (x - x.mean(dim=(0, 2), keepdim=True)) / torch.sqrt(x.var(dim=(0, 2), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    assert not torch.equal(norm.running_mean[:6], torch.zeros(6))
    assert torch.equal(norm.running_mean[6:], torch.zeros(4))
    assert torch.equal(norm.running_var[6:], torch.ones(4))
    assert int(norm.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="11 nodes exceed the 10"):
        norm(torch.randn(2, 11, 3))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MotionAGFormer(**official("motionagformer", {"num_joints": 16})), "'num_joints' is 16"),
        (lambda: MotionAGFormer(**official("motionagformer", {"dim": 30, "num_heads": 4})), "'dim' 30"),
        (lambda: MHFormer(**official("mhformer", {"num_frames": 28})), "'num_frames' 28"),
    ],
)
def test_bad_sizes_are_config_errors(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()
