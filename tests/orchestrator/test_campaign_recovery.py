"""Nothing lost: a worker SIGKILLed mid-training is retried from its checkpoint; a driver killed mid-campaign
is resumed by running the same command again, re-training no completed trial and duplicating no row.

Each test runs ``h2ot campaign run`` as a real subprocess (its own local Ray) in its own session, so the kill
hits exactly the processes the test started: the process group, and every descendant, since Ray starts each
worker in a process group of its own (a worker that outlived the kill could still write a checkpoint).
"""

from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa
from testkit import finish, grid_file, kill, rows, start, wait_for

from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]


def logged_steps(env: dict[str, str], experiment: str, key: str) -> list[int]:
    """The epochs of a finished campaign's trial in MLflow (its ``train_loss`` history), sorted, duplicates kept."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`h2ot.trial_key` = '{key}'")
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))


def mlflow_has_epoch(env: dict[str, str], key: str) -> bool:
    """Whether a running campaign has logged an epoch of the trial to MLflow.

    Read-only SQL on MLflow's SQLite file: an ``MlflowClient`` here could race the campaign creating the tables.
    """
    path = env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    metrics = sa.table("metrics", sa.column("run_uuid"), sa.column("key"))
    tags = sa.table("tags", sa.column("run_uuid"), sa.column("key"), sa.column("value"))
    query = (sa.select(sa.func.count()).select_from(metrics.join(tags, metrics.c.run_uuid == tags.c.run_uuid))
             .where(metrics.c.key == "train_loss", tags.c.key == "h2ot.trial_key", tags.c.value == key))
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one() > 0
    except sa.exc.OperationalError:  # no database or no tables yet
        return False
    finally:
        engine.dispose()


def test_killed_worker_is_retried_from_its_checkpoint(tmp_path, env):
    path = grid_file(tmp_path, "worker_kill", seeds=[0], train={"epochs": 4, "max_train_windows": 256})
    (key,) = [s.trial_key for s in load_grid(path).expand()]
    workdir = tmp_path / "runs" / "trials" / key
    proc = start([str(path), "--retries", "2"], env)
    # The sink logs an epoch to MLflow once Tune has registered its checkpoint: wait for epoch 1 there.
    wait_for(lambda: mlflow_has_epoch(env, key) and (workdir / "worker.pid").exists(),
             proc, what="the first epoch's committed checkpoint")
    first_pid = int((workdir / "worker.pid").read_text())
    os.kill(first_pid, signal.SIGKILL)
    rc, _, err = finish(proc)
    assert rc == 0, err[-3000:]
    assert rows(env, [key]) == {key: ["complete"]}
    assert int((workdir / "worker.pid").read_text()) != first_pid  # a new worker finished it

    # Resumed, not restarted, and the epoch in flight at the kill (trained twice) logged once: every epoch
    # appears exactly once across the two workers, however the kill fell against Tune's checkpoint save.
    assert logged_steps(env, "worker_kill", key) == [1, 2, 3, 4]


def test_killed_driver_resumes_without_retraining(tmp_path, env):
    path = grid_file(tmp_path, "driver_kill", seeds=[0, 1, 2], train={"epochs": 1})
    keys = [s.trial_key for s in load_grid(path).expand()]
    args = [str(path), "--max-concurrent", "1", "--retries", "0"]
    proc = start(args, env)
    wait_for(lambda: ["complete"] in rows(env, keys).values(), proc, what="a first complete trial")
    kill(proc)
    done_before = [k for k, st in rows(env, keys).items() if st == ["complete"]]
    assert 1 <= len(done_before) < len(keys)
    models = {k: tmp_path / "runs" / "trials" / k / "model.pt" for k in done_before}
    mtimes = {k: p.stat().st_mtime_ns for k, p in models.items()}

    rc, out, err = finish(start(args, env))
    assert rc == 0, err[-3000:]
    assert rows(env, keys) == {k: ["complete"] for k in keys}  # one row each, all complete
    assert {k: p.stat().st_mtime_ns for k, p in models.items()} == mtimes  # not trained again
    assert out.count("complete (reused)") == len(done_before)
