"""TPC (``h2ot_core/pruning/cluster.py``): cluster centres, sorted, with the centre frame kept for seq2frame."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.pruning.cluster import TPC


def test_tpc_keeps_centre_for_seq2frame_and_sorts():
    tokens = torch.randn(3, 27, 4, 8)
    centre = torch.full((3,), 13)
    idx = TPC().select(tokens, 9, _ctx(tokens, centre=centre))
    assert idx.shape == (3, 9) and (idx == 13).any(dim=1).all() and (idx.diff(dim=1) > 0).all()
