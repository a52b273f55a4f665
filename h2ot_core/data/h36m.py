"""Human3.6M reader for the VideoPose3D file layout (used by HoT for MixSTE and MHFormer).

Files in ``data_dir``:

* ``data_3d_h36m.npz`` — ``positions_3d``: dict subject → action → float32 ``(T, 32, 3)`` world metres;
* ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` (``source="cpn"``) or ``data_2d_h36m_gt.npz`` (``"gt"``) —
  ``positions_2d``: dict subject → action → list of 4 ``(T2, 17, 2)`` pixel arrays (camera order of
  :data:`h2ot_core.data.cameras.INTRINSICS`, ``T2 >= T``) and ``metadata`` (``num_joints`` 17).

The dicts are pickled inside the ``.npz``; they are read with an unpickler that rebuilds only numpy
arrays (:mod:`h2ot_core.data.npz`). Output per (subject, action, camera): 17 joints, camera-frame 3D
made root-relative (root joint 0 becomes 0), 2D truncated to the mocap length and screen-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from h2ot_core.data.base import PoseData, PoseSequence
from h2ot_core.data.cameras import NUM_CAMERAS, camera, normalize_screen_coordinates, world_to_camera
from h2ot_core.data.checks import expect_array, expect_dict, expect_item, key_path
from h2ot_core.data.npz import load_npz_key
from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17, KEPT_32, NUM_JOINTS_32
from h2ot_core.errors import ConfigError, DataError

FILE_3D = "data_3d_h36m.npz"
#: 2D source name -> file name
SOURCES: dict[str, str] = {"cpn": "data_2d_h36m_cpn_ft_h36m_dbb.npz", "gt": "data_2d_h36m_gt.npz"}
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
FPS = 50


def source_file(source: str) -> str:
    """File name of a 2D source (ConfigError naming the known sources otherwise)."""
    if source not in SOURCES:
        raise ConfigError(f"Unknown 2D source {source!r} for h36m; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[source]


def read_positions_3d(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of ``path``, validated: subject → action → finite ``(T, 32, 3)`` world metres."""
    data = expect_dict(load_npz_key(path, "positions_3d"), path, "positions_3d")
    if not data:
        raise DataError(f"{path}: positions_3d is empty; expected subjects such as S1")
    for subject, actions in data.items():
        expect_dict(actions, path, key_path("positions_3d", subject))
        for action, array in actions.items():
            expect_array(array, path, key_path("positions_3d", subject, action), (None, NUM_JOINTS_32, 3))
    return data


def read_positions_2d(path: Path) -> dict[str, dict[str, list[np.ndarray]]]:
    """``positions_2d`` of ``path`` (unvalidated values) after checking ``metadata``."""
    metadata = expect_dict(load_npz_key(path, "metadata"), path, "metadata")
    joints = expect_item(metadata, "num_joints", path, "metadata")
    if joints != len(KEPT_32):
        raise DataError(f"{path}: metadata['num_joints'] is {joints!r}; expected {len(KEPT_32)}")
    return expect_dict(load_npz_key(path, "positions_2d"), path, "positions_2d")


def _camera_arrays(poses2d: dict, path: Path, subject: str, action: str, frames: int,
                   cameras: Sequence[int]) -> list[np.ndarray]:
    """The validated, truncated pixel arrays of the requested cameras for one action."""
    subject_2d = expect_dict(expect_item(poses2d, subject, path, "positions_2d"), path,
                             key_path("positions_2d", subject))
    views = expect_item(subject_2d, action, path, key_path("positions_2d", subject))
    where = key_path("positions_2d", subject, action)
    if not isinstance(views, list | tuple) or len(views) != NUM_CAMERAS:
        got = len(views) if isinstance(views, list | tuple) else type(views).__name__
        raise DataError(f"{path}: {where} holds {got} camera arrays; expected a list of {NUM_CAMERAS}")
    arrays = []
    for cam in cameras:
        array = expect_array(views[cam], path, f"{where}[{cam}]", (None, len(KEPT_32), 2))
        if array.shape[0] < frames:
            raise DataError(f"{path}: {where}[{cam}] has {array.shape[0]} frames; expected at least "
                            f"{frames} (the 3D length in {FILE_3D})")
        arrays.append(array[:frames])
    return arrays


def check_cameras(cameras: Sequence[int] | None, path: Path) -> tuple[int, ...]:
    """Requested camera indices (all four by default), each in range."""
    chosen = tuple(range(NUM_CAMERAS)) if cameras is None else tuple(int(c) for c in cameras)
    for cam in chosen:
        if not 0 <= cam < NUM_CAMERAS:
            raise DataError(f"{path}: camera index {cam} is out of range; expected 0..{NUM_CAMERAS - 1}")
    return chosen


def sequences_for_action(subject: str, action: str, world32: np.ndarray, pixels: list[np.ndarray],
                         cameras: Sequence[int], path: Path) -> list[PoseSequence]:
    """One :class:`PoseSequence` per camera from world ``(T, 32, 3)`` and per-camera pixel ``(T, 17, 2)``."""
    world17 = world32[:, list(KEPT_32)].astype(np.float64)
    out = []
    for cam_index, px in zip(cameras, pixels, strict=True):
        cam = camera(subject, cam_index, source=str(path))
        cam3d = world_to_camera(world17, cam)
        pose3d = (cam3d - cam3d[:, :1]).astype(np.float32)
        pose2d = normalize_screen_coordinates(px.astype(np.float32), cam.intrinsics.res_w, cam.intrinsics.res_h)
        out.append(PoseSequence(subject, action, cam_index, pose2d.astype(np.float32), pose3d))
    return out


def load_h36m(data_dir: Path, *, source: str = "cpn", cameras: Sequence[int] | None = None,
              train_subjects: Sequence[str] = TRAIN_SUBJECTS, test_subjects: Sequence[str] = TEST_SUBJECTS,
              **_: object) -> PoseData:
    """Read a VideoPose3D-layout Human3.6M folder into train (S1,S5,S6,S7,S8) and test (S9,S11) sequences.

    Subjects of a split that the 3D file lacks are skipped (a small folder may hold a few subjects);
    the 2D file must hold every 3D subject/action with four cameras at least as long as the mocap.

    Raises:
        DataError: a missing, truncated or malformed file or key, NaN/inf, 2D not matching 3D, a
            camera index out of range; the message names the file and key.
        ConfigError: an unknown ``source``.
    """
    data_dir = Path(data_dir)
    path3d, path2d = data_dir / FILE_3D, data_dir / source_file(source)
    poses3d = read_positions_3d(path3d)
    poses2d = read_positions_2d(path2d)
    chosen = check_cameras(cameras, path2d)
    splits: dict[str, list[PoseSequence]] = {"train": [], "test": []}
    for split, subjects in (("train", train_subjects), ("test", test_subjects)):
        for subject in subjects:
            for action in sorted(poses3d.get(subject, {})):
                world = poses3d[subject][action]
                pixels = _camera_arrays(poses2d, path2d, subject, action, world.shape[0], chosen)
                splits[split].extend(sequences_for_action(subject, action, world, pixels, chosen, path3d))
    if not splits["train"] and not splits["test"]:
        raise DataError(f"{path3d}: positions_3d holds subjects {', '.join(sorted(poses3d))}; "
                        f"expected some of {', '.join((*train_subjects, *test_subjects))}")
    return PoseData("h36m", splits["train"], splits["test"], num_joints=len(KEPT_32), root_joint=0,
                    joints_left=JOINTS_LEFT_17, joints_right=JOINTS_RIGHT_17,
                    extras={"fps": FPS, "source": source, "cameras": list(chosen)})
