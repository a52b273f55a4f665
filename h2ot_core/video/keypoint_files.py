"""Keypoint files of other detectors → one person's 2D track (pixels, scores) in the detector's layout.

Accepted files (the layout is COCO-17 for 17 joints, Halpe-26 for 26, unless ``layout`` names it, e.g.
``h36m`` for Human3.6M-17 arrays):

* ``.npy``: ``[T, J, 2]`` pixels or ``[T, J, 3]`` pixels + score (rtmlib, YOLO-pose ``kpts.data``, our
  own H36M-17 2D);
* ``.npz``: ``keypoints`` as above, optional ``scores [T, J]``, ``image_size`` ``(w, h)`` and ``fps``;
* ``.json``, one of
  - COCO results, a list of ``{"image_id", "keypoints": [x, y, s, ...], "score"}`` (Detectron2, MMPose,
    AlphaPose; ``image_id`` a number or a file name holding one, e.g. ``"12.jpg"``);
  - MMPose's ``--save-predictions`` file, ``{"instance_info": [{"frame_id", "instances": [{"keypoints":
    [[x, y], ...], "keypoint_scores": [...], "bbox_score"}]}]}``;
  - YOLO-pose (Ultralytics ``Results.summary()``), a list per frame of ``[{"confidence", "keypoints":
    {"x": [...], "y": [...], "visible": [...]}}]``.

Frames are indexed from the smallest frame number in the file; frames absent from it (or empty) have no
person (NaN). Where a frame holds several people, the one with the highest score is taken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from h2ot_core.errors import DataError, ShapeError
from h2ot_core.video.keypoints import Layout, layout_for_joints

#: file suffixes read as keypoints
KEYPOINT_SUFFIXES = (".npy", ".npz", ".json")


@dataclass
class Keypoints2D:
    """One person's track: ``pixels [T, J, 2]`` (NaN where absent), ``scores [T, J]``, in ``layout``;
    ``image_size`` ``(w, h)`` and ``fps`` where the file states them."""

    pixels: np.ndarray
    scores: np.ndarray
    layout: Layout
    image_size: tuple[int, int] | None = None
    fps: float | None = None


def read_keypoints(path: Path, layout_name: str | None = None) -> Keypoints2D:
    """Read ``path`` (see the module docstring); every problem is one :class:`DataError`/:class:`ShapeError`
    naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such keypoints file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_json(path, layout_name)
    if suffix in (".npy", ".npz"):
        return _from_array_file(path, layout_name)
    raise DataError(f"{path}: unknown keypoints file type {suffix!r}; expected {', '.join(KEYPOINT_SUFFIXES)}")


