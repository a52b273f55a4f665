"""Every backbone's contract, parametrized over the backbones: shapes, pruned-length blocks, gradients, sizes."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY, TINY_FRAMES, tiny, tiny_input

from h2ot_core.errors import ConfigError
from h2ot_core.factory import create_model
from h2ot_core.models.mhformer import MHFormer
from h2ot_core.models.mixste import MixSTE
from h2ot_core.models.motionagformer import MotionAGFormer
from h2ot_core.models.motionbert import DSTformer
from h2ot_core.names import BACKBONES, resolved_model_config
from h2ot_core.names import resolved_model_config as official

# MixSTE and DSTformer are built from their classes (``tiny``) ...
CLASSES = {"mixste": MixSTE, "motionbert": DSTformer}
# ... MotionAGFormer and MHFormer through the factory, pruned before block 1 (both have at least 2 prunable
# positions); seq2frame needs its centre, seq2seq TRA.
PRUNED = {"motionagformer": ("tpc", "tra", "1:9"), "mhformer": ("tpc", "none", "1:9")}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_registry_resolves_to_these_classes(name):
    assert BACKBONES.get(name) is CLASSES[name]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_tiny_forward_gives_finite_poses_for_every_frame(name):
    model = tiny(name).eval()
    x = torch.randn(2, TINY_FRAMES, model.num_joints, model.in_chans)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, TINY_FRAMES, 17, 3)
    assert torch.isfinite(y).all()
    # Different clips give different poses (the model is not constant in its input).
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("frames", [1, 9, TINY_FRAMES])
def test_blocks_run_on_fewer_frames(name, frames):
    model = tiny(name).eval()
    x = torch.randn(2, TINY_FRAMES, 17, model.in_chans)
    with torch.no_grad():
        h = model.embed(x)
        assert h.shape == (2, TINY_FRAMES, 17, model.dim)
        h = model.forward_block(0, h)[:, :frames]  # as if pruned after block 0
        for i in range(1, model.depth):
            h = model.forward_block(i, h)
            assert h.shape == (2, frames, 17, model.dim)
        y = model.head(model.forward_norm(h))
    assert y.shape == (2, frames, 17, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_clip_shorter_than_num_frames_uses_the_leading_frame_embeddings(name):
    model = tiny(name).eval()
    x = torch.randn(1, 9, 17, model.in_chans)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 9, 17, 3) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_gradients_reach_every_parameter(name):
    model = tiny(name, drop_path_rate=0.1).train()
    with torch.no_grad():  # non-zero embeddings so every branch carries signal
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.randn(2, TINY_FRAMES, 17, model.in_chans)
    model(x).square().mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, key
        assert torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_temporal_qk_has_one_sequence_per_joint(name):
    model = tiny(name).eval()
    h = model.embed(torch.randn(2, TINY_FRAMES, 17, model.in_chans))[:, :11]
    q, k = model.temporal_qk(1, h)
    heads = TINY[name]["num_heads"]
    assert q.shape == k.shape == (2 * 17, heads, 11, model.dim // heads)
    # q and k are different projections of the same tokens
    assert not torch.allclose(q, k)


@pytest.mark.parametrize(("name", "params"), [("mixste", 33_783_811), ("motionbert", 16_001_549)])
def test_official_size_has_the_official_parameter_count(name, params):
    with torch.device("meta"):
        model = CLASSES[name](**resolved_model_config(name))
    assert sum(p.numel() for p in model.parameters()) == params
    assert (model.num_frames, model.num_joints, model.tra_heads) == (243, 17, 8)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_width_not_divisible_by_heads_is_a_config_error(name):
    with pytest.raises(ConfigError, match="'dim' 30 is not divisible by 'num_heads' 4"):
        CLASSES[name](**resolved_model_config(name, {"dim": 30, "num_heads": 4}))


@pytest.mark.parametrize("name", sorted(PRUNED))
def test_unpruned_backbone_maps_every_frame_to_a_pose(name: str) -> None:
    net = create_model(name, **TINY[name]).backbone
    y = net(tiny_input(name))
    assert y.shape == (2, 27, 17, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(PRUNED))
def test_blocks_and_head_run_on_fewer_frames(name: str) -> None:
    net = create_model(name, **TINY[name]).backbone.eval()
    tokens = net.embed(tiny_input(name))
    kept = tokens[:, [0, 3, 4, 13, 20, 26]]
    out = net.forward_block(net.depth - 1, kept)
    assert out.shape == kept.shape
    assert not torch.allclose(out, kept)
    assert net.head(net.forward_norm(out)).shape == (2, 6, 17, 3)
    assert net.frame_features(out).shape[:2] == (2, 6)


@pytest.mark.parametrize("name", sorted(PRUNED))
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


@pytest.mark.parametrize(("name", "rows"), [("motionagformer", 2 * 17), ("mhformer", 2 * 3)])
def test_temporal_qk_has_one_sequence_per_joint_token(name: str, rows: int) -> None:
    net = create_model(name, **TINY[name]).backbone
    q, k = net.temporal_qk(0, net.embed(tiny_input(name))[:, :11])
    heads = TINY[name]["num_heads"]
    assert q.shape == k.shape == (rows, heads, 11, TINY[name]["dim"] // heads)


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
