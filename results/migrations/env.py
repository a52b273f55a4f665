"""Alembic's environment script: runs the revisions on the connection :mod:`results.migrations` hands in.

H2OT Lab drives Alembic from code (``make_engine``, ``h2ot db upgrade``), never from an ``alembic.ini``:
the caller has already opened the transaction and taken the lock, so this script only binds the
migration context to that connection. Because the connection is inside a transaction, Alembic commits
nothing itself: every revision of one upgrade commits, or rolls back, together.
"""

from __future__ import annotations

from alembic import context

from results.migrations import VERSION_TABLE
from results.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the leaderboard migrations run through results.migrations "
                       "(h2ot db upgrade), which passes the connection in; there is no alembic.ini")

# Not Alembic's default ``alembic_version``: Optuna keeps its own schema revision there, and a search
# campaign's study lives in the same database as the leaderboard.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
