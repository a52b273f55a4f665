"""Read side of the leaderboard: ``select()`` expressions only; user input reaches SQL as bound values.

Speed-up definition: a trial's baseline is the mean over the complete ``pruner == "none"`` trials with
the same backbone, pipeline, frames, dataset and model settings (``model_json``), across seeds. Then
``speedup_flops = baseline gflops / trial gflops``, ``speedup_latency = baseline latency_ms / trial
latency_ms`` (both > 1 means faster) and ``gflops_change_pct = 100 * (trial gflops / baseline gflops - 1)`` (``-39.6`` reads "FLOPs −39.6%").
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.orm import aliased

from h2ot_core.contracts import SPLITS, STATUSES, TRIAL_AXES, TrialStatus, lower_is_better
from results.errors import ResultsError, unknown
from results.rows import COST_COLUMNS, LATENCY_COLUMNS, USAGE_COLUMNS
from results.schema import Campaign, CampaignTrial, Metric, Trial

Agg = Literal["best", "mean"]

#: filterable / groupable trial columns (the grid axes plus the derived ones)
AXES = TRIAL_AXES
INT_AXES = frozenset({"frames", "seed", "tokens", "layer", "stages"})
DERIVED_COLUMNS: tuple[str, ...] = ("speedup_flops", "speedup_latency", "gflops_change_pct")
#: metrics shown next to the sort metric in every leaderboard row
DEFAULT_METRICS: tuple[str, ...] = ("mpjpe", "p_mpjpe")
# Trial columns every row carries, in output order.
_ROW_COLUMNS = ("trial_key", "status", *AXES, *COST_COLUMNS, *LATENCY_COLUMNS, *USAGE_COLUMNS, "epochs_run", "best_epoch", "resumed_from_epoch", "error",
                "mlflow_run_id", "checkpoint_uri", "git_sha", "torch_version", "device", "data_fingerprint",
                "model_json", "train_json", "data_json", "package_versions", "created_at", "started_at",
                "finished_at")
_BASELINE_KEY = ("backbone", "pipeline", "frames", "dataset", "model_json")
#: latencies compare like with like: also the same precision, device and batch (NULL: older batch-1 CPU rows)
_LATENCY_KEY = (*_BASELINE_KEY, "precision", "latency_device", "latency_batch")
#: the columns aggregations need (tables, grouped leaderboards): cheaper to fetch than every column
LEAN_COLUMNS: tuple[str, ...] = ("trial_key", "status", *AXES, *COST_COLUMNS, *LATENCY_COLUMNS, "model_json")


def _cast(axis: str, value: Any) -> Any:
    if axis not in INT_AXES:
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ResultsError(f"Filter {axis}={value!r}: {axis} takes whole numbers") from None


def check_axes(names: Iterable[str], what: str = "axis") -> list[str]:
    """``names`` if every one is an axis; else a did-you-mean error."""
    names = list(names)
    for name in names:
        if name not in AXES:
            raise unknown(what, name, list(AXES))
    return names


#: one campaign name, several (their trials together), or ``None`` for every trial
Campaigns = str | Sequence[str] | None


def campaign_list(campaign: Campaigns) -> list[str]:
    """``campaign`` as a list of names (``[]``: no campaign filter)."""
    if campaign is None:
        return []
    return [campaign] if isinstance(campaign, str) else list(campaign)


def filtered(stmt: Select, filters: Mapping[str, Sequence[Any]] | None = None, campaign: Campaigns = None,
             status: Sequence[str] | None = None) -> Select:
    """``stmt`` (selecting from ``trials``) restricted to axis values, campaigns (any of) and statuses."""
    for axis, values in (filters or {}).items():
        check_axes([axis], "filter axis")
        if values:
            stmt = stmt.where(getattr(Trial, axis).in_([_cast(axis, v) for v in values]))
    if status:
        for s in status:
            if s not in STATUSES:
                raise unknown("status", s, list(STATUSES))
        stmt = stmt.where(Trial.status.in_(list(status)))
    if campaign is not None:
        member = (select(CampaignTrial.trial_id).join(Campaign, Campaign.id == CampaignTrial.campaign_id)
                  .where(Campaign.name.in_(campaign_list(campaign))))
        stmt = stmt.where(Trial.id.in_(member))
    return stmt


def metric_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Metric.name).distinct().order_by(Metric.name)).scalars())


def campaign_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Campaign.name).order_by(Campaign.name)).scalars())


def check_campaign(engine: Engine, campaign: Campaigns) -> None:
    """Every named campaign exists, else a did-you-mean error."""
    names = campaign_list(campaign)
    known = campaign_names(engine) if names else []
    for name in names:
        if name not in known:
            raise unknown("campaign", name, known)


def fetch_trials(engine: Engine, *, filters: Mapping[str, Sequence[Any]] | None = None,
                 campaign: Campaigns = None, status: Sequence[str] | None = None,
                 metrics: Sequence[str] = DEFAULT_METRICS, split: str = "test", action: str = "avg",
                 sort: str | None = None, descending: bool = False, limit: int | None = None,
                 columns: Sequence[str] = _ROW_COLUMNS) -> list[dict[str, Any]]:
    """One dict per trial: ``columns``, each of ``metrics`` at ``split``/``action`` (``None`` if absent).

    ``sort`` (a name in ``metrics`` or a column) orders in SQL, missing values last; ties by trial_key.
    """
    aliases = {name: aliased(Metric, name=f"m_{i}") for i, name in enumerate(dict.fromkeys(metrics))}

    def joined(stmt: Select, names: Iterable[str]) -> Select:
        for name in names:
            alias = aliases[name]
            stmt = stmt.outerjoin(alias, and_(alias.trial_id == Trial.id, alias.name == name,
                                              alias.split == split, alias.action == action))
        return stmt

    def ordered(stmt: Select) -> Select:
        if sort is not None:
            key = aliases[sort].value if sort in aliases else getattr(Trial, sort)
            stmt = stmt.order_by(key.is_(None), key.desc() if descending else key.asc())
        return stmt.order_by(Trial.trial_key)

    cols = [getattr(Trial, c) for c in columns]
    stmt = ordered(joined(select(*cols, *(a.value for a in aliases.values())).select_from(Trial), aliases))
    names = [*columns, *aliases]
    with engine.connect() as conn:
        if limit is None:
            stmt = filtered(stmt, filters, campaign, status)
        else:
            # Rank narrow rows (id and the sort value) first, then fetch every column of the top N only.
            ranked = ordered(joined(select(Trial.id).select_from(Trial), [sort] if sort in aliases else []))
            top = list(conn.execute(filtered(ranked, filters, campaign, status).limit(limit)).scalars())
            stmt = stmt.where(Trial.id.in_(top))
        return [dict(zip(names, row, strict=True)) for row in conn.execute(stmt)]


def _baselines(engine: Engine, rows: Sequence[Mapping[str, Any]], key: Sequence[str] = _BASELINE_KEY
               ) -> dict[tuple[Any, ...], tuple[Any, Any]]:
    """``key values -> (mean gflops, mean latency_ms)`` of unpruned trials; ``key`` is :data:`_BASELINE_KEY`
    (FLOPs) or :data:`_LATENCY_KEY` (latencies: same precision, latency device and batch too)."""
    if not rows:
        return {}
    stmt = (select(*(getattr(Trial, k) for k in key), func.avg(Trial.gflops), func.avg(Trial.latency_ms))
            .where(Trial.pruner == "none", Trial.status == TrialStatus.COMPLETE,
                   Trial.backbone.in_(sorted({r["backbone"] for r in rows})),
                   Trial.dataset.in_(sorted({r["dataset"] for r in rows})),
                   Trial.frames.in_(sorted({r["frames"] for r in rows})))
            .group_by(*(getattr(Trial, k) for k in key)))
    with engine.connect() as conn:
        n = len(key)
        return {tuple(r[:n]): (r[n], r[n + 1]) for r in conn.execute(stmt)}


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def add_speedups(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``speedup_flops``, ``speedup_latency``, ``gflops_change_pct`` and ``is_baseline`` on ``rows``."""
    base = _baselines(engine, rows)
    base_latency = _baselines(engine, rows, _LATENCY_KEY)
    for r in rows:
        flops, _ = base.get(tuple(r[k] for k in _BASELINE_KEY), (None, None))
        _, latency = base_latency.get(tuple(r.get(k) for k in _LATENCY_KEY), (None, None))
        r["speedup_flops"] = _ratio(flops, r["gflops"])
        r["speedup_latency"] = _ratio(latency, r["latency_ms"])
        change = _ratio(r["gflops"], flops)
        r["gflops_change_pct"] = None if change is None else 100.0 * (change - 1.0)
        r["is_baseline"] = r["pruner"] == "none"
    return rows


