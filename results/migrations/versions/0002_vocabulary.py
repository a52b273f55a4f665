"""The trial vocabulary of ``h2ot_core.contracts``: status ``stopped`` and one name for the training loss.

Data only, every row kept:

* a trial the scheduler (ASHA) stopped early was recorded as ``failed`` with an error starting
  ``stopped early``; it becomes ``stopped`` (resumable, not an error). Its error text stays.
* the training loss was stored as name ``train_loss`` on split ``train`` by complete trials (flat key
  ``train_train_loss``) but as ``loss``/``train`` by stopped ones; it is now always ``loss``/``train``
  (flat key ``train_loss``). Should a trial already hold both rows, its ``train_loss`` row keeps its
  name rather than break the unique key (no row is dropped).

``schema_info`` is dropped: ``h2ot_schema_version`` is the one version record now. A pre-Alembic H2OT Lab
opening an upgraded database then refuses it (it finds ``trials`` without ``schema_info``) instead of
reading a vocabulary it does not know under a version number that still says 1.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: what ``orchestrator.sink.stopped_result`` wrote as the error of an early-stopped trial
STOPPED_PREFIX = "stopped early"

_trials = sa.table("trials", sa.column("status", sa.String), sa.column("error", sa.Text))
_metrics = sa.table("metrics", sa.column("trial_id", sa.Integer), sa.column("name", sa.String),
                    sa.column("split", sa.String), sa.column("action", sa.String))
_schema_info = sa.table("schema_info", sa.column("key", sa.String), sa.column("value", sa.String))


def _starts_with(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    # substr, not LIKE: LIKE ignores case on SQLite but not on PostgreSQL, and treats ``_`` as a wildcard
    return sa.func.substr(column, 1, len(prefix)) == prefix


def _rename_metric(split: str, old: str, new: str) -> None:
    """Rename metric ``old`` to ``new`` on ``split`` wherever the trial has no ``new`` row for that action."""
    taken = _metrics.alias("taken")
    clash = sa.exists().where(taken.c.trial_id == _metrics.c.trial_id, taken.c.name == new,
                              taken.c.split == split, taken.c.action == _metrics.c.action)
    op.execute(_metrics.update().where(_metrics.c.name == old, _metrics.c.split == split, ~clash)
               .values(name=new))


def upgrade() -> None:
    op.execute(_trials.update().where(_trials.c.status == "failed", _starts_with(_trials.c.error, STOPPED_PREFIX))
               .values(status="stopped"))
    _rename_metric("train", "train_loss", "loss")
    op.drop_table("schema_info")


def downgrade() -> None:
    """Back to the old words (for an older H2OT Lab): ``stopped`` becomes ``failed`` with a ``stopped early`` error."""
    op.create_table(
        "schema_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.bulk_insert(_schema_info, [{"key": "schema_version", "value": "1"}])
    op.execute(_trials.update().where(_trials.c.status == "stopped")
               .values(status="failed", error=sa.func.coalesce(_trials.c.error, STOPPED_PREFIX)))
    _rename_metric("train", "loss", "train_loss")
