"""``dpc_multigrain`` — density-peaks importance at two granularities.

After the multi-grained feature pruning idea (FTP-Pose, ICASSP 2025): a coarse pass scores whole
frames by DPC-kNN on joint-pooled features and keeps twice the budget; a fine pass scores every
(frame, joint) token by DPC-kNN along each joint's trajectory within those candidates, and the
frames whose joint tokens are the strongest density peaks on average are kept. Frames stay whole,
so every backbone runs unchanged after pruning.
"""

from __future__ import annotations

import torch
from torch import Tensor

from h2ot_core.pruning.base import PruneContext, TokenPruner, top_k_sorted
from h2ot_core.pruning.dpc import dpc_knn_scores


class DPCMultiGrain(TokenPruner):
    def __init__(self, k: int = 2, coarse_ratio: float = 2.0):
        super().__init__()
        self.k = k
        self.coarse_ratio = coarse_ratio

    @torch.no_grad()
    def select(self, tokens: Tensor, keep: int, ctx: PruneContext) -> Tensor:
        b, f, j, c = tokens.shape
        n_coarse = min(f, max(keep, round(keep * self.coarse_ratio)))
        coarse = top_k_sorted(dpc_knn_scores(ctx.frame_features.float(), self.k), n_coarse, ctx.centre)
        cand = tokens.gather(1, coarse[:, :, None, None].expand(b, n_coarse, j, c))  # [B, n, J, C]
        per_joint = cand.permute(0, 2, 1, 3).reshape(b * j, n_coarse, c).float()
        fine = dpc_knn_scores(per_joint, self.k).view(b, j, n_coarse)
        # normalise per joint so no single joint's scale dominates the frame's score
        fine = fine / fine.amax(dim=2, keepdim=True).clamp_min(1e-12)
        frame_score = fine.mean(dim=1)  # [B, n]
        centre = None
        if ctx.centre is not None:
            centre = (coarse == ctx.centre[:, None]).float().argmax(dim=1)
        chosen = top_k_sorted(frame_score, keep, centre)
        return coarse.gather(1, chosen)
