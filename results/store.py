"""The leaderboard's write side: the orchestrator's single writer codes against :class:`LeaderboardStore`.

Every write is one short transaction of ``INSERT ... ON CONFLICT`` statements (SQLite or PostgreSQL
dialect), retried while the database is locked, so many processes may write one file at once.
A complete row is never replaced by a failed, diverged or running one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from h2ot_core.contracts import MetricRecord, StopReason, TrialResult, TrialSpec, TrialStatus
from results.claims import ClaimsMixin
from results.db import make_engine, retry_locked
from results.errors import unknown
from results.rows import COST_COLUMNS, now, result_columns, result_of, spec_columns, spec_of, status_where
from results.schema import Campaign, CampaignTrial, Metric, Trial

log = logging.getLogger(__name__)

_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# Columns an upsert must not touch on an existing row.
_KEEP_ON_UPDATE = frozenset({"id", "trial_key", "created_at", "started_at"})
# Chunk size for ``IN (...)`` lookups: stays under SQLite's bound-parameter limit.
_CHUNK = 500


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(set(keys))
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i:i + _CHUNK]


class LeaderboardStore(ClaimsMixin):
    """Writes and status lookups on the leaderboard at ``url`` (default: see :func:`results.db.resolve_url`),
    and the drivers' claims (:mod:`results.claims`)."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None):
        """``engine``: an engine already open (a read-only one from :func:`results.db.open_read_only`, for a
        command that only reads); otherwise one for ``url``, the schema created or upgraded."""
        self.engine = engine if engine is not None else make_engine(url)
        #: the database URL with any password masked (for logs, reprs and messages)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._insert = _INSERTS[self.engine.dialect.name]

    def __repr__(self) -> str:
        return f"LeaderboardStore({self.url!r})"

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """``fn`` in one transaction, retried while the database is locked, and while it cannot be reached
        for up to ``$H2OT_DB_RETRY_S`` (a server restart); then :class:`results.db.DatabaseUnavailable`."""
        def attempt() -> Any:
            with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
                return fn(conn)

        return retry_locked(attempt, label=self.url, unreachable=True)

    # -- campaigns -------------------------------------------------------------------------------------
    def ensure_campaign(self, name: str, *, grid_path: str = "", grid_yaml: str = "", version: int = 1,
                        metric: str = "mpjpe", mode: str = "min", git_sha: str | None = None,
                        ray_job_id: str | None = None, storage: str | None = None,
                        max_device_hours: float | None = None, price_per_device_hour: float | None = None) -> int:
        """The id of campaign ``name``, created if new (an existing campaign's grid, budget and SHA are refreshed;
        its Ray job id and storage only when given)."""
        values = dict(name=name, grid_path=grid_path, grid_yaml=grid_yaml, version=version, metric=metric,
                      mode=mode, git_sha=git_sha, created_at=now(), ray_job_id=ray_job_id, storage=storage,
                      max_device_hours=max_device_hours, price_per_device_hour=price_per_device_hour)
        return self._write(lambda conn: self._ensure_campaign(conn, values))

    def begin_campaign(self, name: str, trial_keys: Iterable[str], *, keep: Iterable[str],
                       keep_stop_reasons: Iterable[str] | None = None, **campaign: Any) -> dict[str, TrialStatus]:
        """The start of a campaign run, in one transaction: the campaign's row (created, or refreshed as by
        :meth:`ensure_campaign` with ``campaign``'s fields), and the trials of ``trial_keys`` the record already
        holds in a ``keep`` status (a ``stopped`` one only for one of ``keep_stop_reasons``) linked to it.
        Returns those kept trials' statuses: the rest is the run's to train."""
        values = dict(name=name, created_at=now(), **campaign)
        where = status_where(keep, keep_stop_reasons)

        def write(conn: Connection) -> dict[str, TrialStatus]:
            self._ensure_campaign(conn, values)
            kept: dict[str, tuple[int, TrialStatus]] = {}
            if where is not None:
                for chunk in _chunks(trial_keys):
                    kept.update({k: (i, TrialStatus(s)) for i, k, s in conn.execute(
                        select(Trial.id, Trial.trial_key, Trial.status).where(Trial.trial_key.in_(chunk), where))})
            self._link_ids(conn, name, [i for i, _ in kept.values()])
            return {k: s for k, (_, s) in kept.items()}

        return self._write(write)

    def _ensure_campaign(self, conn: Connection, values: Mapping[str, Any]) -> int:
        stmt = self._insert(Campaign).values(dict(values))
        refresh = {k: stmt.excluded[k] for k in ("grid_path", "grid_yaml", "version", "metric", "mode",
                                                 "max_device_hours", "price_per_device_hour") if k in values}
        for kept in ("git_sha", "ray_job_id", "storage"):
            refresh[kept] = func.coalesce(stmt.excluded[kept], getattr(Campaign, kept))
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=refresh))
        return conn.execute(select(Campaign.id).where(Campaign.name == values["name"])).scalar_one()

    def _campaign_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(Campaign.id).where(Campaign.name == name)).scalar()
        if found is not None:
            return found
        conn.execute(self._insert(Campaign).values(name=name, created_at=now())
                     .on_conflict_do_nothing(index_elements=["name"]))
        return conn.execute(select(Campaign.id).where(Campaign.name == name)).scalar_one()

    def _link_ids(self, conn: Connection, campaign: str, trial_ids: list[int]) -> None:
        if not trial_ids:
            return
        cid = self._campaign_id(conn, campaign)
        rows = [{"campaign_id": cid, "trial_id": t} for t in trial_ids]
        conn.execute(self._insert(CampaignTrial).on_conflict_do_nothing(), rows)

    def link(self, campaign: str, trial_keys: Iterable[str]) -> None:
        """Add existing trials (e.g. complete ones reused from other campaigns) to ``campaign``."""
        keys = sorted(set(trial_keys))

        def write(conn: Connection) -> None:
            ids: list[int] = []
            for i in range(0, len(keys), _CHUNK):
                ids += conn.execute(select(Trial.id).where(Trial.trial_key.in_(keys[i:i + _CHUNK]))).scalars()
            self._link_ids(conn, campaign, ids)

        if keys:
            self._write(write)

    # -- trials ----------------------------------------------------------------------------------------
    def mark_running(self, spec: TrialSpec, campaign: str, *, run_id: str | None = None) -> bool:
        """Record ``spec`` as running in ``campaign`` (a complete row stays complete, and is only linked).

        With ``run_id`` (the driver's claim owner), only while that run holds the trial's claim; returns whether
        the row was written."""
        stamp = now()
        running = str(TrialStatus.RUNNING)
        values = {**spec_columns(spec), "status": running, "created_at": stamp, "started_at": stamp}

        def write(conn: Connection) -> bool:
            if run_id is not None and not self.holds(conn, spec.trial_key, run_id):
                return False
            stmt = self._insert(Trial).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["trial_key"],
                set_={"status": running, "error": None, "stop_reason": None, "started_at": stamp,
                      "finished_at": None},
                where=Trial.status != TrialStatus.COMPLETE,
            )
            conn.execute(stmt)
            tid = conn.execute(select(Trial.id).where(Trial.trial_key == spec.trial_key)).scalar_one()
            self._link_ids(conn, campaign, [tid])
            return True

        return bool(self._write(write))

    def upsert_result(self, result: TrialResult, *, campaign: str | None = None,
                      mlflow_run_id: str | None = None, run_id: str | None = None) -> bool:
        """Insert or update the row of ``result.trial_key`` and replace its metric rows.

        Idempotent; a complete row is only ever replaced by another complete result. With ``run_id`` (the
        driver's claim owner) nothing is written unless that run still holds the trial's claim: returns whether
        the result was published (the transaction reads the claim, so a takeover cannot slip in between).
        """
        spec = spec_of(result)
        values = {**result_columns(result, spec), "mlflow_run_id": mlflow_run_id}
        metrics = {(m.name, m.split, m.action): m for m in result.metrics}  # last record of a key wins

        def write(conn: Connection) -> bool:
            if run_id is not None and not self.holds(conn, result.trial_key, run_id):
                return False
            stmt = self._insert(Trial).values(values)
            update = {k: stmt.excluded[k] for k in values if k not in _KEEP_ON_UPDATE}
            update["mlflow_run_id"] = func.coalesce(stmt.excluded.mlflow_run_id, Trial.mlflow_run_id)
            update["started_at"] = func.coalesce(Trial.started_at, stmt.excluded.started_at)
            if campaign is not None:
                update["git_sha"] = func.coalesce(stmt.excluded.git_sha, Trial.git_sha)
            stmt = stmt.on_conflict_do_update(
                index_elements=["trial_key"], set_=update,
                where=or_(Trial.status != TrialStatus.COMPLETE, stmt.excluded.status == TrialStatus.COMPLETE),
            ).returning(Trial.id)
            written = conn.execute(stmt).scalar()
            if written is not None:
                conn.execute(delete(Metric).where(Metric.trial_id == written))
                if metrics:
                    conn.execute(insert(Metric), [
                        {"trial_id": written, "name": m.name, "split": m.split, "action": m.action,
                         "value": float(m.value), "epoch": m.epoch} for m in metrics.values()])
                if values["git_sha"] is None and campaign is not None:
                    self._fill_git_sha(conn, written, campaign)
            else:
                log.info("trial %s is complete; kept it over the %s result", result.trial_key, result.status)
            if campaign is not None:
                tid = written or conn.execute(
                    select(Trial.id).where(Trial.trial_key == result.trial_key)).scalar_one()
                self._link_ids(conn, campaign, [tid])
            return True

        return bool(self._write(write))

    def _fill_git_sha(self, conn: Connection, trial_id: int, campaign: str) -> None:
        """A trial whose worker had no git checkout takes the SHA its campaign's driver recorded."""
        sha = select(Campaign.git_sha).where(Campaign.name == campaign).scalar_subquery()
        conn.execute(update(Trial).where(and_(Trial.id == trial_id, Trial.git_sha.is_(None)))
                     .values(git_sha=sha))

    def end_running_trials(self, campaign: str, reason: StopReason, *, since: datetime | None = None
                           ) -> list[tuple[str, str | None]]:
        """Trials of ``campaign`` still ``running`` become ``stopped`` for ``reason`` (their driver is gone);
        returns each one's ``(trial_key, mlflow_run_id)``. With ``since``, so do the trials its driver itself
        recorded stopped as ``interrupted`` from then on: the SIGTERM that stopped it was ``reason``'s."""
        in_campaign = (select(CampaignTrial.trial_id).join(Campaign, Campaign.id == CampaignTrial.campaign_id)
                       .where(Campaign.name == campaign))
        running = and_(Trial.id.in_(in_campaign), Trial.status == TrialStatus.RUNNING)
        relabel = None if since is None else and_(
            Trial.id.in_(in_campaign), Trial.status == TrialStatus.STOPPED,
            Trial.stop_reason == StopReason.INTERRUPTED, Trial.finished_at >= since)

        def write(conn: Connection) -> list[tuple[str, str | None]]:
            rows = list(conn.execute(select(Trial.trial_key, Trial.mlflow_run_id).where(running)).all())
            if rows:
                conn.execute(update(Trial).where(running).values(
                    status=str(TrialStatus.STOPPED), stop_reason=str(reason), error=None, finished_at=now()))
            if relabel is not None:
                rows += conn.execute(select(Trial.trial_key, Trial.mlflow_run_id).where(relabel)).all()
                conn.execute(update(Trial).where(relabel).values(stop_reason=str(reason)))
            return [(r.trial_key, r.mlflow_run_id) for r in rows]

        return self._write(write)

    def record_run_ids(self, run_ids: Mapping[str, str]) -> None:
        """Fill the empty ``mlflow_run_id`` of trials the MLflow backfill found or gave a run."""
        def write(conn: Connection) -> None:
            for key, run_id in sorted(run_ids.items()):
                conn.execute(update(Trial).where(and_(Trial.trial_key == key, Trial.mlflow_run_id.is_(None)))
                             .values(mlflow_run_id=run_id))

        if run_ids:
            self._write(write)

    # -- reads -----------------------------------------------------------------------------------------
    def keys_with_status(self, trial_keys: Iterable[str], statuses: Iterable[str] = (TrialStatus.COMPLETE,), *,
                         stop_reasons: Iterable[str] | None = None) -> set[str]:
        """The subset of ``trial_keys`` whose rows have one of ``statuses``; with ``stop_reasons``, a ``stopped``
        row counts only when it stopped for one of them."""
        where = status_where(statuses, stop_reasons)
        found: set[str] = set()
        if where is None:
            return found
        with self.engine.connect() as conn:
            for chunk in _chunks(trial_keys):
                found.update(conn.execute(select(Trial.trial_key).where(Trial.trial_key.in_(chunk), where)).scalars())
        return found

    def trial_statuses(self, trial_keys: Iterable[str]) -> dict[str, TrialStatus]:
        """``trial_key -> status`` of the given trials that have a row."""
        found: dict[str, TrialStatus] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(trial_keys):
                found.update({k: TrialStatus(s) for k, s in conn.execute(
                    select(Trial.trial_key, Trial.status).where(Trial.trial_key.in_(chunk)))})
        return found

    def trial_values(self, trial_keys: Iterable[str], split: str = "test") -> dict[str, dict[str, Any]]:
        """``trial_key -> {"status", cost columns, metric name -> value}`` (average over actions only)."""
        found: dict[str, dict[str, Any]] = {}
        cost = [getattr(Trial, c) for c in COST_COLUMNS]
        with self.engine.connect() as conn:
            for chunk in _chunks(trial_keys):
                for row in conn.execute(select(Trial.trial_key, Trial.status, *cost)
                                        .where(Trial.trial_key.in_(chunk))).mappings():
                    found[row["trial_key"]] = {k: v for k, v in row.items() if k != "trial_key"}
                for key, name, value in conn.execute(
                        select(Trial.trial_key, Metric.name, Metric.value).join(Metric, Metric.trial_id == Trial.id)
                        .where(Trial.trial_key.in_(chunk), Metric.split == split, Metric.action == "avg")):
                    found[key][name] = value
        return found

    def campaign_status(self, name: str) -> dict[str, int]:
        """Trial counts by status for campaign ``name`` (pending trials are known only to the caller)."""
        with self.engine.connect() as conn:
            if conn.execute(select(Campaign.id).where(Campaign.name == name)).scalar() is None:
                known = conn.execute(select(Campaign.name)).scalars().all()
                raise unknown(f"campaign (in leaderboard {self.url})", name, list(known))
            rows = conn.execute(
                select(Trial.status, func.count()).join(CampaignTrial, CampaignTrial.trial_id == Trial.id)
                .join(Campaign, Campaign.id == CampaignTrial.campaign_id).where(Campaign.name == name)
                .group_by(Trial.status)).all()
        return {status: int(n) for status, n in sorted(rows)}

    def trial_status(self, trial_key: str) -> str | None:
        """The stored status of ``trial_key``, or ``None`` when it has no row."""
        with self.engine.connect() as conn:
            return conn.execute(select(Trial.status).where(Trial.trial_key == trial_key)).scalar()

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign's row, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*Campaign.__table__.columns).order_by(Campaign.name)).mappings().all()
        return [dict(r) for r in rows]

    def campaign_row(self, name: str) -> dict[str, Any] | None:
        """The row of campaign ``name`` (``ray_job_id`` included), or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*Campaign.__table__.columns).where(Campaign.name == name)).mappings().first()
        return dict(row) if row is not None else None

    def campaign_results(self, campaign: str) -> tuple[list[TrialResult], str]:
        """Every trial of ``campaign`` as stored (with its per-epoch history), and the MLflow experiment its runs
        belong to (the name of the grid it ran). An unknown campaign is a did-you-mean :class:`ResultsError`."""
        t = Trial.__table__.c
        with self.engine.connect() as conn:
            found = conn.execute(select(Campaign.id, Campaign.grid_yaml).where(Campaign.name == campaign)).first()
            if found is None:
                known = conn.execute(select(Campaign.name).order_by(Campaign.name)).scalars().all()
                raise unknown("campaign (in the leaderboard)", campaign, list(known))
            rows = conn.execute(select(Trial.__table__).join(CampaignTrial, CampaignTrial.trial_id == t.id)
                                .where(CampaignTrial.campaign_id == found.id).order_by(t.trial_key)).mappings().all()
            metrics: dict[int, list[MetricRecord]] = {}
            ids = [r["id"] for r in rows]
            for i in range(0, len(ids), _CHUNK):
                for m in conn.execute(select(Metric.trial_id, Metric.name, Metric.split, Metric.value, Metric.action,
                                             Metric.epoch).where(Metric.trial_id.in_(ids[i:i + _CHUNK]))
                                      .order_by(Metric.id)):
                    metrics.setdefault(m.trial_id, []).append(MetricRecord(m.name, m.split, m.value, m.action,
                                                                           epoch=m.epoch))
        return [result_of(row, metrics.get(row["id"], [])) for row in rows], _stored_experiment(found.grid_yaml, campaign)


def mlflow_experiment(grid_name: str, profile: str | None, campaign: str) -> str:
    """The MLflow experiment of a campaign: the grid's name for the campaign's default name (``grid`` or
    ``grid-profile``: every profile of a grid shares its experiment), else the campaign's own (``--name X``)."""
    default = f"{grid_name}-{profile}" if profile else grid_name
    return grid_name if campaign == default else campaign


def _stored_experiment(grid_yaml: str | None, campaign: str) -> str:
    """:func:`mlflow_experiment` from a campaign's stored resolved grid (no grid: the campaign's name)."""
    try:
        doc = yaml.safe_load(grid_yaml or "") or {}
    except yaml.YAMLError:
        return campaign
    name = doc.get("name") if isinstance(doc, dict) else None
    if not name:
        return campaign
    profile = doc.get("profile")
    return mlflow_experiment(str(name), str(profile) if profile else None, campaign)