def _split(array: np.ndarray, path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    if array.ndim != 3 or array.shape[-1] not in (2, 3) or array.shape[0] < 1:
        raise ShapeError(f"{path}: {where} has shape {array.shape}; expected (frames, joints, 2 or 3)")
    array = array.astype(np.float64)
    scores = array[..., 2] if array.shape[-1] == 3 else np.ones(array.shape[:2])
    return array[..., :2], scores


def _from_array_file(path: Path, layout_name: str | None) -> Keypoints2D:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    size: tuple[int, int] | None = None
    fps: float | None = None
    if isinstance(loaded, np.ndarray):
        pixels, scores = _split(loaded, path, "the array")
    else:
        with loaded:
            names = list(loaded.files)
            key = "keypoints" if "keypoints" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise DataError(f"{path}: no 'keypoints' array (holds {', '.join(names) or 'nothing'})")
            pixels, scores = _split(loaded[key], path, f"'{key}'")
            if "scores" in names:
                scores = np.asarray(loaded["scores"], dtype=np.float64)
                if scores.shape != pixels.shape[:2]:
                    raise ShapeError(f"{path}: 'scores' has shape {scores.shape}; expected {pixels.shape[:2]}")
            if "image_size" in names:
                w, h = (int(v) for v in np.asarray(loaded["image_size"]).reshape(-1)[:2])
                size = (w, h)
            if "fps" in names:
                fps = float(loaded["fps"])
    return Keypoints2D(pixels, scores, layout_for_joints(pixels.shape[1], layout_name, str(path)), size, fps)


# --- JSON -------------------------------------------------------------------------------------------------

#: one person in one frame: (frame number, xy [J, 2], scores [J], overall score)
_Person = tuple[int, np.ndarray, np.ndarray, float]


def _frame_number(value: Any, path: Path, i: int) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    digits = re.findall(r"\d+", str(value))
    if not digits:
        raise DataError(f"{path}: record {i}: image_id {value!r} holds no frame number")
    return int(digits[-1])


def _coco_results(doc: list, path: Path) -> Iterable[_Person]:
    for i, rec in enumerate(doc):
        flat = np.asarray(rec.get("keypoints"), dtype=np.float64).reshape(-1)
        if flat.size % 3:
            raise ShapeError(f"{path}: record {i}: 'keypoints' has {flat.size} numbers; expected 3 per joint")
        xys = flat.reshape(-1, 3)
        yield _frame_number(rec.get("image_id", i), path, i), xys[:, :2], xys[:, 2], float(rec.get("score", 0.0))


def _mmpose(doc: dict, path: Path) -> Iterable[_Person]:
    for i, frame in enumerate(doc["instance_info"]):
        number = int(frame.get("frame_id", i))
        for person in frame.get("instances", []):
            xy = np.asarray(person.get("keypoints"), dtype=np.float64)
            scores = np.asarray(person.get("keypoint_scores", np.ones(len(xy))), dtype=np.float64)
            if xy.ndim != 2 or xy.shape[-1] != 2 or scores.shape != xy.shape[:1]:
                raise ShapeError(f"{path}: frame {number}: keypoints of shape {xy.shape} with scores of shape "
                                 f"{scores.shape}; expected (joints, 2) and (joints,)")
            box = person.get("bbox_score", scores.mean())
            yield number, xy, scores, float(np.mean(box))


def _yolo(doc: list, path: Path) -> Iterable[_Person]:
    for number, people in enumerate(doc):
        for person in people:
            kp = person.get("keypoints") or {}
            try:
                xy = np.stack([np.asarray(kp["x"], np.float64), np.asarray(kp["y"], np.float64)], axis=-1)
            except (KeyError, ValueError):
                raise ShapeError(f"{path}: frame {number}: 'keypoints' needs equal-length 'x' and 'y' lists") from None
            scores = np.asarray(kp.get("visible", np.ones(len(xy))), dtype=np.float64)
            yield number, xy, scores, float(person.get("confidence", 0.0))


def _people(doc: Any, path: Path) -> Iterable[_Person]:
    if isinstance(doc, dict) and "instance_info" in doc:
        return _mmpose(doc, path)
    if isinstance(doc, list) and doc and all(isinstance(frame, list) for frame in doc):
        return _yolo(doc, path)
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "keypoints" in r for r in doc):
        return _coco_results(doc, path)
    raise DataError(f"{path}: not a keypoints JSON this reads (COCO results list, MMPose predictions with "
                    f"'instance_info', or YOLO-pose frames)")


def _from_json(path: Path, layout_name: str | None) -> Keypoints2D:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    best: dict[int, _Person] = {}
    joints: int | None = None
    for person in _people(doc, path):
        number, xy, _, score = person
        if joints is None:
            joints = xy.shape[0]
        elif xy.shape[0] != joints:
            raise ShapeError(f"{path}: frame {number} has a person with {xy.shape[0]} joints, earlier ones "
                             f"have {joints}")
        if number not in best or score > best[number][3]:
            best[number] = person
    if joints is None:
        raise DataError(f"{path}: no person found in any frame")
    first = min(best)
    frames = max(best) - first + 1 if best else 0
    if isinstance(doc, list) and doc and all(isinstance(frame, list) for frame in doc):
        first, frames = 0, len(doc)  # YOLO frames are positions: trailing empty frames count too
    pixels = np.full((frames, joints, 2), np.nan)
    scores = np.zeros((frames, joints))
    for number, xy, s, _ in best.values():
        pixels[number - first], scores[number - first] = xy, s
    return Keypoints2D(pixels, scores, layout_for_joints(joints, layout_name, str(path)))
