"""TPMo (``h2ot_core/pruning/motion.py``): motion-based pruning keeps the frames where the input pose moves."""

from __future__ import annotations

import torch
from pruning_ctx import ctx as _ctx

from h2ot_core.pruning.motion import TPMo


def test_tpmo_keeps_the_moving_frames():
    inputs = torch.zeros(1, 20, 17, 2)
    inputs[0, 10:13] = torch.tensor([1.0, 2.0, 3.0])[:, None, None]  # a burst around frames 10-13
    tokens = torch.zeros(1, 20, 17, 4)
    ctx = _ctx(tokens, inputs=inputs)
    # steps between frames (17 joints x 2 coordinates): 9->10 34, 10->11 34, 11->12 34, 12->13 102; a frame's
    # motion is the mean of its two steps: frame 9 17, 10 34, 11 34, 12 68, 13 51, the rest 0
    expected = torch.zeros(1, 20)
    expected[0, 9:14] = torch.tensor([17.0, 34.0, 34.0, 68.0, 51.0])
    assert torch.equal(TPMo().scores(tokens, ctx), expected)
    assert TPMo().select(tokens, 4, ctx).tolist() == [[10, 11, 12, 13]]


def test_tpmo_counts_an_end_frames_single_step_fully():
    inputs = torch.zeros(1, 6, 17, 2)
    inputs[0, 0] = 1.0  # only the first step moves: 34
    tokens = torch.zeros(1, 6, 17, 4)
    assert TPMo().scores(tokens, _ctx(tokens, inputs=inputs))[0, :2].tolist() == [34.0, 17.0]
