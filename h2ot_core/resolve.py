"""From what a user asked for to one checked :class:`~h2ot_core.contracts.TrialSpec`, the same way everywhere.

A grid's combination (with its ``fixed`` settings), a search's proposal and ``h2ot train``'s options all go
through :func:`resolve_spec`, so one intent is one trial and one ``trial_key`` wherever it is written down:

- an axis left out takes its default: the backbone's own clip length (``frames``: 351 for MHFormer, 243 for
  the others) and :data:`AXIS_DEFAULTS` for the rest;
- ``schedule: hot`` is the backbone's official HoT schedule and ``schedule: h2ot`` its default hierarchical
  one (:data:`SCHEDULE_ALIASES`); ``tokens`` with ``layer`` is the one-stage schedule ``LAYER:TOKENS``;
- ``pruner: none`` is the unpruned baseline: its schedule is empty and its recoverer ``none``;
- a model setting equal to the backbone's official value is dropped, so one model spelled two ways has one
  key;
- every name, type and combination is checked (:func:`check_combination`), and the ``train`` overrides
  against the backbone's recipe, with errors naming the source, the field and the value.

Torch-free: validating a grid or a command line imports no model code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from h2ot_core.contracts import PIPELINES, PROTOCOLS, SELECTIONS, TrialSpec, metric_def, parse_metric_key
from h2ot_core.engine.settings import TrainSettings, apply_overrides
from h2ot_core.errors import ConfigError, H2OTError
from h2ot_core.names import (
    BACKBONES,
    DATASETS,
    PRUNERS,
    RECOVERERS,
    BackboneInfo,
    backbone_info,
    dataset_info,
    resolved_model_config,
)
from h2ot_core.recipes import official_settings
from h2ot_core.registry import Registry, unknown_message
from h2ot_core.schedule import format_schedule, parse_schedule, validate_schedule
from h2ot_core.vocabulary import PCK_METRICS, is_pipeline

#: schedule names resolved per backbone (``h2ot ls`` lists them): the official HoT one, the default hierarchical one
SCHEDULE_ALIASES: dict[str, str] = {"hot": "hot_schedule", "h2ot": "h2ot_schedule"}
#: what an axis left out of an intent is (the TrialSpec's own defaults; ``frames`` comes from the backbone)
AXIS_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrialSpec)
                                 if f.name in ("pruner", "recoverer", "dataset", "seed")}
#: what an intent may give, with the YAML types each accepts
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "backbone": (str,), "pruner": (str,), "recoverer": (str,), "schedule": (str, int), "frames": (int,),
    "dataset": (str,), "seed": (int,), "pipeline": (str,), "model": (Mapping,), "train": (Mapping,),
    "data": (Mapping,), "selection": (str,), "selection_metric": (str,), "tokens": (int,), "layer": (int,),
    "evaluate": (Mapping,),
}
#: what ``evaluate`` may hold, with the values each accepts
EVALUATE_CHOICES: dict[str, tuple[str, ...]] = {"protocol": PROTOCOLS}
_TYPE_WORDS = {str: "a string", int: "an integer", Mapping: "a mapping"}
_REGISTRIES: dict[str, Registry[Any, Any]] = {"backbone": BACKBONES, "pruner": PRUNERS, "recoverer": RECOVERERS, "dataset": DATASETS}


def resolve_settings(backbone: str, overrides: Mapping[str, Any] | None = None, *, source: str = "trial spec"
                     ) -> TrainSettings:
    """The recipe of ``backbone`` with ``overrides`` (``TrialSpec.train``) applied and checked.

    ``train.recipe: official`` starts from the backbone's official recipe (:func:`h2ot_core.recipes.official_settings`)
    instead. Raises :class:`ConfigError` naming ``source``, the field and the bad value.
    """
    checked = apply_overrides(backbone_info(backbone).recipe, overrides, source=source)
    if checked.recipe != "official":
        return checked
    return apply_overrides(official_settings(backbone), overrides, source=source)


def check_combination(
    backbone: str, pruner: str, recoverer: str, schedule: str, *, pipeline: str | None = None,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate names, schedule and pruner/recoverer/pipeline combination without building anything.

    ``pipeline`` ``None`` is the backbone's own (:attr:`BackboneInfo.pipeline`). Returns the resolved model
    configuration. Raises :class:`ConfigError` (or a subclass) naming the problem.
    """
    info = backbone_info(backbone)
    PRUNERS.check(pruner)
    RECOVERERS.check(recoverer)
    cfg = resolved_model_config(backbone, model)
    pipeline = pipeline or info.pipeline
    if not is_pipeline(pipeline):
        raise ConfigError(f"Unknown pipeline {pipeline!r}; expected {' or '.join(PIPELINES)}")
    if info.pipeline == "seq2frame" and pipeline != "seq2frame":
        raise ConfigError(f"Backbone {backbone!r} is a seq2frame lifter; it cannot run as {pipeline}")
    stages = parse_schedule(schedule)
    validate_schedule(stages, frames=cfg["num_frames"], depth=cfg["depth"], pipeline=pipeline, pruner=pruner)
    if pruner == "none" and stages:
        raise ConfigError(f"Pruner 'none' takes no schedule, got {schedule!r}")
    if pruner != "none" and not stages:
        raise ConfigError(f"Pruner {pruner!r} needs a schedule LAYER:TOKENS[,...], got none")
    if pipeline == "seq2frame" and recoverer != "none":
        raise ConfigError(
            f"A seq2frame model outputs the centre frame only, so it takes recoverer 'none', not {recoverer!r}"
        )
    if pipeline == "seq2seq" and stages and recoverer == "none":
        raise ConfigError("A pruned seq2seq model needs a recoverer (tra or tri) to output every frame")
    return cfg


