"""Fixtures of the results tests: SQLite files under tmp_path and one PostgreSQL database per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from smoke_data import fill_smoke
from testkit import fresh_pg_database

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
    with fresh_pg_database("h2ot_test") as url:
        yield url
