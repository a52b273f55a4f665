"""DPCMultiGrain (``h2ot_core/pruning/multigrain.py``): a sorted subset of frames that holds the centre frame."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.pruning.multigrain import DPCMultiGrain


def test_multigrain_returns_sorted_subset():
    tokens = torch.randn(2, 27, 5, 8)
    centre = torch.full((2,), 13)
    idx = DPCMultiGrain().select(tokens, 7, _ctx(tokens, centre=centre))
    assert idx.shape == (2, 7) and (idx.diff(dim=1) > 0).all() and (idx == 13).any(dim=1).all()