def _check_fields(raw: Mapping[str, Any], where: str, prefix: str) -> None:
    """Every field known, of its type, naming a registry entry or an allowed value."""
    for key in raw:
        if key not in _FIELD_TYPES:
            raise ConfigError(f"{where}: {unknown_message('trial field', key, list(_FIELD_TYPES))}")
    if "backbone" not in raw:
        raise ConfigError(f"{where}: {prefix}backbone: missing; every trial names its backbone ({', '.join(BACKBONES)})")
    for key, value in raw.items():
        expected = _FIELD_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            kinds = " or ".join(_TYPE_WORDS[t] for t in expected)
            raise ConfigError(f"{where}: {prefix}{key}: {value!r} must be {kinds}")
    for key, registry in _REGISTRIES.items():
        if key in raw and raw[key] not in registry:
            raise ConfigError(f"{where}: {prefix}{key}: {unknown_message(key, raw[key], registry.names())}")
    for key, allowed in (("pipeline", PIPELINES), ("selection", SELECTIONS)):
        if key in raw and raw[key] not in allowed:
            raise ConfigError(f"{where}: {prefix}{key}: {unknown_message(key, raw[key], list(allowed))}")
    for key in ("frames", "seed", "tokens", "layer"):
        if key in raw and raw[key] < (0 if key == "seed" else 1):
            raise ConfigError(f"{where}: {prefix}{key}: {raw[key]!r} must be a positive integer")
    if ("tokens" in raw) != ("layer" in raw):
        raise ConfigError(f"{where}: {prefix}tokens and {prefix}layer go together (schedule LAYER:TOKENS)")
    if "tokens" in raw and "schedule" in raw:
        raise ConfigError(f"{where}: give either {prefix}schedule or {prefix}tokens with {prefix}layer, not both")
    for key, value in dict(raw.get("evaluate") or {}).items():
        if key not in EVALUATE_CHOICES:
            raise ConfigError(f"{where}: {prefix}evaluate.{key}: {unknown_message('evaluate setting', key, list(EVALUATE_CHOICES))}")
        if value not in EVALUATE_CHOICES[key]:
            raise ConfigError(f"{where}: {prefix}evaluate.{key}: {unknown_message(key, value, list(EVALUATE_CHOICES[key]))}")


