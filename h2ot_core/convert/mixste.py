"""Official MixSTE checkpoints (HoT repo, ``model/mixste/*.py``) → ``mixste`` hourglass models.

- ``mixste``: the unpruned model → ``none`` / ``none`` / ``""``.
- ``hot_mixste``: TPC before pair 3, TRA → ``tpc`` / ``tra`` / ``"3:<tokens>"`` (tokens from
  ``pos_embed_token``; 81 at 243 frames).
- ``tpc_mixste``: the seq2frame variant, TPC before pair 7 keeping ``(F-1)/4`` clustered frames plus
  the centre, no recovery → ``tpc`` / ``none`` / ``"7:61"`` at 243 frames, pipeline ``seq2frame``.

Sizes (frames, joints, input channels, width, depth, MLP width) are read from the checkpoint;
``frames`` overrides the clip length, and every frame-sized key is then expected at that length.
Heads are not recorded in the keys: the official 8 are used. The expected key shapes come from the
model the config builds (on the meta device), renamed to the official keys; a checkpoint that does
not match is refused with the offending keys named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from h2ot_core.convert.base import ConvertedModel, Prefixes, convert_state, size_of
from h2ot_core.factory import model_config
from h2ot_core.names import backbone_info

#: Pair before which ``hot_mixste`` / ``tpc_mixste`` prune (the official ``layer_index``).
HOT_LAYER = 3
TPC_LAYER = 7
#: Our key prefix → official key prefix (first match wins).
PREFIXES: Prefixes = (
    ("backbone.patch_embed.", "Spatial_patch_to_embedding."),
    ("backbone.spatial_pos_embed", "Spatial_pos_embed"),
    ("backbone.temporal_pos_embed", "Temporal_pos_embed"),
    ("backbone.spatial_blocks.", "STEblocks."),
    ("backbone.temporal_blocks.", "TTEblocks."),
    ("backbone.spatial_norm.", "Spatial_norm."),
    ("backbone.temporal_norm.", "Temporal_norm."),
    ("backbone.pose_head.", "head."),
    ("recoverer.queries", "x_token"),
    ("recoverer.", "cross_attention."),
    ("stage_pos_embed.0", "pos_embed_token"),
)


def read_sizes(state: Mapping[str, Tensor], frames: int | None) -> dict[str, Any]:
    """Constructor sizes recorded in an official state_dict (official defaults where a key is absent)."""
    cfg = dict(backbone_info("mixste").defaults)
    dim = size_of(state, "Spatial_patch_to_embedding.weight", 0, cfg["dim"])
    depth = len({m.group(1) for k in state if (m := re.match(r"STEblocks\.(\d+)\.", k))}) or cfg["depth"]
    cfg.update(
        num_frames=frames or size_of(state, "Temporal_pos_embed", 1, cfg["num_frames"]),
        num_joints=size_of(state, "Spatial_pos_embed", 1, cfg["num_joints"]),
        in_chans=size_of(state, "Spatial_patch_to_embedding.weight", 1, cfg["in_chans"]),
        dim=dim,
        depth=depth,
        mlp_ratio=size_of(state, "STEblocks.0.mlp.fc1.weight", 0, int(cfg["mlp_ratio"] * dim)) / dim,
    )
    return cfg


def convert_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """Official MixSTE weights → unpruned ``mixste``."""
    return convert_state(state, model_config("mixste", **read_sizes(state, frames)), "mixste", PREFIXES)


def convert_hot_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MixSTE weights → ``mixste`` with ``tpc`` / ``tra`` / ``"3:81"`` (at 243 frames)."""
    sizes = read_sizes(state, frames)
    tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
    config = model_config("mixste", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    return convert_state(state, config, "hot_mixste", PREFIXES)


def convert_tpc_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """TPC-MixSTE (seq2frame) weights → ``mixste`` with ``tpc`` / ``none`` / ``"7:61"`` (at 243 frames)."""
    sizes = read_sizes(state, frames)
    # The official 61 at 243 frames: 60 cluster centres plus the centre frame.
    tokens = (sizes["num_frames"] - 1) // 4 + 1
    config = model_config("mixste", "tpc", "none", f"{TPC_LAYER}:{tokens}", pipeline="seq2frame", **sizes)
    return convert_state(state, config, "tpc_mixste", PREFIXES)
