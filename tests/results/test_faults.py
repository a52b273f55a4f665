"""A read-only or full leaderboard ends in one line naming it and what to do (exit 2), and nothing is half
written. The faults are real: a small tmpfs filled up, and a read-only bind mount of the file or a read-only
tmpfs (needs root: mount; skipped otherwise)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from smoke_data import complete, smoke_spec

from h2ot_core.contracts import TrialResult
from results.db import ResourceFault
from results.store import LeaderboardStore

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        pytest.skip("mounting a tmpfs needs root (run these tests as root, e.g. in the CI container)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def h2ot(*args: str, db: str, tmp_path: Path, mlflow: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "H2OT_DB_URL": db, "H2OT_RUNS_DIR": str(tmp_path / "runs"),
           "MLFLOW_TRACKING_URI": mlflow or f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("H2OT_STORAGE", None)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


def test_a_full_leaderboard_disk_is_one_error_and_keeps_every_row(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        store = LeaderboardStore(f"sqlite:///{disk / 'lb.sqlite'}")
        spec, other = smoke_spec("tpc", "tra", "1:9"), smoke_spec("tps", "tri", "1:9")
        store.upsert_result(complete(spec, 41.0, 30.5, 1.2, 6.0), campaign="c1")
        fill(disk)
        big = TrialResult(other.trial_key, other.to_dict(), "failed", error="x" * 3_000_000)
        with pytest.raises(ResourceFault, match=r"disk is full|disk failed") as caught:
            store.upsert_result(big, campaign="c1")
        assert "lb.sqlite" in str(caught.value) and "\n" not in str(caught.value)
        assert store.trial_status(spec.trial_key) == "complete"  # nothing half-written
        assert store.trial_status(other.trial_key) is None
        store.engine.dispose()


def test_read_only_leaderboard_file_and_folder_are_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4m") as folder:
        db = f"sqlite:///{folder / 'lb.sqlite'}"
        store = LeaderboardStore(db)
        store.upsert_result(complete(smoke_spec("tpc", "tra", "1:9"), 41.0, 30.5, 1.2, 6.0), campaign="c1")
        store.engine.dispose()
        file = folder / "lb.sqlite"
        assert _mount("--bind", str(file), str(file)) and _mount("-o", "remount,ro,bind", str(file))
        try:
            run = h2ot("campaign", "run", str(SMOKE), db=db, tmp_path=tmp_path)
            assert run.returncode == 2, run.stderr[-2000:]
            assert "is read-only" in run.stderr and "Traceback" not in run.stderr
            shown = h2ot("leaderboard", "--campaign", "c1", "--format", "json", db=db, tmp_path=tmp_path)
            assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) > 0, shown.stderr
        finally:
            subprocess.run(["umount", str(file)], capture_output=True)
        assert _mount("-o", "remount,ro", str(folder))  # now the whole folder
        run = h2ot("campaign", "run", str(SMOKE), db=db, tmp_path=tmp_path)
        assert run.returncode == 2, run.stderr[-2000:]
        assert "lb.sqlite" in run.stderr and "Traceback" not in run.stderr
        assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1
        shown = h2ot("leaderboard", "--campaign", "c1", "--format", "json", db=db, tmp_path=tmp_path)
        assert shown.returncode == 0, shown.stderr  # a read-only copy still reads


@pytest.mark.slow
@pytest.mark.ray
def test_a_full_checkpoint_storage_fails_the_trials_in_one_line_each(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "storage", "400k") as storage:  # room for the storage probe, not for checkpoints
        db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
        run = h2ot("campaign", "run", str(SMOKE), "--storage", str(storage), "--retries", "0", db=db,
                   tmp_path=tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]  # trials failed (README: exit 1)
    assert "Traceback" not in run.stderr and "Aborted" not in run.stderr
    assert "4 trial(s) ran out of disk space (No space left on device): free space on the storage" in run.stderr
    from results.queries import leaderboard

    rows = leaderboard(LeaderboardStore(db).engine, campaign="smoke")
    assert sorted(r["status"] for r in rows) == ["failed"] * 4  # none left running


@pytest.mark.slow
@pytest.mark.ray
def test_a_full_mlflow_store_is_one_warning_and_training_goes_on(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mlflow", "3m") as disk:
        uri = f"sqlite:///{disk / 'mlflow.db'}"
        made = subprocess.run([sys.executable, "-c", "from orchestrator.tracking import init_store; init_store()"],
                              cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        fill(disk)
        db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
        run = h2ot("campaign", "run", str(SMOKE), "--retries", "0", db=db, tmp_path=tmp_path, mlflow=uri)
    assert run.returncode == 0, run.stderr[-3000:]  # the leaderboard is the record: every trial is in it
    assert run.stderr.count(f"MLflow tracking store {uri} is full") == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "unreachable" not in run.stderr
    from results.queries import leaderboard

    assert sorted(r["status"] for r in leaderboard(LeaderboardStore(db).engine, campaign="smoke")) == ["complete"] * 4
