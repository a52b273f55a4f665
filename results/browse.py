"""Reads a browser needs beyond the CLI's: campaign activity, one trial's whole record, counts, axis values.

The ranked rows, grouped statistics, fronts and tables come from :mod:`results.queries`,
:mod:`results.front` and :mod:`results.tables` (the CLI's functions); this module adds only what those
do not answer: how far each campaign has got (live counts, start, last update, device time), the number of
rows a filter selects (for pagination, through the same :func:`results.queries.filtered` expression), the
values each axis takes in a campaign (the filter choices), and a trial's full row with every metric.

Device time: a trial's device-seconds are the recorded ``DEVICE_SECONDS_COLUMNS`` when the schema has them
(issue 18's migration adds them) and the row holds a value, else its wall-clock time on the device,
``finished_at - started_at`` (``now - started_at`` while it runs). Times are naive UTC, like every timestamp
in the leaderboard.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Engine, case, func, literal, select

from h2ot_core.contracts import STATUSES, lower_is_better
from results.errors import unknown
from results.queries import AXES, COST_COLUMNS, check_campaign, fetch_trials, filtered
from results.schema import Campaign, CampaignTrial, Metric, Trial
from results.store import now as utc_now

#: recorded device-seconds per trial (train, eval), summed when present; absent columns are skipped
DEVICE_SECONDS_COLUMNS: tuple[str, ...] = tuple(c for c in ("device_seconds_train", "device_seconds_eval")
                                                if hasattr(Trial, c))
#: statuses of trials still to finish (they count towards the ETA)
UNFINISHED = ("pending", "running")


@dataclass
class CampaignActivity:
    """How far one campaign has got.

    Attributes:
        counts: status -> stored trials linked to the campaign (``pending`` is not stored: the caller adds
            the planned trials that have no row yet with :meth:`with_pending`).
        started_at: the first trial's start; ``updated_at``: the latest start or finish of a trial.
        device_s: device-seconds spent so far (module docstring), finished and running trials.
        finished_s, finished: device-seconds and number of the finished trials (every status but running and
            pending) that have a time.
    """

    name: str
    grid_path: str
    grid_yaml: str
    created_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    updated_at: datetime | None = None
    device_s: float = 0.0
    finished_s: float = 0.0
    finished: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def device_hours(self) -> float:
        return self.device_s / 3600.0

    def with_pending(self, pending: int) -> CampaignActivity:
        """This activity with ``pending`` planned trials that have no row yet."""
        if pending > 0:
            self.counts["pending"] = self.counts.get("pending", 0) + pending
        return self

    def eta_s(self) -> float | None:
        """Seconds until the unfinished trials are done, while any runs: their number times the mean finished
        trial's device time, spread over the trials running at once; ``None`` when nothing runs or no trial
        finished yet."""
        running = self.counts.get("running", 0)
        left = sum(self.counts.get(s, 0) for s in UNFINISHED)
        if not running or not self.finished:
            return None
        return left * (self.finished_s / self.finished) / running


def _seconds(engine: Engine, now: datetime) -> ColumnElement[Any]:
    """A trial's device-seconds (module docstring) as a SQL expression; NULL when it has none."""
    end = func.coalesce(Trial.finished_at, case((Trial.status == "running", literal(now, DateTime())), else_=None))
    if engine.dialect.name == "sqlite":
        wall: ColumnElement[Any] = (func.julianday(end) - func.julianday(Trial.started_at)) * 86400.0
    else:
        wall = func.extract("epoch", end - Trial.started_at)
    recorded = [getattr(Trial, c) for c in DEVICE_SECONDS_COLUMNS]
    if not recorded:
        return wall
    return func.coalesce(sum(recorded[1:], recorded[0]), wall)


def campaign_activity(engine: Engine, names: Sequence[str] | None = None,
                      now: datetime | None = None) -> list[CampaignActivity]:
    """Every campaign (or those in ``names``), by name, with its trials' counts and times (one grouped query)."""
    seconds = _seconds(engine, now or utc_now())
    head = select(Campaign.id, Campaign.name, Campaign.grid_path, Campaign.grid_yaml, Campaign.created_at)
    trials = (select(CampaignTrial.campaign_id, Trial.status, func.count(), func.min(Trial.started_at),
                     func.max(Trial.started_at), func.max(Trial.finished_at), func.sum(seconds), func.count(seconds))
              .join(Trial, Trial.id == CampaignTrial.trial_id).group_by(CampaignTrial.campaign_id, Trial.status))
    if names is not None:
        head = head.where(Campaign.name.in_(list(names)))
        trials = trials.where(CampaignTrial.campaign_id.in_(
            select(Campaign.id).where(Campaign.name.in_(list(names)))))
    with engine.connect() as conn:
        found = {cid: CampaignActivity(name, path or "", grid or "", created)
                 for cid, name, path, grid, created in conn.execute(head.order_by(Campaign.name))}
        rows = conn.execute(trials).all()
    for cid, status, n, first, last_start, last_finish, total_s, timed in rows:
        act = found.get(cid)
        if act is None:
            continue
        act.counts[status] = int(n)
        stamps = [t for t in (act.updated_at, last_start, last_finish) if t is not None]
        act.updated_at = max(stamps) if stamps else None
        if first is not None and (act.started_at is None or first < act.started_at):
            act.started_at = first
        act.device_s += max(float(total_s or 0.0), 0.0)
        if status not in UNFINISHED:
            act.finished_s += max(float(total_s or 0.0), 0.0)
            act.finished += int(timed)
    return list(found.values())


