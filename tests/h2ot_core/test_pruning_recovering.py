"""Pruners and recoverers on hand-made inputs where the right answer is known."""

from __future__ import annotations

import torch

from h2ot_core.pruning.base import PruneContext, top_k_sorted
from h2ot_core.pruning.cluster import TPC
from h2ot_core.pruning.dpc import dpc_knn_scores
from h2ot_core.pruning.motion import TPMo
from h2ot_core.pruning.multigrain import DPCMultiGrain
from h2ot_core.pruning.sampling import TPS
from h2ot_core.recovering.attention import TRA
from h2ot_core.recovering.interpolation import interpolate_time
from h2ot_core.schedule import tps_indices


def _ctx(tokens, inputs=None, centre=None):
    b, f = tokens.shape[:2]
    return PruneContext(inputs=inputs if inputs is not None else torch.zeros(b, f, 17, 2),
                        frame_features=tokens.mean(dim=2), centre=centre)


def test_tps_matches_the_reference_indexing():
    assert tps_indices(243, 81)[:3] == [1, 4, 7] and tps_indices(243, 81)[-1] == 241
    assert 175 in tps_indices(351, 117)
    tokens = torch.zeros(2, 243, 1, 4)
    idx = TPS().select(tokens, 81, _ctx(tokens))
    assert idx.tolist()[0] == list(range(1, 243, 3))


def test_dpc_picks_one_centre_per_cluster():
    # three tight, well-separated clusters of 5, 4 and 3 frames: the 3 density peaks are one per cluster
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    feats = centres[labels] + 0.05 * torch.randn(12, 2, generator=gen)
    scores = dpc_knn_scores(feats[None])
    chosen = top_k_sorted(scores, 3)[0]
    assert sorted(labels[chosen].tolist()) == [0, 1, 2]


def test_tpc_keeps_centre_for_seq2frame_and_sorts():
    tokens = torch.randn(3, 27, 4, 8)
    centre = torch.full((3,), 13)
    idx = TPC().select(tokens, 9, _ctx(tokens, centre=centre))
    assert idx.shape == (3, 9) and (idx == 13).any(dim=1).all() and (idx.diff(dim=1) > 0).all()


def test_tpmo_keeps_the_moving_frames():
    inputs = torch.zeros(1, 20, 17, 2)
    inputs[0, 10:13] = torch.tensor([1.0, 2.0, 3.0])[:, None, None]  # a burst around frames 10-13
    tokens = torch.zeros(1, 20, 17, 4)
    idx = TPMo().select(tokens, 4, _ctx(tokens, inputs=inputs))
    assert set(idx[0].tolist()) == {9, 10, 11, 12} or set(idx[0].tolist()) <= {9, 10, 11, 12, 13}


def test_multigrain_returns_sorted_subset():
    tokens = torch.randn(2, 27, 5, 8)
    centre = torch.full((2,), 13)
    idx = DPCMultiGrain().select(tokens, 7, _ctx(tokens, centre=centre))
    assert idx.shape == (2, 7) and (idx.diff(dim=1) > 0).all() and (idx == 13).any(dim=1).all()


def test_interpolation_hand_computed():
    kept = torch.tensor([[1, 4, 6]])
    y = torch.tensor([[[10.0], [40.0], [0.0]]])  # [B=1, f=3, 1]
    out = interpolate_time(y, kept, 8)[0, :, 0].tolist()
    # held before frame 1 and after frame 6; linear in between
    assert out == [10.0, 10.0, 20.0, 30.0, 40.0, 20.0, 0.0, 0.0]


def test_interpolation_is_exact_at_kept_frames_and_per_sample():
    kept = torch.tensor([[0, 2, 4], [1, 2, 3]])
    y = torch.randn(2, 3, 17, 3)
    out = interpolate_time(y, kept, 5)
    assert torch.allclose(out[0, [0, 2, 4]], y[0]) and torch.allclose(out[1, [1, 2, 3]], y[1])
    assert torch.allclose(out[0, 1], (y[0, 0] + y[0, 1]) / 2)


def test_tra_starts_as_identity_of_its_queries_and_matches_explicit_attention():
    torch.manual_seed(0)
    tra = TRA(num_frames=9, dim=8, num_heads=2)
    x = torch.randn(2, 3, 4, 8)  # B, f, J, C
    with torch.no_grad():
        tra.queries.normal_()
    out = tra(x, torch.tensor([[0, 4, 8]] * 2), 9)
    # explicit reference: per joint sequence, softmax((Q Wq)(X Wk)^T / sqrt(d)) (X Wv), heads split
    seq = x.transpose(1, 2).reshape(8, 3, 8)
    q = tra.linear_q(tra.queries).view(1, 9, 2, 4).transpose(1, 2)
    k = tra.linear_k(seq).view(8, 3, 2, 4).transpose(1, 2)
    v = tra.linear_v(seq).view(8, 3, 2, 4).transpose(1, 2)
    attn = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    ref = tra.proj((attn @ v).transpose(1, 2).reshape(8, 9, 8)) + tra.queries
    assert torch.allclose(out, ref.view(2, 4, 9, 8).transpose(1, 2), atol=1e-5)
