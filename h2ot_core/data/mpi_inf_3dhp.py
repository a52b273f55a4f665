"""MPI-INF-3DHP reader for the P-STMO file layout.

Files in ``data_dir`` (each a pickled dict under key ``data``, read with the array-only unpickler):

* ``data_train_3dhp.npz``: ``"S1 Seq1"`` … → ``[{camera key (str): {"data_2d": (T,17,2) px,
  "data_3d": (T,17,3) mm camera frame}}, fps]``; images 2048×2048;
* ``data_test_3dhp.npz``: ``"TS1"`` … ``"TS6"`` → ``{"data_2d", "data_3d", "valid": (T,)}``; TS1-TS4 are
  2048×2048, TS5-TS6 1920×1080.

Joints stay in MPI order (root = joint 14); 3D becomes metres, root-relative; ``valid`` masks test frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from h2ot_core.data.base import PoseData, PoseSequence
from h2ot_core.data.cameras import normalize_screen_coordinates
from h2ot_core.data.checks import expect_array, expect_dict, expect_item, key_path
from h2ot_core.data.npz import load_npz_key
from h2ot_core.errors import DataError

FILE_TRAIN = "data_train_3dhp.npz"
FILE_TEST = "data_test_3dhp.npz"
NUM_JOINTS = 17
ROOT = 14
JOINTS_LEFT: tuple[int, ...] = (5, 6, 7, 11, 12, 13)
JOINTS_RIGHT: tuple[int, ...] = (2, 3, 4, 8, 9, 10)
NUM_CAMERAS = 14  # camera keys "0".."13" of the training videos
#: test sequence -> image (width, height)
TEST_RESOLUTION = {"TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048), "TS4": (2048, 2048),
                   "TS5": (1920, 1080), "TS6": (1920, 1080)}
TRAIN_RESOLUTION = (2048, 2048)


def _sequence(entry: dict, path: Path, where: str, subject: str, action: str, camera: int,
              resolution: tuple[int, int], with_valid: bool) -> PoseSequence:
    pose2d = expect_array(expect_item(entry, "data_2d", path, where), path, f"{where}['data_2d']",
                          (None, NUM_JOINTS, 2))
    pose3d = expect_array(expect_item(entry, "data_3d", path, where), path, f"{where}['data_3d']",
                          (None, NUM_JOINTS, 3))
    if pose3d.shape[0] != pose2d.shape[0]:
        raise DataError(f"{path}: {where}['data_3d'] has {pose3d.shape[0]} frames; expected "
                        f"{pose2d.shape[0]} like {where}['data_2d']")
    valid = None
    if with_valid:
        valid = expect_array(expect_item(entry, "valid", path, where), path, f"{where}['valid']", (None,))
        if valid.shape[0] != pose2d.shape[0]:
            raise DataError(f"{path}: {where}['valid'] has {valid.shape[0]} frames; expected {pose2d.shape[0]}")
        valid = valid.astype(bool)
    metres = pose3d.astype(np.float64) / 1000.0
    rel = (metres - metres[:, ROOT:ROOT + 1]).astype(np.float32)
    xy = normalize_screen_coordinates(pose2d.astype(np.float32), *resolution).astype(np.float32)
    return PoseSequence(subject, action, camera, xy, rel, valid)


def _train(path: Path, cameras: Sequence[int] | None) -> list[PoseSequence]:
    data = expect_dict(load_npz_key(path, "data"), path, "data")
    out = []
    for name in sorted(data):
        where = key_path("data", name)
        value = data[name]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise DataError(f"{path}: {where} is a {type(value).__name__}; expected [dict of cameras, fps]")
        views = expect_dict(value[0], path, f"{where}[0]")
        subject, _, seq = str(name).partition(" ")
        chosen = sorted(map(str, views), key=lambda c: (not c.isdigit(), c.zfill(3))) if cameras is None \
            else [str(c) for c in cameras]
        for cam in chosen:
            if not cam.isdigit() or not 0 <= int(cam) < NUM_CAMERAS:
                raise DataError(f"{path}: camera index {cam!r} is out of range; expected 0..{NUM_CAMERAS - 1}")
            entry = expect_dict(expect_item(views, cam, path, f"{where}[0]"), path, f"{where}[0][{cam!r}]")
            out.append(_sequence(entry, path, f"{where}[0][{cam!r}]", subject, seq or name, int(cam),
                                 TRAIN_RESOLUTION, with_valid=False))
    return out


def _test(path: Path) -> list[PoseSequence]:
    data = expect_dict(load_npz_key(path, "data"), path, "data")
    out = []
    for name in sorted(data):
        if name not in TEST_RESOLUTION:
            raise DataError(f"{path}: unknown test sequence {name!r}; expected {', '.join(TEST_RESOLUTION)}")
        where = key_path("data", name)
        entry = expect_dict(data[name], path, where)
        out.append(_sequence(entry, path, where, name, name, 0, TEST_RESOLUTION[name], with_valid=True))
    return out


def load_mpi_inf_3dhp(data_dir: Path, *, cameras: Sequence[int] | None = None, **_: object) -> PoseData:
    """Read ``data_train_3dhp.npz`` and ``data_test_3dhp.npz`` (P-STMO layout) from ``data_dir``.

    Args:
        cameras: training camera indices to use (default: every camera in the file).

    Raises:
        DataError: a missing, truncated or malformed file or key, NaN/inf, mismatched lengths, a
            camera index out of range; the message names the file and key.
    """
    data_dir = Path(data_dir)
    return PoseData("mpi_inf_3dhp", _train(data_dir / FILE_TRAIN, cameras), _test(data_dir / FILE_TEST),
                    num_joints=NUM_JOINTS, root_joint=ROOT, joints_left=JOINTS_LEFT, joints_right=JOINTS_RIGHT,
                    extras={"units": "m"})
