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
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from h2ot_core.contracts import STATUSES
from results.queries import AXES, filtered
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
        trial_s: device-seconds of each finished (complete, diverged, stopped, failed) trial.
    """

    name: str
    grid_path: str
    grid_yaml: str
    created_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    updated_at: datetime | None = None
    device_s: float = 0.0
    trial_s: list[float] = field(default_factory=list)

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
        """Seconds until the unfinished trials are done, while any runs: their number times the median
        finished trial's device time, spread over the trials running at once; ``None`` when nothing runs or
        no trial finished yet."""
        running = self.counts.get("running", 0)
        left = sum(self.counts.get(s, 0) for s in UNFINISHED)
        if not running or not self.trial_s:
            return None
        return left * statistics.median(self.trial_s) / running


def _device_seconds(row: Mapping[str, Any], now: datetime) -> float | None:
    recorded = [row[c] for c in DEVICE_SECONDS_COLUMNS if row.get(c) is not None]
    if recorded:
        return float(sum(recorded))
    start = row["started_at"]
    if start is None:
        return None
    end = row["finished_at"] or (now if row["status"] == "running" else None)
    return None if end is None else max((end - start).total_seconds(), 0.0)


def campaign_activity(engine: Engine, names: Sequence[str] | None = None,
                      now: datetime | None = None) -> list[CampaignActivity]:
    """Every campaign (or those in ``names``), by name, with its trials' counts and times."""
    now = now or utc_now()
    head = select(Campaign.id, Campaign.name, Campaign.grid_path, Campaign.grid_yaml, Campaign.created_at)
    trials = (select(CampaignTrial.campaign_id, Trial.status, Trial.started_at, Trial.finished_at,
                     *(getattr(Trial, c) for c in DEVICE_SECONDS_COLUMNS))
              .join(Trial, Trial.id == CampaignTrial.trial_id))
    if names is not None:
        head = head.where(Campaign.name.in_(list(names)))
        trials = trials.join(Campaign, Campaign.id == CampaignTrial.campaign_id).where(
            Campaign.name.in_(list(names)))
    with engine.connect() as conn:
        found = {cid: CampaignActivity(name, path or "", grid or "", created)
                 for cid, name, path, grid, created in conn.execute(head.order_by(Campaign.name))}
        rows = conn.execute(trials).mappings().all()
    for row in rows:
        act = found.get(row["campaign_id"])
        if act is None:
            continue
        act.counts[row["status"]] = act.counts.get(row["status"], 0) + 1
        for stamp in (row["started_at"], row["finished_at"]):
            if stamp is not None and (act.updated_at is None or stamp > act.updated_at):
                act.updated_at = stamp
        if row["started_at"] is not None and (act.started_at is None or row["started_at"] < act.started_at):
            act.started_at = row["started_at"]
        seconds = _device_seconds(row, now)
        if seconds is not None:
            act.device_s += seconds
            if row["status"] not in UNFINISHED:
                act.trial_s.append(seconds)
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
    """``axis -> sorted distinct values`` among ``campaign``'s trials (``None`` listed first)."""
    stmt = filtered(select(*(getattr(Trial, a) for a in AXES)).distinct(), campaign=campaign)
    seen: dict[str, set[Any]] = defaultdict(set)
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            for axis, value in zip(AXES, row, strict=True):
                seen[axis].add(value)
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


def campaign_grid(engine: Engine, campaign: str) -> str | None:
    """The resolved grid YAML ``campaign`` stored (``""`` when it stored none), ``None`` for no such campaign."""
    with engine.connect() as conn:
        found = conn.execute(select(Campaign.grid_yaml).where(Campaign.name == campaign)).first()
    return None if found is None else (found[0] or "")
