"""`h2ot train` and `h2ot evaluate` through the real CLI app: a tiny trial trained end to end, then evaluated."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()

TINY_ARGS = ["--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "2", "--heads", "2",
             "--dataset", "synthetic", "--minutes", "0.5", "--epochs", "1", "--batch-size", "4",
             "--max-train-windows", "8", "--max-test-windows", "6", "--set", "train.num_threads=1"]


@pytest.fixture(scope="module", autouse=True)
def runs(tmp_path_factory):
    """Where `h2ot train` records its trials: a leaderboard and MLflow store of this module's own."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("H2OT_RUNS_DIR", str(root))
        mp.delenv("H2OT_DB_URL", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runs):
    root = tmp_path_factory.mktemp("train")
    trial = root / "trial.yaml"
    trial.write_text("pruner: tps\nrecoverer: tri\nschedule: '1:9'\nseed: 2\ntrain:\n  lr: 0.001\n")
    result = runner.invoke(app, ["train", str(trial), *TINY_ARGS, "--workdir", str(root / "run"),
                                 "--data-dir", str(root / "data")])
    return root, result


@pytest.mark.slow
def test_train_one_epoch_prints_the_metrics_table_and_writes_checkpoints(trained):
    root, result = trained
    assert result.exit_code == 0, result.output
    assert "avg" in result.stdout and "mpjpe" in result.stdout and "p_mpjpe" in result.stdout
    assert "complete" in result.stderr and "GFLOPs" in result.stdout
    assert (root / "run" / "model.pt").is_file()
    assert (root / "run" / "checkpoint" / "state.pt").is_file()


@pytest.mark.slow
def test_resume_skips_finished_epochs(trained):
    root, first = trained
    again = runner.invoke(app, ["train", str(root / "trial.yaml"), *TINY_ARGS, "--workdir", str(root / "run"),
                                "--data-dir", str(root / "data"), "--resume"])
    assert again.exit_code == 0, again.output
    # Nothing left to train: the same final table comes back from the checkpoint.
    assert again.stdout == first.stdout


@pytest.mark.slow
def test_evaluate_prints_per_action_table_of_the_checkpoint(trained):
    root, result = trained
    assert result.exit_code == 0, result.output
    ev = runner.invoke(app, ["evaluate", str(root / "run" / "model.pt"), "--dataset", "synthetic",
                             "--data-dir", str(root / "data"), "--no-flip"])
    assert ev.exit_code == 0, ev.output
    rows = [line for line in ev.stdout.splitlines() if "│" in line]
    assert any(line.strip("│ ").startswith("avg") for line in rows)
    assert len(rows) >= 4  # header, at least two actions and the average
    assert "frames of synthetic" in ev.stderr


@pytest.mark.slow
def test_evaluate_scores_either_protocol_as_json_per_action(trained):
    root, result = trained
    assert result.exit_code == 0, result.output
    base = ["evaluate", str(root / "run" / "model.pt"), "--data-dir", str(root / "data"), "--no-flip",
            "--format", "json"]
    scored = {}
    for protocol in ("real_frames", "official"):
        ev = runner.invoke(app, [*base, "--protocol", protocol])
        assert ev.exit_code == 0, ev.output
        scored[protocol] = {r["action"]: r for r in json.loads(ev.stdout)}
        assert {"mpjpe", "p_mpjpe"} <= set(scored[protocol]["avg"])
        assert f"protocol {protocol}" in ev.stderr
    assert scored["official"]["avg"]["mpjpe"] != scored["real_frames"]["avg"]["mpjpe"]
    centre = runner.invoke(app, [*base, "--frames", "centre", "--stride", "13"])
    assert centre.exit_code == 0, centre.output
    assert json.loads(centre.stdout)[-1]["action"] == "avg"


