"""Official MotionBERT checkpoints → ``motionbert`` (DSTformer) hourglass models.

- ``motionbert``: MotionBERT's DSTformer (Walter0807/MotionBERT ``lib/model/DSTformer.py``, also HoT's
  ``model/motionbert/motionbert.py``) → ``none`` / ``none`` / ``""``.
- ``hot_motionbert``: HoT's ``model/motionbert/hot_motionbert.py`` (TPC before level 1, TRA) →
  ``tpc`` / ``tra`` / ``"1:<tokens>"`` (tokens from ``pos_embed_token``; 81 at 243 frames).

Our DSTformer keeps the official key names except the regression layer (``head`` → ``pose_head``,
since ``head`` is the backbone's stage method). Sizes are read from the checkpoint; ``frames``
overrides the clip length; heads (8) are not recorded in the keys. Checks and renaming as in
:mod:`h2ot_core.convert.mixste`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from h2ot_core.convert.base import TOP_LEVEL_BACKBONE, ConvertedModel, convert_state, size_of
from h2ot_core.factory import model_config
from h2ot_core.names import backbone_info

#: Level before which ``hot_motionbert`` prunes (its hard-coded ``layer_index``).
HOT_LAYER = 1
def read_sizes(state: Mapping[str, Tensor], frames: int | None) -> dict[str, Any]:
    """Constructor sizes recorded in an official state_dict (official defaults where a key is absent)."""
    cfg = dict(backbone_info("motionbert").defaults)
    dim = size_of(state, "joints_embed.weight", 0, cfg["dim"])
    depth = len({m.group(1) for k in state if (m := re.match(r"blocks_st\.(\d+)\.", k))}) or cfg["depth"]
    cfg.update(
        num_frames=frames or size_of(state, "temp_embed", 1, cfg["num_frames"]),
        num_joints=size_of(state, "pos_embed", 1, cfg["num_joints"]),
        in_chans=size_of(state, "joints_embed.weight", 1, cfg["in_chans"]),
        dim=dim,
        depth=depth,
        mlp_ratio=size_of(state, "blocks_st.0.mlp_s.fc1.weight", 0, int(cfg["mlp_ratio"] * dim)) / dim,
        dim_rep=size_of(state, "pre_logits.fc.weight", 0, cfg["dim_rep"]),
    )
    return cfg


def convert_motionbert(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """MotionBERT (DSTformer) weights → unpruned ``motionbert``."""
    config = model_config("motionbert", **read_sizes(state, frames))
    return convert_state(state, config, "motionbert", TOP_LEVEL_BACKBONE)


def convert_hot_motionbert(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MotionBERT weights → ``motionbert`` with ``tpc`` / ``tra`` / ``"1:81"`` (at 243 frames)."""
    sizes = read_sizes(state, frames)
    tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
    config = model_config("motionbert", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    return convert_state(state, config, "hot_motionbert", TOP_LEVEL_BACKBONE)
