"""Fixtures of the results tests: SQLite files under tmp_path and one PostgreSQL database per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from smoke_data import PG_ADMIN, fill_smoke

from results.store import LeaderboardStore


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'leaderboard.sqlite'}"


@pytest.fixture
def smoke_store(sqlite_url: str) -> LeaderboardStore:
    store = LeaderboardStore(sqlite_url)
    fill_smoke(store)
    return store


@pytest.fixture(scope="session")
def pg_server_db() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"h2ot_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    base, _, _ = admin.rpartition("/")
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