@pytest.mark.parametrize(("args", "message"), [
    (["--protocol", "paper"], "--protocol: Unknown protocol 'paper'"),
    (["--frames", "middle"], "--frames: Unknown frames 'middle'"),
])
def test_evaluate_refuses_an_unknown_protocol_or_frames(tmp_path, args, message):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "model.pt"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(("content", "args", "message"), [
    ("backbone: [mixste\n", [], "not valid YAML"),
    ("- mixste\n", [], "must be a mapping"),
    ("backbone: mixste\nframes: many\n", [], "frames: 'many' must be an integer"),
    ("backbone: mixste\nepochs: 3\n", [], "Unknown trial field 'epochs'"),
    ("backbone: mixste\ntrain: {epoch: 3}\n", [], "train.epoch"),
    ("backbone: mixtse\n", [], "Did you mean: mixste"),
    ("backbone: mixste\n", ["--set", "oops"], "KEY=VALUE"),
    ("pruner: tpc\n", [], "backbone: missing"),
    ("backbone: mixste\ntrain: {recipe: offical}\n", [], "field 'train.recipe' is 'offical'"),
    ("backbone: mixste\nevaluate: {protocol: paper}\n", [], "evaluate.protocol: Unknown protocol 'paper'"),
    ("backbone: mixste\nselection: best\n", [], "selection: Unknown selection 'best'"),
])
def test_bad_trial_files_are_one_line_errors(tmp_path, content, args, message):
    path = tmp_path / "trial.yaml"
    path.write_text(content)
    result = runner.invoke(app, ["train", str(path), *args, "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "w").exists()


def test_evaluate_refuses_foreign_files(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text(json.dumps({"not": "a checkpoint"}))
    result = runner.invoke(app, ["evaluate", str(bad), "--dataset", "synthetic"])
    assert result.exit_code == 2
    assert "model.pt" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
def test_train_on_the_real_mocap_clips(tmp_path):
    """One epoch on pybullet's real motion capture: its test clips are the rows of the table."""
    args = [a if a != "synthetic" else "mocap_clips" for a in TINY_ARGS if a not in ("--minutes", "0.5")]
    result = runner.invoke(app, ["train", *args, "--workdir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    actions = {line.strip("│ ").split()[0] for line in result.stdout.splitlines() if "│" in line}
    assert {"walk", "jump", "dance_b", "avg"} <= actions


@pytest.mark.slow
def test_a_diverging_trial_says_at_which_epoch_and_exits_1(tmp_path):
    result = runner.invoke(app, ["train", *TINY_ARGS, "--pruner", "tpc", "--recoverer", "tra", "--schedule", "1:9",
                                 "--lr", "1e12", "--workdir", str(tmp_path / "run"),
                                 "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1, result.output
    assert "failed (NaN at epoch 1), 0 epoch(s)" in result.stderr


@pytest.mark.slow
def test_train_records_its_trial_in_the_leaderboard_and_mlflow(trained, runs):
    from mlflow.tracking import MlflowClient

    from results.store import LeaderboardStore

    _, result = trained
    assert result.exit_code == 0, result.output
    assert "recorded: h2ot leaderboard --campaign train (MLflow run " in result.stderr
    key = re.search(r"trial ([0-9a-f]{16}): complete", result.stderr).group(1)
    rows = json.loads(runner.invoke(app, ["leaderboard", "--campaign", "train", "--format", "json"]).stdout)
    assert key in {r["trial_key"] for r in rows}
    assert LeaderboardStore().trial_status(key) == "complete"
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("train")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`h2ot.trial_key` = '{key}'")
    assert run.info.status == "FINISHED" and "test_mpjpe" in run.data.metrics


def test_recording_into_a_grid_campaign_keeps_its_grid(runs):
    from h2ot_core.contracts import MetricRecord, TrialResult, TrialSpec
    from orchestrator.tracking.single import record_trial
    from results.store import LeaderboardStore

    store = LeaderboardStore()
    store.ensure_campaign("gridded", grid_path="search_spaces/demo.yaml", grid_yaml="name: demo\n")
    spec = TrialSpec(backbone="mixste", pruner="tpc", recoverer="tra", schedule="1:9", frames=27, seed=5)
    result = TrialResult(spec.trial_key, spec.to_dict(), "complete", [MetricRecord("mpjpe", "test", 50.0)],
                         history=[{"epoch": 1, "train_loss": 0.5}])
    assert record_trial(spec, result, campaign="gridded") is not None
    row = store.campaign_row("gridded")
    assert row["grid_path"] == "search_spaces/demo.yaml" and row["grid_yaml"] == "name: demo\n"
    assert store.trial_status(spec.trial_key) == "complete" and store.campaign_status("gridded") == {"complete": 1}
