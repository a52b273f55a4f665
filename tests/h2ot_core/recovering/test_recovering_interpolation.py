"""Interpolation recovery (``h2ot_core/recovering/interpolation.py``): held ends, linear between kept frames."""

from __future__ import annotations

import torch

from h2ot_core.recovering.interpolation import interpolate_time


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
