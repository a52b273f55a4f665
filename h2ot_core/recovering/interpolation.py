"""TRI — Token Recovering Interpolation (H2OT): parameter-free linear interpolation of 3D poses.

The head regresses poses at the kept frames only; they are interpolated linearly in time to all
``F`` frames. Before the first and after the last kept frame the nearest kept pose is held (no
extrapolation, which would amplify noise at the clip ends).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from h2ot_core.recovering.base import TokenRecoverer


def interpolate_time(y: Tensor, kept_index: Tensor, num_frames: int) -> Tensor:
    """Linear interpolation along time.

    Args:
        y: ``[B, f, ...]`` values at the kept frames.
        kept_index: ``[B, f]`` their frame numbers, strictly increasing.
        num_frames: ``F``, the output length.

    Returns:
        ``[B, F, ...]``; equals ``y`` at kept frames, constant beyond the first/last kept frame.
    """
    b, f = kept_index.shape
    if f == num_frames:
        return y
    t = torch.arange(num_frames, device=y.device).expand(b, num_frames).contiguous()
    right = torch.searchsorted(kept_index.contiguous(), t).clamp(max=f - 1)  # first kept >= t
    left = (right - 1).clamp(min=0)
    exact_or_before = kept_index.gather(1, right) <= t
    left = torch.where(exact_or_before, right, left)  # t at/after the last kept frame
    t_left = kept_index.gather(1, left).to(y.dtype)
    t_right = kept_index.gather(1, right).to(y.dtype)
    span = (t_right - t_left).clamp_min(1)
    w = ((t.to(y.dtype) - t_left) / span).clamp(0, 1)
    shape = (b, num_frames) + (1,) * (y.ndim - 2)
    tail = y.shape[2:]
    y_left = y.gather(1, left.view(shape).expand(b, num_frames, *tail))
    y_right = y.gather(1, right.view(shape).expand(b, num_frames, *tail))
    return torch.lerp(y_left, y_right, w.view(shape))


class TRI(TokenRecoverer):
    stage: ClassVar[str] = "poses"

    def __init__(self, **_: object):
        super().__init__()

    def forward(self, x: Tensor, kept_index: Tensor, num_frames: int) -> Tensor:
        return interpolate_time(x, kept_index, num_frames)
