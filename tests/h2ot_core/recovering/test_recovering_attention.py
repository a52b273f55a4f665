"""TRA (``h2ot_core/recovering/attention.py``): the recovering cross-attention equals explicit attention."""

from __future__ import annotations

import torch

from h2ot_core.recovering.attention import TRA


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
