"""Official MotionBERT family (DSTformer, ``hot_motionbert``): state_dict keys and a functional forward.

The forward follows MotionBERT's reshape-based temporal attention on ``(b f) n c`` tokens with explicit
softmax and LayerNorm and reads the official key names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import torch
from official_ref import (
    Shapes,
    State,
    block_shapes,
    lin,
    linear_shapes,
    ln,
    mlp,
    norm_shapes,
    ref_tra,
    softmax_attention,
    split_qkv,
    tra_shapes,
)
from torch import Tensor

# ---------------------------------------------------------------- official key names and shapes

def motionbert_shapes(frames: int, dim: int, depth: int, dim_rep: int, hot_tokens: int | None = None) -> Shapes:
    """Keys of MotionBERT's DSTformer / HoT's ``hot_motionbert.py`` (MLP ratio 4)."""
    s: Shapes = {"temp_embed": (1, frames, 1, dim), "pos_embed": (1, 17, dim)}
    s.update(linear_shapes("joints_embed", dim, 3))
    for kind in ("blocks_st", "blocks_ts"):
        for i in range(depth):
            for a in ("s", "t"):
                s.update(block_shapes(f"{kind}.{i}", dim, 4 * dim, suffix=f"_{a}"))
    for i in range(depth):
        s.update(linear_shapes(f"ts_attn.{i}", 2, 2 * dim))
    s.update(norm_shapes("norm", dim))
    s.update(linear_shapes("pre_logits.fc", dim_rep, dim))
    s.update(linear_shapes("head", 3, dim_rep))
    if hot_tokens:
        s.update(tra_shapes(frames, hot_tokens, dim))
    return s


# ---------------------------------------------------------------- functional official forward (eval mode)

def ref_motionbert_attention(sd: State, p: str, x: Tensor, heads: int, seqlen: int, temporal: bool) -> Tensor:
    """MotionBERT's Attention on ``(b f) n c`` tokens, temporal mode by reshaping to ``[B, H, N, F, d]``."""
    bf, n, c = x.shape
    q, k, v = split_qkv(sd, p, x, heads)  # [BF, H, N, d]
    if temporal:
        qt, kt, vt = (t.reshape(-1, seqlen, heads, n, c // heads).permute(0, 2, 3, 1, 4) for t in (q, k, v))
        out = softmax_attention(qt, kt, vt).permute(0, 3, 2, 1, 4).reshape(bf, n, c)
    else:
        out = softmax_attention(q, k, v).transpose(1, 2).reshape(bf, n, c)
    return lin(sd, f"{p}.proj", out)


def ref_motionbert(sd: State, x: Tensor, heads: int = 8, prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_)motionbert forward; ``prune = (layer, sorted frame index [B, f])``."""
    b, frames, n, _ = x.shape
    f = frames
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks_st.")})

    def sub(p: str, a: str, z: Tensor) -> Tensor:
        z = z + ref_motionbert_attention(sd, f"{p}.attn_{a}", ln(sd, f"{p}.norm1_{a}", z, 1e-6), heads, f, a == "t")
        return z + mlp(sd, f"{p}.mlp_{a}", ln(sd, f"{p}.norm2_{a}", z, 1e-6))

    z = lin(sd, "joints_embed", x.reshape(b * f, n, -1)) + sd["pos_embed"]
    c = z.shape[-1]
    z = (z.reshape(b, f, n, c) + sd["temp_embed"]).reshape(b * f, n, c)
    for i in range(depth):
        if prune and i == prune[0]:
            z = z.reshape(b, f, n, c)[torch.arange(b)[:, None], prune[1]]
            f = prune[1].shape[1]
            z = (z + sd["pos_embed_token"][:, :, None]).reshape(b * f, n, c)
        x_st = sub(f"blocks_st.{i}", "t", sub(f"blocks_st.{i}", "s", z))
        x_ts = sub(f"blocks_ts.{i}", "s", sub(f"blocks_ts.{i}", "t", z))
        alpha = torch.softmax(lin(sd, f"ts_attn.{i}", torch.cat([x_st, x_ts], -1)), -1)
        z = x_st * alpha[..., :1] + x_ts * alpha[..., 1:]
    z = ln(sd, "norm", z, 1e-6).reshape(b, f, n, c)
    if "x_token" in sd:
        z = ref_tra(sd, z, frames, heads)
    return lin(sd, "head", torch.tanh(lin(sd, "pre_logits.fc", z)))
