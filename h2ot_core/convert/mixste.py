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

from collections.abc import Mapping

from torch import Tensor

from h2ot_core.convert.base import ConvertedModel, Prefixes, SizeKeys, convert_state, read_sizes, size_of
from h2ot_core.factory import model_config

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


#: Where MixSTE's state_dict records its sizes.
SIZE_KEYS = SizeKeys(backbone="mixste", embed="Spatial_patch_to_embedding.weight", joint_pos="Spatial_pos_embed",
                     blocks="STEblocks", fc1="STEblocks.0.mlp.fc1.weight", frames=(("Temporal_pos_embed", 1),))


def convert_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """Official MixSTE weights → unpruned ``mixste``."""
    config = model_config("mixste", **read_sizes(state, SIZE_KEYS, frames))
    return convert_state(state, config, "mixste", PREFIXES)


def convert_hot_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """HoT-MixSTE weights → ``mixste`` with ``tpc`` / ``tra`` / ``"3:81"`` (at 243 frames)."""
    sizes = read_sizes(state, SIZE_KEYS, frames)
    tokens = size_of(state, "pos_embed_token", 1, sizes["num_frames"] // 3)
    config = model_config("mixste", "tpc", "tra", f"{HOT_LAYER}:{tokens}", **sizes)
    return convert_state(state, config, "hot_mixste", PREFIXES)


def convert_tpc_mixste(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """TPC-MixSTE (seq2frame) weights → ``mixste`` with ``tpc`` / ``none`` / ``"7:61"`` (at 243 frames)."""
    sizes = read_sizes(state, SIZE_KEYS, frames)
    # The official 61 at 243 frames: 60 cluster centres plus the centre frame.
    tokens = (sizes["num_frames"] - 1) // 4 + 1
    config = model_config("mixste", "tpc", "none", f"{TPC_LAYER}:{tokens}", pipeline="seq2frame", **sizes)
    return convert_state(state, config, "tpc_mixste", PREFIXES)
