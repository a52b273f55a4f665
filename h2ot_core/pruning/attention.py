"""TPA — Token Pruning Attention (H2OT): keep the frames that receive the most temporal attention.

The attention map is that of the last block before the pruning point, recomputed from its q/k
projections on the tokens it produced (the fused kernels never materialise it), averaged over heads,
queries and joints. Without temporal attention in the backbone, the tokens' own scaled dot-product
similarity is used.
"""

from __future__ import annotations

from torch import Tensor

from h2ot_core.layers import attention_received
from h2ot_core.pruning.base import PruneContext, TokenPruner


class TPA(TokenPruner):
    needs_qk = True

    def scores(self, tokens: Tensor, ctx: PruneContext) -> Tensor:
        b, f = tokens.shape[:2]
        if ctx.qk is not None:
            q, k = ctx.qk
            received = attention_received(q.float(), k.float())  # [B*J', f]
            return received.view(b, -1, f).mean(dim=1)
        feats = ctx.frame_features.float()[:, None]  # [B, 1, f, D]
        return attention_received(feats, feats)
