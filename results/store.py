"""The leaderboard's write side: the orchestrator's single writer codes against :class:`LeaderboardStore`.

Every write is one short transaction of ``INSERT ... ON CONFLICT`` statements (SQLite or PostgreSQL
dialect), retried while the database is locked, so many processes may write one file at once.
A complete row is never replaced by a failed, diverged or running one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from h2ot_core.contracts import TrialResult, TrialSpec
from results.db import make_engine, mask_url, resolve_url, retry_locked, retry_window_s
from results.errors import ResultsError, unknown
from results.schema import Campaign, CampaignTrial, Metric, Trial

log = logging.getLogger(__name__)

_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# Columns an upsert must not touch on an existing row.
_KEEP_ON_UPDATE = frozenset({"id", "trial_key", "created_at", "started_at"})
# Provenance keys that have their own columns; the rest are stored as package_versions JSON.
_PROVENANCE_COLUMNS = {"git_sha": "git_sha", "device": "device", "data_fingerprint": "data_fingerprint"}
# Chunk size for ``IN (...)`` lookups: stays under SQLite's bound-parameter limit.
_CHUNK = 500


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


def _spec_of(result: TrialResult) -> TrialSpec:
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
    cols = {**spec_columns(spec), "status": result.status, "error": result.error,
            "selection": result.selection or spec.selection, "best_epoch": result.best_epoch,
            "epochs_run": int(result.epochs_run), "checkpoint_uri": result.checkpoint_uri,
            "resumed_from_epoch": int(result.resumed_from_epoch),
            "torch_version": prov.pop("torch", None)}
    for key, column in _PROVENANCE_COLUMNS.items():
        value = prov.pop(key, None)
        cols[column] = None if value is None else str(value)
    cols["package_versions"] = _json(prov)
    cols["history_json"] = _json(result.history) if result.history else None
    cost = result.cost
    for column in ("params", "gflops", "gflops_total", "latency_ms", "latency_batch", "latency_device",
                   "latency_contended"):
        cols[column] = getattr(cost, column) if cost else None
    stamp = now()
    cols.update(created_at=stamp, started_at=stamp, finished_at=None if result.status == "running" else stamp)
    return cols


class LeaderboardStore:
    """Writes and status lookups on the leaderboard at ``url`` (default: see :func:`results.db.resolve_url`)."""

    def __init__(self, url: str | None = None):
        self._url = resolve_url(url)
        self.engine = make_engine(self._url)
        self._insert = _INSERTS[self.engine.dialect.name]

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return mask_url(self._url)

    def __repr__(self) -> str:
        return f"LeaderboardStore({self.url!r})"

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """``fn`` in one transaction, retried while the database is locked, and while it cannot be reached
        for up to ``$H2OT_DB_RETRY_S`` (a server restart); then :class:`results.db.DatabaseUnavailable`."""
        def attempt() -> Any:
            with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
                return fn(conn)

        return retry_locked(attempt, label=self.url, window_s=retry_window_s())

    # -- campaigns -------------------------------------------------------------------------------------
    def ensure_campaign(self, name: str, *, grid_path: str = "", grid_yaml: str = "", version: int = 1,
                        metric: str = "mpjpe", mode: str = "min", git_sha: str | None = None,
                        ray_job_id: str | None = None, storage: str | None = None) -> int:
        """The id of campaign ``name``, created if new (an existing campaign's grid and SHA are refreshed;
        its Ray job id and storage only when given)."""
        values = dict(name=name, grid_path=grid_path, grid_yaml=grid_yaml, version=version, metric=metric,
                      mode=mode, git_sha=git_sha, created_at=now(), ray_job_id=ray_job_id, storage=storage)

        def write(conn: Connection) -> int:
            stmt = self._insert(Campaign).values(values)
            refresh = {k: stmt.excluded[k] for k in ("grid_path", "grid_yaml", "version", "metric", "mode")}
            for kept in ("git_sha", "ray_job_id", "storage"):
                refresh[kept] = func.coalesce(stmt.excluded[kept], getattr(Campaign, kept))
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=refresh))
            return conn.execute(select(Campaign.id).where(Campaign.name == name)).scalar_one()

        return self._write(write)

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
    def mark_running(self, spec: TrialSpec, campaign: str) -> None:
        """Record ``spec`` as running in ``campaign`` (a complete row stays complete, and is only linked)."""
        stamp = now()
        values = {**spec_columns(spec), "status": "running", "created_at": stamp, "started_at": stamp}

        def write(conn: Connection) -> None:
            stmt = self._insert(Trial).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["trial_key"],
                set_={"status": "running", "error": None, "started_at": stamp, "finished_at": None},
                where=Trial.status != "complete",
            )
            conn.execute(stmt)
            tid = conn.execute(select(Trial.id).where(Trial.trial_key == spec.trial_key)).scalar_one()
            self._link_ids(conn, campaign, [tid])

        self._write(write)

    def upsert_result(self, result: TrialResult, *, campaign: str | None = None,
                      mlflow_run_id: str | None = None) -> None:
        """Insert or update the row of ``result.trial_key`` and replace its metric rows.

        Idempotent; a complete row is only ever replaced by another complete result.
        """
        spec = _spec_of(result)
        values = {**result_columns(result, spec), "mlflow_run_id": mlflow_run_id}
        metrics = {(m.name, m.split, m.action): m for m in result.metrics}  # last record of a key wins

        def write(conn: Connection) -> None:
            stmt = self._insert(Trial).values(values)
            update = {k: stmt.excluded[k] for k in values if k not in _KEEP_ON_UPDATE}
            update["mlflow_run_id"] = func.coalesce(stmt.excluded.mlflow_run_id, Trial.mlflow_run_id)
            update["started_at"] = func.coalesce(Trial.started_at, stmt.excluded.started_at)
            if campaign is not None:
                update["git_sha"] = func.coalesce(stmt.excluded.git_sha, Trial.git_sha)
            stmt = stmt.on_conflict_do_update(
                index_elements=["trial_key"], set_=update,
                where=or_(Trial.status != "complete", stmt.excluded.status == "complete"),
            ).returning(Trial.id)
            written = conn.execute(stmt).scalar()
            if written is not None:
                conn.execute(delete(Metric).where(Metric.trial_id == written))
                if metrics:
                    conn.execute(Metric.__table__.insert(), [
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

        self._write(write)

    def _fill_git_sha(self, conn: Connection, trial_id: int, campaign: str) -> None:
        """A trial whose worker had no git checkout takes the SHA its campaign's driver recorded."""
        sha = select(Campaign.git_sha).where(Campaign.name == campaign).scalar_subquery()
        conn.execute(Trial.__table__.update().where(and_(Trial.id == trial_id, Trial.git_sha.is_(None)))
                     .values(git_sha=sha))

    # -- reads -----------------------------------------------------------------------------------------
    def keys_with_status(self, trial_keys: Iterable[str], statuses: Iterable[str] = ("complete",)) -> set[str]:
        """The subset of ``trial_keys`` whose rows have one of ``statuses``."""
        keys, wanted = sorted(set(trial_keys)), sorted(set(statuses))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(keys), _CHUNK):
                found.update(conn.execute(select(Trial.trial_key).where(
                    Trial.trial_key.in_(keys[i:i + _CHUNK]), Trial.status.in_(wanted))).scalars())
        return found

    def trial_values(self, trial_keys: Iterable[str], split: str = "test") -> dict[str, dict[str, Any]]:
        """``trial_key -> {"status", cost columns, metric name -> value}`` (average over actions only)."""
        keys = sorted(set(trial_keys))
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i:i + _CHUNK]
                for row in conn.execute(select(Trial.trial_key, Trial.status, Trial.params, Trial.gflops,
                                               Trial.gflops_total, Trial.latency_ms)
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
