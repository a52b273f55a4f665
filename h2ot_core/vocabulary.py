"""The trial vocabulary, defined once: pipelines, statuses, selection rules, splits, the axes rows are filtered
on, every metric with its direction, unit and label, and the flat metric keys.

Torch-free and free of the registries (:mod:`h2ot_core.names` imports it), so every package imports it
cheaply; :mod:`h2ot_core.contracts` re-exports it beside the dataclasses that cross package boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

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
