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

import torch
from torch import Tensor

from h2ot_core.checkpoint import build_from_config
from h2ot_core.convert.base import ConvertedModel, check_official_keys
from h2ot_core.factory import model_config
from h2ot_core.names import backbone_info

#: Pair before which ``hot_mixste`` / ``tpc_mixste`` prune (the official ``layer_index``).
HOT_LAYER = 3
TPC_LAYER = 7
#: Our key prefix → official key prefix (first match wins).
PREFIXES = (
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


Prefixes = tuple[tuple[str, str], ...]


def official_name(ours: str, prefixes: Prefixes = PREFIXES) -> str:
    """Official key of one of our ``state_dict`` keys."""
    for prefix, official in prefixes:
        if ours.startswith(prefix):
            return official + ours[len(prefix):]
    raise KeyError(ours)


def size_of(state: Mapping[str, Tensor], key: str, axis: int, default: int) -> int:
    """Length of ``state[key]`` along ``axis``, or ``default`` when the key is absent or too small."""
    value = state.get(key)
    return int(value.shape[axis]) if isinstance(value, Tensor) and value.ndim > axis else default


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


def target_shapes(config: dict[str, Any]) -> dict[str, torch.Size]:
    """``state_dict`` shapes of the model ``config`` builds (on the meta device: no memory, instant)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in build_from_config(config).state_dict().items()}


def convert_state(state: Mapping[str, Tensor], config: dict[str, Any], arch: str,
                  prefixes: Prefixes = PREFIXES) -> ConvertedModel:
    """Check ``state`` against the keys ``config``'s model expects (official names) and rename it.

    ``prefixes`` maps our key prefixes to the official ones (first match wins); HoT's TRA and stage
    embedding keys are named alike in every HoT file.
    """
    target = target_shapes(config)
    names = {ours: official_name(ours, prefixes) for ours in target}
    expected = {names[k]: tuple(shape) for k, shape in target.items()}
    if "pos_embed_token" in expected:  # ours is [1, f, 1, C], shared across joints
        _, tokens, _, dim = expected["pos_embed_token"]
        expected["pos_embed_token"] = (1, tokens, dim)
    check_official_keys(state, expected, arch)
    return ConvertedModel(config, {ours: state[names[ours]].reshape(shape) for ours, shape in target.items()})


def convert_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """Official MixSTE weights → unpruned ``mixste``."""
    return convert_state(state, model_config("mixste", **read_sizes(state, frames)), "mixste")


def convert_hot_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MixSTE weights → ``mixste`` with ``tpc`` / ``tra`` / ``"3:81"`` (at 243 frames)."""
    sizes = read_sizes(state, frames)
    tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
    config = model_config("mixste", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    return convert_state(state, config, "hot_mixste")


def convert_tpc_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """TPC-MixSTE (seq2frame) weights → ``mixste`` with ``tpc`` / ``none`` / ``"7:61"`` (at 243 frames)."""
    sizes = read_sizes(state, frames)
    # The official 61 at 243 frames: 60 cluster centres plus the centre frame.
    tokens = (sizes["num_frames"] - 1) // 4 + 1
    config = model_config("mixste", "tpc", "none", f"{TPC_LAYER}:{tokens}", pipeline="seq2frame", **sizes)
    return convert_state(state, config, "tpc_mixste")
