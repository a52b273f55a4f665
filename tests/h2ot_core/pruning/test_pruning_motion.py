"""TPMo (``h2ot_core/pruning/motion.py``): motion-based pruning keeps the frames where the input pose moves."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.pruning.motion import TPMo


def test_tpmo_keeps_the_moving_frames():
    inputs = torch.zeros(1, 20, 17, 2)
    inputs[0, 10:13] = torch.tensor([1.0, 2.0, 3.0])[:, None, None]  # a burst around frames 10-13
    tokens = torch.zeros(1, 20, 17, 4)
    idx = TPMo().select(tokens, 4, _ctx(tokens, inputs=inputs))
    assert set(idx[0].tolist()) == {9, 10, 11, 12} or set(idx[0].tolist()) <= {9, 10, 11, 12, 13}
