"""Why a trial stopped is a column, not error text: ``trials.stop_reason``.

* ``trials.stop_reason`` (``StopReason`` of ``h2ot_core.contracts``: ``user``, ``asha``, ``budget``,
  ``interrupted``; ``NULL`` for a trial that is not ``stopped``). The orchestrator used to tell a trial ended by
  ``h2ot campaign stop`` from one the early-stopping scheduler ended by matching its error text; the backfill
  reads those texts once, here:

  - ``stopped`` with an error starting ``stopped by campaign stop`` (written by ``campaign stop``) → ``user``;
  - ``stopped`` with an error starting ``stopped early`` (the sink's ASHA text, and what 0002 turned into
    ``stopped``) → ``asha``;
  - any other ``stopped`` row keeps ``NULL`` (no such text was ever written; it is treated as cut short, so the
    next run of its grid trains it again, as before).

  Error texts are kept as they were. Every row is kept.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: the error texts the orchestrator wrote before this revision (constants here: migrations import no app code)
USER_STOPPED_TEXT = "stopped by campaign stop"
ASHA_STOPPED_TEXT = "stopped early"

_trials = sa.table("trials", sa.column("status", sa.String), sa.column("error", sa.Text),
                   sa.column("stop_reason", sa.String))


def _starts_with(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    # substr, not LIKE: LIKE ignores case on SQLite but not on PostgreSQL, and treats ``_`` as a wildcard
    return sa.func.substr(column, 1, len(prefix)) == prefix


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("stop_reason", sa.String(16), nullable=True))
    for prefix, reason in ((USER_STOPPED_TEXT, "user"), (ASHA_STOPPED_TEXT, "asha")):
        op.execute(_trials.update().where(_trials.c.status == "stopped", _trials.c.stop_reason.is_(None),
                                          _starts_with(_trials.c.error, prefix)).values(stop_reason=reason))


def downgrade() -> None:
    """Back to error text only: an older H2OT Lab tells the reasons apart by the texts, which were kept."""
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("stop_reason")
