"""Pose-error metrics of the 3D lifting literature, vectorised over frames.

Inputs are poses ``[..., J, 3]`` in **metres** (root-relative); every per-frame function returns one
value per leading index (``[...]``) in **millimetres**, or in **percent** for PCK and AUC. Averaging
follows the papers: mean over the frames of an action, then an unweighted mean over actions (``avg``),
see :func:`aggregate_by_action`.

- MPJPE, Protocol #1: mean Euclidean joint error.
- P-MPJPE, Protocol #2: MPJPE after a per-frame similarity (Procrustes) alignment of the prediction.
- N-MPJPE: MPJPE after the least-squares scale alignment of the prediction.
- MPJVE: mean per-joint velocity error, on consecutive frames.
- PCK / AUC (MPI-INF-3DHP): share of joints within 150 mm, and its mean over thresholds 0–150 mm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

MM = 1000.0

#: PCK threshold of MPI-INF-3DHP, metres
PCK_THRESHOLD = 0.150
#: AUC thresholds 0, 5, ..., 150 mm (31 values), metres
AUC_THRESHOLDS = tuple(t / MM for t in range(0, 151, 5))

def mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Protocol #1: ``[..., J, 3]`` metres → ``[...]`` mean joint error in mm."""
    return (pred - target).norm(dim=-1).mean(dim=-1) * MM


def n_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """MPJPE after scaling each frame's prediction by ``argmin_s ||s·pred − target||``; ``[...]`` mm."""
    scale = (pred * target).sum(dim=(-2, -1), keepdim=True) / (pred * pred).sum(dim=(-2, -1), keepdim=True).clamp_min(
        1e-12
    )
    return mpjpe(scale * pred, target)


def procrustes_align(pred: Tensor, target: Tensor) -> Tensor:
    """Similarity-align every frame of ``pred`` to ``target`` (rotation, uniform scale, translation).

    ``[..., J, 3]`` → ``[..., J, 3]``. The rotation comes from an SVD of the cross-covariance; when the
    best orthogonal map is a reflection, the last singular direction is flipped so a proper rotation is
    returned. Computed in float64, since near-degenerate frames are common in still poses.
    """
    dtype = pred.dtype
    x, y = target.double(), pred.double()
    mu_x, mu_y = x.mean(dim=-2, keepdim=True), y.mean(dim=-2, keepdim=True)
    x0, y0 = x - mu_x, y - mu_y
    norm_x = x0.square().sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
    norm_y = y0.square().sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
    x0, y0 = x0 / norm_x, y0 / norm_y
    u, s, vh = torch.linalg.svd(y0.transpose(-2, -1) @ x0)  # H = Y0ᵀ X0, [..., 3, 3]
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    fix = torch.ones_like(s)
    fix[..., -1] = sign
    rot = u @ (fix[..., :, None] * vh)  # maps y0 rows onto x0 rows: y0 @ rot ≈ x0
    trace = (s * fix).sum(dim=-1)[..., None, None]
    scale = trace * norm_x / norm_y
    aligned = scale * (y - mu_y) @ rot + mu_x
    return aligned.to(dtype)


def p_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Protocol #2: MPJPE after :func:`procrustes_align`; ``[..., J, 3]`` metres → ``[...]`` mm."""
    return mpjpe(procrustes_align(pred, target), target.to(pred.dtype))


def mpjve(pred: Tensor, target: Tensor) -> Tensor:
    """Velocity error: ``[..., T, J, 3]`` metres → ``[..., T-1]`` mm per frame step.

    Velocities are first differences over consecutive frames (mm per frame, not per second).
    """
    return mpjpe(pred.diff(dim=-3), target.diff(dim=-3))


def pck(pred: Tensor, target: Tensor, threshold: float = PCK_THRESHOLD, joints: Sequence[int] | None = None) -> Tensor:
    """Percentage of ``joints`` (all by default) within ``threshold`` metres; ``[..., J, 3]`` → ``[...]`` %."""
    err = (pred - target).norm(dim=-1)
    if joints is not None:
        err = err[..., list(joints)]
    return (err < threshold).to(pred.dtype).mean(dim=-1) * 100.0


def auc(pred: Tensor, target: Tensor, joints: Sequence[int] | None = None,
        thresholds: Sequence[float] = AUC_THRESHOLDS) -> Tensor:
    """Mean PCK over ``thresholds`` (0–150 mm in 5 mm steps); ``[..., J, 3]`` → ``[...]`` %."""
    err = (pred - target).norm(dim=-1)
    if joints is not None:
        err = err[..., list(joints)]
    th = torch.as_tensor(thresholds, dtype=err.dtype, device=err.device)
    return (err[..., None] < th).to(pred.dtype).mean(dim=(-2, -1)) * 100.0


class ActionAccumulator:
    """Running per-action sums of per-frame metric values, for evaluation over many batches.

    Args:
        actions: action names; values are added with integer indices into this list.
    """

    def __init__(self, actions: Sequence[str]):
        self.actions = list(actions)
        self._sums: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}

    def add(self, name: str, values: Tensor, action_index: Tensor) -> None:
        """Add per-frame ``values [N]`` of metric ``name`` belonging to actions ``action_index [N]``."""
        n = len(self.actions)
        sums = np.bincount(action_index.cpu().numpy(), weights=values.detach().double().cpu().numpy(), minlength=n)
        counts = np.bincount(action_index.cpu().numpy(), minlength=n)
        self._sums[name] = self._sums.get(name, np.zeros(n)) + sums
        self._counts[name] = self._counts.get(name, np.zeros(n, dtype=np.int64)) + counts

    def result(self) -> dict[str, dict[str, float]]:
        """``{metric: {action: mean, ..., "avg": unweighted mean over actions}}`` (actions with frames)."""
        return {name: aggregate_sums(self.actions, self._sums[name], self._counts[name]) for name in self._sums}


def aggregate_sums(actions: Sequence[str], sums: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Per-action means from sums and frame counts, plus ``avg`` = unweighted mean over actions."""
    per_action = {a: float(s / c) for a, s, c in zip(actions, sums, counts, strict=True) if c > 0}
    if per_action:
        per_action["avg"] = float(np.mean(list(per_action.values())))
    return per_action


def aggregate_by_action(values: Tensor | np.ndarray, action_index: Tensor | np.ndarray,
                        actions: Sequence[str]) -> dict[str, float]:
    """Per-frame ``values [N]`` → ``{action: mean over its frames, "avg": mean over actions}``."""
    acc = ActionAccumulator(actions)
    acc.add("m", torch.as_tensor(values), torch.as_tensor(action_index))
    return acc.result().get("m", {})


#: per-frame metrics evaluated on every dataset, name → function(pred, target) → [...] values
FRAME_METRICS: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = {"mpjpe": mpjpe, "p_mpjpe": p_mpjpe, "n_mpjpe": n_mpjpe}
