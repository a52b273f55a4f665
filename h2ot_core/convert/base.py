"""Shared pieces of the official-checkpoint converters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from h2ot_core.errors import CheckpointError


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
