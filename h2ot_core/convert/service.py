"""Convert an official checkpoint file into a native one, verifying it loads strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from h2ot_core.checkpoint import build_from_config, load_state_strict, safe_load, save_native
from h2ot_core.convert import CONVERTERS
from h2ot_core.errors import CheckpointError


def read_official(src: Path) -> dict[str, torch.Tensor]:
    """Load an official ``torch.save(model.state_dict())`` file (``weights_only``), unwrapping ``{'model': ...}``
    and DataParallel ``module.`` prefixes."""
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file")
    state = safe_load(src, "PyTorch state_dict")
    for wrapper in ("model_pos", "model", "state_dict"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{src}: expected a state_dict of tensors, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_official(arch: str, src: Path, dst: Path, *, frames: int | None = None) -> dict[str, Any]:
    """Convert ``src`` (official ``arch``) to the native checkpoint ``dst``; returns its config."""
    converter = CONVERTERS.get(arch)
    converted = converter(read_official(src), frames=frames)
    model = build_from_config(converted.config)
    load_state_strict(model, converted.state_dict, f"{src} ({arch})")
    save_native(dst, model, converted.config, source=str(src), official_arch=arch)
    return converted.config
