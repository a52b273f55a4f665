"""CPU-sized configurations of every backbone, shared by the model tests."""

from __future__ import annotations

TINY_FRAMES = 27

TINY = {
    "mixste": dict(num_frames=TINY_FRAMES, dim=32, depth=3, num_heads=2),
    "motionbert": dict(num_frames=TINY_FRAMES, dim=32, depth=3, num_heads=2, dim_rep=32),
    "motionagformer": dict(num_frames=TINY_FRAMES, dim=32, depth=3, num_heads=2, dim_rep=32),
    "mhformer": dict(num_frames=TINY_FRAMES, dim=32, depth=3, num_heads=2, mhg_depth=1),
}

# one- and two-stage schedules valid for TINY_FRAMES frames and depth 3, for every pruner
SCHEDULES = ("1:9", "1:13,2:5")
