"""The data that crosses package boundaries: a trial goes down as a :class:`TrialSpec` and comes back up once
as a :class:`TrialResult`.

The words every package uses about trials (pipelines, statuses, selection rules, flat metric keys and each
metric's direction) are defined in :mod:`h2ot_core.vocabulary` and re-exported here. Torch-free, so
``results`` and the CLI import it cheaply.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from h2ot_core.names import BACKBONES, backbone_info
from h2ot_core.vocabulary import (
    FINISHED_STATUSES,
    IN_FLIGHT_STATUSES,
    KEPT_ON_RERUN,
    KEPT_STOP_REASONS,
    METRICS,
    PIPELINES,
    PROTOCOLS,
    SELECTIONS,
    SPLITS,
    STATUSES,
    STOP_REASONS,
    TRIAL_AXES,
    UNFINISHED_STATUSES,
    MetricDef,
    Pipeline,
    Selection,
    Split,
    StopReason,
    TrialStatus,
    lower_is_better,
    metric_def,
    metric_key,
    parse_metric_key,
)

__all__ = [
    "COST_METRICS", "EPOCH_EVAL_SECONDS", "EPOCH_TRAIN_SECONDS", "FINISHED_STATUSES", "IN_FLIGHT_STATUSES",
    "KEPT_ON_RERUN", "KEPT_STOP_REASONS", "METRICS", "PIPELINES", "PROTOCOLS", "SELECTIONS", "SPLITS", "STATUSES",
    "STOP_REASONS", "TRIAL_AXES", "UNFINISHED_STATUSES", "USAGE_METRICS", "Cost", "MetricDef", "MetricRecord",
    "Pipeline", "ReportFn", "Selection", "Split", "StopReason", "TrialResult", "TrialSpec", "TrialStatus", "Usage",
    "lower_is_better", "metric_def", "metric_key", "parse_metric_key",
]


# --- the trial spec -----------------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


#: fields added after the first trials were keyed, at the value that leaves their keys unchanged: such a
#: field enters the canonical JSON only when it differs from this value
ADDED_FIELDS: dict[str, Any] = {"pipeline": None, "selection_metric": None, "evaluate": {}}
#: settings inside ``model``/``train``/``data``/``evaluate`` added later, likewise left out of the key at
#: their default (an ``evaluate`` left empty then leaves the key too)
ADDED_SETTINGS: dict[tuple[str, str], Any] = {
    ("train", "precision"): "fp32", ("train", "recipe"): "ours", ("train", "epoch_clips"): "flip_half",
    ("train", "loss_frames"): "real", ("evaluate", "protocol"): "real_frames"}


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
        model: backbone size overrides (``dim``, ``depth``, ``num_heads``, ...), merged over defaults.
        train: training settings (``epochs``, ``batch_size``, ``lr``, ... see ``engine.recipes``).
        data: dataset options that change results (``source: cpn|gt``, ``minutes`` of synthetic data).
        selection: checkpoint selection rule, ``last_epoch`` (default), ``best_on_val`` or ``best_on_test``.
        pipeline: ``seq2seq`` or ``seq2frame``; ``None`` (normalised from the backbone's own value)
            runs the backbone as it was published.
        selection_metric: the metric ``best_on_test``/``best_on_val`` selects on (its direction from
            :data:`METRICS`); ``None`` is ``mpjpe``. A grid sets it to its own metric.
        evaluate: evaluation settings; ``protocol`` (:data:`PROTOCOLS`): ``real_frames`` (default: padded
            frames masked) or ``official`` (padded frames scored too, as HoT's test does).

    The mappings are the spec's own copies: treat them as read-only (the key is computed once).
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
    selection_metric: str | None = None
    evaluate: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The spec's own copies: a caller changing its dicts afterwards cannot change the spec (or its cached key).
        model = copy.deepcopy(dict(self.model))
        # Specs written before ``pipeline`` was a field carried a non-native pipeline in ``model``.
        pipeline = self.pipeline or model.pop("pipeline", None)
        if pipeline is not None and pipeline == _native_pipeline(self.backbone):
            pipeline = None
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "train", copy.deepcopy(dict(self.train)))
        object.__setattr__(self, "data", copy.deepcopy(dict(self.data)))
        object.__setattr__(self, "evaluate", copy.deepcopy(dict(self.evaluate)))
        object.__setattr__(self, "pipeline", pipeline)

    @property
    def effective_pipeline(self) -> str:
        """The pipeline the trial runs: the override, else the backbone's own (``seq2seq`` if unknown)."""
        return self.pipeline or _native_pipeline(self.backbone) or "seq2seq"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "train", "data", "evaluate"):
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

    def key_dict(self) -> dict[str, Any]:
        """What the key hashes: :meth:`to_dict` less the later-added fields and settings at their defaults.

        A non-native pipeline is hashed as ``model.pipeline``, where it lived before it was a field, so
        the key of every trial stored before the change stays the same.
        """
        d = self.to_dict()
        pipeline = d.pop("pipeline")
        if pipeline is not None:
            d["model"] = dict(sorted({**d["model"], "pipeline": pipeline}.items()))
        for (group, name), default in ADDED_SETTINGS.items():
            if d[group].get(name, default) == default:
                d[group].pop(name, None)
        for name, default in ADDED_FIELDS.items():
            if name in d and d[name] == default:
                del d[name]
        return d

    @property
    def protocol(self) -> str:
        """The evaluation protocol: ``real_frames`` (default) or ``official`` (:data:`PROTOCOLS`)."""
        return str(self.evaluate.get("protocol", "real_frames"))

    def canonical_json(self) -> str:
        return _canonical(self.key_dict())

    @functools.cached_property
    def trial_key(self) -> str:
        """Short content hash: names the Ray trial, the MLflow run, the checkpoint folder, the DB row
        (computed once: the spec is frozen and owns its mappings)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def selected_on(self) -> MetricDef:
        """The metric the checkpoint is selected on (``best_on_test``), with its direction."""
        return metric_def(self.selection_metric or "mpjpe")

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


#: the costs that are numbers with a direction (:data:`METRICS`): ranked, tabled and logged as ``cost.<name>``
COST_METRICS: tuple[str, ...] = tuple(f.name for f in fields(Cost) if f.name in METRICS)

#: the per-epoch report keys of a trial's device time (seconds of that epoch's training and evaluation)
EPOCH_TRAIN_SECONDS = "device_seconds_train"
EPOCH_EVAL_SECONDS = "device_seconds_eval"


@dataclass(frozen=True)
class Usage:
    """What running one trial cost on its device (issue 18), summed over every epoch it trained, a resumed
    run's earlier epochs included.

    Attributes:
        device_seconds_train: seconds of training steps (forward, loss, backward, optimiser), device synchronised.
        device_seconds_eval: seconds of the per-epoch test evaluations.
        device_hours: ``(train + eval) / 3600``: what a budget counts and a campaign sums.
        clips_per_s: training clips per second of ``device_seconds_train`` (``None``: nothing trained).
        peak_memory_mb: peak memory in MiB, of the kind ``peak_memory_kind`` names (``None`` unknown).
        peak_memory_kind: ``cuda_max_allocated`` (``torch.cuda.max_memory_allocated`` of the trial's GPU) or
            ``cpu_peak_rss`` (the worker process's peak resident set, on a CPU; a reused worker's peak may
            come from an earlier trial).
        device_name: the GPU's name, or the CPU's model name.
    """

    device_seconds_train: float = 0.0
    device_seconds_eval: float = 0.0
    device_hours: float = 0.0
    clips_per_s: float | None = None
    peak_memory_mb: float | None = None
    peak_memory_kind: str | None = None
    device_name: str | None = None

    @classmethod
    def from_history(cls, history: list[dict[str, Any]], **measured: Any) -> Usage | None:
        """The usage the per-epoch reports of ``history`` record (``None`` when none carries device time);
        ``measured`` adds what only the worker knows (peak memory, device name)."""
        timed = [h for h in history if EPOCH_TRAIN_SECONDS in h]
        if not timed:
            return None
        train = float(sum(h[EPOCH_TRAIN_SECONDS] for h in timed))
        evaluate = float(sum(h.get(EPOCH_EVAL_SECONDS, 0.0) for h in timed))
        clips = sum(int(h.get("train_windows", 0)) for h in timed)
        return cls(train, evaluate, (train + evaluate) / 3600.0, clips / train if clips and train > 0 else None,
                   **measured)


#: the usage fields that are numbers with a direction (:data:`METRICS`): ranked, tabled, logged as ``usage.<name>``
USAGE_METRICS: tuple[str, ...] = tuple(f.name for f in fields(Usage) if f.name in METRICS)


@dataclass
class TrialResult:
    """What a trial reports once at the end; the single writer stores it.

    ``metrics`` is long format (per split and action); ``history`` holds the per-epoch reports;
    ``stop_reason`` says why a ``stopped`` trial stopped (``None`` for any other status); ``usage`` what its
    device time was (``None``: not measured, e.g. a row written before issue 18).
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
    stop_reason: StopReason | None = None
    usage: Usage | None = None

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
        d["status"] = TrialStatus(d["status"])
        d["stop_reason"] = StopReason(d["stop_reason"]) if d.get("stop_reason") else None
        d["metrics"] = [MetricRecord(**m) for m in d.get("metrics", [])]
        d["cost"] = Cost(**d["cost"]) if d.get("cost") else None
        d["usage"] = Usage(**d["usage"]) if d.get("usage") else None
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
