"""Every backbone's contract, parametrized over the registry (a backbone registered in ``h2ot_core.names`` is
tested here with no edit): shapes, pruned-length blocks, temporal attention, gradients, pruned training, sizes."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY, TINY_FRAMES, tiny

from h2ot_core.errors import ConfigError
from h2ot_core.factory import create_model
from h2ot_core.models.base import Backbone
from h2ot_core.models.mhformer import MHFormer
from h2ot_core.models.motionagformer import MotionAGFormer
from h2ot_core.names import BACKBONES, backbone_info, resolved_model_config

ALL = sorted(BACKBONES.names())
#: seq2seq lifters also take a clip shorter than their num_frames (MHFormer's seq2frame MHG normalises over all)
SEQ2SEQ = [name for name in ALL if backbone_info(name).pipeline == "seq2seq"]
#: published parameter counts at the official size (a fact of the paper, so listed by hand)
OFFICIAL_PARAMS = {"mixste": 33_783_811, "motionbert": 16_001_549}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def clips(model: Backbone, frames: int = TINY_FRAMES, batch: int = 2) -> torch.Tensor:
    """Random 2D (or 2D + confidence) keypoints ``[batch, frames, J, C_in]`` for ``model``."""
    return torch.randn(batch, frames, model.num_joints, model.in_chans)


@pytest.mark.parametrize("name", ALL)
def test_registry_entry_is_a_backbone_class_that_builds_at_its_tiny_size(name):
    assert issubclass(BACKBONES.get(name), Backbone)
    model = tiny(name)
    assert (model.num_frames, model.num_joints) == (TINY_FRAMES, 17)
    assert model.depth == TINY[name]["depth"]


@pytest.mark.parametrize("name", ALL)
def test_unpruned_forward_gives_finite_poses_for_every_frame(name):
    model = tiny(name).eval()
    x = clips(model)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, TINY_FRAMES, 17, 3)
    assert torch.isfinite(y).all()
    # Different clips give different poses (the model is not constant in its input).
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("frames", [1, 9, TINY_FRAMES])
def test_blocks_and_head_run_on_fewer_frames(name, frames):
    model = tiny(name).eval()
    with torch.no_grad():
        h = model.embed(clips(model))
        assert h.shape[:2] == (2, TINY_FRAMES)
        h = model.forward_block(0, h)[:, :frames]  # as if pruned after block 0
        for i in range(1, model.depth):
            out = model.forward_block(i, h)
            assert out.shape == h.shape
            h = out
        y = model.head(model.forward_norm(h))
        assert model.frame_features(h).shape[:2] == (2, frames)
    assert y.shape == (2, frames, 17, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_a_clip_shorter_than_num_frames_uses_the_leading_frame_embeddings(name):
    model = tiny(name).eval()
    with torch.no_grad():
        y = model(clips(model, frames=9, batch=1))
    assert y.shape == (1, 9, 17, 3) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    model = tiny(name).train()
    with torch.no_grad():  # non-zero embeddings and scales so every branch carries signal
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model(clips(model)).square().mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, key
        assert torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", ALL)
def test_temporal_qk_has_one_sequence_per_token_of_a_frame(name):
    model = tiny(name).eval()
    h = model.embed(clips(model))[:, :11]
    found = model.temporal_qk(0, h)
    assert found is not None, "TPA needs every backbone's temporal attention"
    q, k = found
    heads = TINY[name]["num_heads"]
    assert q.shape == k.shape
    assert q.shape[0] == 2 * h.shape[2]  # one sequence per batch item and token of a frame (joint, hypothesis)
    assert q.shape[1:3] == (heads, 11)
    assert not torch.allclose(q, k)  # q and k are different projections of the same tokens


@pytest.mark.parametrize("name", ALL)
def test_pruned_hourglass_trains_every_parameter(name):
    seq2seq = backbone_info(name).pipeline == "seq2seq"
    model = create_model(name, "tpc", "tra" if seq2seq else "none", "1:9", **TINY[name]).train()
    out = model(clips(model.backbone))
    assert out.pose3d.shape == (2, TINY_FRAMES if seq2seq else 1, 17, 3)
    assert out.kept_index.shape == (2, 9)
    out.pose3d.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


@pytest.mark.parametrize("name", ALL)
def test_official_size_builds_with_its_registered_defaults(name):
    defaults = backbone_info(name).defaults
    with torch.device("meta"):
        model = BACKBONES.get(name)(**resolved_model_config(name))
    assert (model.num_frames, model.num_joints, model.depth) == (defaults["num_frames"], 17, defaults["depth"])
    if name in OFFICIAL_PARAMS:
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", ALL)
def test_width_not_divisible_by_heads_is_a_config_error(name):
    with pytest.raises(ConfigError, match="'dim' 30 is not divisible by"):
        BACKBONES.get(name)(**resolved_model_config(name, {"dim": 30, "num_heads": 4}))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MotionAGFormer(**resolved_model_config("motionagformer", {"num_joints": 16})), "'num_joints' is 16"),
        (lambda: MHFormer(**resolved_model_config("mhformer", {"num_frames": 28})), "'num_frames' 28"),
    ],
)
def test_backbone_specific_sizes_are_config_errors(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()
