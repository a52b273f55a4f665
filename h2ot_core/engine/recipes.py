"""The official training recipes' building blocks, and their overrides from ``TrialSpec.train``.

A backbone's official recipe is the ``recipe`` of its :class:`~h2ot_core.names.BackboneInfo` (``h2ot ls``
lists them), a :class:`~h2ot_core.engine.settings.TrainSettings`; :func:`~h2ot_core.resolve.resolve_settings`
(torch-free, re-exported here) applies and checks a trial's ``train`` overrides. seq2frame models see one window per centre frame, so they train and
test with stride 1; seq2seq models test with stride F (every frame evaluated once), as the official
training scripts of the four backbones do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from h2ot_core.resolve import resolve_settings as resolve_settings

OptimizerFactory = Callable[[Iterable[nn.Parameter], float, float], torch.optim.Optimizer]


def _fused(params: list[nn.Parameter]) -> bool | None:
    """``True`` for parameters on CUDA, else ``None`` (torch's default update).

    The fused CUDA kernel updates every tensor in one launch, and it takes fp16's GradScaler state on the
    device: the scaler's per-step ``found_inf`` read, a host synchronisation, goes away. CPU trials keep the
    default (foreach) update, so their results stay as they were.
    """
    return True if params and params[0].is_cuda else None


def _adamw(params: Iterable[nn.Parameter], lr: float, wd: float) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=_fused(params))


def _adam_amsgrad(params: Iterable[nn.Parameter], lr: float, wd: float) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd, amsgrad=True, fused=_fused(params))


#: optimisers: ``factory(params, lr, weight_decay)``; the names are :data:`~h2ot_core.engine.settings.OPTIMIZER_NAMES`
OPTIMIZERS: dict[str, OptimizerFactory] = {"adamw": _adamw, "adam_amsgrad": _adam_amsgrad}
