"""Official MHFormer checkpoints (HoT's ``model/mhformer/``) → ``mhformer`` hourglass models.

- ``mhformer``: ``mhformer.py`` (the upstream Vegetebird/MHFormer model), unpruned.
- ``tpc_mhformer``: ``tpc_mhformer.py``, TPC before SHR block 1 keeping ``frames // 3`` frames (117 of 351),
  seq2frame. Both files hold the same weights; only the forward pass differs.

Mapping: the three ``Transformer_encoder_h`` (+ ``norm_h``) are our ``mhg.h-1``; ``embedding_h`` (1x1
``Conv1d``, ``[C, 2J, 1]``) is our per-frame ``Linear`` ``hyp_embed.h-1.proj`` (``[C, 2J]``); the three
``pos_embed_h`` ``[1, F, C]`` stack into ``hyp_pos_embed`` ``[1, F, 3, C]``; SHR/CHI keep their parts under
shorter names; ``regression`` (BatchNorm1d + 1x1 ``Conv1d``) is ``reg_norm`` + ``reg``. Sizes are read from
the checkpoint; the expected key shapes are derived from the model that config builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from h2ot_core.convert.base import ConvertedModel, check_official_keys, size_of, target_shapes
from h2ot_core.factory import model_config
from h2ot_core.models.mhformer import HYPOTHESES, SMALL_CLIP_FRAMES
from h2ot_core.names import backbone_info

#: SHR block before which ``tpc_mhformer`` prunes (its ``layer_index``).
TPC_LAYER = 1
_QKV_NORM = {"q": 1, "k": 2, "v": 3}


def _rules(small_clip: bool) -> tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]:
    """Our backbone key (without ``backbone.``) → official key; ``h(m, i)`` is group ``i`` as a 1-based index."""

    def h(m: re.Match[str], i: int) -> int:
        return int(m.group(i)) + 1

    embed = "embedding_{}.0.{}" if small_clip else "embedding_{}.{}"
    table: dict[str, Callable[[re.Match[str]], str]] = {
        r"mhg\.(\d)\.pre_norm\.(.+)": lambda m: f"norm_{h(m, 1)}.{m.group(2)}",
        r"mhg\.(\d)\.(.+)": lambda m: f"Transformer_encoder_{h(m, 1)}.{m.group(2)}",
        r"hyp_embed\.(\d)\.proj\.(.+)": lambda m: embed.format(h(m, 1), m.group(2)),
        r"hyp_embed\.(\d)\.norm\.(.+)": lambda m: f"embedding_{h(m, 1)}.1.{m.group(2)}",
        r"shr\.(\d+)\.(norm1|attn)\.(\d)\.(.+)":
            lambda m: f"Transformer_hypothesis.SHR_blocks.{m.group(1)}.{m.group(2)}_{h(m, 3)}.{m.group(4)}",
        r"shr\.(\d+)\.(.+)": lambda m: f"Transformer_hypothesis.SHR_blocks.{m.group(1)}.{m.group(2)}",
        r"chi\.norm_(q|k|v)\.(\d)\.(.+)":
            lambda m: f"Transformer_hypothesis.CHI_blocks.0.norm3_{h(m, 2)}{_QKV_NORM[m.group(1)]}.{m.group(3)}",
        r"chi\.attn\.(\d)\.(.+)": lambda m: f"Transformer_hypothesis.CHI_blocks.0.attn_{h(m, 1)}.{m.group(2)}",
        r"chi\.(.+)": lambda m: f"Transformer_hypothesis.CHI_blocks.0.{m.group(1)}",
        r"norm\.(.+)": lambda m: f"Transformer_hypothesis.norm.{m.group(1)}",
        r"reg_norm\.(.+)": lambda m: f"regression.0.{m.group(1)}",
        r"reg\.(.+)": lambda m: f"regression.1.{m.group(1)}",
    }
    return tuple((re.compile(rf"^{pattern}$"), fn) for pattern, fn in table.items())


def official_names(ours: str, small_clip: bool) -> tuple[str, ...]:
    """Official key(s) holding one of our ``state_dict`` keys (three for the stacked positions)."""
    key = ours.removeprefix("backbone.")
    if key == "hyp_pos_embed":
        return tuple(f"Transformer_hypothesis.pos_embed_{i + 1}" for i in range(HYPOTHESES))
    for pattern, fn in _rules(small_clip):
        if m := pattern.match(key):
            return (fn(m),)
    raise KeyError(ours)


def read_sizes(state: Mapping[str, Tensor], frames: int | None) -> dict[str, Any]:
    """Constructor sizes recorded in an official state_dict (official defaults where a key is absent)."""
    cfg = dict(backbone_info("mhformer").defaults)
    shr = "Transformer_hypothesis.SHR_blocks.0."
    dim = size_of(state, f"{shr}norm1_1.weight", 0, cfg["dim"])
    joints = size_of(state, "regression.1.weight", 0, 3 * cfg["num_joints"]) // 3
    tokens = size_of(state, "Transformer_encoder_1.pos_embed", 1, cfg["in_chans"] * joints)

    def count(pattern: str) -> int:
        return len({m.group(1) for k in state if (m := re.match(pattern, k))})

    cfg.update(
        num_frames=frames or size_of(state, "Transformer_hypothesis.pos_embed_1", 1, cfg["num_frames"]),
        num_joints=joints,
        in_chans=tokens // joints,
        dim=dim,
        depth=count(r"Transformer_hypothesis\.SHR_blocks\.(\d+)\.") or cfg["depth"],
        mlp_ratio=size_of(state, f"{shr}mlp.fc1.weight", 0, int(cfg["mlp_ratio"] * dim)) / dim,
        mhg_depth=count(r"Transformer_encoder_1\.blocks\.(\d+)\.") or cfg["mhg_depth"],
    )
    return cfg


def _convert(state: Mapping[str, Tensor], frames: int | None, tpc: bool) -> ConvertedModel:
    arch = "tpc_mhformer" if tpc else "mhformer"
    sizes = read_sizes(state, frames)
    f = sizes["num_frames"]
    schedule = f"{TPC_LAYER}:{f // 3}" if tpc else ""
    config = model_config("mhformer", "tpc" if tpc else "none", "none", schedule, **sizes)
    small_clip = f <= SMALL_CLIP_FRAMES
    target = target_shapes(config)
    sources = {ours: official_names(ours, small_clip) for ours in target}

    expected: dict[str, tuple[int, ...]] = {}
    for ours, shape in target.items():
        names = sources[ours]
        if len(names) > 1:  # hyp_pos_embed [1, F, 3, C] ← three [1, F, C]
            expected.update(dict.fromkeys(names, (shape[0], shape[1], shape[3])))
        elif names[0].startswith(("embedding_", "regression.1.")) and names[0].endswith("weight") and len(shape) == 2:
            expected[names[0]] = (*shape, 1)  # 1x1 Conv1d kernel
        else:
            expected[names[0]] = tuple(shape)
    check_official_keys(state, expected, arch)

    converted = {}
    for ours, shape in target.items():
        names = sources[ours]
        stacked = torch.stack([state[n] for n in names], dim=2) if len(names) > 1 else state[names[0]]
        converted[ours] = stacked.reshape(shape)
    return ConvertedModel(config, converted)


def convert_mhformer(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """MHFormer weights → unpruned seq2frame ``mhformer`` (``none``/``none``/``""``)."""
    return _convert(state, frames, tpc=False)


def convert_tpc_mhformer(state: Mapping[str, Tensor], *, frames: int | None = None) -> ConvertedModel:
    """TPC-MHFormer weights → ``mhformer`` with ``tpc``/``none``/``"1:117"`` (at 351 frames)."""
    return _convert(state, frames, tpc=True)
