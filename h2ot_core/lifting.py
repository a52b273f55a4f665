"""Lift a 2D keypoint sequence of any length to 3D with a model of fixed clip length ``F``.

The one place that turns "a clip of T frames" into model windows and back (``h2ot video`` uses it; it is
meant for ``h2ot predict`` on sequences too). Windows are cut by :class:`h2ot_core.data.windows.ClipWindows`,
the code training and evaluation use, so a video is seen exactly as a test sequence is:

* **Edge padding.** A sequence is padded by repeating its first/last frame (``np.pad(mode="edge")``,
  VideoPose3D's rule), so ``T = 1`` and ``T < F`` work.
* **seq2seq** (MixSTE, MotionBERT, MotionAGFormer): windows of ``F`` frames every ``F - overlap`` frames,
  the block of windows centred on the sequence. **Overlaps are merged by a weighted mean** whose weight
  for window position ``p`` is the tent ``min(p + 1, F - p)``: a frame counts most from the window in
  which it sits nearest the centre (most context on both sides), and the merge has no seams.
* **seq2frame** (MHFormer, or any backbone run as seq2frame): one window centred on every frame (stride
  1); the model's centre output is that frame's pose.
* **Batched** ``batch_size`` windows per forward pass on the model's device, in the precision asked for
  (autocast; weights cast by :func:`h2ot_core.device.inference_model`), with optional flip augmentation
  (:func:`h2ot_core.engine.evaluate.predict`: the mirrored pass is averaged in).

Inputs are screen-normalised keypoints (:func:`h2ot_core.data.cameras.normalize_screen_coordinates`, the
training normalisation), ``(x, y)`` or ``(x, y, confidence)``; channels are fitted to the model as in
evaluation (confidence appended as 1 or dropped).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from h2ot_core.data.base import PoseSequence
from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17
from h2ot_core.data.windows import ClipWindows
from h2ot_core.device import synchronize, to_device
from h2ot_core.engine.evaluate import predict
from h2ot_core.errors import ConfigError, ShapeError
from h2ot_core.hourglass import HourglassModel


@dataclass(frozen=True)
class LiftStats:
    """How a sequence was lifted: ``windows`` clips in ``batches`` forward passes of up to ``batch_size``
    clips, ``model_seconds`` spent in the model alone (device synchronised), on ``device`` in ``precision``."""

    frames: int
    windows: int
    batches: int
    batch_size: int
    model_seconds: float
    device: str
    precision: str
    flip: bool

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.model_seconds / max(self.frames, 1)


@dataclass
class Lifted:
    """``poses``: ``[T, J, 3]`` float32 root-relative joints in metres (camera axes); ``stats``: how."""

    poses: np.ndarray
    stats: LiftStats


def default_overlap(frames: int, pipeline: str) -> int:
    """A quarter of the clip for seq2seq windows (0 for seq2frame, which slides a frame at a time)."""
    return frames // 4 if pipeline == "seq2seq" else 0


def tent_weights(frames: int) -> np.ndarray:
    """``[F]`` merge weights ``min(p + 1, F - p)``: highest at the window centre."""
    p = np.arange(frames)
    return np.minimum(p + 1, frames - p).astype(np.float64)


def lift_sequence(model: HourglassModel, keypoints: np.ndarray, *, overlap: int | None = None, flip: bool = False,
                  batch_size: int = 16, precision: str = "fp32",
                  joints_left: Sequence[int] = JOINTS_LEFT_17, joints_right: Sequence[int] = JOINTS_RIGHT_17,
                  source: str = "keypoints") -> Lifted:
    """Lift ``keypoints [T, J, C]`` (screen-normalised, ``C`` 2 or 3, any ``T >= 1``) to ``[T, J, 3]``.

    ``model`` is used on the device its parameters are on, as prepared for ``precision`` (callers run
    :func:`h2ot_core.device.inference_model` once). ``overlap`` (seq2seq only) is the number of frames
    consecutive windows share, ``0 <= overlap < F`` (default :func:`default_overlap`). ``source`` names
    the input in errors.

    Raises:
        ShapeError: keypoints not ``[T, J, C]`` with the model's ``J``, empty, or not finite.
        ConfigError: an overlap out of range, a batch size below 1.
    """
    bb = model.backbone
    frames, pipeline = bb.num_frames, model.pipeline
    kp = np.asarray(keypoints)
    if kp.ndim != 3 or kp.shape[0] < 1 or kp.shape[2] not in (2, 3):
        raise ShapeError(f"{source}: expected keypoints of shape (T, J, 2 or 3) with T >= 1, got {kp.shape}")
    if kp.shape[1] != bb.num_joints:
        raise ShapeError(f"{source}: the model lifts {bb.num_joints} joints, the keypoints have {kp.shape[1]}")
    if not np.isfinite(kp).all():
        raise ShapeError(f"{source}: the keypoints contain NaN or inf values (fill missing joints first)")
    overlap = default_overlap(frames, pipeline) if overlap is None else overlap
    if pipeline == "seq2seq" and not 0 <= overlap < frames:
        raise ConfigError(f"--overlap {overlap}: expected 0 <= overlap < {frames} (the model's frames)")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: expected at least 1")
    stride = frames - overlap if pipeline == "seq2seq" else 1
    total = kp.shape[0]
    seq = PoseSequence("input", "input", 0, kp.astype(np.float32, copy=False),
                       np.zeros((total, kp.shape[1], 3), np.float32))
    windows = ClipWindows([seq], frames, stride=stride, pipeline=pipeline, joints_left=joints_left,
                          joints_right=joints_right)
    device = next(model.parameters()).device
    acc = np.zeros((total, kp.shape[1], 3), np.float64)
    weight = np.zeros(total, np.float64)
    tent = tent_weights(frames)
    seconds, batches = 0.0, 0
    for x, _, _, index in windows.batches(batch_size, shuffle=False):
        x = to_device(x, device)
        synchronize(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pred = predict(model, x, flip=flip, joints_left=joints_left, joints_right=joints_right,
                           precision=precision)
        synchronize(device)
        seconds += time.perf_counter() - t0
        batches += 1
        out = pred.cpu().numpy().astype(np.float64)
        first = windows.window_frame[index.numpy()]
        if pipeline == "seq2frame":
            acc[first] = out[:, 0]
            weight[first] = 1.0
            continue
        at = first[:, None] + np.arange(frames)[None, :]  # [B, F] frame of each window position
        real = (at >= 0) & (at < total)
        w = np.broadcast_to(tent, at.shape)[real]
        np.add.at(acc, at[real], out[real] * w[:, None, None])
        np.add.at(weight, at[real], w)
    poses = (acc / weight[:, None, None]).astype(np.float32)
    stats = LiftStats(total, len(windows), batches, batch_size, seconds, str(device), precision, flip)
    return Lifted(poses, stats)
