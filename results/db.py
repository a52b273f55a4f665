"""Engines for the leaderboard: SQLite (default, WAL) or PostgreSQL (psycopg 3).

The URL comes from the argument, else ``H2OT_DB_URL``, else ``sqlite:///<runs dir>/leaderboard.sqlite``
(the runs dir is ``$H2OT_RUNS_DIR``, default ``<repo>/results/runs``: :mod:`h2ot_core.environment`). Every engine checks the schema revision: an empty
database is created and an older one upgraded in place by the Alembic migrations of
:mod:`results.migrations` (with a one-line notice), so months of results are never locked out by a new
release; only a database written by a newer H2OT Lab is refused, early and clearly.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, InterfaceError, OperationalError

from h2ot_core.environment import DB_RETRY_S, DB_URL
from h2ot_core.errors import ConfigError
from results import migrations
from results.errors import ResultsError
from results.migrations import SchemaChange

log = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLite transaction modes a caller may ask for with ``execution_options(sqlite_begin=...)``
_SQLITE_BEGIN = {"DEFERRED": "BEGIN", "IMMEDIATE": "BEGIN IMMEDIATE"}
_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def resolve_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$H2OT_DB_URL``, else ``leaderboard.sqlite`` in the runs folder."""
    return url or str(DB_URL.value())


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


#: SQLSTATEs of a lost or refused connection (class 08) and of a server shutting down or starting (57P0x)
_DISCONNECT_STATES = frozenset({"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"})
_DISCONNECT_TEXT = ("connection refused", "could not connect", "server closed the connection", "connection failed",
                    "terminating connection", "the database system is starting up",
                    "the database system is shutting down", "connection is closed", "connection timed out",
                    "connection reset", "no connection to the server", "ssl syscall error", "broken pipe")


class DatabaseUnavailable(ResultsError):
    """The leaderboard could not be reached for the whole retry window (a write was not made)."""


def retry_window_s() -> float:
    """``$H2OT_DB_RETRY_S`` (seconds a write retries while the database is unreachable), default 60."""
    try:
        return DB_RETRY_S.number(what="a number of seconds")
    except ConfigError as exc:
        raise ResultsError(str(exc)) from None


