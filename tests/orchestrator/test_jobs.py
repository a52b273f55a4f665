"""Campaigns as Ray jobs on a real local Ray head with its dashboard (Job Submission API).

One head for the module (``ray start --head --block`` in its own temp dir, dashboard on 127.0.0.1, 2 CPUs
and 2 *logical* GPUs so the GPU default is exercised on a CPU machine), stopped by its process id
afterwards. Covers: ``campaign submit --wait`` of the smoke grid (every trial complete in the leaderboard
and in MLflow, the job id on the campaign, the GPU default in the plan line); ``ray job submit -- h2ot
campaign run`` (RAY_ADDRESS set by the supervisor, the driver records its job id, ``--gpus-per-trial 0``
keeps CPU); ``campaign stop`` of a running job (rows end ``stopped`` and the next run trains them again);
one-line errors with exit code 2. Prints the measured submit-to-first-trial latency (run with ``-s``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from testkit import free_port
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
BIN = Path(sys.executable).parent
RAY, H2OT = str(BIN / "ray"), str(BIN / "h2ot")
runner = CliRunner()


def _jobs_api_ready(url: str, env: dict[str, str]) -> bool:
    probe = "import sys; from ray.job_submission import JobSubmissionClient as C; C(sys.argv[1]).list_jobs()"
    return subprocess.run([sys.executable, "-c", probe, url], env=env, capture_output=True,
                          timeout=60).returncode == 0


@pytest.fixture(scope="module")
def head():
    """``{"url": http://127.0.0.1:DASH, "gcs": 127.0.0.1:PORT, "env": ...}`` of a one-node cluster."""
    port, dash = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="h2j")  # short: Ray's unix socket paths must stay under ~107 bytes
    # The head (and so every job's driver) sees none of this process's H2OT_/MLflow settings: a job gets
    # them only through its runtime_env, as on a real cluster. `h2ot` is on its PATH, as on a cluster image.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("H2OT_", "MLFLOW_", "RAY_ADDRESS"))}
    env.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
         # the agent's HTTP port is fixed (52365) by default: another head on this machine would hold it
         "--dashboard-agent-listen-port", str(free_port()), "--ray-client-server-port", str(free_port()),
         "--num-cpus", "2", "--num-gpus", "2", "--temp-dir", temp,
         "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 120
        while not _jobs_api_ready(url, env):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head's job API did not come up at {url}")
            time.sleep(1)
        yield {"url": url, "gcs": f"127.0.0.1:{port}", "env": env}
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def client_env(head: dict, root: Path) -> dict[str, str]:
    """The submitting shell: its own leaderboard and MLflow store (absolute paths, the job writes them too)."""
    return {**head["env"], "H2OT_RUNS_DIR": str(root / "runs"), "H2OT_DB_URL": f"sqlite:///{root / 'lb.sqlite'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}


def write_grid(folder: Path, name: str, *, pruners: list[str], epochs: int = 1) -> Path:
    """A self-contained tiny grid (one trial per pruner) in ``folder``, the job's working directory."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = {"name": name, "metric": {"name": "mpjpe", "mode": "min"},
            "grid": {"backbone": ["mixste"], "frames": [27], "dataset": ["synthetic"], "seed": [0],
                     "pruner": pruners, "recoverer": ["tra"], "schedule": ["1:9"]},
            "fixed": {"model": {"dim": 32, "depth": 2, "num_heads": 2},
                      "train": {"epochs": epochs, "batch_size": 8, "max_train_windows": 32, "max_test_windows": 16,
                                "num_threads": 1},
                      "data": {"minutes": 0.5}}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def statuses(db: Path) -> dict[str, tuple[str, str | None]]:
    """``trial_key -> (status, stop_reason)`` read without creating or migrating anything (the job owns the file)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return {k: (s, r) for k, s, r in conn.execute("select trial_key, status, stop_reason from trials")}
    except sqlite3.OperationalError:  # the schema is still being created
        return {}


def campaign_job_id(db: Path, name: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("select ray_job_id from campaigns where name = ?", (name,)).fetchone()
    return row[0] if row else None


def run_until_first_trial(cmd: list[str], env: dict[str, str], db: Path, *, cwd: Path = REPO,
                          timeout: float = 600) -> tuple[subprocess.CompletedProcess, float | None]:
    """Run ``cmd`` to the end; also returns seconds from its start to the first trial row in the leaderboard."""
    started = time.monotonic()
    first = None
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = started + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if first is None and statuses(db):
            first = time.monotonic() - started
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), first


def test_submit_wait_trains_the_smoke_grid_and_records_the_job(head, tmp_path):
    env = client_env(head, tmp_path)
    db = tmp_path / "lb.sqlite"
    proc, latency = run_until_first_trial(
        [H2OT, "campaign", "submit", str(SMOKE), "--address", head["url"], "--retries", "1", "--wait"], env, db)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    job_id = proc.stdout.splitlines()[0].strip()
    assert job_id.startswith("h2ot-smoke-")
    print(f"\nsubmit --wait -> first trial in the leaderboard: {latency:.1f} s")
    keys = [s.trial_key for s in load_grid(SMOKE).expand()]
    assert {k: s for k, (s, _) in statuses(db).items()} == dict.fromkeys(keys, "complete")
    assert campaign_job_id(db, "smoke") == job_id
    # The cluster has (logical) GPUs: one per trial by default, and the plan line says so; the values of the
    # settings passed to the job are never printed, only their names.
    assert "1 CPU + 1 GPU per trial (the cluster has 2 GPU(s)" in proc.stdout
    assert "env passed to the job: H2OT_DB_URL, H2OT_RUNS_DIR, MLFLOW_TRACKING_URI" in proc.stderr
    assert str(db) not in proc.stderr and f"job {job_id}: SUCCEEDED (exit code 0)" in proc.stderr
    # every trial is an MLflow run in the store the job was given
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("smoke")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'trial'", max_results=100)
    assert sorted(r.data.tags["h2ot.trial_key"] for r in runs) == sorted(keys)
    assert {r.info.status for r in runs} == {"FINISHED"}
    with sqlite3.connect(db) as conn:
        devices = {d for (d,) in conn.execute("select device from trials")}
    assert devices == {"cpu"}  # a logical GPU without CUDA: the trainable falls back to the CPU
    # status shows the job's state next to the trial counts
    res = subprocess.run([H2OT, "campaign", "status", "smoke", "--address", head["url"]], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"ray job {job_id}: SUCCEEDED, exit code 0" in res.stdout and "complete" in res.stdout


def test_submit_wait_exits_with_the_campaigns_code(head, tmp_path):
    # Storage the job's driver refuses (exit 2 there): --wait hands that code back, after the job's log.
    env = {**client_env(head, tmp_path), "H2OT_STORAGE": "nosuch://bucket/h2ot"}
    wd = tmp_path / "wd"
    grid = write_grid(wd, "badstore", pruners=["tpc"])
    res = subprocess.run([H2OT, "campaign", "submit", str(grid), "--working-dir", str(wd), "--address", head["url"],
                          "--wait"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:] + res.stdout[-3000:]
    assert "unknown scheme 'nosuch'" in res.stdout  # the driver's one-line error, from the job's log
    assert "H2OT_STORAGE" in res.stderr and "nosuch://" not in res.stderr  # the name, never the value
    assert "FAILED (exit code 2)" in res.stderr


def test_plain_ray_job_submit_runs_a_campaign(head, tmp_path):
    env = client_env(head, tmp_path)
    wd = tmp_path / "wd"
    write_grid(wd, "plain", pruners=["tpc"])
    job_env = {k: env[k] for k in ("H2OT_RUNS_DIR", "H2OT_DB_URL", "MLFLOW_TRACKING_URI")}
    res = subprocess.run(
        [RAY, "job", "submit", "--address", head["url"], "--working-dir", str(wd),
         "--runtime-env-json", json.dumps({"env_vars": job_env}), "--",
         "h2ot", "campaign", "run", "plain.yaml", "--gpus-per-trial", "0"],
        env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    db = tmp_path / "lb.sqlite"
    key = load_grid(wd / "plain.yaml").expand()[0].trial_key
    assert statuses(db) == {key: ("complete", None)}
    # the driver joined through RAY_ADDRESS (no --address), kept to CPU as asked, and recorded its job id
    assert "1 CPU + 0 GPU per trial (the cluster has 2 GPU(s))" in res.stdout
    job_id = campaign_job_id(db, "plain")
    assert job_id and job_id.startswith("raysubmit_") and job_id in res.stdout
    # on a node of the cluster RAY_ADDRESS is the cluster's own address: Ray looks the dashboard up from it
    status = subprocess.run([H2OT, "campaign", "status", "plain"], env={**env, "RAY_ADDRESS": head["gcs"]},
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert f"ray job {job_id}: SUCCEEDED, exit code 0" in status.stdout


def test_stop_ends_running_trials_stopped_and_the_next_run_trains_them(head, tmp_path):
    from orchestrator.launcher import partition
    from results.store import LeaderboardStore

    env = client_env(head, tmp_path)
    db = tmp_path / "lb.sqlite"
    wd = tmp_path / "wd"
    grid = write_grid(wd, "long", pruners=["tpc", "tps"], epochs=500)
    started = time.monotonic()
    sub = subprocess.run([H2OT, "campaign", "submit", str(grid), "--working-dir", str(wd), "--address",
                          head["url"], "--gpus-per-trial", "0"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip()
    deadline = time.monotonic() + 300
    while "running" not in {s for s, _ in statuses(db).values()}:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.2)
    print(f"\nsubmit -> first trial running: {time.monotonic() - started:.1f} s")
    res = subprocess.run([H2OT, "campaign", "stop", "long", "--address", head["url"]], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"ray job {job_id}: STOPPED (was RUNNING)" in res.stdout
    rows = statuses(db)
    assert len(rows) == 2 and set(rows.values()) == {("stopped", "user")}, rows
    status = subprocess.run([H2OT, "campaign", "status", "long", "--address", head["url"]], env=env,
                            capture_output=True, text=True, timeout=120)
    assert f"ray job {job_id}: STOPPED" in status.stdout
    # user-stopped trials are not "kept": the next run or submit of the grid trains them again
    specs = load_grid(grid).expand()
    todo, kept = partition(specs, LeaderboardStore(env["H2OT_DB_URL"]))
    assert {s.trial_key for s in todo} == set(rows) and kept == []
    # stopping it again is harmless and changes nothing
    again = subprocess.run([H2OT, "campaign", "stop", job_id, "--address", head["url"]], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"ray job {job_id}: STOPPED" in again.stdout
    assert statuses(db) == rows


def test_partition_reruns_user_stopped_trials_and_keeps_scheduler_stopped_ones(tmp_path):
    from h2ot_core.contracts import StopReason, TrialResult, TrialStatus
    from orchestrator.launcher import partition
    from results.store import LeaderboardStore

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    specs = load_grid(write_grid(tmp_path, "p", pruners=["tpc", "tps", "tpa"])).expand()
    store = LeaderboardStore(url)
    for spec, reason in zip(specs, (StopReason.ASHA, StopReason.USER, StopReason.INTERRUPTED), strict=True):
        store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), TrialStatus.STOPPED, stop_reason=reason),
                            campaign="p")
    todo, kept = partition(specs, store)
    assert [s.trial_key for s in todo] == [specs[1].trial_key, specs[2].trial_key]  # cut short: resumed
    assert [s.trial_key for s in kept] == [specs[0].trial_key]  # judged: kept
    todo, kept = partition(specs, store, rerun_stopped=True)
    assert len(todo) == 3 and kept == []
    todo, kept = partition(specs, store, rerun=True)
    assert len(todo) == 3 and kept == []


def one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_errors_are_one_line_and_exit_2(head, tmp_path):
    env = {"H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": f"sqlite:///{tmp_path / 'lb.sqlite'}",
           "RAY_AUTH_MODE": "token", "RAY_ADDRESS": None, "H2OT_RAY_ADDRESS": None}
    dead = f"http://127.0.0.1:{free_port()}"
    one_line_error(runner.invoke(app, ["campaign", "submit", str(SMOKE), "--address", dead], env=env),
                   dead, "nothing answers", "ray start --head --dashboard-host 127.0.0.1")
    one_line_error(runner.invoke(app, ["campaign", "run", str(SMOKE), "--address", "ray://127.0.0.1:10001"],
                                 env=env), "Ray Client", "h2ot campaign submit")
    one_line_error(runner.invoke(app, ["campaign", "run", str(SMOKE)], env={**env, "RAY_ADDRESS": head["url"]}),
                   "RAY_ADDRESS", "dashboard", "h2ot campaign submit")
    one_line_error(runner.invoke(app, ["campaign", "run", str(SMOKE), "--num-cpus", "2"],
                                 env={**env, "H2OT_RAY_ADDRESS": head["gcs"]}), "H2OT_RAY_ADDRESS", "--num-cpus")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngrid:\n  pruner: [tpcc]\n")
    one_line_error(runner.invoke(app, ["campaign", "submit", str(bad), "--address", head["url"]], env=env),
                   "tpcc")
    one_line_error(runner.invoke(app, ["campaign", "submit", str(write_grid(tmp_path / "out", "o", pruners=["tpc"])),
                                       "--address", head["url"]], env=env), "not inside the working directory")
    assert not (tmp_path / "lb.sqlite").exists() and not (tmp_path / "runs").exists()  # nothing written
    one_line_error(runner.invoke(app, ["campaign", "stop", "raysubmit_nosuchjob", "--address", head["url"]],
                                 env=env), "raysubmit_nosuchjob", "neither a campaign")


def test_a_failed_job_shows_the_end_of_its_driver_log(head, tmp_path, monkeypatch):
    """The issue's case: the head lacks `h2ot`, the job ends FAILED with exit code 127, and the reason is only in
    its driver log; `campaign status` shows that log's last lines, not a bare state."""
    from orchestrator import jobs
    from results.store import LeaderboardStore

    env = client_env(head, tmp_path)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    client = jobs.job_client(head["url"])
    entrypoint = "echo 'campaign broken: starting'; echo 'sh: 1: h2ot: not found' >&2; exit 127"
    job_id = jobs.submit(client, entrypoint, working_dir=tmp_path, env={}, campaign="broken")
    assert jobs.wait_finished(client, job_id, timeout_s=120).status == "FAILED"
    LeaderboardStore(env["H2OT_DB_URL"]).ensure_campaign("broken", ray_job_id=job_id)
    res = subprocess.run([H2OT, "campaign", "status", "broken", "--address", head["url"]], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"ray job {job_id}: FAILED, exit code 127" in res.stdout
    assert f"last lines of its driver log (all of it: ray job logs --address {head['url']} {job_id}):" in res.stderr
    assert "  | sh: 1: h2ot: not found" in res.stderr and "  | campaign broken: starting" in res.stderr
