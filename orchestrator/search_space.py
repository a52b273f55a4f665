"""The ``search:`` section of a campaign file: a space of schedules that are valid by construction.

A search file has the keys of a grid file (``name``, ``include``, ``fixed``, ``profiles``, ``metric``) with
``search:`` in place of ``grid:``::

    search:
      space:
        backbone: mixste                # a value or a list of choices
        pruner: [tpc, tps]
        recoverer: [tra, tri]
        stages: [1, 2]                  # pruning stages per schedule (choices or {low, high})
        layer: {low: 1, high: 2}        # the layers pruning happens before (choices or a range)
        tokens: {low: 3, high: 13}      # token counts (choices or a range; below the frames)
        train: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}}   # optional training settings
        frames: 27                      # optional: one value, like dataset and seed
      objectives: {mpjpe: min, gflops: min}
      budget: {trials: 6, max_gflops: 0.05, max_hours: 2}   # and max_device_hours, price_per_device_hour
      sampler: {name: nsga2, seed: 0}   # nsga2 | tpe (Optuna's multi-objective samplers)
      early_stopping: asha              # optional: successive halving on the first accuracy objective
      seeds: 1                          # trials per sampled configuration (seed 0..N-1), objective = mean

A schedule with ``k`` stages takes ``k`` layers in strictly increasing order and ``k`` token counts in
strictly decreasing order: the sampler picks positions in the sorted value lists whose bounds depend on
the earlier picks, so every sample is a well-formed schedule. What the space cannot express (a pruner's
own rules, the model depth of another backbone) is checked per sample and rejected for free.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from h2ot_core.contracts import METRICS
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES, PRUNERS, RECOVERERS, resolved_model_config
from h2ot_core.registry import unknown_message
from orchestrator.budget import DEVICE_BUDGET_KEYS

SEARCH_KEYS = ("space", "objectives", "budget", "sampler", "early_stopping", "seeds")
SPACE_KEYS = ("backbone", "pruner", "recoverer", "stages", "layer", "tokens", "frames", "dataset", "seed",
              "train")
BUDGET_KEYS = ("trials", "max_gflops", "max_hours")
SAMPLERS = ("nsga2", "tpe")
#: objectives known before training: the cost model gives them for free
COST_OBJECTIVES = frozenset({"gflops", "gflops_total", "params"})
#: settings a search may vary, with the kind of value each takes
TRAIN_KNOBS = {"lr": float, "weight_decay": float, "lr_decay": float, "batch_size": int, "epochs": int}


@dataclass(frozen=True)
class FloatRange:
    """A continuous range for a training setting (``log`` samples its logarithm uniformly)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class SearchSpec:
    """A checked ``search:`` section.

    Attributes:
        path: the campaign file (for messages).
        choices: ``backbone``/``pruner``/``recoverer`` -> the values to choose from.
        stages: the allowed numbers of pruning stages, ascending.
        layers, tokens: the sorted values pruning layers and token counts take.
        limits: backbone -> (deepest pruning layer, frames): a sample uses the values within them.
        train: training settings to vary -> their range (or list of choices).
        fixed_axes: ``frames``, ``dataset``, ``seed`` when the space fixes them.
        objectives: metric or cost name -> ``min``/``max``, in the order Optuna reports them.
        trials: sampled configurations to train (rejected samples do not count).
        max_gflops, max_hours: the free FLOPs cap and the wall-clock budget (``None``: none).
        sampler, sampler_seed: Optuna sampler name and seed.
        asha: stop poor trials early (ASHA on the first objective that needs training).
        seeds: trials per configuration (seeds ``0..seeds-1``); an objective is their mean.
    """

    path: Path
    choices: dict[str, list[str]]
    stages: list[int]
    layers: list[int]
    tokens: list[int]
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)
    train: dict[str, FloatRange | list[Any]] = field(default_factory=dict)
    fixed_axes: dict[str, Any] = field(default_factory=dict)
    objectives: dict[str, str] = field(default_factory=dict)
    trials: int = 1
    max_gflops: float | None = None
    max_hours: float | None = None
    sampler: str = "nsga2"
    sampler_seed: int = 0
    asha: bool = False
    seeds: int = 1

    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        """Optuna's ``minimize``/``maximize`` per objective."""
        return ["minimize" if mode == "min" else "maximize" for mode in self.objectives.values()]

    @property
    def trained_objective(self) -> str | None:
        """The first objective that needs training (what early stopping watches)."""
        return next((o for o in self.objectives if o not in COST_OBJECTIVES), None)

    def sample(self, trial: Any, *, values: bool = True) -> dict[str, Any]:
        """One configuration from an Optuna trial: a grid-style combination plus ``train`` overrides.

        Parameter names are what optuna-dashboard shows: ``pruner``, ``stages``, ``layer_1``, ``tokens_1``, ...,
        ``train.lr``. With ``values`` (every new study) ``layer_j`` / ``tokens_j`` are the layer and the token
        count they mean (``tokens_1=8``: 8 tokens), so the dashboard's slice and importance views read right;
        a list of values that is not evenly spaced is sampled by position, named ``layer_j_index``. Without
        (a study begun before values were stored: :func:`orchestrator.search.open_study`) they are positions
        in :attr:`layers` / :attr:`tokens`, as that study's history has them.
        """
        combo: dict[str, Any] = {k: trial.suggest_categorical(k, v) for k, v in self.choices.items()}
        k = trial.suggest_categorical("stages", self.stages) if len(self.stages) > 1 else self.stages[0]
        deepest, frames = self.limits[combo["backbone"]]
        layers = [v for v in self.layers if v <= deepest]
        tokens = [v for v in self.tokens if v < frames]
        combo["schedule"] = _schedule(trial, int(k), layers, tokens, values)
        combo.update(self.fixed_axes)
        overrides: dict[str, Any] = {}
        for name, space in self.train.items():
            if isinstance(space, FloatRange) and TRAIN_KNOBS[name] is int:
                overrides[name] = trial.suggest_int(f"train.{name}", int(space.low), int(space.high), log=space.log)
            elif isinstance(space, FloatRange):
                overrides[name] = trial.suggest_float(f"train.{name}", space.low, space.high, log=space.log)
            else:
                overrides[name] = trial.suggest_categorical(f"train.{name}", space)
        combo["train"] = overrides
        return combo