def _schedule(raw: Mapping[str, Any], info: BackboneInfo, frames: int, where: str, prefix: str) -> str:
    """The schedule text: ``tokens``/``layer``, an alias, or ``LAYER:TOKENS[,...]`` in canonical form."""
    if "tokens" in raw:
        if raw["tokens"] >= frames:
            raise ConfigError(f"{where}: {prefix}tokens: {raw['tokens']} must be fewer than the frames ({frames})")
        return f"{raw['layer']}:{raw['tokens']}"
    if isinstance(raw.get("schedule"), int):
        raise ConfigError(f"{where}: {prefix}schedule: {raw['schedule']!r} is a number (YAML reads 1:9 as 69); "
                          f"quote the schedule: \"LAYER:TOKENS[,...]\"")
    schedule = str(raw.get("schedule", ""))
    if schedule in SCHEDULE_ALIASES:
        return str(getattr(info, SCHEDULE_ALIASES[schedule]))
    try:
        stages = parse_schedule(schedule)
    except H2OTError as exc:
        raise ConfigError(f"{where}: {prefix}schedule: {exc}") from None
    for stage in stages:
        if stage.tokens >= frames:
            raise ConfigError(f"{where}: {prefix}schedule: {schedule!r} keeps {stage.tokens} tokens, which must be "
                              f"fewer than the frames ({frames})")
    return format_schedule(stages)


def _selection_metric(raw: Mapping[str, Any], selection: str, dataset: str, where: str, prefix: str) -> str | None:
    """What ``best_on_test``/``best_on_val`` selects on, as the spec stores it: ``None`` for MPJPE (the default)
    and for ``last_epoch``, else the bare name of a metric the evaluation reports on ``dataset``."""
    given = raw.get("selection_metric")
    if given is None or selection == "last_epoch":
        return None
    parsed = parse_metric_key(given)
    name = parsed[1] if parsed else given
    try:
        metric = metric_def(name)
    except H2OTError as exc:
        raise ConfigError(f"{where}: {prefix}selection_metric: {exc}") from None
    if not metric.evaluated or (name in PCK_METRICS and dataset_info(dataset).pck_joints is None):
        raise ConfigError(f"{where}: {prefix}selection_metric: {selection} selects a checkpoint on a metric the "
                          f"evaluation reports every epoch on {dataset}; {given!r} is not one")
    return None if name == "mpjpe" else name


def resolve_spec(intent: Mapping[str, Any], where: str, *, prefix: str = "") -> TrialSpec:
    """The checked trial ``intent`` asks for, every default filled from the backbone's entry (module docstring).

    ``intent`` holds trial fields (``backbone`` required; ``schedule`` may be an alias or an integer-looking
    YAML scalar; ``tokens`` with ``layer`` stands for a one-stage schedule). Errors are :class:`ConfigError`
    starting ``where`` and naming the field as ``prefix + name`` (a grid passes ``grid.``).
    """
    raw = {k: v for k, v in intent.items() if k != "trial_key" and v is not None}  # None: not given
    _check_fields(raw, where, prefix)
    backbone = raw["backbone"]
    info = backbone_info(backbone)
    frames = raw.get("frames", info.defaults["num_frames"])
    pruner = raw.get("pruner", AXIS_DEFAULTS["pruner"])
    recoverer = raw.get("recoverer", AXIS_DEFAULTS["recoverer"])
    schedule = _schedule(raw, info, frames, where, prefix)
    if pruner == "none":  # the unpruned baseline, whatever the other axes say
        schedule, recoverer = "", "none"
    model = {k: v for k, v in dict(raw.get("model") or {}).items() if info.defaults.get(k, object()) != v}
    dataset = raw.get("dataset", AXIS_DEFAULTS["dataset"])
    selection = raw.get("selection", "last_epoch")
    spec = TrialSpec(
        backbone=backbone, pruner=pruner, recoverer=recoverer, schedule=schedule, frames=frames,
        dataset=dataset, seed=raw.get("seed", AXIS_DEFAULTS["seed"]), model=model,
        train=dict(raw.get("train") or {}), data=dict(raw.get("data") or {}), selection=selection,
        pipeline=raw.get("pipeline"), selection_metric=_selection_metric(raw, selection, dataset, where, prefix),
        evaluate={k: v for k, v in dict(raw.get("evaluate") or {}).items() if v != "real_frames"},
    )
    try:
        check_combination(backbone, pruner, recoverer, schedule, pipeline=spec.pipeline,
                          model={**model, "num_frames": frames})
    except H2OTError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    resolve_settings(backbone, spec.train, source=where)
    return spec
