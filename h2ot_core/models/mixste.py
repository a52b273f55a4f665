"""MixSTE (Zhang et al., CVPR 2022): alternating spatial and temporal transformer blocks.

Each of the ``depth`` block positions runs a spatial block over the ``J`` joints of every frame,
``Spatial_norm``, a temporal block over the ``f`` frames of every joint, then ``Temporal_norm``
(the two norms are shared by all positions, as in the official code). The temporal positional
embedding is added once, at position 0, between its spatial and temporal halves. The head is
LayerNorm + Linear(C, 3) on every token.

The official 243-frame size is ``h2ot_core.names.backbone_info("mixste").defaults``.
Input ``[B, F, J, 2]`` normalised 2D keypoints; output ``[B, F, J, 3]`` root-relative joints in the
training targets' unit (metres).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from h2ot_core.errors import ConfigError
from h2ot_core.layers import Block
from h2ot_core.models.base import Backbone


class MixSTE(Backbone):
    """MixSTE split into embed → ``depth`` (spatial, temporal) block pairs → head.

    Args:
        num_frames: most frames per clip ``F`` (length of the temporal positional embedding).
        num_joints: ``J``.
        in_chans: input channels per joint (x, y).
        dim: token width ``C``.
        depth: number of spatial/temporal block pairs (the prunable positions).
        num_heads: attention heads of every block.
        mlp_ratio: MLP hidden width / ``C``.
        qkv_bias: bias of the fused q/k/v projections.
        drop_rate: dropout after the embeddings and inside the blocks.
        drop_path_rate: stochastic depth of the last pair (ramps linearly from 0 at pair 0).
        tra_heads: heads of the TRA recoverer HoT pairs with this backbone.
    """

    def __init__(self, *, num_frames: int, num_joints: int, in_chans: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, qkv_bias: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 tra_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"MixSTE: model setting 'dim' {dim} is not divisible by 'num_heads' {num_heads}")
        self.num_frames, self.num_joints, self.in_chans = num_frames, num_joints, in_chans
        self.dim, self.depth, self.tra_heads = dim, depth, tra_heads
        self.patch_embed = nn.Linear(in_chans, dim)
        self.spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.pos_drop = nn.Dropout(drop_rate)
        # Plain floats, not torch.linspace: the model must also build on the meta device.
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]

        def blocks() -> nn.ModuleList:
            return nn.ModuleList(
                Block(dim, num_heads, mlp_ratio, qkv_bias, drop=drop_rate, drop_path=rate, eps=1e-6) for rate in rates
            )

        self.spatial_blocks = blocks()
        self.temporal_blocks = blocks()
        self.spatial_norm = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        # The official head's LayerNorm keeps torch's default eps (1e-5), unlike the blocks.
        self.pose_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def embed(self, x: Tensor) -> Tensor:
        """``[B, F, J, C_in]`` → ``[B, F, J, C]``: per-joint linear embedding plus a joint embedding."""
        return self.pos_drop(self.patch_embed(x) + self.spatial_pos_embed)

    def forward_block(self, i: int, x: Tensor) -> Tensor:
        """Pair ``i`` on ``[B, f, J, C]`` → ``[B, f, J, C]``.

        The result is a frame-major *view* of joint-major memory: the next pair's spatial reshape is
        then the only copy per pair.
        """
        b, f, j, c = x.shape
        h = self.spatial_norm(self.spatial_blocks[i](x.reshape(b * f, j, c)))
        h = h.view(b, f, j, c).transpose(1, 2).reshape(b * j, f, c)
        if i == 0:
            h = self.pos_drop(h + self.temporal_pos_embed[:, :f])
        h = self.temporal_norm(self.temporal_blocks[i](h))
        return h.view(b, j, f, c).transpose(1, 2)

    def head(self, x: Tensor) -> Tensor:
        """``[B, f, J, C]`` → ``[B, f, J, 3]``."""
        return self.pose_head(x)

    def temporal_qk(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pair ``i``'s temporal-attention queries and keys on ``x [B, f, J, C]``: each ``[B*J, H, f, d]``."""
        blk = cast(Block, self.temporal_blocks[i])
        b, f, j, c = x.shape
        q, k, _ = blk.attn.qkv_heads(blk.norm1(x.transpose(1, 2).reshape(b * j, f, c)))
        return q, k
