"""The leaderboard schema (SQLAlchemy 2 declarative models).

Axes are real columns so queries can filter and group on them; metrics are long format
(one row per name, split and action) so a new metric never needs a migration. Derived columns
``pipeline``, ``tokens``, ``layer`` and ``stages`` are computed from the spec when a row is written,
so table specs can pivot on the token count or the pruning layer directly.

These models must equal the head revision of :mod:`results.migrations` (a test compares them): a
schema change here needs a new revision there, which upgrades existing databases in place.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: how a trial scored with the official protocol reads in its canonical spec JSON (``evaluate`` holds only the
#: protocol, and the default ``real_frames`` is left out of it): the ``protocol`` of a row needs no column
OFFICIAL_PROTOCOL_JSON = '"evaluate":{"protocol":"official"}'


class Base(DeclarativeBase):
    """Declarative base: ``float`` maps to a double, ``datetime`` to a naive (UTC) timestamp."""


class Campaign(Base):
    """One named run of a grid; trials are shared between campaigns through ``campaign_trials``."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    grid_path: Mapped[str] = mapped_column(Text, default="")
    grid_yaml: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    metric: Mapped[str] = mapped_column(String(64), default="mpjpe")
    mode: Mapped[str] = mapped_column(String(8), default="min")
    git_sha: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    ray_job_id: Mapped[str | None] = mapped_column(String(128))
    storage: Mapped[str | None] = mapped_column(Text)
    #: the grid's ``budget.max_device_hours`` and ``budget.price_per_device_hour`` (``NULL``: none given)
    max_device_hours: Mapped[float | None]
    price_per_device_hour: Mapped[float | None]


class Trial(Base):
    """One trained and evaluated configuration, keyed by ``trial_key`` (the spec's content hash).

    Timestamps are naive UTC. ``gflops`` is per clip in the papers' convention; ``latency_ms`` is the
    median batch-1 CPU forward time (``None`` when not measured).
    """

    __tablename__ = "trials"
    __table_args__ = (
        Index("ix_trials_axes", "backbone", "dataset", "frames", "pruner", "recoverer"),
        Index("ix_trials_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_key: Mapped[str] = mapped_column(String(64), unique=True)
    backbone: Mapped[str] = mapped_column(String(64))
    pruner: Mapped[str] = mapped_column(String(64))
    recoverer: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(String(128))
    frames: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    pipeline: Mapped[str] = mapped_column(String(16))
    tokens: Mapped[int | None] = mapped_column(Integer)
    layer: Mapped[int | None] = mapped_column(Integer)
    stages: Mapped[int] = mapped_column(Integer, default=0)
    model_json: Mapped[str] = mapped_column(Text, default="{}")
    train_json: Mapped[str] = mapped_column(Text, default="{}")
    data_json: Mapped[str] = mapped_column(Text, default="{}")
    spec_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    #: why a ``stopped`` trial stopped (``StopReason``: user, asha, budget, interrupted); ``NULL`` otherwise
    stop_reason: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    selection: Mapped[str] = mapped_column(String(32), default="last_epoch")
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[int | None] = mapped_column(BigInteger)
    gflops: Mapped[float | None]
    gflops_total: Mapped[float | None]
    latency_ms: Mapped[float | None]
    latency_batch: Mapped[int | None] = mapped_column(Integer)
    latency_device: Mapped[str | None] = mapped_column(String(64))
    latency_contended: Mapped[bool | None] = mapped_column(Boolean)
    precision: Mapped[str] = mapped_column(String(8), default="fp32", server_default="fp32")
    resumed_from_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    git_sha: Mapped[str | None] = mapped_column(String(64))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(64))
    data_fingerprint: Mapped[str | None] = mapped_column(String(128))
    package_versions: Mapped[str] = mapped_column(Text, default="{}")
    #: what running the trial cost (:class:`h2ot_core.contracts.Usage`; ``NULL`` on rows written before 0006)
    device_seconds_train: Mapped[float | None]
    device_seconds_eval: Mapped[float | None]
    device_hours: Mapped[float | None]
    clips_per_s: Mapped[float | None]
    peak_memory_mb: Mapped[float | None]
    peak_memory_kind: Mapped[str | None] = mapped_column(String(32))
    device_name: Mapped[str | None] = mapped_column(String(128))
    #: per-epoch reports (JSON list), kept so MLflow can be backfilled after a tracking outage
    history_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @hybrid_property
    def protocol(self) -> str:
        """``official`` or ``real_frames``: the trial's ``evaluate.protocol``, read from ``spec_json`` (in SQL too,
        so rows filter, group and sort on it like on a column)."""
        return "official" if OFFICIAL_PROTOCOL_JSON in (self.spec_json or "") else "real_frames"

    @protocol.inplace.expression
    @classmethod
    def _protocol_expression(cls) -> ColumnElement[str]:
        return case((cls.spec_json.contains(OFFICIAL_PROTOCOL_JSON), "official"), else_="real_frames").label("protocol")


class CampaignTrial(Base):
    """Membership: a campaign that reuses another campaign's complete trial links to the same row."""

    __tablename__ = "campaign_trials"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)


class Metric(Base):
    """One number: ``mpjpe`` on split ``test`` for action ``avg`` (or ``Walking``, ...)."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("trial_id", "name", "split", "action", name="uq_metrics_trial_name_split_action"),
        # the leaderboard joins one (name, split, action) to trials and sorts on value
        Index("ix_metrics_lookup", "name", "split", "action", "trial_id", "value"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), default="avg")
    value: Mapped[float]
    epoch: Mapped[int | None] = mapped_column(Integer)


class Claim(Base):
    """Who trains a trial right now: one row per claimed ``trial_key`` (or ``study/<campaign>`` for a search's
    study), owned by one campaign run (``run_id``: :class:`CampaignRun`) until ``lease_until`` (naive UTC).

    A driver renews its leases while it runs and deletes its rows when it ends; a row whose lease has passed
    belongs to a driver that is gone, and another driver may take it over.
    """

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_run_id", "run_id"),)
    trial_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    lease_until: Mapped[datetime]
    claimed_at: Mapped[datetime]


class CampaignRun(Base):
    """One launch of a campaign (``h2ot campaign run``): its grid (path and content hash), host, process and
    times; ``outcome`` (``complete``, ``failed``, ``interrupted`` ...) once it ended, ``NULL`` while it runs or
    after its driver was killed."""

    __tablename__ = "campaign_runs"
    __table_args__ = (Index("ix_campaign_runs_campaign", "campaign"),)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(200))
    grid_path: Mapped[str] = mapped_column(Text, default="")
    grid_hash: Mapped[str] = mapped_column(String(64), default="")
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
