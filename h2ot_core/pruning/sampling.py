"""TPS — Token Pruning Sampling (H2OT): uniform, input-independent, parameter-free.

Keeps the middle frame of each of ``keep`` equal groups (243 → 81 keeps 1, 4, ..., 241), so kept
frames are evenly spaced — the natural partner of interpolation recovery (TRI).
"""

from __future__ import annotations

import torch
from torch import Tensor

from h2ot_core.pruning.base import PruneContext, TokenPruner
from h2ot_core.schedule import tps_indices


class TPS(TokenPruner):
    @torch.no_grad()
    def select(self, tokens: Tensor, keep: int, ctx: PruneContext) -> Tensor:
        b, f = tokens.shape[:2]
        idx = torch.tensor(tps_indices(f, keep), device=tokens.device).expand(b, keep)
        if ctx.centre is not None:
            # validate_schedule refuses schedules whose uniform samples miss the centre, so this
            # only guards direct library use: swap the nearest sample for the centre.
            missing = ~(idx == ctx.centre[:, None]).any(dim=1)
            if bool(missing.any()):
                idx = idx.clone()
                nearest = (idx - ctx.centre[:, None]).abs().argmin(dim=1)
                idx[missing, nearest[missing]] = ctx.centre[missing]
                idx = idx.sort(dim=1).values
        return idx
