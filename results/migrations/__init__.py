"""Leaderboard schema migrations (Alembic), driven from code: no ``alembic.ini`` at run time.

A leaderboard holds months of GPU time, so an older database is upgraded in place, never refused;
only a database *newer* than this code is refused (its rows may mean what this code cannot know).
Revisions live in ``versions/`` and are written by hand (copy the latest one to start a new one), so
no template is needed when installed. A new database is created by the same revisions, so
:mod:`results.schema` must always equal the head revision (a test compares the two).

Where a database stands:

* ``h2ot_schema_version`` present: its revision;
* ``schema_info.schema_version = 1`` and no ``h2ot_schema_version``: written before migrations existed,
  exactly revision ``0001``; it is stamped there, then upgraded;
* no leaderboard table at all: empty, upgraded from nothing to head;
* anything else: refused with a clear :class:`~results.errors.ResultsError`.

An upgrade is one transaction under a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory transaction
lock on PostgreSQL): of several processes opening one database at once, exactly one migrates, the
others wait and then find it at head; a failing revision leaves the database as it was.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from results.errors import ResultsError

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: the revision a database written before migrations (``schema_info.schema_version = 1``) is at
LEGACY_REVISION = "0001"
LEGACY_VERSION = "1"
# Any constant works: it only serialises concurrent schema changes on one PostgreSQL server.
PG_SCHEMA_LOCK = 72_020_001
_LEADERBOARD_TABLES = frozenset({"campaigns", "trials", "campaign_trials", "metrics"})
#: the table holding the leaderboard's revision (Optuna's studies, in the same database, use ``alembic_version``)
VERSION_TABLE = "h2ot_schema_version"
_version_table = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))
_schema_info = sa.table("schema_info", sa.column("key", sa.String), sa.column("value", sa.String))


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``revision`` (``None``: empty) and whether it predates ``h2ot_schema_version``."""

    revision: str | None
    legacy: bool = False


@dataclass(frozen=True)
class SchemaChange:
    """An upgrade that happened: from ``before`` (``None``: an empty database) to ``after``."""

    before: str | None
    after: str


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for these revisions; ``env.py`` runs them on ``connection`` (already in a transaction)."""
    cfg = Config(attributes={"connection": connection} if connection is not None else {})
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in _script().walk_revisions())


def read_state(conn: Connection, label: str) -> SchemaState:
    """Where the database on ``conn`` stands (``label``: its masked URL, for messages)."""
    tables = set(sa.inspect(conn).get_table_names())
    if "h2ot_schema_version" in tables:
        # read directly, not through a MigrationContext: this runs on every open and should stay quiet
        found = conn.execute(sa.select(_version_table.c.version_num)).scalars().all()
        if len(found) > 1:
            raise ResultsError(f"Leaderboard {label} is at several schema revisions at once ({', '.join(found)}); "
                               f"h2ot-lab's migrations have a single line of revisions")
        revision = found[0] if found else None
        if revision is None and tables & _LEADERBOARD_TABLES:
            raise ResultsError(f"Leaderboard {label} has leaderboard tables but an empty h2ot_schema_version; "
                               f"it was not created by h2ot-lab, or a stamp was interrupted")
        return SchemaState(revision)
    if "schema_info" in tables:
        legacy = conn.execute(sa.select(_schema_info.c.value).where(_schema_info.c.key == "schema_version")).scalar()
        if legacy != LEGACY_VERSION:
            raise ResultsError(f"Leaderboard {label}: table schema_info, key 'schema_version' is {legacy}, but "
                               f"databases without h2ot_schema_version were only written at schema version "
                               f"{LEGACY_VERSION}; this is not a database h2ot-lab can upgrade")
        return SchemaState(LEGACY_REVISION, legacy=True)
    if tables & _LEADERBOARD_TABLES:
        raise ResultsError(f"Leaderboard {label}: schema_version none (written before schema versions existed); "
                           f"h2ot-lab can upgrade only databases from schema version {LEGACY_VERSION} on")
    return SchemaState(None)


def check_known(state: SchemaState, label: str) -> None:
    """Refuse a database at a revision this code does not know (written by a newer h2ot-lab)."""
    if state.revision is not None and state.revision not in known_revisions():
        raise ResultsError(f"Leaderboard {label} has schema revision {state.revision}, newer than this "
                           f"h2ot-lab knows (head {head_revision()}); upgrade h2ot-lab")


def is_current(engine: Engine, label: str) -> bool:
    """Whether the database is at head already (no lock taken: the cheap check on every open)."""
    with engine.connect() as conn:
        state = read_state(conn, label)
    check_known(state, label)
    return state.revision == head_revision() and not state.legacy


def upgrade(engine: Engine, label: str) -> SchemaChange | None:
    """Upgrade the database to head in one locked transaction; ``None`` when it already was at head.

    Call it again on a lock conflict (``results.db.retry_locked``): nothing was changed then.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
        if sqlite:
            # SQLite's recipe for schema changes: foreign keys off (only possible outside a transaction),
            # or a batch operation that copies and drops a table would cascade-delete its children;
            # checked with foreign_key_check before commit. The connection is discarded afterwards.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                return _upgrade_locked(conn, label)
        finally:
            if sqlite:
                conn.invalidate()


def _upgrade_locked(conn: Connection, label: str) -> SchemaChange | None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_SCHEMA_LOCK)))
    state = read_state(conn, label)  # again, under the lock: another process may have migrated meanwhile
    check_known(state, label)
    head = head_revision()
    if state.revision == head and not state.legacy:
        return None
    cfg = alembic_config(conn)
    if state.legacy:
        command.stamp(cfg, LEGACY_REVISION)
    command.upgrade(cfg, head)
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise ResultsError(f"Leaderboard {label}: the upgrade to {head} would leave {len(broken)} rows with "
                               f"dangling foreign keys (first: {tuple(broken[0])}); nothing was changed")
    return SchemaChange(state.revision, head)
