"""The trial vocabulary, defined once: pipelines, statuses, selection rules, splits, the axes rows are filtered
on, every metric with its direction, unit and label, and the flat metric keys.

Torch-free and free of the registries (:mod:`h2ot_core.names` imports it), so every package imports it
cheaply; :mod:`h2ot_core.contracts` re-exports it beside the dataclasses that cross package boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeGuard, get_args

from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

Pipeline = Literal["seq2seq", "seq2frame"]
#: ``seq2seq`` estimates all F frames of a clip; ``seq2frame`` estimates its centre frame only
PIPELINES: tuple[str, ...] = get_args(Pipeline)


#: what a campaign, study or table name may be: it becomes a folder name (Ray's run, a report), a file stem and an
#: MLflow experiment, so no path separators, no leading dot or dash, no spaces
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME_LENGTH = 100


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot name a campaign, study or table (``None``: it can)."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        return (f"{value!r} is not a name: letters, digits, '_', '.' and '-', starting with a letter or digit "
                f"(no '/', no spaces)")
    if len(value) > MAX_NAME_LENGTH:
        return f"{value[:20]!r}... has {len(value)} characters; a name has at most {MAX_NAME_LENGTH}"
    return None


def check_name(value: object, where: str) -> str:
    """``value`` if it is a safe name (:func:`name_problem`), else a :class:`ConfigError` naming ``where``."""
    problem = name_problem(value)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    return str(value)


def is_pipeline(value: object) -> TypeGuard[Pipeline]:
    """Whether ``value`` (a string from a user) is one of :data:`PIPELINES`."""
    return value in PIPELINES


class TrialStatus(StrEnum):
    """Every status a trial row can have, in the order tables and status reports list them (stored as its value)."""

    #: trained and evaluated
    COMPLETE = "complete"
    #: its loss turned NaN, in rows written before 2026-12 (a divergence is now ``failed``, ``NaN at epoch N``)
    DIVERGED = "diverged"
    #: an error that retries did not cure
    FAILED = "failed"
    #: ended early, for the :class:`StopReason` its row records; resumable
    STOPPED = "stopped"
    #: in flight
    RUNNING = "running"
    #: planned but not started
    PENDING = "pending"


#: every status, in order
STATUSES: tuple[TrialStatus, ...] = tuple(TrialStatus)
#: trials that ended as designed: a campaign whose trials all end so exits 0
FINISHED_STATUSES = frozenset({TrialStatus.COMPLETE, TrialStatus.DIVERGED, TrialStatus.STOPPED})
#: the others: failed for good, or still owed a result (a campaign with any of them exits 1)
UNFINISHED_STATUSES = frozenset(TrialStatus) - FINISHED_STATUSES
#: still owed a result by a campaign run: nothing to report about them yet
IN_FLIGHT_STATUSES = UNFINISHED_STATUSES - {TrialStatus.FAILED}


class StopReason(StrEnum):
    """Why a ``stopped`` trial stopped (``trials.stop_reason``)."""

    #: ``h2ot campaign stop``
    USER = "user"
    #: the early-stopping scheduler judged it poor
    ASHA = "asha"
    #: the campaign's ``budget.max_device_hours`` was spent
    BUDGET = "budget"
    #: the driver got SIGINT or SIGTERM (Ctrl-C)
    INTERRUPTED = "interrupted"


STOP_REASONS: tuple[StopReason, ...] = tuple(StopReason)
#: stopped trials that were judged, not cut short: a re-run of their grid keeps them (``--rerun-stopped``
#: trains them again); trials stopped for any other reason are resumed by the next run
KEPT_STOP_REASONS = frozenset({StopReason.ASHA})
#: trials a re-run of their grid does not train again: complete ones, and stopped ones whose reason is in
#: :data:`KEPT_STOP_REASONS` (``--rerun`` trains all); failed, diverged and unfinished trials are trained again
KEPT_ON_RERUN = frozenset({TrialStatus.COMPLETE, TrialStatus.STOPPED})

Selection = Literal["last_epoch", "best_on_val", "best_on_test"]
#: which epoch's checkpoint a trial reports: the last, the best on a held-out tenth of the training sequences,
#: or the best on the test split (the official scripts' practice)
SELECTIONS: tuple[str, ...] = get_args(Selection)

Protocol = Literal["real_frames", "official"]
#: ``evaluate.protocol``: ``real_frames`` scores the real frames only (edge padding masked); ``official``
#: scores every frame of the edge-padded windows that tile a sequence, as HoT's test does
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

#: what leaderboard rows can be filtered and grouped on: the grid axes plus the schedule's derived columns
#: (``tokens`` of the last stage, the first pruning ``layer``, the number of ``stages``) and the evaluation
#: ``protocol`` (read from the spec)
TRIAL_AXES: tuple[str, ...] = ("backbone", "pruner", "recoverer", "schedule", "frames", "dataset", "seed",
                               "pipeline", "tokens", "layer", "stages", "selection", "protocol")

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = get_args(Split)


@dataclass(frozen=True)
class MetricDef:
    """What a number means: its printed name, its unit and which way is better.

    Attributes:
        name: the metric's name without split (``mpjpe``).
        lower_is_better: ``True`` for errors, losses and costs; ``False`` for PCK, AUC and speed-ups.
        unit: for axis labels and captions (``mm``, ``%``, ``GFLOPs``, ``ms``, ``x``); empty for unitless.
        title: the name as the papers write it (``MPJPE``; default: ``name``).
        evaluated: the evaluation reports it on the test split every epoch, so a checkpoint can be selected on it.
    """

    name: str
    lower_is_better: bool
    unit: str = ""
    title: str = ""
    evaluated: bool = False

    @property
    def label(self) -> str:
        """``MPJPE (mm)``: the printed name with its unit."""
        text = self.title or self.name
        return f"{text} ({self.unit})" if self.unit and self.unit not in text else text

    @property
    def mode(self) -> str:
        """``min`` or ``max``: the better direction, as Ray Tune and Optuna spell it."""
        return "min" if self.lower_is_better else "max"


#: every metric and cost a trial records; a name missing here cannot be ranked (no silent direction)
METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("mpjpe", True, "mm", "MPJPE", evaluated=True),
    MetricDef("p_mpjpe", True, "mm", "P-MPJPE", evaluated=True),
    MetricDef("n_mpjpe", True, "mm", "N-MPJPE", evaluated=True),
    MetricDef("mpjve", True, "mm", "MPJVE", evaluated=True),
    MetricDef("pck", False, "%", "PCK", evaluated=True),
    MetricDef("auc", False, "%", "AUC", evaluated=True),
    MetricDef("loss", True),
    MetricDef("params", True, title="parameters"),
    MetricDef("gflops", True, "GFLOPs", "GFLOPs"),
    MetricDef("gflops_total", True, "GFLOPs", "GFLOPs (all matmuls)"),
    MetricDef("latency_ms", True, "ms", "latency"),
    MetricDef("speedup_flops", False, "x", "FLOPs speed-up"),
    MetricDef("speedup_latency", False, "x", "latency speed-up"),
    MetricDef("gflops_change_pct", True, "%", "FLOPs change"),
    MetricDef("device_hours", True, "h", "device-hours"),
    MetricDef("device_seconds_train", True, "s", "training device time"),
    MetricDef("device_seconds_eval", True, "s", "evaluation device time"),
    MetricDef("clips_per_s", False, "clips/s", "training clips/s"),
    MetricDef("peak_memory_mb", True, "MiB", "peak memory"),
)}


#: metrics scored only on datasets whose entry names PCK joints (``DatasetInfo.pck_joints``)
PCK_METRICS = frozenset({"pck", "auc"})


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
