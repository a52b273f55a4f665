"""The official training recipes' building blocks, and their overrides from ``TrialSpec.train``.

A backbone's official recipe is the ``recipe`` of its :class:`~h2ot_core.names.BackboneInfo` (``h2ot ls``
lists them), a :class:`~h2ot_core.engine.settings.TrainSettings`; :func:`resolve_settings` applies and
checks a trial's ``train`` overrides. seq2frame models see one window per centre frame, so they train and
test with stride 1; seq2seq models test with stride F (every frame evaluated once), as the official
training scripts of the four backbones do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

import torch
from torch import nn

from h2ot_core.device import PRECISIONS
from h2ot_core.engine.losses import LOSS_TERMS
from h2ot_core.engine.settings import LR_RULES, TrainSettings
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES

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


#: optimisers: ``factory(params, lr, weight_decay)``
OPTIMIZERS: dict[str, OptimizerFactory] = {"adamw": _adamw, "adam_amsgrad": _adam_amsgrad}

_POSITIVE_INT = ("epochs", "batch_size", "train_stride_div", "train_stride", "test_stride", "eval_batch_size",
                 "max_train_windows", "max_test_windows", "num_threads", "latency_batch", "latency_repeats")
_NON_NEGATIVE_FLOAT = ("lr", "weight_decay", "lr_decay")
_BOOL = ("flip_train", "flip_test", "latency")
_CHOICES: dict[str, Mapping[str, Any]] = {"optimizer": OPTIMIZERS, "lr_rule": LR_RULES,
                                          "precision": dict.fromkeys(PRECISIONS)}


def _check_value(key: str, value: Any, source: str) -> Any:
    where = f"{source}: field 'train.{key}'"
    if value is None:
        return None
    if key in _POSITIVE_INT:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    elif key in _NON_NEGATIVE_FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(f"{where} must be a non-negative number, got {value!r}")
        value = float(value)
    elif key in _BOOL:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{where} is {value!r}; known: {', '.join(sorted(_CHOICES[key]))}")
    elif key == "loss" and not (isinstance(value, Mapping) and all(isinstance(w, int | float) for w in value.values())):
        raise ConfigError(f"{where} must map loss terms to weights, got {value!r}")
    return value


def resolve_settings(backbone: str, overrides: Mapping[str, Any] | None = None, *, source: str = "trial spec"
                     ) -> TrainSettings:
    """The recipe of ``backbone`` with ``overrides`` (``TrialSpec.train``) applied and checked.

    Raises :class:`ConfigError` naming ``source``, the field and the bad value.
    """
    recipe = BACKBONES.info(backbone).recipe
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(f'train.{k}' for k in unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    checked = {k: _check_value(k, v, source) for k, v in (overrides or {}).items()}
    if checked.get("loss") is not None:
        bad = sorted(set(checked["loss"]) - set(LOSS_TERMS))
        if bad:
            raise ConfigError(f"{source}: field 'train.loss' has unknown term(s) {', '.join(bad)}; "
                              f"known: {', '.join(sorted(LOSS_TERMS))}")
    required = {"loss", "optimizer", "lr", "weight_decay", "lr_decay", "epochs", "batch_size", "precision",
                "latency", "latency_batch", "latency_repeats"}
    return replace(recipe, **{k: v for k, v in checked.items() if v is not None or k not in required})
