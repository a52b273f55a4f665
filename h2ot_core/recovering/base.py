"""The token-recovery contract (TRM): bring the ``f`` kept frames back to the full ``F``.

A recoverer acts either on tokens before the regression head (``stage = "tokens"``, e.g. TRA) or
on 3D poses after it (``stage = "poses"``, e.g. TRI).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn


class TokenRecoverer(nn.Module):
    """``forward(x [B, f, J, C], kept_index [B, f], num_frames) -> [B, num_frames, J, C]``."""

    stage: ClassVar[str] = "tokens"

    def forward(self, x: Tensor, kept_index: Tensor, num_frames: int) -> Tensor:
        raise NotImplementedError


class NoRecovery(TokenRecoverer):
    """``none``: seq2frame models (the centre frame is read out) and unpruned baselines."""

    stage: ClassVar[str] = "poses"

    def __init__(self, **_: object):
        super().__init__()

    def forward(self, x: Tensor, kept_index: Tensor, num_frames: int) -> Tensor:
        return x
