"""Test-set evaluation: per-action MPJPE, P-MPJPE, N-MPJPE, MPJVE (and PCK/AUC on MPI-INF-3DHP).

Every real frame is scored once: seq2seq windows tile each sequence at stride F, seq2frame windows are
centred on every frame. Under ``protocol="official"`` the edge-padded frames of the tiling windows are
scored too, as HoT's test does (the published numbers); ``real_frames`` masks them. P-MPJPE is per frame,
so per clip, whatever the batch (HoT's averages Procrustes errors over a batch before assigning them to
each clip's action; that is not reproduced). The predicted root joint is set to 0 before scoring (targets are root-relative),
and per-frame values are averaged within each action, then without weights over actions (``avg``).
MPJVE needs consecutive output frames, so seq2frame models report no MPJVE. The forward passes run on the
model's device under ``precision``'s autocast; the metrics are computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from h2ot_core.contracts import metric_key
from h2ot_core.data.windows import flip_poses
from h2ot_core.device import autocast, to_device
from h2ot_core.engine.losses import align_to_output
from h2ot_core.hourglass import HourglassModel
from h2ot_core.metrics import FRAME_METRICS, ActionAccumulator, auc, mpjve, pck


class Windows(Protocol):
    """What evaluation needs of ``h2ot_core.data.windows.ClipWindows``."""

    actions: list[str]
    window_action: np.ndarray

    def __len__(self) -> int: ...

    def get(self, idx: np.ndarray, *, flip: bool = False, padded: bool = False) -> tuple[Tensor, Tensor, Tensor]: ...


@dataclass
class Evaluation:
    """Attributes:
    metrics: ``{metric: {action: value, ..., "avg": value}}`` (mm; PCK and AUC in %).
    frames: frames scored.
    """

    metrics: dict[str, dict[str, float]]
    frames: int

    def flat(self, split: str = "test") -> dict[str, float]:
        """``{flat key: avg}`` (``test_mpjpe``: :func:`~h2ot_core.contracts.metric_key`), the per-epoch report's view."""
        return {metric_key(split, name): per_action["avg"] for name, per_action in self.metrics.items() if per_action}


def match_channels(x: Tensor, in_chans: int) -> Tensor:
    """Fit 2D input ``[B, F, J, C]`` to a model taking ``in_chans``: drop extra channels, or append a
    confidence of 1 when the model wants ``(x, y, conf)`` and the data has ``(x, y)``."""
    c = x.shape[-1]
    if c >= in_chans:
        return x[..., :in_chans]
    return torch.cat([x, x.new_ones(*x.shape[:-1], in_chans - c)], dim=-1)


def predict(model: HourglassModel, x: Tensor, *, flip: bool, joints_left: Sequence[int],
            joints_right: Sequence[int], precision: str = "fp32") -> Tensor:
    """``x [B, F, J, C]`` → float32 ``[B, F or 1, J, 3]``; ``flip`` averages in the mirrored pass, mirrored back.

    seq2frame models replay the unflipped pass's frame selection on the mirrored input, as HoT does. The
    passes run under ``precision``'s autocast.
    """
    left, right = tuple(joints_left), tuple(joints_right)
    x = match_channels(x, model.backbone.in_chans)
    with autocast(x.device, precision):
        out = model(x)
        if not flip:
            return out.pose3d.float()
        replay = out.stage_positions if model.pipeline == "seq2frame" else None
        mirrored = model(flip_poses(x, left, right), replay=replay).pose3d
    return (out.pose3d.float() + flip_poses(mirrored.float(), left, right)) / 2


def _window_subset(n: int, cap: int | None) -> np.ndarray:
    # Evenly spaced rather than the first ``cap``, so a capped evaluation still spans every action.
    if cap is None or cap >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


@torch.no_grad()
def evaluate(
    model: HourglassModel,
    windows: Windows,
    *,
    batch_size: int,
    flip: bool,
    joints_left: Sequence[int],
    joints_right: Sequence[int],
    root_joint: int = 0,
    pck_joints: Sequence[int] | None = None,
    max_windows: int | None = None,
    precision: str = "fp32",
    protocol: str = "real_frames",
) -> Evaluation:
    """Score ``model`` on every real frame of ``windows`` (``protocol="official"``: the padded ones too).

    Args:
        pck_joints: when given, PCK (150 mm) and AUC (0–150 mm) are added over these joints.
        max_windows: evaluate an evenly spaced subset of at most this many windows (quick CPU runs).
        precision: autocast precision of the forward passes (``fp32``, ``bf16``, ``fp16``).
    """
    was_training = model.training
    model.eval()
    acc = ActionAccumulator(windows.actions)
    frames = 0
    index = _window_subset(len(windows), max_windows)
    device = next(model.parameters()).device
    try:
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            x, y, mask = (to_device(t, device) for t in windows.get(chunk, padded=protocol == "official"))
            pred = predict(model, x, flip=flip, joints_left=joints_left, joints_right=joints_right,
                           precision=precision).clone()
            pred[..., root_joint, :] = 0.0
            target, m = align_to_output(pred, y, mask)
            action = torch.as_tensor(windows.window_action[chunk], dtype=torch.long, device=device)
            action = action[:, None].expand(m.shape)
            sel_pred, sel_target, sel_action = pred[m], target[m], action[m]
            frames += int(m.sum())
            for name, fn in FRAME_METRICS.items():
                acc.add(name, fn(sel_pred, sel_target), sel_action)
            if pck_joints is not None:
                acc.add("pck", pck(sel_pred, sel_target, joints=pck_joints), sel_action)
                acc.add("auc", auc(sel_pred, sel_target, joints=pck_joints), sel_action)
            if pred.shape[1] > 1:
                pairs = m[:, 1:] & m[:, :-1]
                acc.add("mpjve", mpjve(pred, target)[pairs], action[:, 1:][pairs])
    finally:
        model.train(was_training)
    return Evaluation(acc.result(), frames)
