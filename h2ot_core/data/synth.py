"""Synthetic Human3.6M files in the exact VideoPose3D layout (pose-data.md §3.5, §4).

``write_synthetic(out_dir, seed=0, minutes=2.0)`` writes

* ``data_3d_h36m.npz`` — ``positions_3d``: subject → action → float32 ``(T, 32, 3)`` world metres (the 15
  joints VideoPose3D drops hold their parent's position);
* ``data_2d_h36m_gt.npz`` — ``positions_2d``: subject → action → 4 float32 ``(T, 17, 2)`` pixel arrays
  (exact projections with lens distortion) and ``metadata``;
* ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` — the same plus CPN-like detection noise, ``layout_name`` in metadata;
* ``synthetic_labels.npz`` — ``labels``: subject → action → {``speed`` float32 (T,) m/s root-relative mean
  joint speed, ``segment`` int8 (T,)}, and ``segment_names`` (str array);
* ``synthetic.json`` — seed, minutes, version; written last, it marks the folder complete.

As in the originals, the dicts are pickled inside ``np.savez``: reading them needs ``allow_pickle``
(or :func:`h2ot_core.data.npz.load_npz_key`, which only rebuilds arrays). Subjects S1, S5, S6, S7, S8,
S9, S11 at 50 Hz, each with a few H36M actions; everything is deterministic for a seed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from h2ot_core.data.cameras import NUM_CAMERAS, camera, project_to_2d, world_to_camera
from h2ot_core.data.h36m import FILE_3D, SOURCES
from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17, KEPT_32, NUM_JOINTS_32, PARENTS_32
from h2ot_core.data.synth_motion import FPS, SEGMENT_NAMES, generate_motion
from h2ot_core.data.synth_noise import detector_noise, swap_limbs
from h2ot_core.errors import ConfigError

log = logging.getLogger(__name__)

SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
FILE_LABELS = "synthetic_labels.npz"
MANIFEST = "synthetic.json"
VERSION = 1
MIN_FRAMES = 20
_SYMMETRY = [list(JOINTS_LEFT_17), list(JOINTS_RIGHT_17)]


@dataclass
class SynthData:
    """The generated content, keyed like the files: subject → action → value."""

    positions_3d: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    gt_2d: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    cpn_2d: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    labels: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)


def actions_for(subject_index: int, count: int) -> list[str]:
    """``count`` action names for a subject, rotating through the 15 base actions so every action
    appears in train and test; repeats get H36M-style suffixes ("Walking 1")."""
    names = []
    for k in range(count):
        base = ACTIONS[(subject_index * 4 + k) % len(ACTIONS)]
        names.append(base if k < len(ACTIONS) else f"{base} {k // len(ACTIONS)}")
    return names


def to_32_joints(world17: np.ndarray) -> np.ndarray:
    """[T, 17, 3] → [T, 32, 3]: the kept joints in their slots, each dropped joint at its parent."""
    out = np.zeros((world17.shape[0], NUM_JOINTS_32, 3), dtype=world17.dtype)
    out[:, list(KEPT_32)] = world17
    kept = set(KEPT_32)
    for j in range(1, NUM_JOINTS_32):  # parents come first in the 32-joint order
        if j not in kept:
            out[:, j] = out[:, PARENTS_32[j]]
    return out


def generate(seed: int = 0, minutes: float = 2.0) -> SynthData:
    """All subjects' motion, GT and noisy 2D for ``minutes`` of total footage (per camera view)."""
    if not minutes > 0:
        raise ConfigError(f"synthetic data: minutes must be > 0, got {minutes!r}")
    per_subject = int(np.clip(round(1.5 * minutes), 3, 4 * len(ACTIONS)))
    total = minutes * 60 * FPS
    layout_rng = np.random.default_rng([seed, 0xC0FFEE])
    data = SynthData()
    for si, subject in enumerate(SUBJECTS):
        for name in (data.positions_3d, data.gt_2d, data.cpn_2d, data.labels):
            name[subject] = {}
        for ai, action in enumerate(actions_for(si, per_subject)):
            frames = max(MIN_FRAMES, int(total / (len(SUBJECTS) * per_subject) * layout_rng.uniform(0.75, 1.25)))
            rng = np.random.default_rng([seed, si, ai])
            motion = generate_motion(rng, subject, action, frames)
            data.positions_3d[subject][action] = to_32_joints(motion.world).astype(np.float32)
            data.labels[subject][action] = {"speed": motion.speed, "segment": motion.segment}
            gt, cpn = [], []
            for cam_index in range(NUM_CAMERAS):
                cam = camera(subject, cam_index)
                cam3d = world_to_camera(motion.world, cam)
                px = project_to_2d(cam3d, cam.intrinsics)
                gt.append(px.astype(np.float32))
                noisy = swap_limbs(rng, px + detector_noise(rng, cam3d[..., 2]))
                cpn.append(noisy.astype(np.float32))
            data.gt_2d[subject][action], data.cpn_2d[subject][action] = gt, cpn
    return data


def _write_files(folder: Path, data: SynthData, manifest: dict) -> None:
    np.savez(folder / FILE_3D, positions_3d=np.array(data.positions_3d, dtype=object))
    np.savez(folder / SOURCES["gt"], positions_2d=np.array(data.gt_2d, dtype=object),
             metadata=np.array({"num_joints": 17, "keypoints_symmetry": _SYMMETRY}, dtype=object))
    np.savez(folder / SOURCES["cpn"], positions_2d=np.array(data.cpn_2d, dtype=object),
             metadata=np.array({"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": _SYMMETRY},
                               dtype=object))
    np.savez(folder / FILE_LABELS, labels=np.array(data.labels, dtype=object),
             segment_names=np.array(SEGMENT_NAMES))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def manifest_for(seed: int, minutes: float) -> dict:
    return {"generator": "h2ot synthetic h36m", "version": VERSION, "seed": int(seed), "minutes": float(minutes)}


def is_complete(folder: Path, seed: int, minutes: float) -> bool:
    """Whether ``folder`` already holds this seed/minutes' files (the manifest is written last)."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text()) == manifest_for(seed, minutes)
    except (OSError, ValueError):
        return False


def write_synthetic(out_dir: Path, *, seed: int = 0, minutes: float = 2.0) -> Path:
    """Generate into ``out_dir`` unless it is already complete; safe when processes race.

    Files are written to a private temporary folder beside ``out_dir`` and moved in with atomic
    renames (the whole folder when ``out_dir`` is absent, else file by file with the manifest last),
    so a reader never sees a half-written file.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir, seed, minutes):
        return out_dir
    manifest = manifest_for(seed, minutes)
    data = generate(seed, minutes)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_files(tmp, data, manifest)
        try:
            os.rename(tmp, out_dir)  # atomic; replaces only an absent or empty folder
        except OSError:
            if not is_complete(out_dir, seed, minutes):  # an existing folder: move files, manifest last
                out_dir.mkdir(parents=True, exist_ok=True)
                for name in (FILE_3D, SOURCES["gt"], SOURCES["cpn"], FILE_LABELS, MANIFEST):
                    os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic H36M (seed %d, %.2f min) written to %s", seed, minutes, out_dir)
    return out_dir