def _is_disconnect(exc: DBAPIError) -> bool:
    """A connection refused, dropped or shut down by the server (not a bad statement)."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _DISCONNECT_STATES:
        return True
    text = str(exc.orig).lower()
    return any(part in text for part in _DISCONNECT_TEXT)


class ResourceFault(ResultsError):
    """The leaderboard refused a write for a reason no retry mends: read-only, or its disk is full."""


#: (SQLSTATE or lower-case message part, what it means, what to do): the faults a retry does not mend
_FAULTS = (
    (("53100", "database or disk is full", "no space left on device", "could not extend file"),
     "its disk is full", "free space there (or point --db-url / H2OT_DB_URL elsewhere) and run the command again"),
    (("25006", "attempt to write a readonly database", "read-only transaction", "readonly database"),
     "it is read-only", "make the file and its folder writable, or use a writable copy (--db-url / H2OT_DB_URL)"),
    (("disk i/o error",), "its disk failed a write (full, or failing)",
     "check the free space and health of its disk (df), then run the command again"),
    (("unable to open database file",),
     "it cannot be opened for writing (a read-only file or folder, or a folder that does not exist)",
     "make the file and its folder writable, or use a writable copy (--db-url / H2OT_DB_URL)"),
)


def resource_fault(exc: DBAPIError, label: str | None) -> ResourceFault | None:
    """``exc`` as one line naming the leaderboard and what to do, when it is a read-only or full database."""
    state = getattr(exc.orig, "sqlstate", None)
    text = str(exc.orig).lower()
    for signs, what, todo in _FAULTS:
        if state in signs or any(sign in text for sign in signs if not sign[:2].isdigit()):
            return ResourceFault(f"Leaderboard {label or 'database'}: {what} ({_reason(exc)}); nothing was "
                                 f"written; {todo}")
    return None


def _reason(exc: DBAPIError) -> str:
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def retry_locked(fn: Callable[[], T], *, attempts: int = 20, label: str | None = None,
                 window_s: float | None = None, unreachable: bool = False) -> T:
    """Run ``fn`` again (with jittered backoff) while the database reports a lock conflict.

    With ``window_s``, or ``unreachable`` (writes: the window is then :func:`retry_window_s`), also while the
    database cannot be reached (refused, dropped or shut-down connections, e.g. a server restart): ``fn`` is
    retried with backoff for up to ``window_s`` seconds, then :class:`DatabaseUnavailable` names the database
    (``label``, a masked URL). ``fn`` must be one transaction, so a failed attempt leaves nothing behind.
    """
    if unreachable and window_s is None:
        window_s = retry_window_s()
    locked = 0
    deadline: float | None = None
    delay = 0.25
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if isinstance(exc, OperationalError) and _is_locked(exc):
                locked += 1
                if locked >= attempts:
                    raise
                time.sleep(min(2.0, 0.02 * 2**locked) * (0.5 + random.random()))
                continue
            fault = resource_fault(exc, label)
            if fault is not None:
                raise fault from exc
            if window_s is None or not _is_disconnect(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + window_s
                log.warning("leaderboard %s unreachable (%s); retrying for up to %g s (%s)",
                            label or "database", _reason(exc), window_s, DB_RETRY_S.name)
            if now >= deadline:
                raise DatabaseUnavailable(
                    f"Leaderboard {label or 'database'} unreachable for {window_s:g} s ({DB_RETRY_S.name}); "
                    f"the write was not made: {_reason(exc)}") from exc
            time.sleep(min(delay * (0.5 + random.random()), deadline - now))
            delay = min(5.0, delay * 2)


def _open_schema(engine: Engine, url: str, *, notice: bool = True) -> SchemaChange | None:
    """Bring the database to the head revision (see :mod:`results.migrations`); ``None``: it was there.

    The lock-free check comes first, so opening a current database costs one small read. An upgrade is
    announced in one log line (``notice``), since it changes a file the user may share with others.
    """
    label = mask_url(url)
    try:
        if migrations.is_current(engine, label):
            return None
    except DBAPIError:
        # A concurrent upgrade dropped a table under this lock-free read (PostgreSQL): look again under
        # the lock; an unreachable database fails there the same way.
        pass
    change = migrations.upgrade(engine, label)
    if change is not None and change.before is None:
        log.info("leaderboard %s: schema created at %s", label, change.after)
    elif change is not None and notice:
        log.warning("leaderboard %s: schema upgraded %s -> %s", label, change.before, change.after)
    return change


def upgrade_database(url: str | None = None) -> SchemaChange | None:
    """Upgrade the leaderboard at ``url`` to the head revision now; ``None`` when it already was there."""
    full = _valid_url(url)
    engine = _engine(full, upgrade=False)
    try:
        return _guarded(engine, full, lambda: _open_schema(engine, full, notice=False))
    finally:
        engine.dispose()


def database_revision(url: str | None = None) -> tuple[str | None, str]:
    """``(current revision, head revision)`` of the leaderboard at ``url``, changing nothing.

    A database written before migrations existed reports the revision it is at (``0001``).
    """
    full = _valid_url(url)
    engine = _readonly_engine(full)
    try:
        def read() -> str | None:
            with engine.connect() as conn:
                return migrations.read_state(conn, mask_url(full)).revision

        return _guarded(engine, full, read), migrations.head_revision()
    finally:
        engine.dispose()


def _guarded(engine: Engine, url: str, fn: Callable[[], T]) -> T:
    """``fn()`` with a database that cannot be reached reported as one clear :class:`ResultsError`."""
    try:
        return retry_locked(fn, label=mask_url(url))
    except DatabaseError as exc:  # unreachable, locked for good, or not a database at all (a text file)
        engine.dispose()
        raise ResultsError(f"Cannot open leaderboard {mask_url(url)}: {exc.orig}") from None
    except ResultsError:
        engine.dispose()
        raise


def _backend(url: str) -> tuple[URL, str]:
    """``(parsed url, backend name)``; an unsupported backend is a :class:`ResultsError`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ResultsError(f"Database URL {mask_url(url)}: unsupported backend {backend!r}; "
                           f"use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    return parsed, backend


def _engine(url: str, *, upgrade: bool = True) -> Engine:
    parsed, backend = _backend(url)
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_events(engine)
    else:
        driver = _DRIVERS[backend] if parsed.drivername == backend else parsed.drivername
        # pre-ping replaces a connection the server dropped (restart); a silent host fails in 10 s, not never
        engine = create_engine(parsed.set(drivername=driver), pool_pre_ping=True,
                               connect_args={"connect_timeout": 10})
    if upgrade:
        _guarded(engine, url, lambda: _open_schema(engine, url))
    log.debug("leaderboard engine ready: %s", mask_url(url))
    return engine


def _valid_url(url: str | None) -> str:
    full = resolve_url(url)
    try:
        make_url(full)
    except ArgumentError:
        raise ResultsError(f"Database URL {full!r} (from --db-url or {DB_URL.name}) is not a valid URL; "
                           f"expected e.g. sqlite:///results/runs/leaderboard.sqlite") from None
    return full


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None``: not SQLite, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def leaderboard_missing(url: str | None = None) -> Path | None:
    """The file of a SQLite leaderboard at ``url`` that does not exist yet (``None``: it exists, or it is not a
    SQLite file): what a dry run treats as an empty record, without creating it."""
    path = _sqlite_file(_valid_url(url))
    return path if path is not None and not path.exists() else None


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see module docstring), the database created or upgraded to the head revision.

    Create one per process (engines do not survive ``fork``); on a current database the check costs a
    few milliseconds.
    """
    return _engine(_valid_url(url))


def _readonly_sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=1")  # a second lock, should a writable handle ever be opened
        cur.close()


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _readonly_engine(full: str) -> Engine:
    """An engine that cannot write ``full``: SQLite through a ``mode=ro`` file URI (nothing is created, and a
    read-only copy can be read), PostgreSQL sessions with ``default_transaction_read_only``."""
    parsed, backend = _backend(full)
    if backend == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:" or not path.is_file():
            where = "is a folder" if path.is_dir() else "does not exist"
            raise ResultsError(f"No leaderboard at {path} (from --db-url, {DB_URL.name} or the default): the file "
                               f"{where}; check the path, or run a campaign first (h2ot campaign run GRID)")
        # ``uri=true`` makes sqlite3 read the ``file:`` URI and its ``mode=ro``. A WAL database needs its -shm
        # and -wal files beside it; where they cannot be made (a read-only copy) it is opened immutable.
        immutable = "" if _writable(path.parent) else "&immutable=1"
        engine = create_engine(f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro{immutable}&uri=true",
                               connect_args={"timeout": 30})
        _readonly_sqlite_events(engine)
        return engine
    driver = _DRIVERS[backend] if parsed.drivername == backend else parsed.drivername
    return create_engine(parsed.set(drivername=driver), pool_pre_ping=True, connect_args={
        "connect_timeout": 10, "options": "-c default_transaction_read_only=on"})


def open_read_only(url: str | None = None, *, upgrade: bool = True) -> Engine:
    """An engine that can only read the leaderboard at ``url`` (every read command, ``h2ot serve``).

    Nothing is ever created: a SQLite file that does not exist, a folder, a file that is not a database and a
    database without a leaderboard are each refused with one :class:`ResultsError`, and a read-only copy
    reads. A leaderboard at an older schema revision is upgraded in place first (its rows kept, one notice;
    the upgrade is the one write, through a separate engine) when ``upgrade`` allows it; otherwise (``h2ot
    serve``: no request ever writes) one error says to run ``h2ot db upgrade``.
    """
    full = _valid_url(url)
    engine = _readonly_engine(full)
    label = mask_url(full)

    def state() -> migrations.SchemaState:
        with engine.connect() as conn:
            found = migrations.read_state(conn, label)
        migrations.check_known(found, label)
        return found

    found = _guarded(engine, full, state)
    if found.revision is None:
        engine.dispose()
        raise ResultsError(f"Leaderboard {label} is empty (no H2OT Lab tables): nothing has been recorded there; "
                           f"check --db-url / {DB_URL.name}, or run a campaign first")
    if found.revision != migrations.head_revision() or found.legacy:
        if not upgrade:
            engine.dispose()
            raise ResultsError(f"Leaderboard {label} is at schema revision {found.revision}; this release reads "
                               f"{migrations.head_revision()}: run `h2ot db upgrade` first (a read-only view "
                               f"never changes the database)")
        upgrade_database(full)
    log.debug("read-only leaderboard engine ready: %s", label)
    return engine