def _schedule(trial: Any, k: int, layers: list[int], tokens: list[int], values: bool) -> str:
    """A ``k``-stage schedule: position j of k takes an index that leaves room for the k - j picks after it
    (layers ascend, tokens descend), so the schedule is well-formed whatever the sampler proposes."""
    layer_idx, token_idx = [], []
    lo = 0
    for j in range(k):
        i = _pick(trial, f"layer_{j + 1}", layers, lo, len(layers) - k + j, values)
        layer_idx.append(i)
        lo = i + 1
    hi = len(tokens) - 1
    for j in range(k):
        i = _pick(trial, f"tokens_{j + 1}", tokens, k - 1 - j, hi, values)
        token_idx.append(i)
        hi = i - 1
    return ",".join(f"{layers[a]}:{tokens[b]}" for a, b in zip(layer_idx, token_idx, strict=True))


def _pick(trial: Any, name: str, options: list[int], lo: int, hi: int, values: bool) -> int:
    """The index in ``options`` (sorted) of the value chosen between ``options[lo]`` and ``options[hi]``.

    Evenly spaced options are suggested as their values (``suggest_int`` with their step), else as positions
    under ``NAME_index``; ``values=False`` keeps the positions under ``NAME`` (studies from before).
    """
    if not values:
        return int(trial.suggest_int(name, lo, hi))
    step = options[1] - options[0] if len(options) > 1 else 1
    if any(b - a != step for a, b in itertools.pairwise(options)):
        return int(trial.suggest_int(f"{name}_index", lo, hi))
    value = int(trial.suggest_int(name, options[lo], options[hi], step=step))
    return (value - options[0]) // step


