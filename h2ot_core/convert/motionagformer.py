"""Official MotionAGFormer checkpoints → ``motionagformer`` hourglass models.

- ``motionagformer``: the upstream model (TaatiTeam/MotionAGFormer ``model/MotionAGFormer.py``, also HoT's
  ``model/motionagformer/motionagformer.py``), converted with the upstream B settings (8 heads, 2 temporal
  neighbours); the key names do not record heads, and upstream's released weights use these.
- ``hot_motionagformer``: HoT's ``model/motionagformer/hot_motionagformer.py`` (TPC before block 7, TRA),
  with that file's settings (4 heads in blocks and TRA, 4 temporal neighbours). Its blocks from the
  pruning point on batch-normalise ``tokens`` frames instead of ``frames``; our single frame norm keeps
  ``frames`` entries and uses the leading ones, so those weights are padded with the identity
  (weight 1, bias 0, mean 0, variance 1) in entries the model never reads.

Sizes (frames, width, depth, joints, MLP and representation widths) are read from the checkpoint, so
the S/XS/L variants convert too; the expected key shapes are then derived from the model this config
builds, and a checkpoint that does not match is refused with the offending keys named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from h2ot_core.convert.base import (
    TOP_LEVEL_BACKBONE,
    ConvertedModel,
    SizeKeys,
    check_official_keys,
    official_name,
    read_sizes,
    size_of,
    target_shapes,
)
from h2ot_core.factory import model_config

#: Block before which HoT's file prunes (its hard-coded ``layer_index``).
HOT_LAYER = 7
_FRAME_NORM = re.compile(r"^layers\.(\d+)\.graph_temporal\.mixer\.batch_norm\.(weight|bias|running_mean|running_var)$")
#: Identity values of padded frame-norm entries.
_NORM_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}


#: Where MotionAGFormer's state_dict records its sizes: no temporal embedding, so the frame count comes
#: from HoT's recovery queries or the temporal GCN's frame norm.
SIZE_KEYS = SizeKeys(backbone="motionagformer", embed="joints_embed.weight", joint_pos="pos_embed",
                     blocks="layers", fc1="layers.0.att_spatial.mlp.fc1.weight",
                     frames=(("x_token", 1), ("layers.0.graph_temporal.mixer.batch_norm.weight", 0)),
                     dim_rep="rep_logit.fc.weight")


def _convert(state: Mapping[str, Tensor], frames: int | None, hot: bool) -> ConvertedModel:
    arch = "hot_motionagformer" if hot else "motionagformer"
    sizes = read_sizes(state, SIZE_KEYS, frames)
    if hot:
        tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
        sizes.update(num_heads=4, neighbour_num=4, tra_heads=4)
        config = model_config("motionagformer", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    else:
        tokens = sizes["num_frames"]
        sizes.update(num_heads=8, neighbour_num=2)
        config = model_config("motionagformer", **sizes)
    target = target_shapes(config)
    names = {ours: official_name(ours, TOP_LEVEL_BACKBONE) for ours in target}
    expected = {names[k]: tuple(shape) for k, shape in target.items()}
    if hot:
        expected["pos_embed_token"] = (1, tokens, sizes["dim"])
        for name in expected:
            if (m := _FRAME_NORM.match(name)) and int(m.group(1)) >= HOT_LAYER:
                expected[name] = (tokens,)
    check_official_keys(state, expected, arch)

    converted = {}
    for ours, shape in target.items():
        value = state[names[ours]]
        m = _FRAME_NORM.match(names[ours])
        if m and value.shape != shape:
            padded = value.new_full(shape, _NORM_FILL[m.group(2)])
            padded[: value.shape[0]] = value
            value = padded
        converted[ours] = value.reshape(shape)  # pos_embed_token [1, f, C] → [1, f, 1, C]
    return ConvertedModel(config, converted)


def convert_motionagformer(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """Upstream MotionAGFormer weights → unpruned ``motionagformer`` (``none``/``none``/``""``)."""
    return _convert(state, frames, hot=False)


def convert_hot_motionagformer(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MotionAGFormer weights → ``motionagformer`` with ``tpc``/``tra``/``"7:81"``."""
    return _convert(state, frames, hot=True)
