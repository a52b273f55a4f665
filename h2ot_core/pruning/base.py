"""The token-pruning contract (TPM): choose which frame tokens survive a stage.

A pruner never copies tokens itself: it returns positions into the current token axis, sorted
ascending so temporal order is kept, and the hourglass gathers all joints of those frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class PruneContext:
    """What a pruner may look at besides the tokens.

    Attributes:
        inputs: ``[B, f, J, C_in]`` the 2D input keypoints of the frames still alive (for TPMo).
        centre: position of the clip's centre frame on the current axis (``[B]`` long), or ``None`` for
            seq2seq. seq2frame pruners must keep it.
        frame_features: ``[B, f, D]`` one feature per frame (the backbone's ``frame_features``).
        qk: queries and keys of the preceding block's temporal attention, ``[B*J', H, f, d]`` each (TPA).
    """

    inputs: Tensor
    frame_features: Tensor
    centre: Tensor | None = None
    qk: tuple[Tensor, Tensor] | None = None


class TokenPruner(nn.Module):
    """Base class: ``select(tokens [B, f, J', C], keep, ctx) -> positions [B, keep]`` (sorted, unique)."""

    #: whether :meth:`select` needs ``ctx.qk`` (costs one extra q/k projection at the pruning point)
    needs_qk: bool = False

    def scores(self, tokens: Tensor, ctx: PruneContext) -> Tensor:
        """Importance of every frame, ``[B, f]``; higher is kept first."""
        raise NotImplementedError

    @torch.no_grad()
    def select(self, tokens: Tensor, keep: int, ctx: PruneContext) -> Tensor:
        """Top-``keep`` frames by score (the centre forced in for seq2frame), sorted ascending."""
        scores = self.scores(tokens, ctx)
        return top_k_sorted(scores, keep, ctx.centre)


def top_k_sorted(scores: Tensor, keep: int, centre: Tensor | None = None) -> Tensor:
    """Positions of the ``keep`` largest ``scores [B, f]``; with ``centre [B]`` that position is always kept.

    Returns ``[B, keep]`` long, ascending.
    """
    if centre is not None:
        scores = scores.clone()
        scores.scatter_(1, centre[:, None], float("inf"))
    idx = scores.topk(keep, dim=1, sorted=False).indices
    return idx.sort(dim=1).values


class NoPruning(TokenPruner):
    """``none``: keeps every frame. Used with an empty schedule, so the baseline runs the same path."""

    @torch.no_grad()
    def select(self, tokens: Tensor, keep: int, ctx: PruneContext) -> Tensor:
        b, f = tokens.shape[:2]
        return torch.arange(f, device=tokens.device).expand(b, f)
