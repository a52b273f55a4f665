"""Columns for cluster campaigns and devices, and ``model_json`` without the pipeline.

* ``trials.resumed_from_epoch``: the epoch a trial's last run continued from (0: it ran through).
* ``trials.precision``: ``fp32`` / ``bf16`` / ``fp16`` (``train.precision``; every older trial is fp32).
* ``trials.latency_batch``, ``latency_device``, ``latency_contended``: how ``latency_ms`` was measured
  (batch size, device name, and whether other trials shared the CPU while it was timed); unknown for
  older rows, whose figure was a batch-1 CPU median.
* ``campaigns.ray_job_id`` and ``campaigns.storage``: the Ray job a submitted campaign runs as, and
  where its checkpoints and models live.
* ``trials.model_json`` loses its ``pipeline`` key: the pipeline has its own column (and spec field);
  leaving it in older rows would keep them from matching their baselines, which now compare the
  ``pipeline`` column and ``model_json`` separately.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_trials = sa.table("trials", sa.column("id", sa.Integer), sa.column("model_json", sa.Text))


def _strip_pipeline() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_trials.c.id, _trials.c.model_json)
                        .where(_trials.c.model_json.contains('"pipeline"'))).all()
    for row_id, text in rows:
        model = json.loads(text or "{}")
        if model.pop("pipeline", None) is not None:
            conn.execute(_trials.update().where(_trials.c.id == row_id)
                         .values(model_json=json.dumps(model, sort_keys=True, separators=(",", ":"))))


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("resumed_from_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("precision", sa.String(8), nullable=False, server_default="fp32"))
        batch.add_column(sa.Column("latency_batch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_device", sa.String(64), nullable=True))
        batch.add_column(sa.Column("latency_contended", sa.Boolean(), nullable=True))
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("ray_job_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("storage", sa.Text(), nullable=True))
    _strip_pipeline()


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("storage")
        batch.drop_column("ray_job_id")
    with op.batch_alter_table("trials") as batch:
        for column in ("latency_contended", "latency_device", "latency_batch", "precision", "resumed_from_epoch"):
            batch.drop_column(column)
