"""CPU-sized configurations of every backbone, shared by the model tests: each backbone's registered ``tiny``."""

from __future__ import annotations

import torch

from h2ot_core.models.base import Backbone
from h2ot_core.names import BACKBONES, resolved_model_config

TINY = {name: dict(info.tiny) for name, info in BACKBONES.infos.items()}
TINY_FRAMES = 27
assert all(size["num_frames"] == TINY_FRAMES for size in TINY.values())

# one- and two-stage schedules valid for TINY_FRAMES frames and depth 3, for every pruner
SCHEDULES = ("1:9", "1:13,2:5")

# channels of a 2D/3D input pose per backbone built through the factory in the model tests
IN_CHANS = {"motionagformer": 3, "mhformer": 2}


def tiny(name: str, **overrides) -> Backbone:
    """The registered backbone class at its tiny size (``overrides`` on top), seeded."""
    torch.manual_seed(0)
    return BACKBONES.get(name)(**resolved_model_config(name, {**TINY[name], **overrides}))


def tiny_input(name: str, frames: int = 27, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, frames, 17, IN_CHANS[name])
