"""Engines for the leaderboard: SQLite (default, WAL) or PostgreSQL (psycopg 3).

The URL comes from the argument, else ``H2OT_DB_URL``, else
``sqlite:///<repo>/results/runs/leaderboard.sqlite``. Tables are created when absent and the schema
version is checked on every engine, so a database written by another version fails early and clearly.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from results.errors import ResultsError
from results.schema import SCHEMA_VERSION, Base, SchemaInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the repository root: the parent of the ``results`` package directory
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "H2OT_DB_URL"
VERSION_KEY = "schema_version"
# Any constant works: it only serialises concurrent schema creation on one PostgreSQL server.
_PG_INIT_LOCK = 72_020_001
#: SQLite transaction modes a caller may ask for with ``execution_options(sqlite_begin=...)``
_SQLITE_BEGIN = {"DEFERRED": "BEGIN", "IMMEDIATE": "BEGIN IMMEDIATE"}
_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def default_url() -> str:
    path = REPO_ROOT / "results" / "runs" / "leaderboard.sqlite"
    return f"sqlite:///{path}"


def resolve_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$H2OT_DB_URL``, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or default_url()


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, reprs and error messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can take the lock up front
        # (a deferred transaction that reads before writing fails at once instead of waiting).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(_SQLITE_BEGIN[mode])


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text or "deadlock detected" in text


def retry_locked(fn: Callable[[], T], *, attempts: int = 20) -> T:
    """Run ``fn`` again (with jittered backoff) while the database reports a lock conflict."""
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if not _is_locked(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _create_schema(engine: Engine, url: str) -> None:
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_INIT_LOCK})")
        tables = set(inspect(conn).get_table_names())
        if "trials" in tables and SchemaInfo.__tablename__ not in tables:
            raise _version_error(url, "none (written before schema versions existed)")
        Base.metadata.create_all(conn)
        found = conn.execute(select(SchemaInfo.value).where(SchemaInfo.key == VERSION_KEY)).scalar()
        if found is None:
            conn.execute(SchemaInfo.__table__.insert().values(key=VERSION_KEY, value=str(SCHEMA_VERSION)))
        elif found != str(SCHEMA_VERSION):
            raise _version_error(url, found)


def _version_error(url: str, found: str) -> ResultsError:
    return ResultsError(
        f"Leaderboard {mask_url(url)}: table schema_info, key {VERSION_KEY!r} is {found}, but this H2OT Lab "
        f"reads schema version {SCHEMA_VERSION}. To migrate: keep that database as it is, export its rows with "
        f"the H2OT Lab version that wrote it (`h2ot export --format parquet --out old.parquet --db-url ...`), "
        f"and point --db-url / {ENV_VAR} at a new database (re-run the campaigns there to rebuild it)."
    )


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ResultsError(f"Database URL {mask_url(url)}: unsupported backend {backend!r}; "
                           f"use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_events(engine)
    else:
        driver = _DRIVERS[backend] if parsed.drivername == backend else parsed.drivername
        engine = create_engine(parsed.set(drivername=driver), pool_pre_ping=True)
    try:
        retry_locked(lambda: _create_schema(engine, url))
    except OperationalError as exc:
        engine.dispose()
        raise ResultsError(f"Cannot open leaderboard {mask_url(url)}: {exc.orig}") from None
    except ResultsError:
        engine.dispose()
        raise
    log.debug("leaderboard engine ready: %s", mask_url(url))
    return engine


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see module docstring) with tables created and the schema version checked.

    Create one per process (engines do not survive ``fork``); the schema check costs a few milliseconds.
    """
    full = resolve_url(url)
    try:
        make_url(full)
    except ArgumentError:
        raise ResultsError(f"Database URL {full!r} (from --db-url or {ENV_VAR}) is not a valid URL; "
                           f"expected e.g. sqlite:///results/runs/leaderboard.sqlite") from None
    return _engine(full)
