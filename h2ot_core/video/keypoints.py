"""2D keypoint layouts of common detectors, their mapping to Human3.6M-17, and filling of missing joints.

Mapping rules (each H36M joint is the mean of the listed source joints; its confidence is their minimum, so
a derived joint is only as sure as its least sure source; a joint missing in any source is missing):

==================  ===========================  =======================================
H36M-17 joint       from COCO-17                 from Halpe-26
==================  ===========================  =======================================
0 Hip (pelvis)      mean(11 LHip, 12 RHip)       19 hip
1/2/3 RHip/Knee/Ft  12 / 14 / 16                 12 / 14 / 16
4/5/6 LHip/Knee/Ft  11 / 13 / 15                 11 / 13 / 15
7 Spine             mean(5, 6, 11, 12): the      mean(18 neck, 19 hip): the midpoint
                    midpoint of pelvis and       of pelvis and thorax
                    thorax
8 Thorax            mean(5 LShoulder, 6 RSh.)    18 neck
9 Neck/Nose         0 nose                       0 nose
10 Head             mean(1 LEye, 2 REye)         17 head (top)
11/12/13 L arm      5 / 7 / 9                    5 / 7 / 9
14/15/16 R arm      6 / 8 / 10                   6 / 8 / 10
==================  ===========================  =======================================

COCO's rules are MotionBERT's ``coco2h36m``; Halpe-26 has its own pelvis, neck and head-top points, which
are used as they are. Human3.6M-17 input is taken as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from h2ot_core.data.skeleton import JOINT_NAMES_17
from h2ot_core.errors import DataError, ShapeError
from h2ot_core.registry import unknown_message

COCO_17: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
HALPE_26: tuple[str, ...] = (*COCO_17, "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
                             "right_small_toe", "left_heel", "right_heel")

_LIMBS = {1: (12,), 2: (14,), 3: (16,), 4: (11,), 5: (13,), 6: (15,), 11: (5,), 12: (7,), 13: (9,), 14: (6,),
          15: (8,), 16: (10,)}


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: its joint names and, per H36M-17 joint, the source joints averaged into it."""

    name: str
    joints: tuple[str, ...]
    to_h36m: tuple[tuple[int, ...], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)


def _rules(special: dict[int, tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    rules = {**_LIMBS, **special}
    return tuple(rules[j] for j in range(len(JOINT_NAMES_17)))


LAYOUTS: dict[str, Layout] = {
    "coco": Layout("coco", COCO_17, _rules({0: (11, 12), 7: (5, 6, 11, 12), 8: (5, 6), 9: (0,), 10: (1, 2)})),
    "halpe": Layout("halpe", HALPE_26, _rules({0: (19,), 7: (18, 19), 8: (18,), 9: (0,), 10: (17,)})),
    "h36m": Layout("h36m", JOINT_NAMES_17, tuple((j,) for j in range(len(JOINT_NAMES_17)))),
}


def layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ShapeError(unknown_message("keypoint layout", name, list(LAYOUTS)))
    return LAYOUTS[name]


def layout_for_joints(joints: int, name: str | None, source: str) -> Layout:
    """The layout named, checked against ``joints``; unnamed: COCO-17 for 17 joints, Halpe-26 for 26."""
    if name is not None:
        chosen = layout(name)
        if chosen.num_joints != joints:
            raise ShapeError(f"{source}: {joints} joints per pose, but layout {name!r} has {chosen.num_joints}")
        return chosen
    by_count = {17: "coco", 26: "halpe"}
    if joints not in by_count:
        raise ShapeError(f"{source}: {joints} joints per pose; expected 17 (COCO-17 or Human3.6M-17 with "
                         f"--layout h36m) or 26 (Halpe-26)")
    return LAYOUTS[by_count[joints]]


def to_h36m(pixels: np.ndarray, scores: np.ndarray, src: Layout) -> tuple[np.ndarray, np.ndarray]:
    """``pixels [T, J_src, 2]`` and ``scores [T, J_src]`` → H36M-17 ``[T, 17, 2]`` and ``[T, 17]`` (module rules)."""
    out = np.stack([pixels[:, list(rule)].mean(axis=1) for rule in src.to_h36m], axis=1)
    conf = np.stack([scores[:, list(rule)].min(axis=1) for rule in src.to_h36m], axis=1)
    return out, conf


@dataclass(frozen=True)
class FillReport:
    """What :func:`fill_missing` changed: joint-frames interpolated (missing or below the confidence
    threshold), frames without any detection, and joints never confident, whose raw values were kept."""

    joints_filled: int
    frames_filled: int
    kept_low_confidence: tuple[str, ...]

    def text(self) -> str:
        kept = f"; never above the threshold, kept as detected: {', '.join(self.kept_low_confidence)}" \
            if self.kept_low_confidence else ""
        return f"filled {self.joints_filled} joint-frames ({self.frames_filled} frames without a person){kept}"


def fill_missing(pixels: np.ndarray, scores: np.ndarray, *, threshold: float, source: str,
                 names: tuple[str, ...] = JOINT_NAMES_17) -> tuple[np.ndarray, np.ndarray, FillReport]:
    """Interpolate missing joints linearly in time (held constant before the first / after the last good frame).

    A joint-frame is missing when its coordinates are NaN or its score is below ``threshold``; a frame whose
    joints are all NaN had no person. A joint that is never good keeps its raw values where it has any.
    Filled joints keep their (low) score; NaN ones get score 0.

    Raises:
        DataError: no person in any frame, or a joint with no value in any frame.
    """
    pixels = np.array(pixels, dtype=np.float64)
    scores = np.nan_to_num(np.array(scores, dtype=np.float64), nan=0.0)
    nan = ~np.isfinite(pixels).all(axis=-1)
    empty = nan.all(axis=1)
    if empty.all():
        raise DataError(f"{source}: no person found in any of its {len(pixels)} frames")
    good = ~nan & (scores >= threshold)
    t = np.arange(len(pixels))
    kept: list[str] = []
    filled = 0
    for j in range(pixels.shape[1]):
        usable = good[:, j] if good[:, j].any() else ~nan[:, j]
        if not usable.any():
            raise DataError(f"{source}: joint {names[j]} has no position in any frame")
        if not good[:, j].any():
            kept.append(names[j])
        bad = ~usable
        filled += int(bad.sum())
        for c in range(2):
            pixels[bad, j, c] = np.interp(t[bad], t[usable], pixels[usable, j, c])
    scores[nan] = 0.0
    return pixels.astype(np.float32), scores.astype(np.float32), FillReport(filled, int(empty.sum()), tuple(kept))
