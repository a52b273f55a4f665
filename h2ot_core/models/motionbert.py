"""MotionBERT's DSTformer (Zhu et al., ICCV 2023): dual-stream spatio-temporal transformer.

Each of the ``depth`` levels runs two streams on the same ``[B, f, J, C]`` tokens:

- ST: spatial attention over joints + MLP, then temporal attention over frames + MLP;
- TS: the same four sub-layers in the opposite order (own weights);

and mixes them per token with learned softmax weights ``α = softmax(ts_attn([x_st, x_ts]))``.
Every sub-layer is pre-norm ``x + attn(LN(x))`` / ``x + mlp(LN(x))`` (LayerNorm eps 1e-6). A final
LayerNorm, a tanh representation layer (``dim → dim_rep``) and a linear regression follow.

The official 243-frame size is ``h2ot_core.names.backbone_info("motionbert").defaults``.
Input ``[B, F, J, 3]`` (x, y, confidence); output ``[B, F, J, 3]`` root-relative joints in the
training targets' unit.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import torch
from torch import Tensor, nn

from h2ot_core.errors import ConfigError
from h2ot_core.layers import Attention, DropPath, Mlp
from h2ot_core.models.base import Backbone


class DualStreamBlock(nn.Module):
    """One stream of a DSTformer level: ``order`` ``"st"`` (spatial first) or ``"ts"`` (temporal first).

    ``forward`` takes ``[B, f, J, C]`` (any strides) and returns ``[B, f, J, C]`` as a view of
    whichever layout its last sub-layer ran in; the layout changes once, between the two halves.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float, drop_path: float,
                 order: str):
        super().__init__()
        self.order = order
        self.norm1_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_t = nn.LayerNorm(dim, eps=1e-6)
        self.attn_s = Attention(dim, num_heads, qkv_bias, proj_drop=drop)
        self.attn_t = Attention(dim, num_heads, qkv_bias, proj_drop=drop)
        self.norm2_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm2_t = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_s = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.mlp_t = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path)

    def _half(self, x: Tensor, axis: str) -> Tensor:
        """Attention + MLP over the joints (``axis="s"``, ``x [B*f, J, C]``) or frames (``"t"``, ``[B*J, f, C]``)."""
        attn, mlp = getattr(self, f"attn_{axis}"), getattr(self, f"mlp_{axis}")
        norm1, norm2 = getattr(self, f"norm1_{axis}"), getattr(self, f"norm2_{axis}")
        x = x + self.drop_path(attn(norm1(x)))
        return x + self.drop_path(mlp(norm2(x)))

    def forward(self, x: Tensor) -> Tensor:
        b, f, j, c = x.shape
        if self.order == "st":
            h = self._half(x.reshape(b * f, j, c), "s").view(b, f, j, c)
            h = self._half(h.transpose(1, 2).reshape(b * j, f, c), "t")
            return h.view(b, j, f, c).transpose(1, 2)
        h = self._half(x.transpose(1, 2).reshape(b * j, f, c), "t").view(b, j, f, c)
        h = self._half(h.transpose(1, 2).reshape(b * f, j, c), "s")
        return h.view(b, f, j, c)


class DSTformer(Backbone):
    """DSTformer split into embed → ``depth`` dual-stream levels → norm → head.

    Args:
        num_frames: most frames per clip ``F`` (length of the temporal embedding).
        num_joints: ``J``.
        in_chans: input channels per joint (x, y, confidence).
        dim: token width ``C`` (MotionBERT's ``dim_feat``).
        depth: number of dual-stream levels (the prunable positions).
        num_heads: attention heads of every attention layer.
        mlp_ratio: MLP hidden width / ``C``.
        dim_rep: width of the tanh representation layer before the regression.
        qkv_bias: bias of the fused q/k/v projections.
        drop_rate: dropout after the embeddings and inside the blocks.
        drop_path_rate: stochastic depth of the last level (ramps linearly from 0 at level 0).
        tra_heads: heads of the TRA recoverer HoT pairs with this backbone.
    """

    def __init__(self, *, num_frames: int, num_joints: int, in_chans: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, dim_rep: int, qkv_bias: bool = True, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, tra_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"MotionBERT: model setting 'dim' {dim} is not divisible by 'num_heads' {num_heads}")
        self.num_frames, self.num_joints, self.in_chans = num_frames, num_joints, in_chans
        self.dim, self.depth, self.tra_heads = dim, depth, tra_heads
        self.joints_embed = nn.Linear(in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, num_frames, 1, dim))
        self.pos_drop = nn.Dropout(drop_rate)
        # Plain floats, not torch.linspace: the model must also build on the meta device.
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]

        def streams(order: str) -> nn.ModuleList:
            return nn.ModuleList(
                DualStreamBlock(dim, num_heads, mlp_ratio, qkv_bias, drop_rate, rate, order) for rate in rates
            )

        self.blocks_st = streams("st")
        self.blocks_ts = streams("ts")
        self.ts_attn = nn.ModuleList(nn.Linear(2 * dim, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pre_logits = nn.Sequential(OrderedDict(fc=nn.Linear(dim, dim_rep), act=nn.Tanh()))
        self.pose_head = nn.Linear(dim_rep, 3)
        self._init_weights()

    def _init_weights(self) -> None:
        """MotionBERT's initialisation: truncated-normal (std 0.02) weights and embeddings, zero biases,
        and fusion layers that start as an even mix of the two streams."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        for fuse in cast("list[nn.Linear]", self.ts_attn):
            nn.init.zeros_(fuse.weight)
            nn.init.constant_(fuse.bias, 0.5)

    def embed(self, x: Tensor) -> Tensor:
        """``[B, F, J, C_in]`` → ``[B, F, J, C]``: joint embedding plus joint and frame embeddings."""
        f = x.shape[1]
        return self.pos_drop(self.joints_embed(x) + self.pos_embed + self.temp_embed[:, :f])

    def forward_block(self, i: int, x: Tensor) -> Tensor:
        """Level ``i`` on ``[B, f, J, C]``: both streams, fused per token by ``α``; same shape out."""
        x_st = self.blocks_st[i](x)
        x_ts = self.blocks_ts[i](x)
        alpha = self.ts_attn[i](torch.cat((x_st, x_ts), dim=-1)).softmax(dim=-1)
        return x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]

    def forward_norm(self, x: Tensor) -> Tensor:
        return self.norm(x)

    def head(self, x: Tensor) -> Tensor:
        """``[B, f, J, C]`` → ``[B, f, J, 3]`` through the tanh representation layer."""
        return self.pose_head(self.pre_logits(x))

    def temporal_qk(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Level ``i``'s temporal-attention queries and keys on ``x [B, f, J, C]``: each ``[B*J, H, f, d]``.

        The TS stream's temporal attention is used: it is the one that reads the level's input directly.
        """
        blk = cast(DualStreamBlock, self.blocks_ts[i])
        b, f, j, c = x.shape
        q, k, _ = blk.attn_t.qkv_heads(blk.norm1_t(x.transpose(1, 2).reshape(b * j, f, c)))
        return q, k
