"""The registries and torch-free backbone metadata.

Everything here imports without torch, so ``h2ot ls`` and grid validation stay fast; the targets
are imported on first ``get``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from h2ot_core.errors import ConfigError
from h2ot_core.registry import Registry

Pipeline = Literal["seq2seq", "seq2frame"]


@dataclass(frozen=True)
class BackboneInfo:
    """What validation needs to know about a backbone before building it.

    Attributes:
        pipeline: ``seq2seq`` (outputs all F frames) or ``seq2frame`` (outputs the centre frame).
        defaults: the official configuration's constructor arguments (frames, dim, depth, ...).
        hot_schedule: the official HoT pruning schedule at the default size (TPC + TRA).
        h2ot_schedule: our default hierarchical schedule at the default size (used with TPS + TRI by
            the benchmark and the paper grids; the paper's exact schedules were not available).
    """

    pipeline: Pipeline
    defaults: dict[str, Any] = field(default_factory=dict)
    hot_schedule: str = ""
    h2ot_schedule: str = ""


BACKBONES: Registry[type] = Registry("backbone")
BACKBONES.register("mixste", "h2ot_core.models.mixste:MixSTE")
BACKBONES.register("motionbert", "h2ot_core.models.motionbert:DSTformer")
BACKBONES.register("motionagformer", "h2ot_core.models.motionagformer:MotionAGFormer")
BACKBONES.register("mhformer", "h2ot_core.models.mhformer:MHFormer")

BACKBONE_INFO: dict[str, BackboneInfo] = {
    "mixste": BackboneInfo(
        "seq2seq",
        dict(num_frames=243, num_joints=17, in_chans=2, dim=512, depth=8, num_heads=8, mlp_ratio=2.0),
        "3:81",
        "1:121,3:81,5:41",
    ),
    "motionbert": BackboneInfo(
        "seq2seq",
        dict(num_frames=243, num_joints=17, in_chans=3, dim=256, depth=5, num_heads=8, mlp_ratio=4.0,
             dim_rep=512),
        "1:81",
        "1:121,3:61",
    ),
    "motionagformer": BackboneInfo(
        "seq2seq",
        dict(num_frames=243, num_joints=17, in_chans=3, dim=128, depth=16, num_heads=8, mlp_ratio=4.0,
             dim_rep=512, neighbour_num=2),
        "7:81",
        "4:121,8:81,12:41",
    ),
    "mhformer": BackboneInfo(
        "seq2frame",
        dict(num_frames=351, num_joints=17, in_chans=2, dim=512, depth=2, num_heads=8, mlp_ratio=2.0,
             mhg_depth=4),
        "1:117",
        "1:117",
    ),
}

PRUNERS: Registry[type] = Registry("pruner")
PRUNERS.register("none", "h2ot_core.pruning.base:NoPruning")
PRUNERS.register("tpc", "h2ot_core.pruning.cluster:TPC")
PRUNERS.register("tpa", "h2ot_core.pruning.attention:TPA")
PRUNERS.register("tpmo", "h2ot_core.pruning.motion:TPMo")
PRUNERS.register("tps", "h2ot_core.pruning.sampling:TPS")
PRUNERS.register("dpc_multigrain", "h2ot_core.pruning.multigrain:DPCMultiGrain")

RECOVERERS: Registry[type] = Registry("recoverer")
RECOVERERS.register("none", "h2ot_core.recovering.base:NoRecovery")
RECOVERERS.register("tra", "h2ot_core.recovering.attention:TRA")
RECOVERERS.register("tri", "h2ot_core.recovering.interpolation:TRI")

DATASETS: Registry[Any] = Registry("dataset")
DATASETS.register("h36m", "h2ot_core.data.h36m:load_h36m")
DATASETS.register("mpi_inf_3dhp", "h2ot_core.data.mpi_inf_3dhp:load_mpi_inf_3dhp")
DATASETS.register("synthetic", "h2ot_core.data.synthetic:load_synthetic")
DATASETS.register("mocap_clips", "h2ot_core.data.mocap_clips:load_mocap_clips")


def backbone_info(name: str) -> BackboneInfo:
    """Metadata for a backbone name (did-you-mean error for unknown names)."""
    BACKBONES.check(name)
    return BACKBONE_INFO[name]


def resolved_model_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The official defaults of ``name`` merged with ``overrides`` (``None`` values dropped)."""
    cfg = dict(backbone_info(name).defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in cfg and key not in OPTIONAL_MODEL_KEYS:
            raise ConfigError(
                f"Unknown model setting {key!r} for backbone {name!r}; "
                f"known: {', '.join(sorted(set(cfg) | OPTIONAL_MODEL_KEYS))}"
            )
        cfg[key] = value
    return cfg


# Settings every backbone constructor accepts beyond its size arguments.
OPTIONAL_MODEL_KEYS = {"drop_path_rate", "drop_rate", "qkv_bias", "tra_heads"}
