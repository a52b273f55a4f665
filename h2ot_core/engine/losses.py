"""Training losses of the backbones' official recipes, on the frames a mask selects.

Every term takes ``pred`` and ``target`` ``[B, F, J, 3]`` (metres) and ``mask [B, F]`` (``True`` = a real
frame that counts: not edge padding) and returns a scalar. Velocity-type terms use consecutive frame
pairs whose two frames are both real; a clip of one frame contributes nothing to them.

Which frames carry the loss: seq2seq models output all ``F`` frames (recovered by TRA or TRI), so the loss
covers every real frame of the clip, as HoT does for its seq2seq variants. seq2frame models output only the
centre frame, so their loss is the centre frame's (:func:`align_to_output`); HoT's ``tpc_mixste`` instead
supervised every kept frame, which our seq2frame output does not expose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
from torch import Tensor

from h2ot_core.errors import ConfigError

LossTerm = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values [B, F]`` over ``mask [B, F]`` (0 when nothing is selected)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def _pair_mask(mask: Tensor) -> Tensor:
    return mask[:, 1:] & mask[:, :-1]


def mpjpe_loss(pred: Tensor, target: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Mean joint error (metres) over the selected frames."""
    return _masked_mean((pred - target).norm(dim=-1).mean(dim=-1), mask)


def weighted_mpjpe_loss(pred: Tensor, target: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """MixSTE's WMPJPE: joint errors times ``weights [J]``, averaged over joints and selected frames."""
    return _masked_mean(((pred - target).norm(dim=-1) * weights).mean(dim=-1), mask)


def n_mpjpe_loss(pred: Tensor, target: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """MPJPE after the per-frame least-squares scale of the prediction (MotionBERT's N-MPJPE term)."""
    scale = (pred * target).sum(dim=(-2, -1), keepdim=True) / (pred * pred).sum(
        dim=(-2, -1), keepdim=True
    ).clamp_min(1e-12)
    return mpjpe_loss(scale * pred, target, mask, weights)


def velocity_loss(pred: Tensor, target: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Mean L2 error between predicted and true frame-to-frame velocities (metres per frame)."""
    err = (pred.diff(dim=1) - target.diff(dim=1)).norm(dim=-1).mean(dim=-1)
    return _masked_mean(err, _pair_mask(mask))


def temporal_consistency_loss(pred: Tensor, target: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """MixSTE's TC smoothness prior: joint-weighted squared *predicted* frame differences (target unused)."""
    sq = pred.diff(dim=1).square() * weights[:, None]
    return _masked_mean(sq.mean(dim=(-2, -1)), _pair_mask(mask))


#: loss terms by name; recipes combine them with weights
LOSS_TERMS: dict[str, LossTerm] = {
    "mpjpe": mpjpe_loss,
    "wmpjpe": weighted_mpjpe_loss,
    "n_mpjpe": n_mpjpe_loss,
    "velocity": velocity_loss,
    "tc": temporal_consistency_loss,
}


class WeightedLoss:
    """``sum(weight · term)`` over named :data:`LOSS_TERMS`.

    Args:
        terms: ``{term name: weight}``.
        joint_weights: per-joint weights ``[J]`` for the weighted terms (``wmpjpe``, ``tc``).
    """

    def __init__(self, terms: Mapping[str, float], joint_weights: Sequence[float]):
        unknown = sorted(set(terms) - set(LOSS_TERMS))
        if unknown:
            raise ConfigError(f"Unknown loss term(s) {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(LOSS_TERMS))}")
        self.terms = dict(terms)
        self.joint_weights = torch.tensor(joint_weights, dtype=torch.float32)
        # per (device, dtype): a host-to-GPU copy at every step would block the host at every step
        self._placed: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def _weights(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (device, dtype)
        if key not in self._placed:
            self._placed[key] = self.joint_weights.to(device, dtype)
        return self._placed[key]

    def __call__(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Scalar loss of ``pred`` against ``target`` ``[B, F, J, 3]`` on ``mask [B, F]``."""
        w = self._weights(pred.device, pred.dtype)
        if w.shape[0] != pred.shape[-2]:
            raise ConfigError(f"Joint weights cover {w.shape[0]} joints but the poses have {pred.shape[-2]}")
        total = sum(weight * LOSS_TERMS[name](pred, target, mask, w) for name, weight in self.terms.items())
        return cast(Tensor, total)


def align_to_output(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The target frames ``pred`` predicts: all ``F`` (seq2seq), or the centre ``F // 2`` when ``pred`` has one.

    Returns ``(target [B, F_out, J, 3], mask [B, F_out])``.
    """
    if pred.shape[1] == target.shape[1]:
        return target, mask
    c = target.shape[1] // 2
    return target[:, c : c + 1], mask[:, c : c + 1]
