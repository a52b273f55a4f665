"""Per-backbone training recipes (the official ones) and their overrides from ``TrialSpec.train``.

| backbone | loss | optimiser | lr, decay per epoch | epochs | batch (clips) | train stride |
|---|---|---|---|---|---|---|
| mixste | WMPJPE + 0.5·TC + 2.0·velocity | AdamW, wd 0.1 | 4e-5, ×0.99 | 160 | 4 | F |
| motionbert | MPJPE + 0.5·N-MPJPE + 20·velocity | AdamW, wd 0.01 | 5e-4, ×0.99 | 120 | 32 | F/3 |
| motionagformer | MPJPE + 0.5·N-MPJPE + 20·velocity | AdamW, wd 0.01 | 5e-4, ×0.99 | 60 | 16 | F/3 |
| mhformer | MPJPE | Adam (amsgrad) | 1e-3, ×0.5 every 5th epoch else ×0.95 | 20 | 128 | 1 |

seq2frame models see one window per centre frame, so they train and test with stride 1; seq2seq models
test with stride F (every frame evaluated once). See ``reference/h2ot-method.md`` §6.5 and §8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from h2ot_core.engine.losses import LOSS_TERMS
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES


def _exponential(epoch: int, decay: float) -> float:
    return decay**epoch


def _mhformer(epoch: int, decay: float) -> float:
    # MHFormer halves the rate after every 5th (1-based) epoch and multiplies it by ``decay`` otherwise.
    factor = 1.0
    for e in range(1, epoch + 1):
        factor *= 0.5 if e % 5 == 0 else decay
    return factor


#: learning-rate rules: ``rule(epochs_done, lr_decay) -> factor`` on the base rate
LR_RULES: dict[str, Callable[[int, float], float]] = {"exponential": _exponential, "mhformer": _mhformer}

OptimizerFactory = Callable[[Iterable[nn.Parameter], float, float], torch.optim.Optimizer]

#: optimisers: ``factory(params, lr, weight_decay)``
OPTIMIZERS: dict[str, OptimizerFactory] = {
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "adam_amsgrad": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd, amsgrad=True),
}


@dataclass(frozen=True)
class TrainSettings:
    """Everything the training loop needs; a recipe's defaults merged with ``TrialSpec.train``.

    Attributes:
        loss: ``{term: weight}`` over :data:`h2ot_core.engine.losses.LOSS_TERMS`.
        optimizer: key of :data:`OPTIMIZERS`.
        lr: base learning rate. lr_decay: per-epoch factor fed to ``lr_rule`` (:data:`LR_RULES`).
        epochs: epochs to train. batch_size: clips (windows) per step. eval_batch_size: clips per test step.
        train_stride / test_stride: window strides in frames (``None``: the pipeline default).
        train_stride_div: seq2seq default train stride is ``F // train_stride_div``.
        flip_train: mirror a random half of every training batch. flip_test: average with the mirrored pass.
        max_train_windows / max_test_windows: caps per epoch for small CPU runs (``None``: all).
        num_threads: ``torch.set_num_threads`` for the trial (``None``: leave as is).
    """

    loss: Mapping[str, float]
    optimizer: str
    lr: float
    weight_decay: float
    lr_decay: float
    epochs: int
    batch_size: int
    lr_rule: str = "exponential"
    train_stride_div: int = 1
    train_stride: int | None = None
    test_stride: int | None = None
    eval_batch_size: int | None = None
    flip_train: bool = True
    flip_test: bool = True
    max_train_windows: int | None = None
    max_test_windows: int | None = None
    num_threads: int | None = None

    def strides(self, frames: int, pipeline: str) -> tuple[int, int]:
        """``(train_stride, test_stride)`` in frames for clips of ``frames`` on ``pipeline``."""
        if pipeline == "seq2frame":
            return self.train_stride or 1, self.test_stride or 1
        return self.train_stride or max(1, frames // self.train_stride_div), self.test_stride or frames

    def lr_factor(self, epochs_done: int) -> float:
        return LR_RULES[self.lr_rule](epochs_done, self.lr_decay)


_MOTIONBERT_LOSS = {"mpjpe": 1.0, "n_mpjpe": 0.5, "velocity": 20.0}

#: the official recipe of every backbone
RECIPES: dict[str, TrainSettings] = {
    "mixste": TrainSettings(loss={"wmpjpe": 1.0, "tc": 0.5, "velocity": 2.0}, optimizer="adamw", lr=4e-5,
                            weight_decay=0.1, lr_decay=0.99, epochs=160, batch_size=4),
    "motionbert": TrainSettings(loss=_MOTIONBERT_LOSS, optimizer="adamw", lr=5e-4, weight_decay=0.01,
                                lr_decay=0.99, epochs=120, batch_size=32, train_stride_div=3),
    "motionagformer": TrainSettings(loss=_MOTIONBERT_LOSS, optimizer="adamw", lr=5e-4, weight_decay=0.01,
                                    lr_decay=0.99, epochs=60, batch_size=16, train_stride_div=3),
    "mhformer": TrainSettings(loss={"mpjpe": 1.0}, optimizer="adam_amsgrad", lr=1e-3, weight_decay=0.0,
                              lr_decay=0.95, epochs=20, batch_size=128, lr_rule="mhformer"),
}

_POSITIVE_INT = ("epochs", "batch_size", "train_stride_div", "train_stride", "test_stride", "eval_batch_size",
                 "max_train_windows", "max_test_windows", "num_threads")
_NON_NEGATIVE_FLOAT = ("lr", "weight_decay", "lr_decay")
_BOOL = ("flip_train", "flip_test")
_CHOICES: dict[str, Mapping[str, Any]] = {"optimizer": OPTIMIZERS, "lr_rule": LR_RULES}


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
    BACKBONES.check(backbone)
    if backbone not in RECIPES:
        raise ConfigError(f"{source}: no training recipe for backbone {backbone!r}; known: {', '.join(RECIPES)}")
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
    required = {"loss", "optimizer", "lr", "weight_decay", "lr_decay", "epochs", "batch_size"}
    return replace(RECIPES[backbone], **{k: v for k, v in checked.items() if v is not None or k not in required})
