"""The data that crosses package boundaries, and the trial vocabulary, defined once.

A trial goes down as a :class:`TrialSpec` and comes back up once as a :class:`TrialResult`. This module
owns the words every package uses about trials: the pipelines, the statuses, the selection rules and the
flat metric keys with each metric's direction. Torch-free, so ``results`` and the CLI import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

# --- vocabulary ---------------------------------------------------------------------------------------

Pipeline = Literal["seq2seq", "seq2frame"]
#: ``seq2seq`` estimates all F frames of a clip; ``seq2frame`` estimates its centre frame only
PIPELINES: tuple[str, ...] = get_args(Pipeline)

TrialStatus = Literal["complete", "diverged", "failed", "stopped", "running", "pending"]
#: every status a trial row can have, in the order tables and status reports list them:
#: ``complete`` trained and evaluated; ``diverged`` its loss turned NaN (a result, not an error);
#: ``failed`` an error that retries did not cure; ``stopped`` ended early on purpose (ASHA, ``campaign
#: stop``) and resumable; ``running`` in flight; ``pending`` planned but not started
STATUSES: tuple[str, ...] = get_args(TrialStatus)
#: trials that ended as designed: a campaign whose trials all end so exits 0
FINISHED_STATUSES = frozenset({"complete", "diverged", "stopped"})
#: trials a re-run of their grid does not train again (``--rerun`` trains all, ``--rerun-stopped`` the
#: stopped ones); failed, diverged and unfinished trials are trained again, and so are trials that
#: ``campaign stop`` ended (stopped by the user, not judged: see ``orchestrator.launcher.partition``)
KEPT_ON_RERUN = frozenset({"complete", "stopped"})

Selection = Literal["last_epoch", "best_on_test"]
SELECTIONS: tuple[str, ...] = get_args(Selection)

#: what leaderboard rows can be filtered and grouped on: the grid axes plus the schedule's derived columns
#: (``tokens`` of the last stage, the first pruning ``layer``, the number of ``stages``)
TRIAL_AXES: tuple[str, ...] = ("backbone", "pruner", "recoverer", "schedule", "frames", "dataset", "seed",
                               "pipeline", "tokens", "layer", "stages", "selection")

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = get_args(Split)


@dataclass(frozen=True)
class MetricDef:
    """What a number means: its unit and which way is better.

    Attributes:
        name: the metric's name without split (``mpjpe``).
        lower_is_better: ``True`` for errors, losses and costs; ``False`` for PCK, AUC and speed-ups.
        unit: for axis labels and captions (``mm``, ``%``, ``GFLOPs``, ``ms``, ``x``); empty for unitless.
    """

    name: str
    lower_is_better: bool
    unit: str = ""

    @property
    def label(self) -> str:
        """``MPJPE (mm)``: the name as the papers write it, with its unit."""
        text = _LABELS.get(self.name, self.name)
        return f"{text} ({self.unit})" if self.unit and self.unit not in text else text


_LABELS = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE", "pck": "PCK",
           "auc": "AUC", "loss": "loss", "gflops": "GFLOPs", "gflops_total": "GFLOPs (all matmuls)",
           "params": "parameters", "latency_ms": "latency", "speedup_flops": "FLOPs speed-up",
           "speedup_latency": "latency speed-up", "gflops_change_pct": "FLOPs change"}

#: every metric and cost a trial records; a name missing here cannot be ranked (no silent direction)
METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("mpjpe", True, "mm"),
    MetricDef("p_mpjpe", True, "mm"),
    MetricDef("n_mpjpe", True, "mm"),
    MetricDef("mpjve", True, "mm"),
    MetricDef("pck", False, "%"),
    MetricDef("auc", False, "%"),
    MetricDef("loss", True),
    MetricDef("params", True),
    MetricDef("gflops", True, "GFLOPs"),
    MetricDef("gflops_total", True, "GFLOPs"),
    MetricDef("latency_ms", True, "ms"),
    MetricDef("speedup_flops", False, "x"),
    MetricDef("speedup_latency", False, "x"),
    MetricDef("gflops_change_pct", True, "%"),
)}


def metric_def(name: str) -> MetricDef:
    """The definition of ``name`` (a bare name or a flat key such as ``test_mpjpe``)."""
    parsed = parse_metric_key(name)
    bare = parsed[1] if parsed else name
    if bare not in METRICS:
        raise ConfigError(unknown_message("metric", name, list(METRICS)))
    return METRICS[bare]


def lower_is_better(name: str) -> bool:
    """Direction of a metric, cost or flat key: ``mpjpe``/``gflops`` lower, ``pck``/speed-ups higher."""
    return metric_def(name).lower_is_better


def metric_key(split: str, name: str, action: str = "avg") -> str:
    """The flat key of one number: ``test_mpjpe``, ``train_loss``; per action ``test_mpjpe__Walking``."""
    base = f"{split}_{name}"
    return base if action == "avg" else f"{base}__{action}"


def parse_metric_key(key: str) -> tuple[str, str, str] | None:
    """``(split, name, action)`` of a flat key built by :func:`metric_key`; ``None`` for other keys."""
    split, sep, rest = key.partition("_")
    if not sep or split not in SPLITS or not rest:
        return None
    name, _, action = rest.partition("__")
    return split, name, action or "avg"


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
    from h2ot_core.names import BACKBONES, backbone_info

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
        from h2ot_core.names import BACKBONES, DATASETS, PRUNERS, RECOVERERS

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
