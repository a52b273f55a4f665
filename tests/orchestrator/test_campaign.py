"""Campaigns end to end on one shared local Ray session: real Tune, real MLflow, real SQLite leaderboard.

Covers: the smoke grid trains to complete rows and nested MLflow runs; re-running the command re-trains
nothing; a new campaign sharing trials reuses them; a trial that raises is recorded failed with its error
while the others finish; the trainable imports only the ray.tune report path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Isolated runs dir, data dir, leaderboard and MLflow store; one Ray session for the module."""
    import ray

    root = tmp_path_factory.mktemp("campaign")
    mp = pytest.MonkeyPatch()
    mp.setenv("H2OT_RUNS_DIR", str(root / "runs"))
    mp.setenv("H2OT_DATA_DIR", str(root / "data"))  # empty: no real datasets here
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.setenv("H2OT_DB_URL", f"sqlite:///{root / 'leaderboard.sqlite'}")
    mp.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"H2OT_DATA_DIR": str(root / "data")}})
    (root / "data").mkdir()
    yield root
    ray.shutdown()
    mp.undo()


def store():
    from results.store import LeaderboardStore

    return LeaderboardStore()


def trial_runs(experiment: str) -> dict[str, object]:
    """MLflow trial runs of an experiment, by their trial_key tag."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'trial'", max_results=1000)
    return {r.data.tags["h2ot.trial_key"]: r for r in runs}


def test_smoke_campaign_end_to_end(env):
    res = runner.invoke(app, ["campaign", "run", str(SMOKE), "--retries", "0"])
    assert res.exit_code == 0, res.output
    specs = {s.trial_key: s for s in load_grid(SMOKE).expand()}
    keys = list(specs)
    lb = store()
    assert {k: lb.trial_status(k) for k in keys} == dict.fromkeys(keys, "complete")
    assert lb.campaign_status("smoke").get("complete") == len(keys)
    for key in keys:  # the result table on stdout names every trial
        assert key in res.stdout

    runs = trial_runs("smoke")
    assert set(runs) == set(keys)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs.values()}
    assert len(parents) == 1
    # readable run names; the trial_key is the run's tag
    assert sorted(r.info.run_name for r in runs.values()) == [
        "mixste-tpc+tra-1:9-seed0", "mixste-tpc+tri-1:9-seed0", "mixste-tps+tra-1:9-seed0", "mixste-tps+tri-1:9-seed0"]
    for key, run in runs.items():
        assert run.info.status == "FINISHED"
        assert {k: run.data.params[k] for k in ("backbone", "pruner", "recoverer", "schedule")} == {
            k: getattr(specs[key], k) for k in ("backbone", "pruner", "recoverer", "schedule")}
        assert run.data.metrics["final.test_mpjpe"] > 0
        assert run.data.metrics["cost.gflops"] > 0
        assert "provenance.data_fingerprint" in run.data.tags

    from mlflow.tracking import MlflowClient

    artifacts = {a.path for a in MlflowClient().list_artifacts(next(iter(runs.values())).info.run_id)}
    assert {"spec.json", "checkpoint"} <= artifacts


def test_rerun_and_a_new_campaign_reuse_completed_trials(env):
    before = {k: r.info.run_id for k, r in trial_runs("smoke").items()}
    res = runner.invoke(app, ["campaign", "run", str(SMOKE)])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("complete (reused)") == len(before)

    res = runner.invoke(app, ["campaign", "run", str(SMOKE), "--name", "smoke-again"])
    assert res.exit_code == 0, res.output
    assert store().campaign_status("smoke-again").get("complete") == len(before)
    after = {k: r.info.run_id for k, r in trial_runs("smoke").items()}
    assert after == before  # nothing trained or logged again
    # --name X: the campaign's MLflow experiment is X (trial_runs asserts it exists), not the grid's; the
    # trials it reused keep their one run in the experiment they were trained in (one run per trial)
    assert trial_runs("smoke-again") == {}

    res = runner.invoke(app, ["campaign", "run", str(SMOKE), "--dry-run", "--rerun"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("to run") == len(before)


def test_a_failing_trial_is_recorded_and_the_others_finish(env, tmp_path):
    # h36m's files are there (the driver's data check passes) but unreadable, so that trial's loader raises
    # DataError on the worker: a genuine failure of the trial, not of the grid. It is deterministic, so it
    # is recorded at once, never retried (a retried trial's error would be Tune's traceback).
    folder = env / "data" / "h36m"
    folder.mkdir(exist_ok=True)
    for name in ("data_3d_h36m.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz"):
        (folder / name).write_bytes(b"not an npz")
    doc = yaml.safe_load(SMOKE.read_text())
    doc.update(name="with_failure", include=str(SMOKE.parent / "_base" / "tiny_model.yaml"))
    doc["grid"] = {"pruner": "tps", "recoverer": "tri", "schedule": "1:9", "dataset": ["synthetic", "h36m"],
                   "seed": [7]}
    path = tmp_path / "with_failure.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["campaign", "run", str(path), "--retries", "2"])
    assert res.exit_code == 1, res.output
    specs = {s.dataset: s.trial_key for s in load_grid(path).expand()}
    lb = store()
    assert lb.trial_status(specs["synthetic"]) == "complete"
    assert lb.trial_status(specs["h36m"]) == "failed"
    assert lb.campaign_status("with_failure") == {**lb.campaign_status("with_failure"), "complete": 1, "failed": 1}
    error = _error_of(specs["h36m"])
    assert error.startswith("DataError: ") and "data_3d_h36m.npz" in error and "Traceback" not in error
    run = trial_runs("with_failure")[specs["h36m"]]
    assert run.info.status == "FAILED" and "DataError" in run.data.tags["h2ot.error"]


@pytest.mark.parametrize(("precision", "needles"), [
    ("fp16", ("train.precision 'fp16' (2 trial(s)) needs a GPU", "use fp32")),
    # bf16 on a local CPU without bf16 kernels (hardware: the probe is patched; with kernels it would train)
    ("bf16", ("train.precision 'bf16' (2 trial(s) on this machine's CPU)", "no AVX-512/AMX bf16 kernels")),
])
def test_precisions_the_trials_cannot_run_are_refused_before_any_trial_starts(env, tmp_path, monkeypatch,
                                                                              precision, needles):
    from h2ot_core import device

    monkeypatch.delenv(device.ALLOW_SLOW_BF16_ENV, raising=False)
    monkeypatch.setattr(device, "cpu_bf16_kernels", lambda: False)
    doc = yaml.safe_load(SMOKE.read_text())
    doc.update(name=f"{precision}_on_cpu", include=str(SMOKE.parent / "_base" / "tiny_model.yaml"))
    doc["grid"] = {"pruner": "tps", "recoverer": "tri", "schedule": "1:9", "seed": [7, 8]}
    doc["fixed"] = {"train": {"precision": precision}}
    path = tmp_path / f"{precision}_on_cpu.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["campaign", "run", str(path), "--retries", "0"])
    assert res.exit_code == 2, res.output
    assert str(path) in res.output and all(n in res.output for n in needles), res.output
    assert "Traceback" not in res.output
    lb = store()
    assert all(lb.trial_status(s.trial_key) is None for s in load_grid(path).expand())  # nothing trained


def _column_of(trial_key: str, column: str) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(os.environ["H2OT_DB_URL"])
    with engine.connect() as conn:
        row = conn.execute(sa.select(sa.column(column)).select_from(sa.table("trials"))
                           .where(sa.column("trial_key") == trial_key)).one()
    engine.dispose()
    return row[0]


def _error_of(trial_key: str) -> str:
    return _column_of(trial_key, "error") or ""


def test_campaign_status_counts(env):
    res = runner.invoke(app, ["campaign", "status", "with_failure"])
    assert res.exit_code == 0, res.output
    assert "complete" in res.stdout and "failed" in res.stdout
    assert "device-hours:" in res.stdout and "on failed or stopped trials" in res.stdout
    res = runner.invoke(app, ["campaign", "status", "smoke", "--format", "json"])
    rows = {r["status"]: r for r in json.loads(res.stdout)}
    assert rows["complete"]["device_hours"] > 0  # every smoke trial measured its device time


def test_device_budget_stops_launching_and_records_the_rest_stopped(env, tmp_path):
    doc = {"name": "with_budget", "include": str(SMOKE.parent / "_base" / "tiny_model.yaml"),
           "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9", "seed": [21, 22, 23]},
           "budget": {"max_device_hours": 1e-6, "price_per_device_hour": 2.5}}  # spent by the first trial
    path = tmp_path / "with_budget.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["campaign", "run", str(path), "--retries", "0", "--max-concurrent", "1"])
    assert res.exit_code == 0, res.output  # stopped by the budget is not a failure
    statuses = {s.trial_key: store().trial_status(s.trial_key) for s in load_grid(path).expand()}
    assert sorted(statuses.values()) == ["complete", "stopped", "stopped"]
    assert {_column_of(k, "stop_reason") for k, s in statuses.items() if s == "stopped"} == {"budget"}
    assert "budget spent" in res.output and "2 trial(s) not started" in res.output
    res = runner.invoke(app, ["campaign", "status", "with_budget"])
    assert "budget: 0.00000100 device-hours, 0 left (spent: no new trials start)" in res.stdout
    assert "$" in res.stdout

    doc["budget"] = {"max_device_hours": 0}
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["campaign", "run", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"{path}: budget.max_device_hours: 0 must be greater than 0" in " ".join(res.output.split())


def test_asha_records_stopped_trials_and_keeps_finished_ones(env, tmp_path):
    doc = {"name": "with_asha", "include": str(SMOKE.parent / "_base" / "tiny_model.yaml"),
           "grid": {"pruner": ["tpc", "tps"], "recoverer": ["tra", "tri"], "schedule": "1:9", "seed": [11]},
           "fixed": {"train": {"epochs": 3}}}
    path = tmp_path / "with_asha.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["campaign", "run", str(path), "--asha", "--retries", "0"])
    assert res.exit_code == 0, res.output  # stopping early on purpose is not a failure
    keys = [s.trial_key for s in load_grid(path).expand()]
    statuses = {k: store().trial_status(k) for k in keys}
    assert set(statuses.values()) <= {"complete", "stopped"} and "complete" in statuses.values()
    for key, status in statuses.items():
        if status == "stopped":
            assert _column_of(key, "stop_reason") == "asha" and _error_of(key) == ""
    stopped = sum(s == "stopped" for s in statuses.values())
    # A re-run keeps stopped trials; --rerun-stopped trains them again.
    res = runner.invoke(app, ["campaign", "run", str(path), "--dry-run"])
    assert f"{len(keys) - stopped - sum(s == 'complete' for s in statuses.values())} to run" in res.output
    res = runner.invoke(app, ["campaign", "run", str(path), "--dry-run", "--rerun-stopped"])
    assert f"{stopped} to run" in res.output, res.output
    runs = trial_runs("with_asha")
    for key, status in statuses.items():
        if status == "complete":  # a finished trial keeps its full result even though ASHA watched it
            assert runs[key].data.metrics["final.test_mpjpe"] > 0


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test (H2OT_TEST_PG_URL names the server's admin URL)."""
    import uuid

    import psycopg

    admin = os.environ.get("H2OT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"h2ot_campaign_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{admin.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_campaign_on_a_postgresql_leaderboard(env, tmp_path, pg_url):
    doc = {"name": "on_postgres", "include": str(SMOKE.parent / "_base" / "tiny_model.yaml"),
           "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9", "seed": [21]}}
    path = tmp_path / "on_postgres.yaml"
    path.write_text(yaml.safe_dump(doc))
    (key,) = [s.trial_key for s in load_grid(path).expand()]
    res = runner.invoke(app, ["campaign", "run", str(path), "--db-url", pg_url])
    assert res.exit_code == 0, res.output
    from results.store import LeaderboardStore

    assert LeaderboardStore(pg_url).trial_status(key) == "complete"
    res = runner.invoke(app, ["campaign", "run", str(path), "--db-url", pg_url])
    assert res.exit_code == 0 and "complete (reused)" in res.stdout
