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

from collections.abc import Mapping

from torch import Tensor

from h2ot_core.convert.base import (
    TOP_LEVEL_BACKBONE,
    ConvertedModel,
    SizeKeys,
    convert_state,
    read_sizes,
    size_of,
)
from h2ot_core.factory import model_config

#: Level before which ``hot_motionbert`` prunes (its hard-coded ``layer_index``).
HOT_LAYER = 1
#: Where DSTformer's state_dict records its sizes.
SIZE_KEYS = SizeKeys(backbone="motionbert", embed="joints_embed.weight", joint_pos="pos_embed",
                     blocks="blocks_st", fc1="blocks_st.0.mlp_s.fc1.weight", frames=(("temp_embed", 1),),
                     dim_rep="pre_logits.fc.weight")


def convert_motionbert(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """MotionBERT (DSTformer) weights → unpruned ``motionbert``."""
    config = model_config("motionbert", **read_sizes(state, SIZE_KEYS, frames))
    return convert_state(state, config, "motionbert", TOP_LEVEL_BACKBONE)


def convert_hot_motionbert(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MotionBERT weights → ``motionbert`` with ``tpc`` / ``tra`` / ``"1:81"`` (at 243 frames)."""
    sizes = read_sizes(state, SIZE_KEYS, frames)
    tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
    config = model_config("motionbert", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    return convert_state(state, config, "hot_motionbert", TOP_LEVEL_BACKBONE)
