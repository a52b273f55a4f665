"""The data that crosses package boundaries: a trial goes down as a :class:`TrialSpec` and comes
back up once as a :class:`TrialResult`. Torch-free, so ``results`` and the CLI can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

TrialStatus = Literal["complete", "failed", "diverged", "running"]
Selection = Literal["last_epoch", "best_on_test"]

# Metrics where a smaller value is better; everything else (pck, auc, speed-ups) is higher-better.
LOWER_IS_BETTER = frozenset({"mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "loss", "train_loss", "latency_ms",
                             "gflops", "gflops_total", "params"})


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "train", "data"):
            d[k] = dict(sorted(dict(d[k]).items()))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialSpec:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names - {"trial_key"}
        if unknown:
            raise ValueError(f"Unknown trial spec fields: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def canonical_json(self) -> str:
        return _canonical(self.to_dict())

    @property
    def trial_key(self) -> str:
        """Short content hash: names the Ray trial, the MLflow run, the checkpoint folder, the DB row."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def axes(self) -> dict[str, Any]:
        """Flat ``name -> value`` view (nested settings as ``model.dim``), for params and columns."""
        flat: dict[str, Any] = {}
        for k, v in self.to_dict().items():
            if isinstance(v, dict):
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
        latency_ms: median CPU latency of a batch-1 forward pass (``None`` when not measured).
    """

    params: int
    gflops: float
    gflops_total: float
    latency_ms: float | None = None
    counter: str = "torch.utils.flop_counter"


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
