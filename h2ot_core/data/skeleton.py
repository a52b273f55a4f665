"""Human3.6M skeleton facts: the 32-joint mocap tree, its 17-joint reduction and per-subject bone lengths.

The 17-joint order (VideoPose3D, after removing static joints) is
0 Hip (root), 1 RHip, 2 RKnee, 3 RFoot (ankle), 4 LHip, 5 LKnee, 6 LFoot, 7 Spine, 8 Thorax,
9 Neck/Nose, 10 Head (top), 11 LShoulder, 12 LElbow, 13 LWrist, 14 RShoulder, 15 RElbow, 16 RWrist.
"""

from __future__ import annotations

PARENTS_32: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
    16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30,
)
#: 32-joint indices kept by ``remove_static_joints``; position ``i`` is 17-joint ``i``
KEPT_32: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
PARENTS_17: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
JOINT_NAMES_17: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck/Nose", "Head",
    "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
JOINTS_LEFT_17: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT_17: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
NUM_JOINTS_32 = 32

#: which bone (named in ``BONE_LENGTHS_MM``) ends at each 17-joint (``None`` for the root)
BONE_OF_JOINT: tuple[str | None, ...] = (
    None, "hip", "thigh", "shin", "hip", "thigh", "shin", "hip_spine", "spine_thorax", "thorax_nose",
    "nose_head", "thorax_shoulder", "upper_arm", "forearm", "thorax_shoulder", "upper_arm", "forearm",
)

_BONES = ("hip", "thigh", "shin", "hip_spine", "spine_thorax", "thorax_nose", "nose_head",
          "thorax_shoulder", "upper_arm", "forearm")
# S1/S5/S7/S8 were measured on real frames (pose-data.md §3.2); S6/S9/S11 are not published, so they
# are the mean of those four with a fixed ±5 % per-bone jitter (numpy seed 36), frozen here as numbers.
_LENGTHS_MM = {
    "S1": (132.9, 442.9, 454.2, 233.5, 257.1, 121.1, 115.0, 151.0, 278.9, 251.7),
    "S5": (119.3, 428.3, 442.4, 224.3, 254.1, 117.1, 115.0, 143.1, 264.6, 248.6),
    "S6": (129.4, 438.5, 460.8, 234.0, 259.1, 116.6, 115.4, 156.4, 270.2, 239.1),
    "S7": (135.9, 448.6, 438.0, 226.2, 255.4, 107.1, 115.0, 139.7, 275.6, 247.3),
    "S8": (146.5, 452.1, 438.6, 261.2, 251.0, 120.5, 115.0, 169.3, 289.9, 244.2),
    "S9": (131.4, 438.9, 450.3, 246.6, 247.2, 113.9, 111.5, 150.5, 270.9, 254.4),
    "S11": (139.3, 448.9, 422.1, 235.4, 255.9, 113.8, 113.8, 149.6, 268.0, 237.7),
}
#: subject -> bone name -> length in millimetres (left and right sides are equal)
BONE_LENGTHS_MM: dict[str, dict[str, float]] = {
    subject: dict(zip(_BONES, lengths, strict=True)) for subject, lengths in _LENGTHS_MM.items()
}


def bone_lengths_17(subject: str) -> list[float]:
    """Length in metres of the bone ending at each 17-joint (0.0 for the root)."""
    table = BONE_LENGTHS_MM[subject]
    return [0.0 if bone is None else table[bone] / 1000.0 for bone in BONE_OF_JOINT]
