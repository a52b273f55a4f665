"""Real mocap check set: pybullet's DeepMimic reference clips as Human3.6M-17 sequences (pose-data.md §2.1).

The clips (JSON ``{"Loop": ..., "Frames": [[dt, root_pos(3), root_rot(4), chest(4), neck(4), r_hip(4),
r_knee(1), r_ankle(4), r_shoulder(4), r_elbow(1), l_hip(4), l_knee(1), l_ankle(4), l_shoulder(4),
l_elbow(1)], ...]}``, quaternions (w, x, y, z), y-up, metres) are read from the installed
``pybullet_data`` package (``pip install 'h2ot-lab[mocap]'``) or from ``data_dir``. Each clip is
resampled to 50 Hz (slerp / linear), run through the humanoid's forward kinematics (URDF offsets × 0.25),
mapped to the 17 H36M joints, turned z-up, retargeted to a subject's bone lengths, centred in the
capture volume and seen by that subject's four cameras (exact 2D projections). Split by clip.
Report results on it separately: it is real motion, never a Human3.6M number.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from h2ot_core.data.base import PoseData, PoseSequence
from h2ot_core.data.cameras import NUM_CAMERAS, camera, project_to_2d, world_to_camera
from h2ot_core.data.h36m import sequences_for_action
from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17, PARENTS_17, bone_lengths_17
from h2ot_core.data.synth import to_32_joints
from h2ot_core.data.synth_motion import ANKLE_HEIGHT
from h2ot_core.errors import DataError

FPS = 50
SCALE = 0.25  # pybullet loads the humanoid URDF with globalScaling=0.25
FRAME_SIZE = 44
TEST_CLIPS: tuple[str, ...] = ("walk", "jump", "dance_b", "getup_facedown", "walker_turn_left0")
CENTRE = np.array([0.1, 0.45])  # m: middle of the region all H36M cameras see
# Right-side offsets in URDF units (left = z negated); y-up, the character faces +x, its right is +z.
_OFFSETS = {
    "chest": (0, 0.944604, 0), "neck": (0, 0.895576, 0), "hip": (0, 0, 0.339548),
    "knee": (0, -1.686184, 0), "ankle": (0, -1.639480, 0), "shoulder": (-0.0962, 0.974, 0.73244),
    "elbow": (0, -1.099152, 0), "wrist": (0, -1.035788, 0), "nose": (0.30, 0.55, 0), "head": (0, 1.1, 0),
}
# Column slices of one frame after dt: quaternion joints (4) and revolute joints (1).
_QUATS = {"root": 4, "chest": 8, "neck": 12, "r_hip": 16, "r_ankle": 21, "r_shoulder": 25,
          "l_hip": 30, "l_ankle": 35, "l_shoulder": 39}
_ANGLES = {"r_knee": 20, "r_elbow": 29, "l_knee": 34, "l_elbow": 43}


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) quaternions [n, 4] → rotation matrices [n, 3, 3]."""
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s, zero, one = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def _slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation of quaternions [n, 4] at fractions u [n]."""
    dot = np.sum(q0 * q1, -1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # take the short way round
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    w0 = np.where(small, 1 - u, np.sin((1 - u) * theta) / sin)
    w1 = np.where(small, u, np.sin(u * theta) / sin)
    return w0[:, None] * q0 + w1[:, None] * q1


def resample(frames: np.ndarray, fps: int = FPS) -> np.ndarray:
    """Keyframes [K, 44] (column 0 = dt to the next frame) → [T, 44] at ``fps`` (dt column dropped to 0)."""
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    keep = np.concatenate([[True], np.diff(times) > 1e-9])
    frames, times = frames[keep], times[keep]
    new_t = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    i = np.clip(np.searchsorted(times, new_t, side="right") - 1, 0, max(len(times) - 2, 0))
    j = np.minimum(i + 1, len(times) - 1)
    u = np.where(j > i, (new_t - times[i]) / np.maximum(times[j] - times[i], 1e-12), 0.0)
    out = frames[i] * (1 - u[:, None]) + frames[j] * u[:, None]  # positions and revolute angles
    for col in _QUATS.values():
        out[:, col:col + 4] = _slerp(frames[i, col:col + 4], frames[j, col:col + 4], u)
    out[:, 0] = 0.0
    return out


def humanoid_joints(frames: np.ndarray) -> np.ndarray:
    """Forward kinematics of resampled frames [T, 44] → H36M-17 joints [T, 17, 3], y-up, metres."""
    off = {k: np.asarray(v, dtype=np.float64) * SCALE for k, v in _OFFSETS.items()}
    mirror = np.array([1.0, 1.0, -1.0])
    root_p = frames[:, 1:4]
    rot = {name: _quat_matrix(frames[:, col:col + 4]) for name, col in _QUATS.items()}
    r_root = rot["root"]
    r_chest = r_root @ rot["chest"]
    r_neck = r_chest @ rot["neck"]
    chest = root_p + r_root @ off["chest"]
    neck = chest + r_chest @ off["neck"]
    joints = {"root": root_p, "neck": neck, "nose": neck + r_neck @ off["nose"],
              "head": neck + r_neck @ off["head"]}
    for side, sign in (("r", np.ones(3)), ("l", mirror)):
        r_hip = r_root @ rot[f"{side}_hip"]
        r_knee = r_hip @ _rot_z(frames[:, _ANGLES[f"{side}_knee"]])
        r_sh = r_chest @ rot[f"{side}_shoulder"]
        r_el = r_sh @ _rot_z(frames[:, _ANGLES[f"{side}_elbow"]])
        joints[f"{side}_hip"] = root_p + r_root @ (off["hip"] * sign)
        joints[f"{side}_knee"] = joints[f"{side}_hip"] + r_hip @ (off["knee"] * sign)
        joints[f"{side}_ankle"] = joints[f"{side}_knee"] + r_knee @ (off["ankle"] * sign)
        joints[f"{side}_shoulder"] = chest + r_chest @ (off["shoulder"] * sign)
        joints[f"{side}_elbow"] = joints[f"{side}_shoulder"] + r_sh @ (off["elbow"] * sign)
        joints[f"{side}_wrist"] = joints[f"{side}_elbow"] + r_el @ (off["wrist"] * sign)
    joints["spine"] = (root_p + neck) / 2
    order = ("root", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "neck", "nose", "head",
             "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
    return np.stack([joints[name] for name in order], axis=1)


def to_h36m_world(joints_y_up: np.ndarray, subject: str) -> np.ndarray:
    """y-up humanoid joints [T, 17, 3] → z-up world [T, 17, 3] with ``subject``'s bone lengths, centred."""
    z_up = joints_y_up[..., [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # (x, y, z) -> (x, -z, y): a rotation
    lengths = bone_lengths_17(subject)
    out = np.zeros_like(z_up)
    out[:, 0] = z_up[:, 0]
    for j in range(1, 17):
        p = PARENTS_17[j]
        bone = z_up[:, j] - z_up[:, p]
        out[:, j] = out[:, p] + bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9) * lengths[j]
    shift = np.append(CENTRE - out[:, 0, :2].mean(0), ANKLE_HEIGHT - out[:, [3, 6], 2].min())
    return out + shift


def read_clip(path: Path) -> np.ndarray:
    """The keyframes [K, 44] of a DeepMimic motion file (DataError naming the file and key otherwise)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read a DeepMimic motion ({exc})") from None
    frames = doc.get("Frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or len(frames) < 2:
        raise DataError(f"{path}: key 'Frames' must be a list of at least 2 keyframes")
    try:
        array = np.asarray(frames, dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: 'Frames' rows have different lengths; expected {FRAME_SIZE} numbers each") from None
    if array.ndim != 2 or array.shape[1] != FRAME_SIZE:
        raise DataError(f"{path}: 'Frames' has shape {array.shape}; expected (K, {FRAME_SIZE})")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: 'Frames' holds NaN/inf; expected finite values")
    return array


def _default_dir() -> Path:
    spec = importlib.util.find_spec("pybullet_data")
    if spec is None or spec.origin is None:
        raise DataError("mocap_clips needs the DeepMimic clips shipped with pybullet, which is not installed: "
                        "pip install 'h2ot-lab[mocap]' (or pass a folder of humanoid3d_*.txt clips as data_dir)")
    return Path(spec.origin).parent / "data" / "motions"


def clip_files(folder: Path) -> dict[str, Path]:
    """Clip name → file: ``humanoid3d_<name>.txt`` and ``walker/<name>.txt`` (as ``walker_<name>``)."""
    files = {p.stem.removeprefix("humanoid3d_"): p for p in sorted(folder.glob("humanoid3d_*.txt"))}
    files.update({f"walker_{p.stem}": p for p in sorted(folder.glob("walker/*.txt"))})
    if not files:
        raise DataError(f"{folder}: no DeepMimic clips (humanoid3d_*.txt or walker/*.txt) found")
    return files


def load_mocap_clips(data_dir: Path | None = None, *, subject: str = "S1", test_clips: Sequence[str] = TEST_CLIPS,
                     cameras: Sequence[int] | None = None, **_: object) -> PoseData:
    """DeepMimic clips as H36M-17 sequences of ``subject`` seen by its cameras; ``test_clips`` form the test split."""
    folder = Path(data_dir) if data_dir is not None else _default_dir()
    chosen = tuple(range(NUM_CAMERAS)) if cameras is None else tuple(int(c) for c in cameras)
    splits: dict[str, list[PoseSequence]] = {"train": [], "test": []}
    for name, path in clip_files(folder).items():
        world = to_h36m_world(humanoid_joints(resample(read_clip(path))), subject)
        pixels = [project_to_2d(world_to_camera(world, camera(subject, c, source=str(path))),
                                camera(subject, c).intrinsics) for c in chosen]
        split = "test" if name in test_clips else "train"
        splits[split].extend(sequences_for_action(subject, name, to_32_joints(world), pixels, chosen, path))
    return PoseData("mocap_clips", splits["train"], splits["test"], joints_left=JOINTS_LEFT_17,
                    joints_right=JOINTS_RIGHT_17, extras={"fps": FPS, "subject": subject, "source": str(folder)})
