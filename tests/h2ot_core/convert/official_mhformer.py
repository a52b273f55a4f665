"""Official MHFormer family (``mhformer``, ``tpc_mhformer``): state_dict keys and a functional forward.

The forward is written from the official code's structure with plain tensor ops (explicit softmax, explicit
normalisations) and reads the official key names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from official_ref import (
    State,
    block_shapes,
    bn,
    linear_shapes,
    ln,
    mlp,
    norm_shapes,
    ref_cross_attention,
    ref_self_attention,
)
from torch import Tensor

# ---------------------------------------------------------------- official key names and shapes

def mhformer_shapes(frames: int, dim: int, hidden: int, mhg_depth: int, joints: int = 17) -> dict[str, tuple[int, ...]]:
    tokens = 2 * joints
    s: dict[str, tuple[int, ...]] = {}
    for h in (1, 2, 3):
        if frames > 27:
            s[f"embedding_{h}.weight"], s[f"embedding_{h}.bias"] = (dim, tokens, 1), (dim,)
        else:
            s[f"embedding_{h}.0.weight"], s[f"embedding_{h}.0.bias"] = (dim, tokens, 1), (dim,)
            s.update(norm_shapes(f"embedding_{h}.1", dim, batch=True))
        s.update(norm_shapes(f"norm_{h}", frames))
        e = f"Transformer_encoder_{h}"
        s[f"{e}.pos_embed"] = (1, tokens, frames)
        for i in range(mhg_depth):
            s.update(block_shapes(f"{e}.blocks.{i}", frames, 2 * frames))
        s.update(norm_shapes(f"{e}.norm", frames))
        s[f"Transformer_hypothesis.pos_embed_{h}"] = (1, frames, dim)
    t = "Transformer_hypothesis"
    for i in range(2):
        b = f"{t}.SHR_blocks.{i}"
        for h in (1, 2, 3):
            s.update(norm_shapes(f"{b}.norm1_{h}", dim))
            s.update(linear_shapes(f"{b}.attn_{h}.qkv", 3 * dim, dim))
            s.update(linear_shapes(f"{b}.attn_{h}.proj", dim, dim))
        s.update(norm_shapes(f"{b}.norm2", 3 * dim))
        s.update(linear_shapes(f"{b}.mlp.fc1", hidden, 3 * dim))
        s.update(linear_shapes(f"{b}.mlp.fc2", 3 * dim, hidden))
    b = f"{t}.CHI_blocks.0"
    for h in (1, 2, 3):
        for m in (1, 2, 3):
            s.update(norm_shapes(f"{b}.norm3_{h}{m}", dim))
        for name in ("linear_q", "linear_k", "linear_v", "proj"):
            s.update(linear_shapes(f"{b}.attn_{h}.{name}", dim, dim))
    s.update(norm_shapes(f"{b}.norm2", 3 * dim))
    s.update(linear_shapes(f"{b}.mlp.fc1", hidden, 3 * dim))
    s.update(linear_shapes(f"{b}.mlp.fc2", 3 * dim, hidden))
    s.update(norm_shapes(f"{t}.norm", 3 * dim))
    s.update(norm_shapes("regression.0", 3 * dim, batch=True))
    s["regression.1.weight"], s["regression.1.bias"] = (3 * joints, 3 * dim, 1), (3 * joints,)
    return s


# ---------------------------------------------------------------- functional official forward (eval mode)

def ref_mhformer(sd: State, x: Tensor, heads: int, index: Tensor | None = None) -> Tensor:
    """Official (tpc_)mhformer forward, ``[B, f, J, 3]`` for the frames kept by ``index`` (before SHR 1)."""
    b, frames, joints, _ = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, joints * 2, frames)
    hyps = []
    for h in (1, 2, 3):
        e = f"Transformer_encoder_{h}"
        z = ln(sd, f"norm_{h}", x, 1e-5) + sd[f"{e}.pos_embed"]
        for i in range(len({k.split(".")[2] for k in sd if k.startswith(f"{e}.blocks.")})):
            p = f"{e}.blocks.{i}"
            z = z + ref_self_attention(sd, f"{p}.attn", ln(sd, f"{p}.norm1", z, 1e-6), 9)
            z = z + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", z, 1e-6))
        x = x + ln(sd, f"{e}.norm", z, 1e-6)
        if frames > 27:
            emb = torch.einsum("oi,bif->bof", sd[f"embedding_{h}.weight"][..., 0], x) + sd[f"embedding_{h}.bias"][:, None]
        else:
            emb = torch.einsum("oi,bif->bof", sd[f"embedding_{h}.0.weight"][..., 0], x)
            emb = F.relu(bn(sd, f"embedding_{h}.1", emb + sd[f"embedding_{h}.0.bias"][:, None]))
        hyps.append(emb.transpose(1, 2) + sd[f"Transformer_hypothesis.pos_embed_{h}"])
    t = "Transformer_hypothesis"
    for i in range(2):
        if i == 1 and index is not None:
            hyps = [hyp[torch.arange(b)[:, None], index] for hyp in hyps]
        p = f"{t}.SHR_blocks.{i}"
        hyps = [hyp + ref_self_attention(sd, f"{p}.attn_{h + 1}", ln(sd, f"{p}.norm1_{h + 1}", hyp, 1e-6), heads)
                for h, hyp in enumerate(hyps)]
        cat = torch.cat(hyps, -1)
        cat = cat + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", cat, 1e-6))
        hyps = list(cat.chunk(3, dim=-1))
    p = f"{t}.CHI_blocks.0"
    x1, x2, x3 = hyps
    x1 = x1 + ref_cross_attention(sd, f"{p}.attn_1", ln(sd, f"{p}.norm3_11", x2, 1e-6), ln(sd, f"{p}.norm3_12", x3, 1e-6),
                                  ln(sd, f"{p}.norm3_13", x1, 1e-6), heads)
    x2 = x2 + ref_cross_attention(sd, f"{p}.attn_2", ln(sd, f"{p}.norm3_21", x1, 1e-6), ln(sd, f"{p}.norm3_22", x3, 1e-6),
                                  ln(sd, f"{p}.norm3_23", x2, 1e-6), heads)
    x3 = x3 + ref_cross_attention(sd, f"{p}.attn_3", ln(sd, f"{p}.norm3_31", x1, 1e-6), ln(sd, f"{p}.norm3_32", x2, 1e-6),
                                  ln(sd, f"{p}.norm3_33", x3, 1e-6), heads)
    cat = torch.cat([x1, x2, x3], -1)
    cat = cat + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", cat, 1e-6))
    feat = bn(sd, "regression.0", ln(sd, f"{t}.norm", cat, 1e-6).transpose(1, 2))
    out = torch.einsum("oi,bif->bof", sd["regression.1.weight"][..., 0], feat) + sd["regression.1.bias"][:, None]
    return out.reshape(b, joints, 3, -1).permute(0, 3, 1, 2)
