"""Shared test settings: keep torch on few threads so parallel work on a 2-core machine stays sane."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The repository root goes first on sys.path: otherwise test folders that mirror package names
# (tests/h2ot_core/data) are picked up as namespace packages and shadow the real ones.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# Ray's own dashboard costs seconds per local campaign; the one test of it turns it on
os.environ.setdefault("H2OT_RAY_DASHBOARD", "0")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of an ``h2ot`` subprocess: runs dir, SQLite leaderboard and MLflow store under tmp_path."""
    from testkit import cli_env

    return cli_env(tmp_path)


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
