"""Official MotionAGFormer family (``motionagformer``, ``hot_motionagformer``): state_dict keys and a functional forward.

The forward is written from the official code's structure with plain tensor ops (explicit softmax, explicit
normalisations, the official spatial graph) and reads the official key names, so it shares nothing with
the converted modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from official_ref import (
    State,
    bn,
    lin,
    linear_shapes,
    ln,
    mlp,
    norm_shapes,
    ref_tra,
    softmax_attention,
    tra_shapes,
)
from torch import Tensor

# The official spatial graph, in the official file's own form.
OFFICIAL_CONNECTIONS = {10: [9], 9: [8, 10], 8: [7, 9], 14: [15, 8], 15: [16, 14], 11: [12, 8], 12: [13, 11],
                        7: [0, 8], 0: [1, 7], 1: [2, 0], 2: [3, 1], 4: [5, 0], 5: [6, 4], 16: [15], 13: [12],
                        3: [2], 6: [5]}


# ---------------------------------------------------------------- official key names and shapes

def agformer_shapes(frames: int, dim: int, depth: int, dim_rep: int, hot: tuple[int, int] | None = None,
                    joints: int = 17) -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {"pos_embed": (1, joints, dim)}
    s.update(linear_shapes("joints_embed", dim, 3))
    s.update(norm_shapes("norm", dim))
    for i in range(depth):
        nodes = hot[1] if hot and i >= hot[0] else frames
        for unit in ("att_spatial", "att_temporal", "graph_spatial", "graph_temporal"):
            p = f"layers.{i}.{unit}"
            s[f"{p}.layer_scale_1"] = s[f"{p}.layer_scale_2"] = (dim,)
            s.update(norm_shapes(f"{p}.norm1", dim))
            s.update(norm_shapes(f"{p}.norm2", dim))
            s.update(linear_shapes(f"{p}.mlp.fc1", 4 * dim, dim))
            s.update(linear_shapes(f"{p}.mlp.fc2", dim, 4 * dim))
            if unit.startswith("att"):
                s.update(linear_shapes(f"{p}.mixer.qkv", 3 * dim, dim, bias=False))
                s.update(linear_shapes(f"{p}.mixer.proj", dim, dim))
            else:
                s.update(linear_shapes(f"{p}.mixer.U", dim, dim))
                s.update(linear_shapes(f"{p}.mixer.V", dim, dim))
                s.update(norm_shapes(f"{p}.mixer.batch_norm", joints if unit == "graph_spatial" else nodes, batch=True))
        s.update(linear_shapes(f"layers.{i}.fusion", 2, 2 * dim))
    s.update(linear_shapes("rep_logit.fc", dim_rep, dim))
    s.update(linear_shapes("head", 3, dim_rep))
    if hot:
        s.update(tra_shapes(frames, hot[1], dim, qkv_bias=False))
    return s


# ---------------------------------------------------------------- functional official forward (eval mode)

def ref_agformer_attention(sd: State, p: str, x: Tensor, heads: int, temporal: bool) -> Tensor:
    b, t, j, c = x.shape
    q, k, v = lin(sd, f"{p}.qkv", x).reshape(b, t, j, 3, heads, c // heads).permute(3, 0, 4, 1, 2, 5)
    if temporal:
        out = softmax_attention(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3)).permute(0, 3, 2, 1, 4)
    else:
        out = softmax_attention(q, k, v).permute(0, 2, 3, 1, 4)
    return lin(sd, f"{p}.proj", out.reshape(b, t, j, c))


def ref_gcn(sd: State, p: str, x: Tensor, temporal: bool, neighbours: int) -> Tensor:
    b, t, j, c = x.shape
    if temporal:
        seq = x.transpose(1, 2).reshape(b * j, t, c)
        sim = seq @ seq.transpose(1, 2)
        adj = (sim >= sim.topk(neighbours, dim=-1)[0][..., -1:]).float()
    else:
        seq = x.reshape(b * t, j, c)
        adj = torch.zeros(j, j)
        for node, linked in OFFICIAL_CONNECTIONS.items():
            adj[node, linked] = 1
        adj = adj.repeat(b * t, 1, 1)
    d = torch.diag_embed(adj.sum(-1) ** -0.5)
    agg = d @ adj @ d @ lin(sd, f"{p}.V", seq)
    out = F.relu(seq + bn(sd, f"{p}.batch_norm", agg + lin(sd, f"{p}.U", seq)))
    return out.reshape(b, j, t, c).transpose(1, 2) if temporal else out.reshape(b, t, j, c)


def ref_motionagformer(sd: State, x: Tensor, heads: int, neighbours: int,
                       prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_)motionagformer forward; ``prune = (layer, sorted frame index [B, f])``."""
    b, frames = x.shape[:2]
    x = lin(sd, "joints_embed", x) + sd["pos_embed"]
    depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})

    def unit(p: str, h: Tensor, mixer) -> Tensor:
        h = h + sd[f"{p}.layer_scale_1"] * mixer(f"{p}.mixer", ln(sd, f"{p}.norm1", h, 1e-5))
        return h + sd[f"{p}.layer_scale_2"] * mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", h, 1e-5))

    for i in range(depth):
        if prune and i == prune[0]:
            x = x[torch.arange(b)[:, None], prune[1]] + sd["pos_embed_token"][:, :, None]
        p = f"layers.{i}"
        x_attn = unit(f"{p}.att_spatial", x, lambda q, h: ref_agformer_attention(sd, q, h, heads, False))
        x_attn = unit(f"{p}.att_temporal", x_attn, lambda q, h: ref_agformer_attention(sd, q, h, heads, True))
        x_graph = unit(f"{p}.graph_spatial", x, lambda q, h: ref_gcn(sd, q, h, False, neighbours))
        x_graph = unit(f"{p}.graph_temporal", x_graph, lambda q, h: ref_gcn(sd, q, h, True, neighbours))
        alpha = torch.softmax(lin(sd, f"layers.{i}.fusion", torch.cat([x_attn, x_graph], -1)), -1)
        x = x_attn * alpha[..., :1] + x_graph * alpha[..., 1:]
    x = ln(sd, "norm", x, 1e-5)
    if prune:
        x = ref_tra(sd, x, frames, heads)
    return lin(sd, "head", torch.tanh(lin(sd, "rep_logit.fc", x)))
