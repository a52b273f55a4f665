"""The training settings of a trial: a backbone's official recipe merged with ``TrialSpec.train``.

Torch-free, so every backbone's :class:`~h2ot_core.names.BackboneInfo` holds its recipe as a
:class:`TrainSettings`, ``h2ot ls`` can list it and a grid's ``train`` overrides are checked
(:func:`apply_overrides`) without importing torch. The loss terms and optimisers are named here; their
implementations (:data:`h2ot_core.engine.losses.LOSS_TERMS`, :data:`h2ot_core.engine.recipes.OPTIMIZERS`)
use the same names (a test compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from h2ot_core.device import PRECISIONS
from h2ot_core.errors import ConfigError


def _exponential(epoch: int, decay: float) -> float:
    return decay**epoch


def _mhformer(epoch: int, decay: float) -> float:
    # MHFormer halves the rate after every 5th (1-based) epoch and multiplies it by ``decay`` otherwise.
    factor = 1.0
    for e in range(1, epoch + 1):
        factor *= 0.5 if e % 5 == 0 else decay
    return factor


#: HoT's ``main_mixste.py``: the rate is halved after every ``HOT_LARGE_DECAY_EPOCH``-th (1-based) epoch
HOT_LARGE_DECAY_EPOCH = 200


def _hot(epoch: int, decay: float) -> float:
    # HoT's MixSTE script: x0.5 after epochs 200, 400, ... and x``decay`` after every other epoch.
    halvings = epoch // HOT_LARGE_DECAY_EPOCH
    return 0.5**halvings * decay ** (epoch - halvings)


#: loss terms a recipe may weigh (the functions: :data:`h2ot_core.engine.losses.LOSS_TERMS`)
LOSS_TERM_NAMES: tuple[str, ...] = ("mpjpe", "wmpjpe", "n_mpjpe", "velocity", "tc")
#: optimisers (the factories: :data:`h2ot_core.engine.recipes.OPTIMIZERS`)
OPTIMIZER_NAMES: tuple[str, ...] = ("adamw", "adam_amsgrad")
#: learning-rate rules: ``rule(epochs_done, lr_decay) -> factor`` on the base rate
LR_RULES: dict[str, Callable[[int, float], float]] = {"exponential": _exponential, "mhformer": _mhformer,
                                                      "hot": _hot}
#: ``train.recipe``: ``ours`` (the default, today's training) or ``official`` (the backbone's official
#: recipe exactly, :mod:`h2ot_core.recipes`)
RECIPES: tuple[str, ...] = ("ours", "official")
#: ``train.epoch_clips``: what one epoch is. ``flip_half``: every training clip once, a random half of each
#: batch mirrored; ``mirrored_copies``: every clip twice, as is and mirrored (HoT's generator)
EPOCH_CLIPS: tuple[str, ...] = ("flip_half", "mirrored_copies")
#: ``train.loss_frames``: the frames the training loss averages over. ``real``: edge padding masked;
#: ``padded``: every frame of the window, edge padding included (HoT's scripts)
LOSS_FRAMES: tuple[str, ...] = ("real", "padded")


@dataclass(frozen=True)
class TrainSettings:
    """Everything the training loop needs; a recipe's defaults merged with ``TrialSpec.train``.

    Attributes:
        loss: ``{term: weight}`` over :data:`h2ot_core.engine.losses.LOSS_TERMS`.
        optimizer: key of :data:`h2ot_core.engine.recipes.OPTIMIZERS`.
        lr: base learning rate. lr_decay: per-epoch factor fed to ``lr_rule`` (:data:`LR_RULES`).
        epochs: epochs to train. batch_size: clips (windows) per step. eval_batch_size: clips per test step.
        train_stride / test_stride: window strides in frames (``None``: the pipeline default).
        train_stride_div: seq2seq default train stride is ``F // train_stride_div``.
        flip_train: mirror a random half of every training batch. flip_test: average with the mirrored pass.
        max_train_windows / max_test_windows: caps per epoch for small CPU runs (``None``: all).
        num_threads: ``torch.set_num_threads`` for the trial (``None``: leave as is).
        precision: ``fp32``, ``bf16`` (CPU or GPU) or ``fp16`` (GPU, with a loss scaler): autocast for
            training, evaluation and the latency figure (:mod:`h2ot_core.device`). Part of the trial's key
            unless fp32. The device is not a setting: the trainable or the CLI passes it to ``run_trial``.
        latency: time the trained model's forward pass (on the trial's device, in its precision).
        latency_batch: clips per timed pass. latency_repeats: timed passes (median reported).
        recipe: ``ours`` or ``official`` (:data:`RECIPES`): ``official`` starts from the backbone's official
            recipe (:func:`h2ot_core.recipes.official_settings`) instead of ``BackboneInfo.recipe``.
        epoch_clips: what an epoch is (:data:`EPOCH_CLIPS`; ``mirrored_copies`` replaces ``flip_train``).
        loss_frames: which frames the loss counts (:data:`LOSS_FRAMES`).
        The last three are part of the trial's key only away from their defaults.
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
    precision: str = "fp32"
    latency: bool = True
    latency_batch: int = 1
    latency_repeats: int = 10
    recipe: str = "ours"
    epoch_clips: str = "flip_half"
    loss_frames: str = "real"

    def strides(self, frames: int, pipeline: str) -> tuple[int, int]:
        """``(train_stride, test_stride)`` in frames for clips of ``frames`` on ``pipeline``."""
        if pipeline == "seq2frame":
            return self.train_stride or 1, self.test_stride or 1
        return self.train_stride or max(1, frames // self.train_stride_div), self.test_stride or frames

    def lr_factor(self, epochs_done: int) -> float:
        return LR_RULES[self.lr_rule](epochs_done, self.lr_decay)


_POSITIVE_INT = ("epochs", "batch_size", "train_stride_div", "train_stride", "test_stride", "eval_batch_size",
                 "max_train_windows", "max_test_windows", "num_threads", "latency_batch", "latency_repeats")
_NON_NEGATIVE_FLOAT = ("lr", "weight_decay", "lr_decay")
_BOOL = ("flip_train", "flip_test", "latency")
_CHOICES: dict[str, Collection[str]] = {"optimizer": OPTIMIZER_NAMES, "lr_rule": tuple(LR_RULES),
                                         "precision": PRECISIONS, "recipe": RECIPES,
                                         "epoch_clips": EPOCH_CLIPS, "loss_frames": LOSS_FRAMES}


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


def apply_overrides(recipe: TrainSettings, overrides: Mapping[str, Any] | None = None, *,
                    source: str = "trial spec") -> TrainSettings:
    """``recipe`` with ``overrides`` (``TrialSpec.train``) applied and checked
    (:func:`h2ot_core.resolve.resolve_settings` does it with a backbone's recipe).

    Raises :class:`ConfigError` naming ``source``, the field and the bad value.
    """
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(f'train.{k}' for k in unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    checked = {k: _check_value(k, v, source) for k, v in (overrides or {}).items()}
    if checked.get("loss") is not None:
        bad = sorted(set(checked["loss"]) - set(LOSS_TERM_NAMES))
        if bad:
            raise ConfigError(f"{source}: field 'train.loss' has unknown term(s) {', '.join(bad)}; "
                              f"known: {', '.join(sorted(LOSS_TERM_NAMES))}")
    required = {"loss", "optimizer", "lr", "weight_decay", "lr_decay", "epochs", "batch_size", "precision",
                "latency", "latency_batch", "latency_repeats"}
    return replace(recipe, **{k: v for k, v in checked.items() if v is not None or k not in required})
