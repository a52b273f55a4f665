"""The registries: every backbone, pruner, recoverer and dataset, one ``register`` call each.

A backbone's or dataset's call holds the lazy ``"module:attr"`` target of its implementation *and* all
the facts the rest of the code reads about it (:class:`BackboneInfo`, :class:`DatasetInfo`): its
official size, schedules, training recipe and test size; its files, joints, PCK joints and loss weights.
Nothing else repeats those facts: the model classes take their sizes as required arguments
(:func:`resolved_model_config` merges the official size under the overrides), the training loop reads
the recipe and the loss weights from here, and the tests read the tiny sizes from here.

Everything here imports without torch (the implementations are imported on first ``get``), so
``h2ot ls`` and grid validation stay fast. The entries live in this one catalogue, rather than beside
each implementation, because every implementation module imports torch: registering there would make
listing a name import the model. See the package docstring of :mod:`h2ot_core` for how to add one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from h2ot_core.engine.settings import TrainSettings
from h2ot_core.errors import ConfigError
from h2ot_core.registry import Registry
from h2ot_core.vocabulary import Pipeline

# --- what an entry knows ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BackboneInfo:
    """Everything known about a backbone before building it.

    Attributes:
        pipeline: ``seq2seq`` (outputs all F frames) or ``seq2frame`` (outputs the centre frame).
        defaults: the official size: the constructor arguments (frames, joints, dim, depth, ...) of the
            published model. The model class has no defaults of its own for these.
        hot_schedule: the official HoT pruning schedule at the official size (TPC + TRA).
        h2ot_schedule: our default hierarchical schedule at the official size (used with TPS + TRI by
            the benchmark and the paper grids; the paper's exact schedules were not available).
        recipe: the official training recipe (``TrialSpec.train`` overrides it).
        tiny: a CPU-sized configuration for tests and demos: overrides of ``defaults``
            (``resolved_model_config(name, info.tiny)`` is the full set of constructor arguments).
    """

    pipeline: Pipeline
    defaults: Mapping[str, Any]
    hot_schedule: str
    h2ot_schedule: str
    recipe: TrainSettings
    tiny: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """Everything known about a dataset before loading it.

    Attributes:
        num_joints: joints per pose ``J`` of the loaded sequences.
        files: the files the loader reads from a data folder with its default options (for a
            self-contained dataset: the files it makes or finds itself).
        self_contained: ``True`` when the loader makes (``synthetic``) or finds (``mocap_clips``) its own
            files, so a data folder is optional; ``False`` when it must be given one.
        joint_weights: per-joint WMPJPE loss weights in this dataset's joint order (``None``: uniform).
        pck_joints: the joints PCK and AUC are scored on (``None``: the dataset is not scored with PCK).
        seeded: the loader takes the trial's seed as its ``seed`` option unless ``TrialSpec.data`` sets one
            (generated data: every seed is its own dataset).
    """

    num_joints: int
    files: tuple[str, ...]
    self_contained: bool = False
    joint_weights: tuple[float, ...] | None = None
    pck_joints: tuple[int, ...] | None = None
    seeded: bool = False


# --- backbones ------------------------------------------------------------------------------------------

BACKBONES: Registry[type, BackboneInfo] = Registry("backbone", target_type=type, info_type=BackboneInfo)

#: the tiny size every backbone's tests and demos use (frames, width, depth, heads)
_TINY = dict(num_frames=27, dim=32, depth=3, num_heads=2)
#: MotionBERT's recipe loss, shared by MotionAGFormer
_MOTIONBERT_LOSS = {"mpjpe": 1.0, "n_mpjpe": 0.5, "velocity": 20.0}

BACKBONES.register("mixste", "h2ot_core.models.mixste:MixSTE", description="MixSTE (CVPR 2022): alternating spatial "
                   "and temporal transformer blocks", info=BackboneInfo(
    pipeline="seq2seq",
    defaults=dict(num_frames=243, num_joints=17, in_chans=2, dim=512, depth=8, num_heads=8, mlp_ratio=2.0),
    hot_schedule="3:81",
    h2ot_schedule="1:121,3:81,5:41",
    recipe=TrainSettings(loss={"wmpjpe": 1.0, "tc": 0.5, "velocity": 2.0}, optimizer="adamw", lr=4e-5,
                         weight_decay=0.1, lr_decay=0.99, epochs=160, batch_size=4),
    tiny=_TINY,
))
BACKBONES.register("motionbert", "h2ot_core.models.motionbert:DSTformer", description="MotionBERT's DSTformer "
                   "(ICCV 2023): dual-stream spatial-temporal transformer", info=BackboneInfo(
    pipeline="seq2seq",
    defaults=dict(num_frames=243, num_joints=17, in_chans=3, dim=256, depth=5, num_heads=8, mlp_ratio=4.0,
                  dim_rep=512),
    hot_schedule="1:81",
    h2ot_schedule="1:121,3:61",
    recipe=TrainSettings(loss=_MOTIONBERT_LOSS, optimizer="adamw", lr=5e-4, weight_decay=0.01, lr_decay=0.99,
                         epochs=120, batch_size=32, train_stride_div=3),
    tiny={**_TINY, "dim_rep": 32},
))
BACKBONES.register("motionagformer", "h2ot_core.models.motionagformer:MotionAGFormer", description="MotionAGFormer "
                   "(WACV 2024): attention and graph-convolution streams", info=BackboneInfo(
    pipeline="seq2seq",
    defaults=dict(num_frames=243, num_joints=17, in_chans=3, dim=128, depth=16, num_heads=8, mlp_ratio=4.0,
                  dim_rep=512, neighbour_num=2),
    hot_schedule="7:81",
    h2ot_schedule="4:121,8:81,12:41",
    recipe=TrainSettings(loss=_MOTIONBERT_LOSS, optimizer="adamw", lr=5e-4, weight_decay=0.01, lr_decay=0.99,
                         epochs=60, batch_size=16, train_stride_div=3),
    tiny={**_TINY, "dim_rep": 32},
))
BACKBONES.register("mhformer", "h2ot_core.models.mhformer:MHFormer", description="MHFormer (CVPR 2022): "
                   "multi-hypothesis transformer, predicts the centre frame", info=BackboneInfo(
    pipeline="seq2frame",
    defaults=dict(num_frames=351, num_joints=17, in_chans=2, dim=512, depth=2, num_heads=8, mlp_ratio=2.0,
                  mhg_depth=4),
    hot_schedule="1:117",
    h2ot_schedule="1:117",
    # MHFormer halves the rate after every 5th epoch and multiplies it by 0.95 otherwise
    recipe=TrainSettings(loss={"mpjpe": 1.0}, optimizer="adam_amsgrad", lr=1e-3, weight_decay=0.0,
                         lr_decay=0.95, epochs=20, batch_size=128, lr_rule="mhformer"),
    tiny={**_TINY, "mhg_depth": 1},
))

#: read-only ``name -> BackboneInfo`` view of :data:`BACKBONES` (``backbone_info`` adds a did-you-mean)
BACKBONE_INFO: Mapping[str, BackboneInfo] = BACKBONES.infos

# --- pruners and recoverers -----------------------------------------------------------------------------

PRUNERS: Registry[type, None] = Registry("pruner", target_type=type)
PRUNERS.register("none", "h2ot_core.pruning.base:NoPruning",
                 description="no pruning: every frame's tokens are kept (the baseline)")
PRUNERS.register("tpc", "h2ot_core.pruning.cluster:TPC",
                 description="Token Pruning Cluster (HoT): keeps the frames that are DPC-kNN cluster centres")
PRUNERS.register("tpa", "h2ot_core.pruning.attention:TPA",
                 description="Token Pruning Attention (H2OT): keeps the frames that get the most temporal attention")
PRUNERS.register("tpmo", "h2ot_core.pruning.motion:TPMo",
                 description="Token Pruning Motion (H2OT): keeps the frames with the largest 2D motion")
PRUNERS.register("tps", "h2ot_core.pruning.sampling:TPS",
                 description="Token Pruning Sampling (H2OT): keeps evenly spaced frames; no parameters, input-blind")
PRUNERS.register("dpc_multigrain", "h2ot_core.pruning.multigrain:DPCMultiGrain",
                 description="density peaks at two granularities (after FTP-Pose): frames, then joint tracks")

RECOVERERS: Registry[type, None] = Registry("recoverer", target_type=type)
RECOVERERS.register("none", "h2ot_core.recovering.base:NoRecovery",
                    description="no recovery: the kept frames only (seq2frame: the centre frame)")
RECOVERERS.register("tra", "h2ot_core.recovering.attention:TRA",
                    description="Token Recovering Attention (HoT): learnable queries attend to the kept tokens")
RECOVERERS.register("tri", "h2ot_core.recovering.interpolation:TRI",
                    description="Token Recovering Interpolation (H2OT): 3D poses interpolated in time; no parameters")

# --- datasets -------------------------------------------------------------------------------------------

#: MixSTE's per-joint WMPJPE weights, Human3.6M 17-joint order (limb ends weigh most)
H36M_JOINT_WEIGHTS = (1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0)
#: MPI-INF-3DHP joint i is Human3.6M joint ``H36M_OF_MPI[i]`` (pose-data.md §3.1), so WMPJPE weighs the
#: same body parts on both
H36M_OF_MPI = (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9)

DATASETS: Registry[Any, DatasetInfo] = Registry("dataset", target_type=callable, info_type=DatasetInfo)
DATASETS.register("h36m", "h2ot_core.data.h36m:load_h36m", description="Human3.6M in the VideoPose3D files "
                  "(CPN 2D detections); files in $H2OT_DATA_DIR/h36m", info=DatasetInfo(
    num_joints=17,
    files=("data_3d_h36m.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz"),
    joint_weights=H36M_JOINT_WEIGHTS,
))
DATASETS.register("mpi_inf_3dhp", "h2ot_core.data.mpi_inf_3dhp:load_mpi_inf_3dhp", description="MPI-INF-3DHP in "
                  "the P-STMO files, scored with PCK/AUC too; files in $H2OT_DATA_DIR/mpi_inf_3dhp", info=DatasetInfo(
    num_joints=17,
    files=("data_train_3dhp.npz", "data_test_3dhp.npz"),
    joint_weights=tuple(H36M_JOINT_WEIGHTS[j] for j in H36M_OF_MPI),
    # pelvis (14), spine (15) and head (16) are not scored
    pck_joints=tuple(range(14)),
))
DATASETS.register("synthetic", "h2ot_core.data.synthetic:load_synthetic", description="synthetic Human3.6M-format "
                  "motion, generated on first use (tests, demos; never a published number)", info=DatasetInfo(
    num_joints=17,
    files=("data_3d_h36m.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "data_2d_h36m_gt.npz",
           "synthetic_labels.npz"),
    self_contained=True,
    joint_weights=H36M_JOINT_WEIGHTS,
    seeded=True,
))
DATASETS.register("mocap_clips", "h2ot_core.data.mocap_clips:load_mocap_clips", description="real motion capture: "
                  "pybullet's DeepMimic clips as Human3.6M joints (pip install 'h2ot-lab[mocap]')", info=DatasetInfo(
    num_joints=17,
    files=("humanoid3d_*.txt",),
    self_contained=True,
    joint_weights=H36M_JOINT_WEIGHTS,
))


# --- lookups --------------------------------------------------------------------------------------------


def backbone_info(name: str) -> BackboneInfo:
    """What is known about backbone ``name`` (did-you-mean error for unknown names); imports no torch."""
    return BACKBONES.info(name)


def dataset_info(name: str) -> DatasetInfo:
    """What is known about dataset ``name`` (did-you-mean error for unknown names); imports no numpy."""
    return DATASETS.info(name)


def resolved_model_config(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The official size of ``name`` merged with ``overrides`` (``None`` values dropped)."""
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
