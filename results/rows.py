"""A trial's row and its :class:`~h2ot_core.contracts.TrialResult`: the one mapping, both directions.

:func:`result_columns` writes a result as the columns of its ``trials`` row, :func:`result_of` reads a row (and
its metric rows) back as the result. The cost columns are the :class:`~h2ot_core.contracts.Cost` fields the
table has (:data:`COST_FIELDS`), the usage columns its :class:`~h2ot_core.contracts.Usage` fields
(:data:`USAGE_FIELDS`): a new cost column is a ``Cost`` (or ``Usage``) field, a ``Trial`` column and a migration,
and the store, the leaderboard, the export and MLflow pick it up from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from h2ot_core.contracts import (
    COST_METRICS,
    METRICS,
    USAGE_METRICS,
    Cost,
    MetricRecord,
    StopReason,
    TrialResult,
    TrialSpec,
    TrialStatus,
    Usage,
)
from results.errors import ResultsError
from results.schema import Trial

#: the Cost fields stored as trial columns, in the dataclass's order
COST_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Cost) if f.name in Trial.__table__.columns)
#: the Usage fields stored as trial columns (what running the trial cost), in the dataclass's order
USAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Usage) if f.name in Trial.__table__.columns)
#: the cost and usage columns that are numbers with a direction (:data:`~h2ot_core.contracts.COST_METRICS`,
#: :data:`~h2ot_core.contracts.USAGE_METRICS`): sortable, tabled
COST_COLUMNS: tuple[str, ...] = (*(c for c in COST_METRICS if c in COST_FIELDS),
                                 *(c for c in USAGE_METRICS if c in USAGE_FIELDS))
#: the usage columns that say how it was measured (not ranked): every leaderboard row carries them
USAGE_COLUMNS: tuple[str, ...] = tuple(c for c in USAGE_FIELDS if c not in METRICS)
#: how a row's latency was measured (every row carries them, for ``speedup_latency``): the precision and the
#: cost columns that are not numbers to rank
LATENCY_COLUMNS: tuple[str, ...] = ("precision", *(c for c in COST_FIELDS if c not in METRICS))
#: provenance keys that have their own columns (key -> column); the rest are the ``package_versions`` JSON
PROVENANCE_COLUMNS: dict[str, str] = {"torch": "torch_version", "git_sha": "git_sha", "device": "device",
                                      "data_fingerprint": "data_fingerprint"}


def now() -> datetime:
    """Naive UTC (SQLite has no time zones; every timestamp in the leaderboard is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def schedule_facts(schedule: str) -> tuple[int | None, int | None, int]:
    """``(final tokens, first pruning layer, number of stages)`` of ``"2:121,4:61"`` → ``(61, 2, 2)``.

    An empty schedule (no pruning) gives ``(None, None, 0)``; the string was validated upstream, so
    an unparseable one is stored as-is with ``(None, None, 0)`` rather than losing the trial.
    """
    try:
        stages = [tuple(int(v) for v in part.split(":")) for part in schedule.split(",") if part.strip()]
    except ValueError:
        return None, None, 0
    if not stages or any(len(s) != 2 for s in stages):
        return None, None, 0
    return stages[-1][1], stages[0][0], len(stages)


def spec_columns(spec: TrialSpec) -> dict[str, Any]:
    """The axis, derived and JSON columns of a trial row."""
    tokens, layer, stages = schedule_facts(spec.schedule)
    return {
        "trial_key": spec.trial_key, "backbone": spec.backbone, "pruner": spec.pruner,
        "recoverer": spec.recoverer, "schedule": spec.schedule, "frames": int(spec.frames),
        "dataset": spec.dataset, "seed": int(spec.seed), "pipeline": spec.effective_pipeline, "tokens": tokens,
        "layer": layer, "stages": stages, "model_json": _json(dict(spec.model)),
        "train_json": _json(dict(spec.train)), "data_json": _json(dict(spec.data)),
        "spec_json": spec.canonical_json(), "selection": spec.selection,
        "precision": str(spec.train.get("precision", "fp32")),
    }


def spec_of(result: TrialResult) -> TrialSpec:
    """The spec a result was trained from; a :class:`ResultsError` when it cannot be read or does not match."""
    try:
        spec = TrialSpec.from_dict(result.spec)
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"Trial {result.trial_key}: result.spec cannot be read as a TrialSpec: {exc}") from None
    if spec.trial_key != result.trial_key:
        raise ResultsError(f"Trial {result.trial_key}: result.spec hashes to trial_key {spec.trial_key}; "
                           f"the result and its spec disagree")
    return spec


