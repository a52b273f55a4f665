"""Claims with leases, and one row per campaign launch (issue 20).

* ``claims``: who trains a trial right now. ``trial_key`` (primary key; also ``study/<campaign>`` for a
  search's study), the owner (``campaign``, ``run_id``, ``host``, ``pid``), ``lease_until`` and ``claimed_at``
  (naive UTC). A driver claims a trial with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the lease expired or
  the row is its own, renews its leases while it runs and deletes them when it ends.
* ``campaign_runs``: one row per launch of a campaign (``run_id`` primary key, ``campaign``, ``grid_path``,
  ``grid_hash``, ``host``, ``pid``, ``started_at``, ``ended_at``, ``outcome``).

New tables only: every existing row is kept. Empty at first (a database upgraded while no driver runs has no
live claim).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("trial_key", sa.String(255), primary_key=True),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_claims_run_id", "claims", ["run_id"])
    op.create_table(
        "campaign_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("grid_path", sa.Text(), nullable=False),
        sa.Column("grid_hash", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
    )
    op.create_index("ix_campaign_runs_campaign", "campaign_runs", ["campaign"])


def downgrade() -> None:
    op.drop_index("ix_campaign_runs_campaign", table_name="campaign_runs")
    op.drop_table("campaign_runs")
    op.drop_index("ix_claims_run_id", table_name="claims")
    op.drop_table("claims")
