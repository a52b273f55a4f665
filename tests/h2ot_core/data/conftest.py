"""Shared fixtures of the data tests: one small synthetic Human3.6M folder per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from h2ot_core.data.synth import write_synthetic

SEED, MINUTES = 3, 0.5


@pytest.fixture(scope="session")
def synth_params() -> tuple[int, float]:
    """(seed, minutes) of ``synth_dir``."""
    return SEED, MINUTES


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated folder (read-only for tests: copy it before corrupting files)."""
    return write_synthetic(tmp_path_factory.mktemp("synth") / "h36m", seed=SEED, minutes=MINUTES)
