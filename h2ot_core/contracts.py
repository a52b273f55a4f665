"""The data that crosses package boundaries: a trial goes down as a :class:`TrialSpec` and comes back up once
as a :class:`TrialResult`.

The words every package uses about trials (pipelines, statuses, selection rules, flat metric keys and each
metric's direction) are defined in :mod:`h2ot_core.vocabulary` and re-exported here. Torch-free, so
``results`` and the CLI import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES, DATASETS, PRUNERS, RECOVERERS, backbone_info
from h2ot_core.registry import unknown_message
from h2ot_core.vocabulary import (
    FINISHED_STATUSES,
    KEPT_ON_RERUN,
    METRICS,
    PIPELINES,
    SELECTIONS,
    SPLITS,
    STATUSES,
    TRIAL_AXES,
    MetricDef,
    Pipeline,
    Selection,
    Split,
    TrialStatus,
    lower_is_better,
    metric_def,
    metric_key,
    parse_metric_key,
)

__all__ = [
    "FINISHED_STATUSES", "KEPT_ON_RERUN", "METRICS", "PIPELINES", "SELECTIONS", "SPLITS", "STATUSES", "TRIAL_AXES",
    "Cost", "MetricDef", "MetricRecord", "Pipeline", "ReportFn", "Selection", "Split", "TrialResult", "TrialSpec",
    "TrialStatus", "lower_is_better", "metric_def", "metric_key", "parse_metric_key",
]


# --- the trial spec -----------------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


#: top-level fields a spec mapping may give, with the YAML types each accepts
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "backbone": (str,), "pruner": (str,), "recoverer": (str,), "schedule": (str, int), "frames": (int,),
    "dataset": (str,), "seed": (int,), "pipeline": (str,), "model": (Mapping,), "train": (Mapping,),
    "data": (Mapping,), "selection": (str,),
}
_TYPE_WORDS = {str: "a string", int: "an integer", Mapping: "a mapping"}
#: fields added after the first trials were keyed, at the value that leaves their keys unchanged: such a
#: field enters the canonical JSON only when it differs from this value
ADDED_FIELDS: dict[str, Any] = {"pipeline": None}
#: settings inside ``model``/``train``/``data`` added later, likewise left out of the key at their default
ADDED_SETTINGS: dict[tuple[str, str], Any] = {("train", "precision"): "fp32"}


def _native_pipeline(backbone: str) -> str | None:
    return backbone_info(backbone).pipeline if backbone in BACKBONES else None


@dataclass(frozen=True)
class TrialSpec:
    """One hourglass configuration to train and evaluate. Its fields are the grid's axes.

    Attributes:
        backbone: registry name (``mixste``, ``motionbert``, ``motionagformer``, ``mhformer``).
        pruner: registry name (``none``, ``tpc``, ``tpa``, ``tpmo``, ``tps``, ``dpc_multigrain``).
        recoverer: registry name (``tra``, ``tri``, ``none``).
        schedule: ``LAYER:TOKENS[,...]`` (empty for no pruning).
        frames: clip length F in frames.
        dataset: dataset registry name (``synthetic``, ``h36m``, ``mpi_inf_3dhp``, ``mocap_clips``).
        seed: random seed (an explicit axis: every seed is its own trial).
        pipeline: ``seq2seq`` or ``seq2frame``; ``None`` (normalised from the backbone's own value)
            runs the backbone as it was published.
        model: backbone size overrides (``dim``, ``depth``, ``num_heads``, ...), merged over defaults.
        train: training settings (``epochs``, ``batch_size``, ``lr``, ... see ``engine.recipes``).
        data: dataset options that change results (``source: cpn|gt``, ``minutes`` of synthetic data).
        selection: checkpoint selection rule, ``last_epoch`` (default) or ``best_on_test``.
    """

    backbone: str
    pruner: str = "none"
    recoverer: str = "none"
    schedule: str = ""
    frames: int = 243
    dataset: str = "synthetic"
    seed: int = 0
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    selection: Selection = "last_epoch"
    pipeline: Pipeline | None = None

    def __post_init__(self) -> None:
        model = dict(self.model)
        # Specs written before ``pipeline`` was a field carried a non-native pipeline in ``model``.
        pipeline = self.pipeline or model.pop("pipeline", None)
        if pipeline is not None and pipeline == _native_pipeline(self.backbone):
            pipeline = None
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "pipeline", pipeline)

    @property
    def effective_pipeline(self) -> str:
        """The pipeline the trial runs: the override, else the backbone's own (``seq2seq`` if unknown)."""
        return self.pipeline or _native_pipeline(self.backbone) or "seq2seq"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "train", "data"):
            d[k] = dict(sorted(dict(d[k]).items()))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialSpec:
        """From :meth:`to_dict` output or a stored ``spec_json`` (old ones included); no type checks."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names - {"trial_key"}
        if unknown:
            raise ValueError(f"Unknown trial spec fields: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str) -> TrialSpec:
        """A spec from user input (a trial file, a grid's combination, a table spec, the command line).

        Every field's type, every registry name, the pipeline and the selection rule are checked; an
        error names ``source``, the field and the value. ``schedule`` may be an integer-looking YAML
        scalar and is kept as text.
        """
        raw = {k: v for k, v in raw.items() if k != "trial_key"}
        for key in raw:
            if key not in _FIELD_TYPES:
                raise ConfigError(f"{source}: {unknown_message('trial field', key, list(_FIELD_TYPES))}")
        if "backbone" not in raw:
            raise ConfigError(f"{source}: backbone: missing; every trial names its backbone "
                              f"({', '.join(BACKBONES)})")
        for key, value in raw.items():
            expected = _FIELD_TYPES[key]
            if isinstance(value, bool) or not isinstance(value, expected):
                kinds = " or ".join(_TYPE_WORDS[t] for t in expected)
                raise ConfigError(f"{source}: {key}: {value!r} must be {kinds}")
        for key, registry in (("backbone", BACKBONES), ("pruner", PRUNERS), ("recoverer", RECOVERERS),
                              ("dataset", DATASETS)):
            if key in raw and raw[key] not in registry:
                raise ConfigError(f"{source}: {key}: {unknown_message(key, raw[key], registry.names())}")
        for key, allowed in (("pipeline", PIPELINES), ("selection", SELECTIONS)):
            if key in raw and raw[key] not in allowed:
                raise ConfigError(f"{source}: {key}: {unknown_message(key, raw[key], list(allowed))}")
        for key in ("frames", "seed"):
            if key in raw and raw[key] < (0 if key == "seed" else 1):
                raise ConfigError(f"{source}: {key}: {raw[key]!r} must be a positive integer")
        if "schedule" in raw:
            raw["schedule"] = str(raw["schedule"])
        return cls(**raw)

    def key_dict(self) -> dict[str, Any]:
        """What the key hashes: :meth:`to_dict` less the later-added fields and settings at their defaults.

        A non-native pipeline is hashed as ``model.pipeline``, where it lived before it was a field, so
        the key of every trial stored before the change stays the same.
        """
        d = self.to_dict()
        pipeline = d.pop("pipeline")
        if pipeline is not None:
            d["model"] = dict(sorted({**d["model"], "pipeline": pipeline}.items()))
        for name, default in ADDED_FIELDS.items():
            if name in d and d[name] == default:
                del d[name]
        for (group, name), default in ADDED_SETTINGS.items():
            if d[group].get(name, default) == default:
                d[group].pop(name, None)
        return d

    def canonical_json(self) -> str:
        return _canonical(self.key_dict())

    @property
    def trial_key(self) -> str:
        """Short content hash: names the Ray trial, the MLflow run, the checkpoint folder, the DB row."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def axes(self) -> dict[str, Any]:
        """Flat ``name -> value`` view (nested settings as ``model.dim``), for params and columns."""
        flat: dict[str, Any] = {}
        for k, v in self.to_dict().items():
            if k == "pipeline":
                flat[k] = self.effective_pipeline
            elif isinstance(v, dict):
                flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                flat[k] = v
        return flat


@dataclass(frozen=True)
class MetricRecord:
    """One number in long format: ``mpjpe`` on split ``test`` for action ``Walking`` (or ``avg``)."""

    name: str
    split: str
    value: float
    action: str = "avg"
    epoch: int | None = None


@dataclass(frozen=True)
class Cost:
    """Model cost for one clip at batch 1.

    Attributes:
        params: parameter count.
        gflops: the papers' convention, 2 x multiply-adds of Linear and Conv layers (GFLOPs per clip).
        gflops_total: every matmul including attention, from ``torch.utils.flop_counter``.
        latency_ms: median latency of a forward pass (``None`` when not measured), per batch of
            ``latency_batch`` clips on ``latency_device``, in the trial's precision;
            ``latency_contended`` when other trials shared the CPU while it was timed.
    """

    params: int
    gflops: float
    gflops_total: float
    latency_ms: float | None = None
    counter: str = "torch.utils.flop_counter"
    latency_batch: int | None = None
    latency_device: str | None = None
    latency_contended: bool | None = None


@dataclass
class TrialResult:
    """What a trial reports once at the end; the single writer stores it.

    ``metrics`` is long format (per split and action); ``history`` holds the per-epoch reports.
    """

    trial_key: str
    spec: dict[str, Any]
    status: TrialStatus
    metrics: list[MetricRecord] = field(default_factory=list)
    cost: Cost | None = None
    epochs_run: int = 0
    best_epoch: int | None = None
    selection: str = "last_epoch"
    checkpoint_uri: str | None = None
    error: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_epoch: int = 0

    def metric(self, name: str, split: str = "test", action: str = "avg") -> float | None:
        for m in self.metrics:
            if m.name == name and m.split == split and m.action == action:
                return m.value
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialResult:
        d = dict(d)
        d["metrics"] = [MetricRecord(**m) for m in d.get("metrics", [])]
        d["cost"] = Cost(**d["cost"]) if d.get("cost") else None
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        return cls.from_dict(json.loads(text))


# report(metrics, checkpoint_dir): the only call from h2ot_core back into the orchestrator.
# ``metrics`` is flat (``epoch``, ``train_loss``, ``test_mpjpe``, ...); ``checkpoint_dir`` holds the
# epoch's checkpoint (or is None).
ReportFn = Callable[[dict[str, float], "str | None"], None]
