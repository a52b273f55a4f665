"""TPA (``h2ot_core/pruning/attention.py``): keeps the frames that receive the most temporal attention."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.factory import create_model
from h2ot_core.pruning.attention import TPA


def _qk(hot: list[list[int]], joints: int = 3, heads: int = 2, frames: int = 12, dim: int = 4):
    """q, k ``[B*J, H, f, d]``: every query aligned with the keys of the ``hot`` frames of its batch item."""
    b = len(hot)
    q = torch.full((b * joints, heads, frames, dim), 2.0)
    k = torch.zeros(b * joints, heads, frames, dim)
    for i, frames_hot in enumerate(hot):
        k[i * joints:(i + 1) * joints, :, frames_hot] = 2.0
    return q, k


def test_tpa_keeps_the_frames_the_attention_falls_on_per_clip():
    tokens = torch.randn(2, 12, 3, 8)
    q, k = _qk([[2, 7, 9], [0, 5, 11]])
    ctx = _ctx(tokens)
    ctx.qk = (q, k)
    idx = TPA().select(tokens, 3, ctx)
    assert idx.tolist() == [[2, 7, 9], [0, 5, 11]]


def test_tpa_scores_average_over_the_tokens_of_a_frame():
    tokens = torch.randn(1, 12, 3, 8)
    q, k = _qk([[4]])
    k[1, :, 8] = 6.0  # joint 1 attends to frame 8 (almost) only; joints 0 and 2 to frame 4
    ctx = _ctx(tokens)
    ctx.qk = (q, k)
    scores = TPA().scores(tokens, ctx)
    assert scores.shape == (1, 12)
    # the mean over the three joints of a frame: two of them give frame 4 all, one gives frame 8 all
    assert torch.allclose(scores[0, [4, 8]], torch.tensor([2 / 3, 1 / 3]), atol=0.01)
    assert TPA().select(tokens, 2, ctx)[0].tolist() == [4, 8]


def test_tpa_keeps_the_centre_for_seq2frame():
    tokens = torch.randn(1, 12, 3, 8)
    ctx = _ctx(tokens, centre=torch.tensor([6]))
    ctx.qk = _qk([[1, 10]])
    assert TPA().select(tokens, 3, ctx)[0].tolist() == [1, 6, 10]


def test_without_temporal_attention_tpa_uses_the_frames_own_similarity():
    tokens = torch.full((1, 10, 3, 4), 0.1)
    tokens[0, [3, 8]] = 3.0  # two frames whose features every frame's query aligns with most
    assert TPA().select(tokens, 2, _ctx(tokens))[0].tolist() == [3, 8]


def test_the_hourglass_hands_tpa_the_backbones_queries_and_keys():
    torch.manual_seed(0)
    model = create_model("mixste", "tpa", "tra", "1:9", num_frames=27, dim=32, depth=3, num_heads=2).eval()
    assert model.pruner.needs_qk
    with torch.no_grad():
        out = model(torch.randn(2, 27, 17, 2))
    assert out.kept_index.shape == (2, 9)
    assert (out.kept_index.diff(dim=1) > 0).all()
    assert out.pose3d.shape == (2, 27, 17, 3)
