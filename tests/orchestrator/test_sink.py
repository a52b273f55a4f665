"""The results sink against real MLflow and a real SQLite leaderboard, driven with Tune's callback order.

A checkpointed epoch is committed to MLflow only when Tune registers its checkpoint (``on_checkpoint``); a
worker lost before that (``on_trial_recover``) trains the epoch again, and the retry's report is the one
logged. The end-to-end kill test cannot choose where its SIGKILL falls; these tests put it at each point.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from h2ot_core.contracts import EPOCH_EVAL_SECONDS, EPOCH_TRAIN_SECONDS, TrialSpec
from orchestrator.sink import ResultsSink
from results.store import LeaderboardStore

SPEC = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27, seed=0)


@pytest.fixture
def sink(tmp_path):
    return ResultsSink("camp", "exp", LeaderboardStore(f"sqlite:///{tmp_path / 'lb.sqlite'}"),
                       tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def trial():
    return SimpleNamespace(config={"spec": SPEC.to_dict()}, trial_id="t0001", last_result={}, error_file=None)


def report(sink: ResultsSink, t, epoch: int, loss: float, *, checkpoint: bool = True,
           device_s: tuple[float, float] | None = None) -> None:
    timed = {EPOCH_TRAIN_SECONDS: device_s[0], EPOCH_EVAL_SECONDS: device_s[1]} if device_s else {}
    sink.on_trial_result(0, [], t, {"epoch": epoch, "train_loss": loss, "should_checkpoint": checkpoint,
                                    "training_iteration": epoch, "pid": 1, **timed})


def history(sink: ResultsSink) -> list[tuple[int, float]]:
    client = MlflowClient(sink.tracking_uri)
    run_id = sink.run_ids[SPEC.trial_key]
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train_loss"))


def test_checkpointed_epoch_is_logged_when_its_checkpoint_is_registered(sink):
    t = trial()
    sink.on_trial_start(0, [], t)
    report(sink, t, 1, 0.9)
    assert history(sink) == []  # Tune has not saved the checkpoint yet
    sink.on_checkpoint(0, [], t, checkpoint=None)
    assert history(sink) == [(1, 0.9)]
    report(sink, t, 2, 0.8, checkpoint=False)  # no checkpoint to wait for: logged at once
    assert history(sink) == [(1, 0.9), (2, 0.8)]


def test_epoch_lost_with_its_worker_is_logged_once_from_the_retry(sink):
    t = trial()
    sink.on_trial_start(0, [], t)
    report(sink, t, 1, 0.9)
    sink.on_checkpoint(0, [], t, checkpoint=None)
    report(sink, t, 2, 0.8)  # the worker dies before Tune saves epoch 2's checkpoint
    sink.on_trial_recover(0, [], t)
    report(sink, t, 2, 0.7)  # the retry resumes from epoch 1 and trains epoch 2 again
    sink.on_checkpoint(0, [], t, checkpoint=None)
    assert history(sink) == [(1, 0.9), (2, 0.7)]


def test_trial_that_errors_for_good_keeps_its_last_epoch(sink, tmp_path):
    t = trial()
    sink.on_trial_start(0, [], t)
    report(sink, t, 1, 0.9, device_s=(90.0, 18.0))
    sink.on_trial_error(0, [], t)  # no retry left: the epoch did run, and is the last thing it did
    assert history(sink) == [(1, 0.9)]
    assert sink.outcomes == {SPEC.trial_key: "failed"}
    # the device time its reported epoch took is the failed trial's usage, in the leaderboard and in MLflow
    (stored,), _ = sink.store.campaign_results("camp")
    assert (stored.usage.device_seconds_train, stored.usage.device_seconds_eval) == (90.0, 18.0)
    assert stored.usage.device_hours == pytest.approx(0.03)
    run = MlflowClient(sink.tracking_uri).get_run(sink.run_ids[SPEC.trial_key])
    assert run.data.metrics["usage.device_hours"] == pytest.approx(0.03)


def test_trial_stopped_by_the_scheduler_is_stored_stopped_with_its_last_metrics(sink):
    t = trial()
    sink.on_trial_start(0, [], t)
    report(sink, t, 1, 0.9, checkpoint=False)
    t.last_result = {"epoch": 1, "train_loss": 0.9, "test_mpjpe": 80.5, "test_mpjpe__Walking": 70.0,
                     "sched_test_mpjpe": 80.5, "lr": 1e-3}
    sink.on_trial_complete(0, [], t)
    assert sink.outcomes == {SPEC.trial_key: "stopped"}
    assert sink.store.trial_status(SPEC.trial_key) == "stopped"
    from sqlalchemy import select

    from results.schema import Metric

    with sink.store.engine.connect() as conn:
        rows = set(conn.execute(select(Metric.name, Metric.split, Metric.action, Metric.value)).all())
    assert rows == {("loss", "train", "avg", 0.9), ("mpjpe", "test", "avg", 80.5),
                    ("mpjpe", "test", "Walking", 70.0)}
