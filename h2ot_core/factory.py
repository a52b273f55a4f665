"""Build any hourglass configuration from registry names: ``create_model("mixste", "tpc", "tra", "3:81")``."""

from __future__ import annotations

from typing import Any

from h2ot_core.contracts import PIPELINES, Pipeline
from h2ot_core.errors import ConfigError
from h2ot_core.hourglass import HourglassModel
from h2ot_core.names import BACKBONES, PRUNERS, RECOVERERS, backbone_info, resolved_model_config
from h2ot_core.schedule import parse_schedule, validate_schedule


def check_combination(
    backbone: str, pruner: str, recoverer: str, schedule: str, *, pipeline: Pipeline | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate names, schedule and pruner/recoverer/pipeline combination without building anything.

    ``pipeline`` ``None`` is the backbone's own (:attr:`BackboneInfo.pipeline`). Returns the resolved model configuration. Raises :class:`ConfigError` (or a subclass) naming the
    problem.
    """
    info = backbone_info(backbone)
    PRUNERS.check(pruner)
    RECOVERERS.check(recoverer)
    cfg = resolved_model_config(backbone, model)
    pipeline = pipeline or info.pipeline
    if pipeline not in PIPELINES:
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


def create_model(
    backbone: str,
    pruner: str = "none",
    recoverer: str = "none",
    schedule: str = "",
    *,
    pipeline: Pipeline | None = None,
    **model_kwargs: Any,
) -> HourglassModel:
    """Build a :class:`HourglassModel` from names; ``model_kwargs`` override the backbone's defaults."""
    cfg = check_combination(backbone, pruner, recoverer, schedule, pipeline=pipeline, model=model_kwargs)
    pipeline = pipeline or backbone_info(backbone).pipeline
    net = BACKBONES.get(backbone)(**cfg)
    rec_kwargs = dict(num_frames=net.num_frames, dim=net.dim, num_heads=net.tra_heads, qkv_bias=net.tra_qkv_bias)
    return HourglassModel(
        net,
        PRUNERS.get(pruner)(),
        RECOVERERS.get(recoverer)(**rec_kwargs),
        parse_schedule(schedule),
        pipeline=pipeline,
        stage_pos_embed=pipeline == "seq2seq",
    )


def model_config(
    backbone: str, pruner: str = "none", recoverer: str = "none", schedule: str = "", *,
    pipeline: Pipeline | None = None, **model_kwargs: Any,
) -> dict[str, Any]:
    """The self-describing configuration stored in native checkpoints (inverse of ``create_model``)."""
    cfg = check_combination(backbone, pruner, recoverer, schedule, pipeline=pipeline, model=model_kwargs)
    return {
        "backbone": backbone,
        "pruner": pruner,
        "recoverer": recoverer,
        "schedule": schedule,
        "pipeline": pipeline or backbone_info(backbone).pipeline,
        "model": cfg,
    }
