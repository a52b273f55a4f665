"""A tracking outage loses nothing: a real ``mlflow server`` SIGKILLed mid-campaign.

The campaign (a real ``h2ot campaign run`` subprocess, its own local Ray) keeps training with the server
gone, ends with exit 0 and a complete leaderboard, and says once on stderr what it did not log. Restarted
on the same port and store, ``h2ot campaign sync`` backfills MLflow from the leaderboard: one run per trial,
every epoch step exactly once; a second sync changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import pytest
import sqlalchemy as sa
from testkit import MlflowServer, finish, free_port, grid_file, h2ot

from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.server, pytest.mark.timeout(900)]

EPOCHS = 2


@pytest.fixture
def server(tmp_path):
    srv = MlflowServer(tmp_path, free_port())
    srv.start()
    yield srv
    srv.kill()


def trial_rows(db_url: str) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """trial_key -> [(status, history_json, mlflow_run_id)] (a list, so duplicate rows would show)."""
    engine = sa.create_engine(db_url)
    trials = sa.table("trials", sa.column("trial_key"), sa.column("status"), sa.column("history_json"),
                      sa.column("mlflow_run_id"))
    found: dict[str, list] = {}
    try:
        with engine.connect() as conn:
            for key, *rest in conn.execute(sa.select(trials.c.trial_key, trials.c.status, trials.c.history_json,
                                                     trials.c.mlflow_run_id)):
                found.setdefault(key, []).append(tuple(rest))
    except sa.exc.OperationalError:  # no leaderboard yet
        return {}
    finally:
        engine.dispose()
    return found


def mlflow_state(url: str, experiment: str) -> dict:
    """Everything the sync may write: per trial run its id, status, params, tags and full metric histories."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'trial'", max_results=1000)
    state: dict[str, list] = {}
    for run in runs:
        histories = {name: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, name))
                     for name in run.data.metrics}
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log-model")}
        state.setdefault(run.data.tags["h2ot.trial_key"], []).append(
            {"run_id": run.info.run_id, "status": run.info.status, "params": dict(run.data.params),
             "tags": tags, "metrics": histories,
             "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))})
    for run in client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'campaign'"):
        state.setdefault("campaign run", []).append({"run_id": run.info.run_id, "status": run.info.status,
                                                     "end_time": run.info.end_time})
    return state


@pytest.mark.timeout(1800)
def test_tracking_outage_loses_nothing_and_sync_backfills_once(tmp_path, server):
    path = grid_file(tmp_path, "outage", grid={"pruner": ["tpc", "tps"], "recoverer": ["tra", "tri"], "schedule": "1:9"},
                     train={"epochs": EPOCHS})
    keys = [s.trial_key for s in load_grid(path).expand()]
    assert len(keys) == 4
    db_url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    env = {**os.environ, "H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": db_url,
           "MLFLOW_TRACKING_URI": server.url, "RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "H2OT_MLFLOW_PROBE_S": "30"}

    started = time.monotonic()
    proc = h2ot(["campaign", "run", str(path), "--max-concurrent", "1", "--retries", "0"], env)
    deadline = time.monotonic() + 400
    while not any(r[0][0] == "complete" for r in trial_rows(db_url).values()):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no first complete trial (rc {proc.poll()}):\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    server.kill()  # SIGKILL, with one trial complete and three to go
    rc, _, err = finish(proc, timeout=600)
    elapsed = time.monotonic() - started
    print(f"\ncampaign with the tracking server killed after trial 1: {elapsed:.1f} s")

    # The campaign went on: exit 0, every trial complete once, each with its per-epoch history.
    assert rc == 0, err[-3000:]
    rows = trial_rows(db_url)
    assert sorted(rows) == sorted(keys)
    assert all(len(r) == 1 and r[0][0] == "complete" for r in rows.values()), rows
    for key, ((_, history, _),) in rows.items():
        assert [row["epoch"] for row in json.loads(history)] == list(range(1, EPOCHS + 1)), key
    # One warning for the outage, not a traceback per call; the end of the run says how to backfill.
    assert err.count("MLflow tracking server") == 1, err[-3000:]
    assert "unreachable" in err and "Traceback" not in err, err[-3000:]
    assert "h2ot campaign sync outage" in err, err[-3000:]

    # A sync while the server is still down: exit 1, one line naming the server, nothing else tried for long.
    rc, _, err = finish(h2ot(["campaign", "sync", "outage"], env), timeout=120)
    assert rc == 1 and "Traceback" not in err, err[-3000:]
    assert f"Error: MLflow at {server.url}: 4 trial(s) of campaign outage not synced" in " ".join(err.split())

    server.start()
    before = mlflow_state(server.url, "outage")
    assert before.pop("campaign run")[0]["status"] == "RUNNING"  # the campaign could not close it
    assert len(before) < len(keys)  # MLflow did miss trials

    rc, _, err = finish(h2ot(["campaign", "sync", "outage"], env), timeout=600)
    assert rc == 0, err[-3000:]
    after = mlflow_state(server.url, "outage")
    (parent,) = after.pop("campaign run")
    assert parent["status"] == "FINISHED"  # the campaign could not close it; the sync did
    assert sorted(after) == sorted(keys)
    for key, runs in after.items():
        assert len(runs) == 1, (key, runs)  # one run per trial_key
        (run,) = runs
        assert run["status"] == "FINISHED" and run["tags"]["h2ot.status"] == "complete"
        assert run["tags"]["h2ot.logged"] == "complete"
        assert run["params"]["pruner"] in ("tpc", "tps") and run["params"]["schedule"] == "1:9"
        for name in ("epoch", "train_loss", "test_mpjpe"):
            assert [s for s, _, _ in run["metrics"][name]] == list(range(1, EPOCHS + 1)), (key, name)
        assert len(run["metrics"]["final.test_mpjpe"]) == 1 and len(run["metrics"]["cost.gflops"]) == 1
        assert "spec.json" in run["artifacts"]
    # The run logged before the outage kept its id; the leaderboard names each trial's run.
    for key, runs in before.items():
        assert after[key][0]["run_id"] == runs[0]["run_id"]
    assert {k: r[0][2] for k, r in trial_rows(db_url).items()} == {k: r[0]["run_id"] for k, r in after.items()}
    assert "0 run(s) created" not in err

    rc, _, err = finish(h2ot(["campaign", "sync", "outage"], env), timeout=600)
    assert rc == 0, err[-3000:]
    assert "4 already in MLflow, 0 run(s) created, 0 updated" in err, err
    assert mlflow_state(server.url, "outage") == {**after, "campaign run": [parent]}  # idempotent: nothing changed



def test_epochs_skipped_in_an_outage_are_logged_once_when_the_trial_ends(server, caplog):
    """The tracker alone, against the real server killed and restarted mid-trial (no Ray)."""
    from mlflow.tracking import MlflowClient

    from h2ot_core.contracts import MetricRecord, TrialResult, TrialSpec
    from orchestrator.tracking import CampaignTracker

    spec = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=0)
    tracker = CampaignTracker("camp", "exp", uri=server.url, probe_s=3600)
    run_id = tracker.start_trial(spec)
    assert run_id is not None
    tracker.log_epoch(run_id, {"epoch": 1, "train_loss": 0.9}, 1)
    server.kill()
    with caplog.at_level(logging.WARNING, logger="orchestrator.tracking"):
        tracker.log_epoch(run_id, {"epoch": 2, "train_loss": 0.8}, 2)  # fails: trips the breaker
        tracker.log_epoch(run_id, {"epoch": 3, "train_loss": 0.7}, 3)  # skipped without a request
    assert (tracker.breaker.failed, tracker.breaker.skipped) == (1, 1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "Connection refused" in warnings[0]
    assert tracker.partial == {spec.trial_key}

    server.start()
    tracker.breaker.probe_soon()
    history = [{"epoch": e, "train_loss": v} for e, v in ((1, 0.9), (2, 0.8), (3, 0.7))]
    result = TrialResult(spec.trial_key, spec.to_dict(), "complete", [MetricRecord("mpjpe", "test", 50.0)],
                         epochs_run=3, history=history)
    assert tracker.finish_trial(spec, result, run_id) == run_id
    assert tracker.partial == set()
    client = MlflowClient(server.url)
    assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train_loss")) == \
        [(1, 0.9), (2, 0.8), (3, 0.7)]  # epoch 1 not again, 2 and 3 backfilled from the history
    assert [m.step for m in client.get_metric_history(run_id, "final.test_mpjpe")] == [3]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["h2ot.logged"] == "complete"
    assert run.data.params["pruner"] == "tpc"


def test_next_campaign_run_backfills_what_an_outage_missed_at_its_end(server, tmp_path, caplog):
    """The sink (driven with Tune's callback order): a run during the outage, then the next run of the
    campaign, whose end gives MLflow the earlier trial too, from the leaderboard."""
    from types import SimpleNamespace

    from mlflow.tracking import MlflowClient

    from h2ot_core.contracts import MetricRecord, TrialResult, TrialSpec
    from orchestrator.sink import ResultsSink
    from orchestrator.trainable import RESULT_KEY
    from results.store import LeaderboardStore

    db_url = f"sqlite:///{tmp_path / 'lb.sqlite'}"

    def run_trial(sink: ResultsSink, seed: int) -> str:
        spec = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=seed)
        history = [{"epoch": e, "train_loss": 1.0 - e / 10} for e in (1, 2)]
        result = TrialResult(spec.trial_key, spec.to_dict(), "complete", [MetricRecord("mpjpe", "test", 50.0)],
                             epochs_run=2, history=history)
        trial = SimpleNamespace(config={"spec": spec.to_dict()}, trial_id=spec.trial_key, last_result={}, error_file=None)
        sink.on_trial_start(0, [], trial)
        for row in history:
            sink.on_trial_result(0, [], trial, {**row, "should_checkpoint": True, "training_iteration": row["epoch"]})
            sink.on_checkpoint(0, [], trial, checkpoint=None)
        trial.last_result = {RESULT_KEY: result.to_json()}
        sink.on_trial_complete(0, [], trial)
        return spec.trial_key

    server.kill()
    first = ResultsSink("camp", "exp", LeaderboardStore(db_url), tracking_uri=server.url)
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        a = run_trial(first, 0)
        first.on_experiment_end([])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "unreachable" in warnings[0], warnings
    assert "MLflow lacks 1 trial(s) of campaign camp" in warnings[1]

    server.start()
    second = ResultsSink("camp", "exp", LeaderboardStore(db_url), tracking_uri=server.url)
    b = run_trial(second, 1)
    second.on_experiment_end([])
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'trial'")
    assert sorted(r.data.tags["h2ot.trial_key"] for r in runs) == sorted([a, b])
    for run in runs:
        assert [m.step for m in sorted(client.get_metric_history(run.info.run_id, "train_loss"),
                                       key=lambda m: m.step)] == [1, 2]
        assert run.info.status == "FINISHED" and run.data.tags["h2ot.logged"] == "complete"
    (parent,) = client.search_runs([exp.experiment_id], "tags.`h2ot.role` = 'campaign'")
    assert parent.info.status == "FINISHED"
    assert second.store.trial_status(a) == "complete"
