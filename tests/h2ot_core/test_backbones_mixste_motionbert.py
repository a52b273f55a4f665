"""MixSTE and DSTformer (MotionBERT) backbones: shapes, pruned-length blocks, gradients, official sizes."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY, TINY_FRAMES

from h2ot_core.errors import ConfigError
from h2ot_core.models.base import Backbone
from h2ot_core.models.mixste import MixSTE
from h2ot_core.models.motionbert import DSTformer
from h2ot_core.names import BACKBONES, resolved_model_config

CLASSES = {"mixste": MixSTE, "motionbert": DSTformer}


def tiny(name: str, **overrides) -> Backbone:
    torch.manual_seed(0)
    return CLASSES[name](**resolved_model_config(name, {**TINY[name], **overrides}))


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


def test_drop_path_ramps_to_the_configured_rate():
    model = tiny("mixste", drop_path_rate=0.2)
    rates = [blk.drop_path.p for blk in model.spatial_blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert rates == sorted(rates)
    assert [blk.drop_path.p for blk in model.temporal_blocks] == rates


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_width_not_divisible_by_heads_is_a_config_error(name):
    with pytest.raises(ConfigError, match="'dim' 30 is not divisible by 'num_heads' 4"):
        CLASSES[name](**resolved_model_config(name, {"dim": 30, "num_heads": 4}))
