"""Official MixSTE family (``mixste``, ``hot_mixste``, ``tpc_mixste``): state_dict keys and a functional forward.

The forward follows the official files' ``(b f) n c`` token layout with explicit softmax and LayerNorm and
reads the official key names, so it shares nothing with the converted modules.
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
    ref_self_attention,
    ref_tra,
    tra_shapes,
)
from torch import Tensor

# ---------------------------------------------------------------- official key names and shapes

def mixste_shapes(frames: int, dim: int, depth: int, hot_tokens: int | None = None) -> Shapes:
    """Keys of HoT's ``model/mixste/{mixste,hot_mixste,tpc_mixste}.py`` (MLP ratio 2)."""
    s: Shapes = {"Spatial_pos_embed": (1, 17, dim), "Temporal_pos_embed": (1, frames, dim)}
    s.update(linear_shapes("Spatial_patch_to_embedding", dim, 2))
    for kind in ("STEblocks", "TTEblocks"):
        for i in range(depth):
            s.update(block_shapes(f"{kind}.{i}", dim, 2 * dim))
    s.update(norm_shapes("Spatial_norm", dim))
    s.update(norm_shapes("Temporal_norm", dim))
    s.update(norm_shapes("head.0", dim))
    s.update(linear_shapes("head.1", 3, dim))
    if hot_tokens:
        s.update(tra_shapes(frames, hot_tokens, dim))
    return s


# ---------------------------------------------------------------- functional official forward (eval mode)

def ref_mixste(sd: State, x: Tensor, heads: int = 8, prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_/tpc_)mixste forward; ``prune = (layer, sorted frame index [B, f])``.

    Output ``[B, F, J, 3]``; for tpc_mixste (no TRA keys) the poses of the kept frames ``[B, f, J, 3]``.
    """
    b, frames, n, _ = x.shape
    f = frames
    depth = len({k.split(".")[1] for k in sd if k.startswith("STEblocks.")})

    def block(p: str, z: Tensor) -> Tensor:
        z = z + ref_self_attention(sd, f"{p}.attn", ln(sd, f"{p}.norm1", z, 1e-6), heads)
        return z + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", z, 1e-6))

    z = lin(sd, "Spatial_patch_to_embedding", x.reshape(b * f, n, -1)) + sd["Spatial_pos_embed"]
    c = z.shape[-1]
    for i in range(depth):
        if prune and i == prune[0]:
            z = z.reshape(b, f, n, c)[torch.arange(b)[:, None], prune[1]]
            f = prune[1].shape[1]
            if "pos_embed_token" in sd:
                z = z + sd["pos_embed_token"][:, :, None]
            z = z.reshape(b * f, n, c)
        z = ln(sd, "Spatial_norm", block(f"STEblocks.{i}", z), 1e-6)
        z = z.reshape(b, f, n, c).permute(0, 2, 1, 3).reshape(b * n, f, c)
        if i == 0:
            z = z + sd["Temporal_pos_embed"]
        z = ln(sd, "Temporal_norm", block(f"TTEblocks.{i}", z), 1e-6)
        z = z.reshape(b, n, f, c).permute(0, 2, 1, 3).reshape(b * f, n, c)
    z = z.reshape(b, f, n, c)
    if "x_token" in sd:
        z = ref_tra(sd, z, frames, heads)
    return lin(sd, "head.1", ln(sd, "head.0", z, 1e-5))
