"""Per-epoch history of every trial, so MLflow can be backfilled from the leaderboard.

* ``trials.history_json``: the trial's per-epoch reports (``TrialResult.history``: ``epoch``, ``train_loss``,
  ``test_mpjpe`` ...) as a JSON list; ``h2ot campaign sync`` logs them to MLflow at their epoch steps after a
  tracking outage. Unknown (``NULL``) for trials written before this revision.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("history_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("history_json")
