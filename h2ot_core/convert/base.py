"""Shared pieces of the official-checkpoint converters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from h2ot_core.checkpoint import build_from_config
from h2ot_core.errors import CheckpointError
from h2ot_core.names import backbone_info

#: ``(our key prefix, official key prefix)`` pairs; the first match wins.
Prefixes = tuple[tuple[str, str], ...]
#: Files whose backbone keys sit at the top level (MotionBERT, MotionAGFormer) with HoT's TRA and stage
#: embedding beside them; HoT names those alike in every file.
TOP_LEVEL_BACKBONE: Prefixes = (
    ("backbone.pose_head.", "head."),
    ("backbone.", ""),
    ("recoverer.queries", "x_token"),
    ("recoverer.", "cross_attention."),
    ("stage_pos_embed.0", "pos_embed_token"),
)


def official_name(ours: str, prefixes: Prefixes) -> str:
    """Official key of one of our ``state_dict`` keys."""
    for prefix, official in prefixes:
        if ours.startswith(prefix):
            return official + ours[len(prefix):]
    raise KeyError(ours)


def size_of(state: Mapping[str, Tensor], key: str, axis: int, default: int) -> int:
    """Length of ``state[key]`` along ``axis``, or ``default`` when the key is absent or too small."""
    value = state.get(key)
    return int(value.shape[axis]) if isinstance(value, Tensor) and value.ndim > axis else default


@dataclass(frozen=True)
class SizeKeys:
    """Where an official lifter's state_dict records its constructor sizes.

    Attributes:
        backbone: our registry name, whose official defaults fill what the state_dict does not record.
        embed: the joint embedding's weight ``[dim, in_chans]``.
        joint_pos: the joint position embedding ``[1, J, dim]``.
        blocks: prefix of the numbered blocks (``"STEblocks"`` → ``STEblocks.<i>.*``).
        fc1: the first block's MLP input weight ``[dim * mlp_ratio, dim]``.
        frames: ``(key, axis)`` places of the frame count, tried in order.
        dim_rep: the representation layer's weight ``[dim_rep, dim]``, where the model has one.
    """

    backbone: str
    embed: str
    joint_pos: str
    blocks: str
    fc1: str
    frames: tuple[tuple[str, int], ...]
    dim_rep: str | None = None


def read_sizes(state: Mapping[str, Tensor], keys: SizeKeys, frames: int | None) -> dict[str, Any]:
    """Constructor sizes of ``keys.backbone`` recorded in an official state_dict (official defaults where absent).

    ``frames`` imposes the frame count instead of reading it.
    """
    cfg = dict(backbone_info(keys.backbone).defaults)
    dim = size_of(state, keys.embed, 0, cfg["dim"])
    block = re.compile(rf"{re.escape(keys.blocks)}\.(\d+)\.")
    depth = len({m.group(1) for k in state if (m := block.match(k))}) or cfg["depth"]
    for key, axis in reversed(keys.frames):  # the first place listed wins
        cfg["num_frames"] = size_of(state, key, axis, cfg["num_frames"])
    cfg.update(
        num_frames=frames or cfg["num_frames"],
        num_joints=size_of(state, keys.joint_pos, 1, cfg["num_joints"]),
        in_chans=size_of(state, keys.embed, 1, cfg["in_chans"]),
        dim=dim,
        depth=depth,
        mlp_ratio=size_of(state, keys.fc1, 0, int(cfg["mlp_ratio"] * dim)) / dim,
    )
    if keys.dim_rep:
        cfg["dim_rep"] = size_of(state, keys.dim_rep, 0, cfg["dim_rep"])
    return cfg


def target_shapes(config: dict[str, Any]) -> dict[str, torch.Size]:
    """``state_dict`` shapes of the model ``config`` builds (on the meta device: no memory, instant)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in build_from_config(config).state_dict().items()}


@dataclass
class ConvertedModel:
    """An official checkpoint re-expressed for :func:`h2ot_core.factory.create_model`.

    Attributes:
        config: ``create_model`` keyword arguments: ``backbone``, ``pruner``, ``recoverer``,
            ``schedule`` and ``model`` (the backbone's constructor arguments).
        state_dict: weights keyed by our module names (``backbone.*``, ``recoverer.*``,
            ``stage_pos_embed.<i>``).
    """

    config: dict[str, Any]
    state_dict: dict[str, Tensor] = field(default_factory=dict)


def check_official_keys(state: Mapping[str, Tensor], expected: Mapping[str, tuple[int, ...]], arch: str) -> None:
    """Refuse a state_dict that is not ``arch``: list missing, unexpected and mis-shaped keys."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs expected {tuple(expected[k])}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k])
    )
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{title}: {shown}")
        raise CheckpointError(f"This is not an official {arch!r} checkpoint; " + "; ".join(parts))


def convert_state(state: Mapping[str, Tensor], config: dict[str, Any], arch: str,
                  prefixes: Prefixes) -> ConvertedModel:
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
