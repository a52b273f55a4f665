"""TPC — Token Pruning Cluster (HoT, CVPR 2024): keep the frames that are DPC-kNN cluster centres."""

from __future__ import annotations

from torch import Tensor

from h2ot_core.pruning.base import PruneContext, TokenPruner
from h2ot_core.pruning.dpc import dpc_knn_scores


class TPC(TokenPruner):
    """Scores frames by density-peak clustering of their joint-pooled features (``k = 2``)."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.k = k

    def scores(self, tokens: Tensor, ctx: PruneContext) -> Tensor:
        return dpc_knn_scores(ctx.frame_features.float(), self.k)
