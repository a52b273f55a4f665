"""The dataset contract: every source yields :class:`PoseData` of camera-frame sequences.

Readers (``h36m``, ``mpi_inf_3dhp``, ``synthetic``, ``mocap_clips``) are looked up by name in
:data:`h2ot_core.names.DATASETS`; each is a function ``load(data_dir, **options) -> PoseData``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PoseSequence:
    """One video: a subject performing an action, seen by one camera.

    Attributes:
        pose2d: ``[T, J, C]`` float32 screen-normalised 2D keypoints (x in [-1, 1], aspect kept);
            ``C`` is 2 (x, y) or 3 (x, y, confidence).
        pose3d: ``[T, J, 3]`` float32 camera-frame 3D joints in metres, root-relative (root = 0).
        valid: ``[T]`` bool mask of frames that count in evaluation (MPI-INF-3DHP), or ``None``.
    """

    subject: str
    action: str
    camera: int
    pose2d: np.ndarray
    pose3d: np.ndarray
    valid: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.pose2d.shape[0])


@dataclass
class PoseData:
    """A dataset split into train and test sequences, plus the skeleton facts the model needs."""

    name: str
    train: list[PoseSequence]
    test: list[PoseSequence]
    num_joints: int = 17
    root_joint: int = 0
    joints_left: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
    joints_right: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
    fingerprint: str = ""
    extras: dict[str, object] = field(default_factory=dict)
