"""CPU-sized configurations of every backbone, shared by the model tests: each backbone's registered ``tiny``."""

from __future__ import annotations

from h2ot_core.names import BACKBONES

TINY = {name: dict(info.tiny) for name, info in BACKBONES.infos.items()}
TINY_FRAMES = 27
assert all(size["num_frames"] == TINY_FRAMES for size in TINY.values())

# one- and two-stage schedules valid for TINY_FRAMES frames and depth 3, for every pruner
SCHEDULES = ("1:9", "1:13,2:5")
