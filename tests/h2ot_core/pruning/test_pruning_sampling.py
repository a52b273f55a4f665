"""TPS (``h2ot_core/pruning/sampling.py``): uniform sampling keeps the frames of the reference indexing."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.pruning.sampling import TPS
from h2ot_core.schedule import tps_indices


def test_tps_matches_the_reference_indexing():
    assert tps_indices(243, 81)[:3] == [1, 4, 7] and tps_indices(243, 81)[-1] == 241
    assert 175 in tps_indices(351, 117)
    tokens = torch.zeros(2, 243, 1, 4)
    idx = TPS().select(tokens, 81, _ctx(tokens))
    assert idx.tolist()[0] == list(range(1, 243, 3))
