"""Build any hourglass configuration from registry names: ``create_model("mixste", "tpc", "tra", "3:81")``.

:func:`model_config` checks a combination once (:func:`h2ot_core.resolve.check_combination`) and describes it;
:func:`build_model` builds what such a description says, checking nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from h2ot_core.hourglass import HourglassModel
from h2ot_core.names import BACKBONES, PRUNERS, RECOVERERS, backbone_info
from h2ot_core.resolve import check_combination as check_combination
from h2ot_core.schedule import parse_schedule


def model_config(
    backbone: str, pruner: str = "none", recoverer: str = "none", schedule: str = "", *,
    pipeline: str | None = None, **model_kwargs: Any,
) -> dict[str, Any]:
    """The checked, self-describing configuration of a model (stored in native checkpoints): names, schedule,
    pipeline and every constructor argument; ``model_kwargs`` override the backbone's defaults."""
    cfg = check_combination(backbone, pruner, recoverer, schedule, pipeline=pipeline, model=model_kwargs)
    return {
        "backbone": backbone,
        "pruner": pruner,
        "recoverer": recoverer,
        "schedule": schedule,
        "pipeline": pipeline or backbone_info(backbone).pipeline,
        "model": cfg,
    }


def build_model(config: Mapping[str, Any]) -> HourglassModel:
    """The :class:`HourglassModel` a :func:`model_config` result describes (already checked)."""
    net = BACKBONES.get(config["backbone"])(**config["model"])
    rec_kwargs = dict(num_frames=net.num_frames, dim=net.dim, num_heads=net.tra_heads, qkv_bias=net.tra_qkv_bias)
    return HourglassModel(
        net,
        PRUNERS.get(config["pruner"])(),
        RECOVERERS.get(config["recoverer"])(**rec_kwargs),
        parse_schedule(config["schedule"]),
        pipeline=config["pipeline"],
        stage_pos_embed=config["pipeline"] == "seq2seq",
    )


def create_model(
    backbone: str,
    pruner: str = "none",
    recoverer: str = "none",
    schedule: str = "",
    *,
    pipeline: str | None = None,
    **model_kwargs: Any,
) -> HourglassModel:
    """Build a :class:`HourglassModel` from names; ``model_kwargs`` override the backbone's defaults."""
    return build_model(model_config(backbone, pruner, recoverer, schedule, pipeline=pipeline, **model_kwargs))
