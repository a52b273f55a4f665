"""MotionAGFormer (Mehraban et al., WACV 2024): attention and graph streams fused per block.

Each of the ``depth`` blocks runs two streams on the same ``[B, f, J, C]`` tokens and mixes them with
learned, per-token softmax weights (adaptive fusion):

- attention stream: spatial self-attention over joints, then temporal self-attention over frames;
- graph stream: a GCN over the skeleton, then a GCN over frames whose graph links every frame to its
  ``neighbour_num`` most similar frames (built from the features on every forward pass).

Each sub-layer is a MetaFormer unit ``x + s1 * mixer(LN(x))`` then ``x + s2 * MLP(LN(x))`` with
learnable layer scales ``s1, s2``. The two temporal units run on joint-major tokens ``[B, J, f, C]`` (one
contiguous copy in per stream, one back for the fused output): per-token norms and
MLPs do not care about the layout, and the temporal mixers then see each joint's sequence as a view. The temporal GCN is the one place with frame-indexed weights: the
official code batch-normalises over the frame axis (``BatchNorm1d(frames)``). :class:`FrameBatchNorm`
keeps those weights for ``num_frames`` frames and uses the first ``f`` on an ``f``-frame input, so one
module runs before and after pruning (HoT instead rebuilds the later layers with ``f``-sized norms).

The official size, MotionAGFormer-B, is ``h2ot_core.names.backbone_info("motionagformer").defaults``.
Input ``[B, F, J, 3]`` (x, y, confidence); output ``[B, F, J, 3]`` root-relative joints in the training targets' unit.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from h2ot_core.errors import ConfigError
from h2ot_core.layers import Attention, DropPath, Mlp
from h2ot_core.models.base import Backbone

#: Human3.6M skeleton (17 joints): each joint's graph neighbours, no self-loops. Directed exactly as
#: upstream (e.g. the pelvis links to the right hip and spine but not the left hip) so official weights
#: see the graph they were trained on.
H36M_NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (1, 7), 1: (2, 0), 2: (3, 1), 3: (2,), 4: (5, 0), 5: (6, 4), 6: (5,), 7: (0, 8), 8: (7, 9),
    9: (8, 10), 10: (9,), 11: (12, 8), 12: (13, 11), 13: (12,), 14: (15, 8), 15: (16, 14), 16: (15,),
}


def normalise_adjacency(adj: Tensor) -> Tensor:
    """``D^-1/2 A D^-1/2`` with ``D`` the row degrees: ``adj [..., N, N]`` (0/1) → same shape."""
    inv_sqrt = adj.sum(dim=-1).rsqrt()
    return inv_sqrt.unsqueeze(-1) * adj * inv_sqrt.unsqueeze(-2)


def skeleton_adjacency(num_joints: int) -> Tensor:
    """Normalised ``[J, J]`` adjacency of :data:`H36M_NEIGHBOURS`."""
    if num_joints != len(H36M_NEIGHBOURS):
        raise ConfigError(
            f"MotionAGFormer's spatial graph is the {len(H36M_NEIGHBOURS)}-joint Human3.6M skeleton; "
            f"model setting 'num_joints' is {num_joints}"
        )
    adj = torch.zeros(num_joints, num_joints)
    for joint, neighbours in H36M_NEIGHBOURS.items():
        adj[joint, list(neighbours)] = 1.0
    return normalise_adjacency(adj)


def similarity_adjacency(x: Tensor, neighbours: int) -> Tensor:
    """kNN graph over the second-to-last axis by dot-product similarity, normalised.

    ``x [..., N, C]`` → ``[..., N, N]``: node ``i`` links to every node at least as similar as its
    ``neighbours``-th most similar one (ties included, as upstream).
    """
    sim = x @ x.transpose(-2, -1)
    threshold = sim.topk(min(neighbours, x.shape[-2]), dim=-1).values[..., -1:]
    return normalise_adjacency((sim >= threshold).to(x.dtype))


class FrameBatchNorm(nn.BatchNorm1d):
    """Batch norm over a node axis of up to ``num_nodes`` nodes; an ``n``-node input uses the first ``n``.

    Input ``[N, n, L]`` (node axis second, statistics over ``N`` and ``L``), output the same shape.
    """

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[1]
        if n > self.num_features:
            raise ValueError(f"{n} nodes exceed the {self.num_features} this norm was built for")
        # built with the defaults (running statistics tracked, a momentum), as every caller here does
        tracked, mean, var = self.num_batches_tracked, self.running_mean, self.running_var
        assert tracked is not None and mean is not None and var is not None and self.momentum is not None
        if self.training:
            tracked.add_(1)
        # Leading slices of 1-D buffers are contiguous views: batch_norm's running-stat update lands in them.
        return F.batch_norm(
            x, mean[:n], var[:n], self.weight[:n], self.bias[:n], self.training, self.momentum, self.eps,
        )


class GraphConv(nn.Module):
    """``relu(x + BN(A V(x) + U(x)))`` over the joints (``spatial``, ``x [B, f, J, C]``) or the frames
    (``temporal``, joint-major ``x [B, J, f, C]``); the output has the input's layout.

    The spatial graph is the skeleton; the temporal one is the per-sequence similarity kNN graph.
    ``num_nodes`` sizes the node-axis batch norm (joints, or the most frames the layer will see).
    """

    def __init__(self, dim: int, mode: str, num_nodes: int, num_joints: int = 17, neighbour_num: int = 2):
        super().__init__()
        self.mode = mode
        self.neighbour_num = neighbour_num
        self.U = nn.Linear(dim, dim)
        self.V = nn.Linear(dim, dim)
        self.batch_norm = FrameBatchNorm(num_nodes)
        if mode == "spatial":
            self.register_buffer("adj", skeleton_adjacency(num_joints), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, m, c = x.shape  # spatial: n frames of m joints; temporal: n joints of m frames
        adj = self.adj if self.mode == "spatial" else similarity_adjacency(x, self.neighbour_num)
        aggregate = adj @ self.V(x)  # [J, J] or [B, J, f, f] @ [B, n, m, C]
        # Node-axis statistics (per joint, or per frame over B, J and C) from a [B*n, m, C] view.
        h = self.batch_norm((aggregate + self.U(x)).reshape(b * n, m, c)).view(b, n, m, c)
        return F.relu(x + h)


class SpatialAttention(Attention):
    """Self-attention across the joints of each frame: ``[B, f, J, C]`` → same."""

    def forward(self, x: Tensor) -> Tensor:
        b, f, j, c = x.shape
        return super().forward(x.reshape(b * f, j, c)).view(b, f, j, c)


class TemporalAttention(Attention):
    """Self-attention across the frames of each joint, on joint-major tokens: ``[B, J, f, C]`` → same."""

    def forward(self, x: Tensor) -> Tensor:
        b, j, f, c = x.shape
        return super().forward(x.reshape(b * j, f, c)).view(b, j, f, c)


class MetaFormerUnit(nn.Module):
    """``x + s1 * mixer(LN(x))`` then ``x + s2 * MLP(LN(x))`` on ``[B, f, J, C]`` (learnable scales ``s``)."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float, drop: float, drop_path: float,
                 layer_scale_init: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


