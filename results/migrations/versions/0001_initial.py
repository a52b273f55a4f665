"""The leaderboard as the pre-Alembic H2OT Lab created it (``schema_info.schema_version = 1``).

Written out table by table, never from ``Base.metadata``, so this revision stays what it was when
the ORM models change. A database created before migrations existed is stamped at this revision.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.bulk_insert(sa.table("schema_info", sa.column("key"), sa.column("value")),
                   [{"key": "schema_version", "value": "1"}])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("grid_path", sa.Text(), nullable=False),
        sa.Column("grid_yaml", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_key", sa.String(64), nullable=False),
        sa.Column("backbone", sa.String(64), nullable=False),
        sa.Column("pruner", sa.String(64), nullable=False),
        sa.Column("recoverer", sa.String(64), nullable=False),
        sa.Column("schedule", sa.String(128), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(16), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("layer", sa.Integer(), nullable=True),
        sa.Column("stages", sa.Integer(), nullable=False),
        sa.Column("model_json", sa.Text(), nullable=False),
        sa.Column("train_json", sa.Text(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("selection", sa.String(32), nullable=False),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=False),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("params", sa.BigInteger(), nullable=True),
        sa.Column("gflops", sa.Double(), nullable=True),
        sa.Column("gflops_total", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("torch_version", sa.String(64), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("data_fingerprint", sa.String(128), nullable=True),
        sa.Column("package_versions", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("trial_key"),
    )
    op.create_index("ix_trials_axes", "trials", ["backbone", "dataset", "frames", "pruner", "recoverer"])
    op.create_index("ix_trials_status", "trials", ["status"])
    op.create_table(
        "campaign_trials",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "trial_id"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_campaign_trials_trial_id", "campaign_trials", ["trial_id"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("split", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.UniqueConstraint("trial_id", "name", "split", "action", name="uq_metrics_trial_name_split_action"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_metrics_lookup", "metrics", ["name", "split", "action", "trial_id", "value"])


def downgrade() -> None:
    for table in ("metrics", "campaign_trials", "trials", "campaigns", "schema_info"):
        op.drop_table(table)
