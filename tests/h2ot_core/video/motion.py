"""Test clips from our motion generator: H36M-17 pixels of a subject seen by an H36M camera, and the same
poses written in other detectors' layouts (COCO-17, Halpe-26)."""

from __future__ import annotations

import numpy as np

from h2ot_core.data.cameras import camera, project_to_2d, world_to_camera

#: the camera the clips are seen by (its image size is the normalisation's)
SUBJECT, CAMERA = "S9", 0
WIDTH, HEIGHT = 1000, 1002


def h36m_pixels(frames: int, seed: int = 0) -> np.ndarray:
    """``[T, 17, 2]`` float64 pixels of a synthetic walking clip in camera 0 of S9 (1000×1002 image)."""
    from h2ot_core.data.synth_motion import generate_motion

    motion = generate_motion(np.random.default_rng(seed), SUBJECT, "Walking", frames)
    cam = camera(SUBJECT, CAMERA)
    return project_to_2d(world_to_camera(motion.world, cam), cam.intrinsics)


def as_coco(h36m: np.ndarray) -> np.ndarray:
    """H36M-17 ``[T, 17, 2]`` → COCO-17: eyes either side of the H36M head point, ears further out."""
    t = h36m.shape[0]
    out = np.zeros((t, 17, 2))
    side = np.array([6.0, 0.0])
    out[:, 0] = h36m[:, 9]
    out[:, 1], out[:, 2] = h36m[:, 10] + side, h36m[:, 10] - side
    out[:, 3], out[:, 4] = h36m[:, 10] + 2 * side, h36m[:, 10] - 2 * side
    for coco, h36 in ((5, 11), (6, 14), (7, 12), (8, 15), (9, 13), (10, 16), (11, 4), (12, 1), (13, 5), (14, 2),
                      (15, 6), (16, 3)):
        out[:, coco] = h36m[:, h36]
    return out


def as_halpe(h36m: np.ndarray) -> np.ndarray:
    """H36M-17 → Halpe-26: COCO's 17, head top = H36M head, neck = thorax, hip = pelvis, feet near ankles."""
    coco = as_coco(h36m)
    feet = np.repeat(h36m[:, [6, 3]], 3, axis=1) + np.array([8.0, 20.0])
    return np.concatenate([coco, h36m[:, [10]], h36m[:, [8]], h36m[:, [0]], feet], axis=1)