class AGFormerBlock(nn.Module):
    """One MotionAGFormer block: attention and graph streams, adaptive fusion; ``[B, f, J, C]`` → same."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float, drop_path: float,
                 num_frames: int, num_joints: int, neighbour_num: int):
        super().__init__()

        def unit(mixer: nn.Module) -> MetaFormerUnit:
            return MetaFormerUnit(dim, mixer, mlp_ratio, drop, drop_path)

        self.att_spatial = unit(SpatialAttention(dim, num_heads, qkv_bias, proj_drop=drop))
        self.att_temporal = unit(TemporalAttention(dim, num_heads, qkv_bias, proj_drop=drop))
        self.graph_spatial = unit(GraphConv(dim, "spatial", num_joints, num_joints))
        self.graph_temporal = unit(GraphConv(dim, "temporal", num_frames, num_joints, neighbour_num))
        self.fusion = nn.Linear(2 * dim, 2)
        # Start as an even mix of the two streams.
        nn.init.zeros_(self.fusion.weight)
        nn.init.constant_(self.fusion.bias, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        # The temporal units run joint-major: one contiguous copy per stream.
        x_attn = self.att_temporal(self.att_spatial(x).transpose(1, 2).contiguous())  # [B, J, f, C]
        x_graph = self.graph_temporal(self.graph_spatial(x).transpose(1, 2).contiguous())
        alpha = self.fusion(torch.cat((x_attn, x_graph), dim=-1)).softmax(dim=-1)  # [B, J, f, 2]
        fused = x_attn * alpha[..., 0:1] + x_graph * alpha[..., 1:2]
        return fused.transpose(1, 2).contiguous()  # frame-major again: the next block's norms want it dense


class MotionAGFormer(Backbone):
    """MotionAGFormer lifter split into embed → ``depth`` AGFormer blocks → norm → head.

    Args:
        num_frames: most frames per clip ``F`` (sizes the temporal GCN's frame norms).
        num_joints: ``J`` (the spatial graph is the 17-joint Human3.6M skeleton).
        in_chans: input channels per joint (x, y, confidence).
        dim: token width ``C``.
        depth: number of AGFormer blocks (the prunable positions).
        num_heads: attention heads of both attention streams.
        mlp_ratio: MLP hidden width / ``C``.
        dim_rep: width of the tanh representation layer before the regression.
        neighbour_num: frames each frame links to in the temporal similarity graph.
        qkv_bias, drop_rate, drop_path_rate: as upstream (B: no bias, no dropout).
        tra_heads: heads of the TRA recoverer HoT pairs with this backbone.
    """

    tra_qkv_bias = False

    def __init__(self, *, num_frames: int, num_joints: int, in_chans: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, dim_rep: int, neighbour_num: int, qkv_bias: bool = False, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, tra_heads: int = 4):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"MotionAGFormer: model setting 'dim' {dim} is not divisible by 'num_heads' {num_heads}")
        self.num_frames, self.num_joints, self.in_chans = num_frames, num_joints, in_chans
        self.dim, self.depth, self.tra_heads = dim, depth, tra_heads
        self.joints_embed = nn.Linear(in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim))
        # Upstream uses one drop-path rate for every block (no linear ramp).
        self.layers = nn.ModuleList(
            AGFormerBlock(dim, num_heads, mlp_ratio, qkv_bias, drop_rate, drop_path_rate, num_frames,
                          num_joints, neighbour_num)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.rep_logit = nn.Sequential(OrderedDict(fc=nn.Linear(dim, dim_rep), act=nn.Tanh()))
        self.pose_head = nn.Linear(dim_rep, 3)

    def embed(self, x: Tensor) -> Tensor:
        """``[B, F, J, C_in]`` → ``[B, F, J, C]``: per-joint linear embedding plus a joint embedding."""
        return self.joints_embed(x) + self.pos_embed

    def forward_block(self, i: int, x: Tensor) -> Tensor:
        return self.layers[i](x)

    def forward_norm(self, x: Tensor) -> Tensor:
        return self.norm(x)

    def head(self, x: Tensor) -> Tensor:
        """``[B, f, J, C]`` → ``[B, f, J, 3]`` through the tanh representation layer."""
        return self.pose_head(self.rep_logit(x))

    def temporal_qk(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Block ``i``'s temporal-attention queries and keys on ``x [B, f, J, C]``: each ``[B*J, H, f, d]``."""
        unit = cast(AGFormerBlock, self.layers[i]).att_temporal
        b, f, j, c = x.shape
        q, k, _ = cast(TemporalAttention, unit.mixer).qkv_heads(unit.norm1(x).transpose(1, 2).reshape(b * j, f, c))
        return q, k