def campaign_trial_keys(engine: Engine, campaign: str) -> set[str]:
    """The trial keys linked to ``campaign``."""
    stmt = filtered(select(Trial.trial_key), campaign=campaign)
    with engine.connect() as conn:
        return set(conn.execute(stmt).scalars())


def count_trials(engine: Engine, filters: Mapping[str, Sequence[Any]] | None = None, campaign: str | None = None,
                 status: Sequence[str] | None = None) -> int:
    """How many trials the leaderboard's filter (:func:`results.queries.filtered`) selects."""
    stmt = filtered(select(func.count()).select_from(Trial), filters, campaign, status)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def axis_values(engine: Engine, campaign: str | None = None) -> dict[str, list[Any]]:
    """``axis -> sorted distinct values`` among ``campaign``'s trials (``None`` listed first).

    Two narrow queries: the distinct configurations without the seed (few), and the distinct seeds; one query
    over every axis would list nearly every trial, since seeds make each row distinct.
    """
    configs = [a for a in AXES if a != "seed"]
    seen: dict[str, set[Any]] = defaultdict(set)
    with engine.connect() as conn:
        for row in conn.execute(filtered(select(*(getattr(Trial, a) for a in configs)).distinct(), campaign=campaign)):
            for axis, value in zip(configs, row, strict=True):
                seen[axis].add(value)
        seen["seed"] = set(conn.execute(filtered(select(Trial.seed).distinct(), campaign=campaign)).scalars())
    return {a: sorted(seen[a], key=lambda v: (v is not None, str(type(v)), v if v is not None else 0))
            for a in AXES}


def status_counts(engine: Engine, filters: Mapping[str, Sequence[Any]] | None = None,
                  campaign: str | None = None) -> dict[str, int]:
    """``status -> trials`` among the trials the filter selects, in :data:`STATUSES` order."""
    stmt = filtered(select(Trial.status, func.count()).select_from(Trial), filters, campaign).group_by(Trial.status)
    with engine.connect() as conn:
        found = {s: int(n) for s, n in conn.execute(stmt)}
    return {s: found[s] for s in (*STATUSES, *sorted(set(found) - set(STATUSES))) if s in found}


#: JSON columns of a trial row, decoded by :func:`trial_records`
_JSON_COLUMNS = {"model_json": "model", "train_json": "train", "data_json": "data", "spec_json": "spec",
                 "package_versions": "package_versions", "history_json": "history"}


def trial_records(engine: Engine, trial_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``trial_key -> record`` for the keys that exist: every trial column (JSON columns decoded: ``model``,
    ``train``, ``data``, ``spec``, ``package_versions``, ``history``: the per-epoch reports; ``model_json`` kept
    too, as :func:`results.queries.add_speedups` matches baselines on it), ``metrics``
    (``[{name, split, action, value, epoch}]`` by name, split, action) and ``campaigns`` (names)."""
    keys = sorted(set(trial_keys))
    if not keys:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(*Trial.__table__.columns).where(Trial.trial_key.in_(keys))).mappings().all()
        ids = {r["id"]: r["trial_key"] for r in rows}
        metrics = conn.execute(select(Metric.trial_id, Metric.name, Metric.split, Metric.action, Metric.value,
                                      Metric.epoch).where(Metric.trial_id.in_(list(ids)))
                               .order_by(Metric.name, Metric.split, Metric.action)).mappings().all()
        member = conn.execute(select(CampaignTrial.trial_id, Campaign.name)
                              .join(Campaign, Campaign.id == CampaignTrial.campaign_id)
                              .where(CampaignTrial.trial_id.in_(list(ids))).order_by(Campaign.name)).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        rec = {k: v for k, v in r.items() if k not in _JSON_COLUMNS or k == "model_json"}  # the speed-ups' key
        for column, name in _JSON_COLUMNS.items():
            rec[name] = json.loads(r[column]) if r[column] else ({} if column != "history_json" else [])
        rec["metrics"], rec["campaigns"] = [], []
        out[r["trial_key"]] = rec
    for m in metrics:
        out[ids[m["trial_id"]]]["metrics"].append({k: v for k, v in m.items() if k != "trial_id"})
    for trial_id, name in member:
        out[ids[trial_id]]["campaigns"].append(name)
    return out


def plot_rows(engine: Engine, campaign: str, x: str, y: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """The complete trials of ``campaign`` that :func:`results.front.campaign_front` ranks, in its order (by
    ``y``, then key), narrowed to what a plot shows: ``trial_key``, ``fields`` (axes), cost column ``x`` and
    metric ``y``. Pass them to :func:`results.front.front_of` for the same front, several times faster over
    thousands of trials (no provenance, no speed-ups)."""
    check_campaign(engine, campaign)
    if x not in COST_COLUMNS:
        raise unknown("cost column", x, list(COST_COLUMNS))
    if not has_metric(engine, y):
        with engine.connect() as conn:
            raise unknown("metric", y, list(conn.execute(select(Metric.name).distinct()).scalars()))
    return fetch_trials(engine, campaign=campaign, status=["complete"], metrics=[y], sort=y,
                        descending=not lower_is_better(y), columns=("trial_key", *fields, x))


def has_metric(engine: Engine, name: str) -> bool:
    """Whether any trial recorded metric ``name`` (one index probe)."""
    with engine.connect() as conn:
        return conn.execute(select(Metric.id).where(Metric.name == name).limit(1)).first() is not None


def campaign_grid(engine: Engine, campaign: str) -> str | None:
    """The resolved grid YAML ``campaign`` stored (``""`` when it stored none), ``None`` for no such campaign."""
    with engine.connect() as conn:
        found = conn.execute(select(Campaign.grid_yaml).where(Campaign.name == campaign)).first()
    return None if found is None else (found[0] or "")
