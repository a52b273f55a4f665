"""What trials and campaigns cost to run (issue 18).

* ``trials``: ``device_seconds_train``, ``device_seconds_eval``, ``device_hours``, ``clips_per_s``,
  ``peak_memory_mb``, ``peak_memory_kind`` (``cuda_max_allocated`` or ``cpu_peak_rss``) and ``device_name``
  (:class:`h2ot_core.contracts.Usage`). Rows written before this revision keep ``NULL``: their device time was
  not measured, and is not made up.
* ``campaigns``: ``max_device_hours`` and ``price_per_device_hour``, the grid's ``budget`` (``NULL``: none).

Every row is kept.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TRIAL_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("device_seconds_train", sa.Double()), ("device_seconds_eval", sa.Double()), ("device_hours", sa.Double()),
    ("clips_per_s", sa.Double()), ("peak_memory_mb", sa.Double()), ("peak_memory_kind", sa.String(32)),
    ("device_name", sa.String(128)),
)
_CAMPAIGN_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (("max_device_hours", sa.Double()), ("price_per_device_hour", sa.Double()))


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        for name, kind in _TRIAL_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("campaigns") as batch:
        for name, kind in _CAMPAIGN_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        for name, _ in reversed(_CAMPAIGN_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("trials") as batch:
        for name, _ in reversed(_TRIAL_COLUMNS):
            batch.drop_column(name)
