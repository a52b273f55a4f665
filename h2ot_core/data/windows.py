"""Clip windows over pose sequences: the training and evaluation engine's view of a dataset.

Every sequence is edge-padded once and all sequences are concatenated into one array; a window is
just a start offset into it, and a batch is gathered with one vectorised fancy index.

* ``seq2seq``: windows of F frames every ``stride`` frames, the block of windows centred on the
  sequence (padding split between both ends, as VideoPose3D's chunked generator does); with
  ``stride == F`` every real frame lies in exactly one window.
* ``seq2frame``: one window centred on every ``stride``-th frame (``stride=1``: every frame); only the
  centre position ``F // 2`` counts in the mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from h2ot_core.contracts import PIPELINES, Pipeline
from h2ot_core.data.base import PoseSequence
from h2ot_core.errors import ConfigError, DataError


def flip_poses(x: Tensor, joints_left: Sequence[int], joints_right: Sequence[int]) -> Tensor:
    """Mirror poses ``x`` [..., J, C]: x-coordinate negated, left and right joints exchanged (a new tensor)."""
    out = x.clone()
    out[..., 0] = -out[..., 0]
    left, right = list(joints_left), list(joints_right)
    out[..., left + right, :] = out[..., right + left, :]
    return out


def _window_starts(frames_in_seq: int, frames: int, stride: int, pipeline: str) -> tuple[np.ndarray, int, int]:
    """Window starts (relative to the padded sequence) and the (left, right) padding it needs."""
    if pipeline == "seq2frame":
        left = frames // 2
        return np.arange(0, frames_in_seq, stride), left, frames - 1 - left
    count = max(1, -(-(frames_in_seq - frames) // stride) + 1)
    excess = (count - 1) * stride + frames - frames_in_seq
    return np.arange(count) * stride, excess // 2, excess - excess // 2


class ClipWindows:
    """Windows of ``frames`` frames over sequences; arrays are concatenated once, windows are index views.

    Attributes:
        actions: sorted unique action names, grouped as the H36M protocol does (the part before the
            first space: "Walking 1" counts as "Walking").
        window_action: [N] int index into ``actions`` per window.
        window_sequence: [N] int index into the input ``sequences`` per window.
        window_frame: [N] int frame of its sequence at the window's first position (seq2seq; may be
            negative where padding comes first) or at its centre (seq2frame).
    """

    def __init__(self, sequences: list[PoseSequence], frames: int, *, stride: int, pipeline: Pipeline = "seq2seq",
                 joints_left: Sequence[int] = (4, 5, 6, 11, 12, 13),
                 joints_right: Sequence[int] = (1, 2, 3, 14, 15, 16)):
        if frames < 1:
            raise DataError(f"clip windows: frames must be >= 1, got {frames}")
        if stride < 1:
            raise DataError(f"clip windows: stride must be >= 1, got {stride}")
        if pipeline not in PIPELINES:
            raise ConfigError(f"clip windows: unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
        if not sequences:
            raise DataError("clip windows: no sequences to cut windows from")
        self.frames, self.stride, self.pipeline = frames, stride, pipeline
        self.joints_left, self.joints_right = tuple(joints_left), tuple(joints_right)
        self.actions = sorted({seq.action.split(" ")[0] for seq in sequences})
        action_id = {name: i for i, name in enumerate(self.actions)}
        x2d, y3d, real, edge, starts, seq_of, frame_of = [], [], [], [], [], [], []
        base = 0
        for i, seq in enumerate(sequences):
            self._check(seq, sequences[0])
            rel, left, right = _window_starts(seq.num_frames, frames, stride, pipeline)
            pad = ((left, right), (0, 0), (0, 0))
            x2d.append(np.pad(seq.pose2d.astype(np.float32, copy=False), pad, mode="edge"))
            y3d.append(np.pad(seq.pose3d.astype(np.float32, copy=False), pad, mode="edge"))
            valid = np.ones(seq.num_frames, bool) if seq.valid is None else np.asarray(seq.valid, bool)
            real.append(np.pad(valid, (left, right), constant_values=False))
            edge.append(np.pad(np.zeros(seq.num_frames, bool), (left, right), constant_values=True))
            starts.append(base + rel)
            seq_of.append(np.full(rel.size, i))
            frame_of.append(rel if pipeline == "seq2frame" else rel - left)
            base += seq.num_frames + left + right
        self._x2d = torch.from_numpy(np.concatenate(x2d))
        self._y3d = torch.from_numpy(np.concatenate(y3d))
        self._real = torch.from_numpy(np.concatenate(real))
        self._pad = torch.from_numpy(np.concatenate(edge))
        self._starts = np.concatenate(starts)
        self.window_sequence = np.concatenate(seq_of)
        self.window_frame = np.concatenate(frame_of)
        seq_action = np.array([action_id[seq.action.split(" ")[0]] for seq in sequences])
        self.window_action = seq_action[self.window_sequence]
        self._offsets = np.arange(frames)

    @staticmethod
    def _check(seq: PoseSequence, first: PoseSequence) -> None:
        name = f"{seq.subject}/{seq.action}/camera {seq.camera}"
        if seq.num_frames < 1:
            raise DataError(f"clip windows: sequence {name} has no frames; expected at least 1")
        if seq.pose3d.shape[0] != seq.num_frames or seq.pose3d.shape[1:] != (first.pose2d.shape[1], 3):
            raise DataError(f"clip windows: sequence {name} has 3D shape {seq.pose3d.shape}; expected "
                            f"({seq.num_frames}, {first.pose2d.shape[1]}, 3)")
        if seq.pose2d.shape[1:] != first.pose2d.shape[1:]:
            raise DataError(f"clip windows: sequence {name} has 2D shape {seq.pose2d.shape}; expected "
                            f"(T, {', '.join(map(str, first.pose2d.shape[1:]))}) like the others")
        if seq.valid is not None and np.shape(seq.valid) != (seq.num_frames,):
            raise DataError(f"clip windows: sequence {name} has a valid mask of shape {np.shape(seq.valid)}; "
                            f"expected ({seq.num_frames},)")

    def __len__(self) -> int:
        return int(self._starts.size)

    def get(self, idx: np.ndarray | Tensor | Sequence[int], *, flip: bool = False, padded: bool = False
            ) -> tuple[Tensor, Tensor, Tensor]:
        """Windows ``idx`` [B]: x2d [B,F,J,C] float32, y3d [B,F,J,3] float32 (m), mask [B,F] bool.

        ``mask`` is True on real frames that count (not edge padding, valid where the sequence has a
        valid mask); ``padded`` counts the edge padding too (the official protocol and loss); for
        seq2frame only the centre ``F // 2`` counts. ``flip`` mirrors x2d and y3d.
        """
        idx = np.asarray(idx.cpu() if isinstance(idx, Tensor) else idx, dtype=np.int64).reshape(-1)
        gather = torch.from_numpy(self._starts[idx][:, None] + self._offsets[None, :])
        x, y, real = self._x2d[gather], self._y3d[gather], self._real[gather]
        if padded:
            real = real | self._pad[gather]
        if self.pipeline == "seq2frame":
            centre = self.frames // 2
            mask = torch.zeros_like(real)
            mask[:, centre] = real[:, centre]
        else:
            mask = real
        if flip:
            x = flip_poses(x, self.joints_left, self.joints_right)
            y = flip_poses(y, self.joints_left, self.joints_right)
        return x, y, mask

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                flip: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Yields (x2d, y3d, mask, window_index [B] long) over all windows.

        ``shuffle`` permutes the order with ``generator``; ``flip`` mirrors a random half of each batch
        (training augmentation, drawn from ``generator`` too).
        """
        if batch_size < 1:
            raise DataError(f"clip windows: batch_size must be >= 1, got {batch_size}")
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for chunk in order.split(batch_size):
            x, y, mask = self.get(chunk)
            if flip:
                mirror = torch.rand(len(chunk), generator=generator) < 0.5
                x[mirror] = flip_poses(x[mirror], self.joints_left, self.joints_right)
                y[mirror] = flip_poses(y[mirror], self.joints_left, self.joints_right)
            yield x, y, mask, chunk
