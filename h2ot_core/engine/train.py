"""One training epoch over clip windows.

Windows are visited in an order drawn from a dedicated ``torch.Generator``, so an epoch is a pure function
of the model, the optimiser and that generator's state (plus the global RNG for dropout and pruner
tie-breaks): saving both states makes a resumed run repeat an uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from h2ot_core.data.windows import flip_poses
from h2ot_core.engine.evaluate import Windows, match_channels
from h2ot_core.engine.losses import align_to_output
from h2ot_core.hourglass import HourglassModel

log = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass
class EpochStats:
    """Attributes:
    loss: mean training loss over the epoch's windows (``nan`` when it diverged).
    windows: training windows seen. steps: optimiser steps taken.
    diverged: a loss was NaN or infinite; the step was not taken and the epoch stopped there.
    """

    loss: float
    windows: int
    steps: int
    diverged: bool = False


def _mirror_half(x: Tensor, y: Tensor, generator: torch.Generator, left: tuple[int, ...],
                 right: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mirror a random half of the clips (input and target together), the usual flip augmentation."""
    pick = torch.rand(x.shape[0], generator=generator) < 0.5
    sel = pick[:, None, None, None]
    return torch.where(sel, flip_poses(x, left, right), x), torch.where(sel, flip_poses(y, left, right), y)


def train_one_epoch(
    model: HourglassModel,
    windows: Windows,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    flip: bool,
    joints_left: Sequence[int],
    joints_right: Sequence[int],
    max_windows: int | None = None,
) -> EpochStats:
    """Shuffle ``windows`` with ``generator`` (at most ``max_windows`` of them) and take one step per batch.

    A non-finite loss stops the epoch before its step and returns ``diverged=True``.
    """
    model.train()
    order = torch.randperm(len(windows), generator=generator)
    if max_windows is not None:
        order = order[:max_windows]
    left, right = tuple(joints_left), tuple(joints_right)
    device = next(model.parameters()).device
    total, seen, steps = 0.0, 0, 0
    for chunk in order.split(batch_size):
        x, y, mask = windows.get(chunk.numpy())
        if flip:
            x, y = _mirror_half(x, y, generator, left, right)
        x, y, mask = x.to(device), y.to(device), mask.to(device)
        pred = model(match_channels(x, model.backbone.in_chans)).pose3d
        target, m = align_to_output(pred, y, mask)
        loss = loss_fn(pred, target, m)
        value = float(loss.detach())
        if not math.isfinite(value):
            log.warning("non-finite training loss %s after %d steps; stopping", value, steps)
            return EpochStats(float("nan"), seen, steps, diverged=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += value * len(chunk)
        seen += len(chunk)
        steps += 1
    return EpochStats(total / max(seen, 1), seen, steps)
