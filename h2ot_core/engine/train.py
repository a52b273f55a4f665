"""One training epoch over clip windows.

Windows are visited in an order drawn from a dedicated ``torch.Generator``, so an epoch is a pure function
of the model, the optimiser and that generator's state (plus the global RNG for dropout and pruner
tie-breaks): saving both states makes a resumed run repeat an uninterrupted one exactly.

The loop never waits for the device per step: batches are copied through pinned memory without blocking,
the loss is summed on the device, and the host reads it (:func:`_to_host`, the loop's only synchronising
call) every ``check_every`` steps and once at the end of the epoch. A NaN or infinite loss is therefore
noticed at the next check, not at its step; the trial then ends ``failed`` (``NaN at epoch N``) and the run falls back to
the last completed epoch's checkpoint, so the steps taken in between are never kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from h2ot_core.data.windows import flip_poses
from h2ot_core.device import autocast, to_device
from h2ot_core.engine.evaluate import Windows, match_channels
from h2ot_core.engine.losses import align_to_output
from h2ot_core.hourglass import HourglassModel

log = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: ``on_step(steps_done, steps_in_epoch)`` after each optimiser step: host-side counts only, never a device read
StepFn = Callable[[int, int], None]


@dataclass
class EpochStats:
    """Attributes:
    loss: mean training loss over the epoch's windows (``nan`` when it diverged).
    windows: training windows seen. steps: optimiser steps taken.
    diverged: a loss was NaN or infinite; the epoch stopped at the next check after it.
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


def _mirror_copies(x: Tensor, y: Tensor, mirrored: Tensor, left: tuple[int, ...], right: tuple[int, ...]
                   ) -> tuple[Tensor, Tensor]:
    """Mirror the clips ``mirrored [B]`` marks (the second copy of each window in an official epoch)."""
    sel = mirrored[:, None, None, None]
    return torch.where(sel, flip_poses(x, left, right), x), torch.where(sel, flip_poses(y, left, right), y)


#: steps between two host reads of the running loss (the divergence check); the epoch's end always checks
CHECK_EVERY = 100


def _to_host(value: Tensor) -> float:
    """The loop's one synchronising call: read a device scalar on the host."""
    return float(value)


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
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    check_every: int | None = CHECK_EVERY,
    on_step: StepFn | None = None,
    epoch_clips: str = "flip_half",
    loss_frames: str = "real",
) -> EpochStats:
    """Shuffle ``windows`` with ``generator`` (at most ``max_windows`` of them) and take one step per batch.

    ``epoch_clips="mirrored_copies"`` lists every window twice, as is and mirrored (HoT's epoch: 2x the
    clips and steps; ``flip`` is then ignored); ``flip_half`` lists it once and ``flip`` mirrors a random
    half of each batch. ``loss_frames="padded"`` counts the edge-padded frames in the loss (HoT's scripts).

    The forward pass and the loss run under ``precision``'s autocast; ``scaler`` (fp16) scales the loss and
    skips steps whose gradients overflowed. A non-finite loss ends the epoch at the next check (every
    ``check_every`` steps; ``None``: at the end only) with ``diverged=True``. ``on_step`` (a progress bar)
    is called after every step with the steps taken and the epoch's number of steps.
    """
    model.train()
    n = len(windows)
    copies = 2 if epoch_clips == "mirrored_copies" else 1
    order = torch.randperm(n * copies, generator=generator)
    if max_windows is not None:
        order = order[:max_windows]
    left, right = tuple(joints_left), tuple(joints_right)
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)  # sum of loss x clips, on the device
    finite = torch.ones((), dtype=torch.bool, device=device)
    seen, steps = 0, 0
    steps_in_epoch = math.ceil(len(order) / batch_size)
    for chunk in order.split(batch_size):
        x, y, mask = windows.get((chunk % n).numpy(), padded=loss_frames == "padded")
        if copies == 2:
            x, y = _mirror_copies(x, y, chunk >= n, left, right)
        elif flip:
            x, y = _mirror_half(x, y, generator, left, right)
        x, y, mask = to_device(x, device), to_device(y, device), to_device(mask, device)
        with autocast(device, precision):
            pred = model(match_channels(x, model.backbone.in_chans)).pose3d
        pred = pred.float()
        target, m = align_to_output(pred, y, mask)
        loss = loss_fn(pred, target, m)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        detached = loss.detach()
        finite &= torch.isfinite(detached)
        total += detached.double() * len(chunk)
        seen += len(chunk)
        steps += 1
        if on_step is not None:
            on_step(steps, steps_in_epoch)
        if check_every and steps % check_every == 0 and not _to_host(finite):
            break
    mean = _to_host(total) / max(seen, 1)
    if not math.isfinite(mean):
        log.warning("non-finite training loss after at most %d steps; stopping", steps)
        return EpochStats(float("nan"), seen, steps, diverged=True)
    return EpochStats(mean, seen, steps)