def result_columns(result: TrialResult, spec: TrialSpec) -> dict[str, Any]:
    """Every trial column for ``result`` (axes from ``spec``, cost, provenance, timestamps)."""
    prov = dict(result.provenance)
    stopped = result.status == TrialStatus.STOPPED
    cols = {**spec_columns(spec), "status": str(result.status), "error": result.error,
            "stop_reason": str(result.stop_reason) if stopped and result.stop_reason else None,
            "selection": result.selection or spec.selection, "best_epoch": result.best_epoch,
            "epochs_run": int(result.epochs_run), "checkpoint_uri": result.checkpoint_uri,
            "resumed_from_epoch": int(result.resumed_from_epoch)}
    for key, column in PROVENANCE_COLUMNS.items():
        value = prov.pop(key, None)
        cols[column] = None if value is None else str(value)
    cols["package_versions"] = _json(prov)
    cols["history_json"] = _json(result.history) if result.history else None
    for column in COST_FIELDS:
        cols[column] = getattr(result.cost, column) if result.cost else None
    for column in USAGE_FIELDS:
        cols[column] = getattr(result.usage, column) if result.usage else None
    stamp = now()
    cols.update(created_at=stamp, started_at=stamp,
                finished_at=None if result.status == TrialStatus.RUNNING else stamp)
    return cols


def result_of(row: Mapping[Any, Any], metrics: list[MetricRecord]) -> TrialResult:
    """The result a row (and its ``metrics`` rows) records: :func:`result_columns` read back."""
    provenance: dict[str, Any] = json.loads(row["package_versions"] or "{}")
    for key, column in PROVENANCE_COLUMNS.items():
        if row[column] is not None:
            provenance[key] = row[column]
    cost = None
    if row["params"] is not None:
        values = {c: row[c] for c in COST_FIELDS}
        cost = Cost(**{**values, "params": int(row["params"]), "gflops": float(row["gflops"] or 0.0),
                       "gflops_total": float(row["gflops_total"] or 0.0)})
    usage = Usage(**{c: row[c] for c in USAGE_FIELDS}) if row.get("device_hours") is not None else None
    return TrialResult(
        trial_key=row["trial_key"], spec=TrialSpec.from_dict(json.loads(row["spec_json"])).to_dict(),
        status=TrialStatus(row["status"]), metrics=metrics, cost=cost, epochs_run=int(row["epochs_run"] or 0),
        best_epoch=row["best_epoch"], selection=row["selection"], checkpoint_uri=row["checkpoint_uri"],
        error=row["error"], provenance=provenance, history=json.loads(row.get("history_json") or "[]"),
        resumed_from_epoch=int(row.get("resumed_from_epoch") or 0),
        stop_reason=StopReason(row["stop_reason"]) if row.get("stop_reason") else None, usage=usage)


def status_where(statuses: Iterable[str], stop_reasons: Iterable[str] | None) -> ColumnElement[bool] | None:
    """Rows with one of ``statuses``; with ``stop_reasons``, a ``stopped`` row only when it stopped for one of
    them (``None``: no status asked for, no row)."""
    wanted = sorted(set(statuses))
    if not wanted:
        return None
    where: ColumnElement[bool] = Trial.status.in_(wanted)
    if stop_reasons is not None:
        where = and_(where, or_(Trial.status != TrialStatus.STOPPED, Trial.stop_reason.in_(sorted(set(stop_reasons)))))
    return where
