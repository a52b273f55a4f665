"""TPMo — Token Pruning Motion (H2OT): keep the frames with the largest motion in the 2D input.

Motion of frame t is the mean of its backward and forward absolute differences, summed over joints
and coordinates, on the frames still alive (so later stages measure motion between kept frames).
"""

from __future__ import annotations

import torch
from torch import Tensor

from h2ot_core.pruning.base import PruneContext, TokenPruner


class TPMo(TokenPruner):
    def scores(self, tokens: Tensor, ctx: PruneContext) -> Tensor:
        x = ctx.inputs[..., :2].float()  # confidence channels carry no motion
        step = (x[:, 1:] - x[:, :-1]).abs().sum(dim=(2, 3))  # [B, f-1]
        zero = step.new_zeros(step.shape[0], 1)
        back = torch.cat([zero, step], dim=1)
        fwd = torch.cat([step, zero], dim=1)
        # ends have one neighbour: count their single difference fully rather than halving it
        count = torch.full_like(back, 2.0)
        count[:, 0] = count[:, -1] = 1.0
        return (back + fwd) / count