def _values(where: str, raw: Any, *, positive: bool = True) -> list[int]:
    """Sorted distinct integers from a list or ``{low, high}``."""
    if isinstance(raw, Mapping):
        if set(raw) - {"low", "high"} or not {"low", "high"} <= set(raw):
            raise ConfigError(f"{where}: expected {{low: N, high: M}} or a list of integers, got {dict(raw)!r}")
        low, high = raw["low"], raw["high"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise ConfigError(f"{where}: low and high must be integers with low <= high, got {low!r}, {high!r}")
        values = list(range(low, high + 1))
    else:
        values = raw if isinstance(raw, list) else [raw]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{where}: {raw!r} must be a non-empty list of integers or {{low, high}}")
    if positive and min(values) < 1:
        raise ConfigError(f"{where}: {min(values)} must be at least 1")
    return sorted(set(values))


def _names(where: str, raw: Any, registry: Any) -> list[str]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise ConfigError(f"{where}: give at least one value")
    for v in values:
        if not isinstance(v, str) or v not in registry:
            raise ConfigError(f"{where}: {unknown_message(where.rsplit('.', 1)[-1], v, registry.names())}")
    return list(dict.fromkeys(values))


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _train_space(path: Path, raw: Any) -> dict[str, FloatRange | list[Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: search.space.train: must map settings to ranges, got {raw!r}")
    space: dict[str, FloatRange | list[Any]] = {}
    for name, value in raw.items():
        where = f"{path}: search.space.train.{name}"
        if name not in TRAIN_KNOBS:
            raise ConfigError(f"{where}: {unknown_message('searchable setting', name, list(TRAIN_KNOBS))}")
        if isinstance(value, Mapping):
            low, high, log = value.get("low"), value.get("high"), value.get("log", False)
            if (set(value) - {"low", "high", "log"} or not _is_number(low) or not _is_number(high) or low >= high
                    or (log and low <= 0)):
                raise ConfigError(f"{where}: expected {{low, high[, log: true]}} with low < high (> 0 for log), "
                                  f"got {dict(value)!r}")
            space[name] = FloatRange(float(low), float(high), bool(log))
        elif isinstance(value, list) and value:
            space[name] = list(value)
        else:
            raise ConfigError(f"{where}: {value!r} must be a range {{low, high}} or a list of choices")
    return space


def _objectives(path: Path, raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{path}: search.objectives: expected a mapping such as {{mpjpe: min, gflops: min}}, "
                          f"got {raw!r}")
    objectives: dict[str, str] = {}
    for name, mode in raw.items():
        if name not in METRICS or name.startswith("speedup") or name == "gflops_change_pct":
            known = [m for m in METRICS if not m.startswith("speedup") and m != "gflops_change_pct"]
            raise ConfigError(f"{path}: search.objectives.{name}: {unknown_message('objective', name, known)}")
        if mode not in ("min", "max"):
            raise ConfigError(f"{path}: search.objectives.{name}: {mode!r} must be min or max")
        objectives[str(name)] = str(mode)
    if all(o in COST_OBJECTIVES for o in objectives):
        raise ConfigError(f"{path}: search.objectives: every objective is a cost known before training; "
                          f"add an accuracy objective such as mpjpe: min")
    return objectives


def _positive(where: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"{where}: {value!r} must be a {'whole' if kind is int else ''} number".replace("  ", " "))
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} must be greater than 0")
    return value


def check_search(path: Path, raw: Any, fixed: Mapping[str, Any]) -> SearchSpec:
    """The checked ``search:`` section of ``path``; ``fixed`` is the file's ``fixed:`` (model sizes)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: search: must be a mapping with space, objectives and budget, got {raw!r}")
    for key in raw:
        if key not in SEARCH_KEYS:
            raise ConfigError(f"{path}: search.{key}: {unknown_message('search key', key, list(SEARCH_KEYS))}")
    space = raw.get("space")
    if not isinstance(space, Mapping):
        raise ConfigError(f"{path}: search.space: missing; give at least backbone, pruner, layer and tokens")
    for key in space:
        if key not in SPACE_KEYS:
            raise ConfigError(f"{path}: search.space.{key}: "
                              f"{unknown_message('search space key', key, list(SPACE_KEYS))}")
    for key in ("backbone", "pruner", "layer", "tokens"):
        if key not in space:
            raise ConfigError(f"{path}: search.space.{key}: missing")
    choices = {"backbone": _names(f"{path}: search.space.backbone", space["backbone"], BACKBONES),
               "pruner": _names(f"{path}: search.space.pruner", space["pruner"], PRUNERS),
               "recoverer": _names(f"{path}: search.space.recoverer", space.get("recoverer", "tra"), RECOVERERS)}
    if "none" in choices["pruner"]:
        raise ConfigError(f"{path}: search.space.pruner: 'none' has no schedule to search; the unpruned "
                          f"baseline belongs in a grid")
    fixed_axes: dict[str, Any] = {}
    for key in ("frames", "dataset", "seed"):
        if key in space:
            if isinstance(space[key], list | Mapping):
                raise ConfigError(f"{path}: search.space.{key}: {space[key]!r} must be one value")
            fixed_axes[key] = space[key]
    stages = _values(f"{path}: search.space.stages", space.get("stages", [1]))
    layers = _values(f"{path}: search.space.layer", space["layer"])
    tokens = _values(f"{path}: search.space.tokens", space["tokens"])
    limits = _limits(path, choices["backbone"], fixed, fixed_axes, stages[-1], layers, tokens)
    budget = raw.get("budget")
    if not isinstance(budget, Mapping) or "trials" not in budget:
        raise ConfigError(f"{path}: search.budget: expected {{trials: N[, max_gflops: G][, max_hours: H]}}, "
                          f"got {budget!r}")
    for key in budget:
        if key not in (*BUDGET_KEYS, *DEVICE_BUDGET_KEYS):  # the device budget's keys: orchestrator.budget
            raise ConfigError(f"{path}: search.budget.{key}: "
                              f"{unknown_message('budget key', key, [*BUDGET_KEYS, *DEVICE_BUDGET_KEYS])}")
    sampler = raw.get("sampler") or {}
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    if not isinstance(sampler, Mapping) or set(sampler) - {"name", "seed"}:
        raise ConfigError(f"{path}: search.sampler: expected {{name: nsga2|tpe, seed: N}}, got {sampler!r}")
    name = sampler.get("name", "nsga2")
    if name not in SAMPLERS:
        raise ConfigError(f"{path}: search.sampler.name: {unknown_message('sampler', name, list(SAMPLERS))}")
    seed = sampler.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{path}: search.sampler.seed: {seed!r} must be an integer")
    stopping = raw.get("early_stopping")
    if stopping not in (None, False, "asha"):
        raise ConfigError(f"{path}: search.early_stopping: {stopping!r} must be asha or absent")
    return SearchSpec(
        path=path, choices=choices, stages=stages, layers=layers, tokens=tokens, limits=limits,
        train=_train_space(path, space.get("train")), fixed_axes=fixed_axes,
        objectives=_objectives(path, raw.get("objectives")),
        trials=_positive(f"{path}: search.budget.trials", budget["trials"], int),
        max_gflops=_positive(f"{path}: search.budget.max_gflops", budget.get("max_gflops"), float),
        max_hours=_positive(f"{path}: search.budget.max_hours", budget.get("max_hours"), float),
        sampler=name, sampler_seed=seed, asha=stopping == "asha",
        seeds=_positive(f"{path}: search.seeds", raw.get("seeds", 1), int),
    )


def _limits(path: Path, backbones: list[str], fixed: Mapping[str, Any], fixed_axes: Mapping[str, Any],
            most: int, layers: list[int], tokens: list[int]) -> dict[str, tuple[int, int]]:
    """backbone -> (deepest pruning layer, frames); refuses a space with no room for ``most`` stages."""
    limits: dict[str, tuple[int, int]] = {}
    for backbone in backbones:
        cfg = resolved_model_config(backbone, dict(fixed.get("model") or {}))
        deepest, frames = cfg["depth"] - 1, fixed_axes.get("frames", cfg["num_frames"])
        usable_layers = [v for v in layers if v <= deepest]
        usable_tokens = [v for v in tokens if v < frames]
        if len(usable_layers) < most or len(usable_tokens) < most:
            raise ConfigError(
                f"{path}: search.space: no valid schedule for {backbone}: {most} stage(s) need {most} "
                f"pruning layer(s) in 1..{deepest} (the space has {usable_layers or 'none'}) and "
                f"{most} token count(s) below the {frames} frames (the space has {usable_tokens or 'none'})")
        limits[backbone] = (deepest, frames)
    return limits