def _check_sort(engine: Engine, sort: str) -> None:
    if sort in (*DEFAULT_METRICS, *COST_COLUMNS, *DERIVED_COLUMNS):
        return
    with engine.connect() as conn:  # one index probe; the full name list only for the error message
        if conn.execute(select(Metric.name).where(Metric.name == sort).limit(1)).first() is not None:
            return
    raise unknown("sort metric", sort, [*metric_names(engine), *COST_COLUMNS, *DERIVED_COLUMNS])


def check_split_action(engine: Engine, split: str, action: str) -> None:
    """Refuse a split other than train/test, and an action no metric of the leaderboard was recorded for
    (``avg`` always exists), with a did-you-mean: an empty table would read "no such trial"."""
    if split not in SPLITS:
        raise unknown("split", split, list(SPLITS))
    if action == "avg":
        return
    with engine.connect() as conn:  # one probe; the full list only for the error message
        if conn.execute(select(Metric.action).where(Metric.action == action).limit(1)).first() is not None:
            return
        known = list(conn.execute(select(Metric.action).distinct().order_by(Metric.action)).scalars())
    raise unknown("action", action, known)


def seed_values(members: Sequence[Mapping[str, Any]], column: str) -> dict[int, float]:
    """``seed -> value`` of ``column`` (the mean when several members share a seed)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for m in members:
        if m.get(column) is not None:
            by_seed[int(m["seed"])].append(float(m[column]))
    return {seed: statistics.fmean(v) for seed, v in by_seed.items()}


def _baseline_of(row: Mapping[str, Any]) -> tuple[Any, ...]:
    model = row.get("model", row.get("model_json"))
    model_key = model if isinstance(model, str) else json.dumps(model or {}, sort_keys=True)
    return (row["backbone"], row.get("pipeline"), row["frames"], row["dataset"], model_key)


def _group(rows: list[dict[str, Any]], group_by: Sequence[str], sort: str, agg: Agg, lower: bool,
           value_columns: Sequence[str]) -> list[dict[str, Any]]:
    """Collapse rows by ``group_by``: the best member (``best``), or means with std (``mean``).

    A ``mean`` group also gets the 95 % bootstrap interval of the sort metric over its seeds
    (``<sort>_ci_low``/``_ci_high``) and ``p_vs_baseline``: the p-value of a paired test (same seeds) of
    the sort metric against the unpruned trials of the same model among ``rows`` (``None`` for the
    baseline itself, without shared seeds, or when the baseline is not among the rows).
    """
    from results.stats import compare, summarize

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[g] for g in group_by)].append(r)
    baselines: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("pruner") == "none" and r.get(sort) is not None:
            baselines[_baseline_of(r)].append(r)
    out = []
    for key, members in groups.items():
        scored = [m for m in members if m.get(sort) is not None]
        if agg == "best":
            pick = (min if lower else max)(scored, key=lambda m: m[sort]) if scored else members[0]
            out.append({**pick, "n": len(members)})
            continue
        row: dict[str, Any] = dict(zip(group_by, key, strict=True))
        row["n"] = len(members)
        for c in value_columns:
            values = [float(m[c]) for m in members if m.get(c) is not None]
            if not values:
                row[c] = row[f"{c}_std"] = None
                continue
            row[c] = statistics.fmean(values)
            row[f"{c}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        seeds = seed_values(scored, sort)
        summary = summarize(list(seeds.values())) if seeds else None
        row[f"{sort}_ci_low"] = summary.ci_low if summary else None
        row[f"{sort}_ci_high"] = summary.ci_high if summary else None
        base = baselines.get(_baseline_of(members[0]), [])
        is_base = all(m.get("pruner") == "none" for m in members)
        row["p_vs_baseline"] = None if is_base or not base or not seeds else \
            compare(seeds, seed_values(base, sort)).p_value
        row["trial_keys"] = ",".join(sorted(m["trial_key"] for m in members))
        row["latency_contended"] = any(m.get("latency_contended") for m in members)  # a mean of marked latencies
        out.append(row)
    return out


def leaderboard(engine: Engine, filters: Mapping[str, Sequence[Any]] | None = None, campaign: Campaigns = None,
                status: Sequence[str] | None = None, sort: str = "mpjpe", split: str = "test", action: str = "avg",
                descending: bool | None = None, top: int | None = None, group_by: Sequence[str] | None = None,
                agg: Agg = "best", lean: bool = False) -> list[dict[str, Any]]:
    """Trials ranked by ``sort`` with cost and speed-ups (module docstring) next to accuracy.

    ``group_by`` axes collapse trials: ``best`` keeps each group's best trial, ``mean`` averages every
    numeric column (with ``<column>_std``, sample std, 0 for one trial). ``descending`` defaults to the
    metric's direction. Missing values sort last. ``lean`` rows carry only :data:`LEAN_COLUMNS` (no
    provenance, history or settings other than the model's): several times cheaper over many trials.
    """
    check_axes(list(filters or {}), "filter axis")
    group_by = check_axes(group_by or [], "group-by axis")
    if agg not in ("best", "mean"):
        raise unknown("aggregation", agg, ["best", "mean"])
    _check_sort(engine, sort)
    check_split_action(engine, split, action)
    check_campaign(engine, campaign)
    lower = lower_is_better(sort)
    desc = (not lower) if descending is None else descending
    metrics = list(dict.fromkeys([*DEFAULT_METRICS, *([sort] if sort not in (*COST_COLUMNS, *DERIVED_COLUMNS)
                                                       else [])]))
    in_sql = sort if sort not in DERIVED_COLUMNS else None
    limit = top if (top is not None and not group_by and in_sql is not None) else None
    rows = fetch_trials(engine, filters=filters, campaign=campaign, status=status, metrics=metrics, split=split,
                        action=action, sort=in_sql, descending=desc, limit=limit,
                        columns=LEAN_COLUMNS if lean or (group_by and agg == "mean") else _ROW_COLUMNS)
    rows = add_speedups(engine, rows)
    for r in rows:
        for k in ("model_json", "train_json", "data_json", "package_versions"):
            if k in r:
                r[k.removesuffix("_json")] = json.loads(r.pop(k) or "{}")
    if group_by:
        rows = _group(rows, group_by, sort, agg, lower, [*metrics, *COST_COLUMNS, *DERIVED_COLUMNS])
    if group_by or in_sql is None:
        present = [r for r in rows if r.get(sort) is not None]
        present.sort(key=lambda r: r[sort], reverse=desc)
        rows = present + [r for r in rows if r.get(sort) is None]
    return rows[:top] if top is not None else rows
