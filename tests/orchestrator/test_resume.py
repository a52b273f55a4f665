"""A trial resumes where it stopped: after its driver (and its Ray workers) is SIGKILLed during epoch 3, running the same command again
continues the trial after epoch 2 from the campaign storage (model, optimizer, scheduler and RNG state),
re-training only the epoch that was in flight; MLflow holds every epoch once and the leaderboard one row.

``h2ot campaign run`` runs as a real subprocess (its own local Ray) in its own process group, so the kill hits
exactly the processes the test started (the pattern of ``test_campaign_recovery``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from csv import DictReader

import pytest
import yaml
from testkit import REPO, TINY, finish, kill, live_steps, manifest_epoch, start, trial_rows, wait_for

from h2ot_core.api import run_trial
from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]

#: slow enough epochs (about 5 s on one core) that the kill reliably lands inside epoch 3
TRAIN = {"epochs": 4, "max_train_windows": 600}
DATA = {"minutes": 3}


def train_loss_history(env: dict[str, str], experiment: str, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of the trial's ``train_loss`` in MLflow, sorted, duplicates kept."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`h2ot.trial_key` = '{key}'")
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss"))


def test_killed_driver_resumes_the_trial_after_its_last_epoch(tmp_path, env):
    doc = {"name": "resume", "include": str(TINY),
           "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9"}, "fixed": {"train": TRAIN, "data": DATA}}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(doc))
    (spec,) = load_grid(path).expand()
    key = spec.trial_key
    trial_dir = tmp_path / "runs" / "trials" / key  # the default storage: the runs folder
    args = [str(path), "--retries", "0"]

    proc = start(args, env)
    # Epoch 2 is complete in the storage and in MLflow, so the worker is training epoch 3.
    wait_for(lambda: manifest_epoch(trial_dir / "checkpoint") == 2 and live_steps(env, key) == [1, 2], proc,
             what="epoch 2's checkpoint in the storage")
    kill(proc)
    in_flight = manifest_epoch(trial_dir / "checkpoint") + 1
    assert in_flight == 3  # the kill landed inside epoch 3
    assert [r["status"] for r in trial_rows(env, key)] == ["running"]
    assert not (trial_dir / "model.pt").exists()
    time.sleep(3.5)  # the killed driver's claim outlives it by one lease (H2OT_CLAIM_LEASE_S)
    shown = subprocess.run([sys.executable, "-m", "orchestrator.cli", "campaign", "status", "resume", "--format",
                            "json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert [(r["status"], r["trials"]) for r in json.loads(shown.stdout)] == [("interrupted", 1)]  # not live
    assert "1 trial(s) interrupted" in shown.stderr and " ago" in shown.stderr

    # Another campaign over the same trial takes the expired claim over and resumes it.
    rc, _, err = finish(start([*args, "--name", "resume_again"], env), timeout=400)
    assert rc == 0, err[-3000:]
    (row,) = trial_rows(env, key)  # one row: none lost, none duplicated
    assert row == {"status": "complete", "epochs_run": 4, "resumed_from_epoch": 2,
                   "checkpoint_uri": str(trial_dir / "model.pt")}
    retrained = in_flight - row["resumed_from_epoch"]
    assert retrained == 1  # only the epoch in flight at the kill is trained again

    history = train_loss_history(env, "resume", key)
    assert [step for step, _ in history] == [1, 2, 3, 4]  # every epoch once: none duplicated, none missing

    # Resumed with its optimizer, scheduler and RNG state: the same losses as a run that was never stopped.
    with tempfile.TemporaryDirectory() as work:
        ref = run_trial(spec, workdir=work)
    assert [v for _, v in history] == pytest.approx([h["train_loss"] for h in ref.history], rel=1e-5)

    # The column reaches the leaderboard's JSON and the export.
    shown = subprocess.run([sys.executable, "-m", "orchestrator.cli", "leaderboard", "--campaign", "resume",
                            "--format", "json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert [r["resumed_from_epoch"] for r in json.loads(shown.stdout)] == [2]
    csv = tmp_path / "export.csv"
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "export", "--out", str(csv), "--format", "csv"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with csv.open(newline="") as f:
        assert [r["resumed_from_epoch"] for r in DictReader(f)] == ["2"]
