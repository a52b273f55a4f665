"""Losses, recipes, checkpoint state and run_trial end to end on tiny synthetic data (real files, real training)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from h2ot_core.contracts import EPOCH_EVAL_SECONDS, EPOCH_TRAIN_SECONDS, TrialSpec, metric_key
from h2ot_core.engine.losses import (
    WeightedLoss,
    align_to_output,
    mpjpe_loss,
    temporal_consistency_loss,
    velocity_loss,
    weighted_mpjpe_loss,
)
from h2ot_core.engine.recipes import resolve_settings
from h2ot_core.engine.state import TrainState, load_state, save_state
from h2ot_core.errors import CheckpointError, ConfigError
from h2ot_core.names import backbone_info, dataset_info
from h2ot_core.registry import UnknownNameError

ONES = torch.ones(17)
H36M_WEIGHTS = dataset_info("h36m").joint_weights


def _clip(frames: int = 4, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    target = 0.2 * torch.randn(batch, frames, 17, 3, generator=gen)
    return target + 0.01 * torch.randn(batch, frames, 17, 3, generator=gen), target


# ---------------------------------------------------------------- losses


def test_mpjpe_loss_counts_only_masked_frames():
    pred, target = _clip()
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, -1] = False
    corrupted = pred.clone()
    corrupted[:, -1] += 100.0  # padded frames must not matter
    assert mpjpe_loss(corrupted, target, mask, ONES).item() == pytest.approx(mpjpe_loss(pred, target, mask, ONES).item())
    assert mpjpe_loss(target + torch.tensor([0.03, 0.0, 0.04]), target, mask, ONES).item() == pytest.approx(0.05)


def test_weighted_mpjpe_with_unit_weights_is_mpjpe_and_weights_shift_it():
    pred, target = _clip()
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert weighted_mpjpe_loss(pred, target, mask, ONES).item() == pytest.approx(mpjpe_loss(pred, target, mask, ONES).item())
    only_joint_12 = target.clone()
    only_joint_12[..., 12, 0] += 0.017  # error on a weight-4 joint only: 4 * 17 mm / 17 joints = 4 mm
    w = torch.tensor(H36M_WEIGHTS)
    assert weighted_mpjpe_loss(only_joint_12, target, mask, w).item() == pytest.approx(0.004, rel=1e-4)


def test_velocity_and_tc_hand_cases():
    target = torch.zeros(1, 3, 17, 3)
    mask = torch.ones(1, 3, dtype=torch.bool)
    shifted = target + 0.5  # constant offset: same velocities
    assert velocity_loss(shifted, target, mask, ONES).item() == 0.0
    blip = target.clone()
    blip[0, 1, :, 0] = 0.01
    assert velocity_loss(blip, target, mask, ONES).item() == pytest.approx(0.01)
    # TC: mean over steps, joints and axes of w · Δ²: one of three axes moves by 0.01 on each step
    assert temporal_consistency_loss(blip, target, mask, ONES).item() == pytest.approx(0.01**2 / 3)
    mask[0, 2] = False  # the second step now touches a padded frame and drops out
    assert velocity_loss(blip, target, mask, ONES).item() == pytest.approx(0.01)


def test_weighted_loss_combines_terms_and_rejects_unknown_ones():
    pred, target = _clip()
    mask = torch.ones(2, 4, dtype=torch.bool)
    loss = WeightedLoss({"mpjpe": 1.0, "velocity": 20.0}, H36M_WEIGHTS)
    expected = mpjpe_loss(pred, target, mask, ONES) + 20 * velocity_loss(pred, target, mask, ONES)
    assert loss(pred, target, mask).item() == pytest.approx(expected.item())
    with pytest.raises(ConfigError, match="'mpjep'"):
        WeightedLoss({"mpjep": 1.0}, H36M_WEIGHTS)


def test_seq2frame_output_is_scored_on_the_centre_frame():
    _, target = _clip(frames=5)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[:, 2] = True
    t, m = align_to_output(torch.zeros(2, 1, 17, 3), target, mask)
    assert torch.equal(t, target[:, 2:3]) and m.all()
    same, _ = align_to_output(torch.zeros(2, 5, 17, 3), target, mask)
    assert same is target


def test_mpi_joint_weights_follow_the_body_parts():
    h36m, mpi = dataset_info("h36m").joint_weights, dataset_info("mpi_inf_3dhp").joint_weights
    assert sorted(h36m) == sorted(mpi)
    assert mpi[14] == h36m[0] and mpi[10] == h36m[3]  # pelvis; right ankle


# ---------------------------------------------------------------- recipes


RECIPES = {name: backbone_info(name).recipe for name in ("mixste", "motionbert", "mhformer")}


def test_official_recipes():
    assert RECIPES["mixste"].loss == {"wmpjpe": 1.0, "tc": 0.5, "velocity": 2.0}
    assert (RECIPES["mixste"].lr, RECIPES["mixste"].weight_decay) == (4e-5, 0.1)
    assert RECIPES["motionbert"].loss == {"mpjpe": 1.0, "n_mpjpe": 0.5, "velocity": 20.0}
    assert RECIPES["mhformer"].optimizer == "adam_amsgrad"
    mh = RECIPES["mhformer"]
    assert mh.lr_factor(4) == pytest.approx(0.95**4)
    assert mh.lr_factor(5) == pytest.approx(0.95**4 * 0.5)
    assert RECIPES["mixste"].lr_factor(3) == pytest.approx(0.99**3)
    assert RECIPES["motionbert"].strides(243, "seq2seq") == (81, 243)
    assert RECIPES["mixste"].strides(243, "seq2seq") == (243, 243)
    assert RECIPES["mhformer"].strides(351, "seq2frame") == (1, 1)


def test_overrides_apply_and_bad_ones_name_the_field():
    s = resolve_settings("mixste", {"epochs": 2, "lr": 1, "flip_train": False})
    assert (s.epochs, s.lr, s.flip_train, s.optimizer) == (2, 1.0, False, "adamw")
    cases = [({"epoch": 3}, "train.epoch"), ({"epochs": 0}, "positive integer"), ({"lr": "fast"}, "'fast'"),
             ({"optimizer": "sgd"}, "adamw"), ({"flip_test": "yes"}, "true or false"),
             ({"loss": {"l1": 1.0}}, "l1")]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            resolve_settings("mixste", overrides, source="t.yaml")
    with pytest.raises(UnknownNameError, match="Did you mean: mixste"):
        resolve_settings("mixtse", {})


# ---------------------------------------------------------------- state


def test_state_round_trip_and_refusals(tmp_path):
    state = TrainState("abc", 3, {"w": torch.ones(2)}, {"state": {}, "param_groups": []}, {"last_epoch": 3},
                       torch.get_rng_state(), torch.Generator().manual_seed(1).get_state(),
                       [{"epoch": 1, "train_loss": 0.5}], {"epoch": 2, "metrics": {}, "train_loss": 0.4, "model": None})
    path = save_state(tmp_path / "ckpt", state)
    back = load_state(tmp_path / "ckpt")
    assert back.epoch == 3 and back.history == state.history and back.selected == state.selected
    assert torch.equal(back.model["w"], state.model["w"]) and torch.equal(back.torch_rng, state.torch_rng)
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp files left behind
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        load_state(tmp_path / "missing")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_state(tmp_path / "junk.pt")


def test_the_loss_scaler_state_survives_a_checkpoint(tmp_path):
    """An fp16 run resumes with the scale it had reached (a CPU scaler stands in for the CUDA one: same state)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler.scale((w * float("inf")).sum()).backward()  # an overflow: the step is skipped, the scale halves
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**15
    state = TrainState("abc", 1, {}, {}, {}, torch.get_rng_state(), torch.Generator().get_state(),
                       scaler=scaler.state_dict())
    save_state(tmp_path / "ckpt", state)
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    fresh.load_state_dict(load_state(tmp_path / "ckpt").scaler)
    assert fresh.get_scale() == 2.0**15 and fresh.state_dict() == scaler.state_dict()
    old = {k: v for k, v in state.__dict__.items() if k not in ("scaler", "cuda_rng")}  # a checkpoint from before
    assert TrainState(**old).scaler == {} and TrainState(**old).cuda_rng == []


# ---------------------------------------------------------------- run_trial (real data, real training)

TINY = TrialSpec(
    backbone="mixste", frames=27, dataset="synthetic", seed=3,
    model={"dim": 32, "depth": 2, "num_heads": 2},
    data={"minutes": 0.5},
    train={"epochs": 2, "batch_size": 4, "lr": 1e-3, "max_train_windows": 12, "max_test_windows": 8,
           "num_threads": 1},
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def _values(result):
    return [(m.name, m.split, m.action, m.value) for m in result.metrics]


@pytest.mark.slow
def test_run_trial_reports_every_epoch_and_resume_matches_an_uninterrupted_run(tmp_path, data_dir):
    from h2ot_core.api import run_trial
    from h2ot_core.checkpoint import load_native

    reports = []
    full = run_trial(TINY, lambda m, d: reports.append((m, d)), workdir=tmp_path / "full", data_dir=data_dir)
    assert full.status == "complete" and full.epochs_run == 2 and full.best_epoch == 2
    assert [r[0]["epoch"] for r in reports] == [1, 2]
    assert all(r[1] == str(tmp_path / "full" / "checkpoint") for r in reports)
    assert {metric_key("train", "loss"), "test_mpjpe", "test_p_mpjpe", "test_n_mpjpe", "test_mpjve", "lr"} <= set(reports[0][0])
    assert reports[1][0]["lr"] == pytest.approx(reports[0][0]["lr"] * 0.99)
    actions = {m.action for m in full.metrics if m.name == "mpjpe"}
    assert "avg" in actions and len(actions) >= 2
    assert full.metric("loss", "train") == pytest.approx(full.history[-1][metric_key("train", "loss")])
    assert all(m.name != "train_loss" for m in full.metrics)
    assert full.metric("mpjpe") == pytest.approx(reports[-1][0]["test_mpjpe"])
    assert full.cost is not None and full.cost.gflops > 0
    assert full.provenance["data_fingerprint"] and full.provenance["torch"] == torch.__version__
    model, config = load_native(full.checkpoint_uri)
    assert config["model"]["dim"] == 32 and model.num_frames == 27
    # what it cost: every epoch's device time in its report, summed in the result's usage
    usage = full.usage
    assert all(r[0][EPOCH_TRAIN_SECONDS] > 0 and r[0][EPOCH_EVAL_SECONDS] > 0 for r in reports)
    assert usage.device_seconds_train == pytest.approx(sum(r[0][EPOCH_TRAIN_SECONDS] for r in reports))
    assert usage.device_seconds_eval == pytest.approx(sum(r[0][EPOCH_EVAL_SECONDS] for r in reports))
    assert usage.device_hours == pytest.approx((usage.device_seconds_train + usage.device_seconds_eval) / 3600)
    assert usage.clips_per_s == pytest.approx(sum(r[0]["train_windows"] for r in reports) / usage.device_seconds_train)
    assert usage.peak_memory_kind == "cpu_peak_rss" and usage.peak_memory_mb > 10 and usage.device_name

    class Crash(Exception):
        pass

    def crash_after_epoch_1(metrics, checkpoint_dir):
        raise Crash  # the process dies right after epoch 1 was checkpointed

    with pytest.raises(Crash):
        run_trial(TINY, crash_after_epoch_1, workdir=tmp_path / "crashed", data_dir=data_dir)
    assert load_state(tmp_path / "crashed" / "checkpoint").epoch == 1
    resumed = run_trial(TINY, workdir=tmp_path / "crashed", data_dir=data_dir,
                        resume_from=tmp_path / "crashed" / "checkpoint")
    assert resumed.epochs_run == 2
    assert _values(resumed) == _values(full)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    # the resumed trial's device time counts the crashed run's epoch 1 too
    assert resumed.usage.device_seconds_train == pytest.approx(sum(h[EPOCH_TRAIN_SECONDS] for h in resumed.history))
    assert resumed.history[0][EPOCH_TRAIN_SECONDS] > 0

    other = replace(TINY, selection="best_on_test")
    with pytest.raises(CheckpointError, match="belongs to trial"):
        run_trial(other, workdir=tmp_path / "x", data_dir=data_dir, resume_from=tmp_path / "crashed" / "checkpoint")


@pytest.mark.slow
def test_best_on_test_keeps_the_best_epoch(tmp_path, data_dir):
    from h2ot_core.api import run_trial

    spec = replace(TINY, selection="best_on_test", train={**TINY.train, "epochs": 3})
    result = run_trial(spec, workdir=tmp_path, data_dir=data_dir)
    best = min(result.history, key=lambda h: h["test_mpjpe"])
    assert result.selection == "best_on_test" and result.best_epoch == best["epoch"]
    assert result.metric("mpjpe") == pytest.approx(best["test_mpjpe"])


@pytest.mark.slow
def test_a_diverging_loss_ends_failed_with_its_epoch_without_exception(tmp_path, data_dir):
    from h2ot_core.api import run_trial

    spec = replace(TINY, train={**TINY.train, "lr": 1e12, "epochs": 3, "max_train_windows": 40})
    result = run_trial(spec, workdir=tmp_path, data_dir=data_dir)
    assert result.status == "failed"
    assert result.epochs_run < 3 and result.error == f"NaN at epoch {result.epochs_run + 1}"
    assert all(math.isfinite(m.value) for m in result.metrics)


@pytest.mark.slow
def test_a_nan_in_a_later_epoch_keeps_the_last_good_epoch(tmp_path, data_dir, monkeypatch):
    from h2ot_core.api import run_trial
    from h2ot_core.checkpoint import load_native
    from h2ot_core.engine import losses

    steps_per_epoch = 3  # max_train_windows 12 / batch 4
    calls = {"n": 0}
    real_call = losses.WeightedLoss.__call__

    def nan_in_epoch_2(self, pred, target, mask):
        calls["n"] += 1
        loss = real_call(self, pred, target, mask)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 2 else loss

    monkeypatch.setattr(losses.WeightedLoss, "__call__", nan_in_epoch_2)
    result = run_trial(replace(TINY, train={**TINY.train, "epochs": 3}), workdir=tmp_path, data_dir=data_dir)
    assert result.status == "failed" and result.epochs_run == 1 and result.best_epoch == 1
    assert result.error == "NaN at epoch 2"
    assert result.metric("mpjpe") == pytest.approx(result.history[0]["test_mpjpe"])
    model, _ = load_native(result.checkpoint_uri)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    state = load_state(tmp_path / "checkpoint")
    assert state.epoch == 1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.model.items())


def test_the_pipeline_field_runs_a_seq2seq_backbone_as_seq2frame(tmp_path, data_dir):
    from h2ot_core.api import run_trial
    from h2ot_core.checkpoint import build_from_config, load_native

    spec = replace(TINY, pipeline="seq2frame", pruner="tpc", schedule="1:9",
                   train={**TINY.train, "epochs": 1, "max_test_windows": 4})
    assert spec.model == TINY.model  # the pipeline is a field, never a model setting
    result = run_trial(spec, workdir=tmp_path, data_dir=data_dir)
    model, config = load_native(result.checkpoint_uri)
    assert result.status == "complete" and model.pipeline == config["pipeline"] == "seq2frame"
    assert "pipeline" not in config["model"]
    # a configuration that stored the pipeline among the model settings still builds
    old = {**config, "model": {**config["model"], "pipeline": "seq2frame"}}
    del old["pipeline"]
    assert build_from_config(old).pipeline == "seq2frame"


def test_bad_settings_fail_before_training(tmp_path, data_dir):
    from h2ot_core.api import run_trial

    with pytest.raises(ConfigError, match=r"train\.epoch"):
        run_trial(replace(TINY, train={"epoch": 1}), workdir=tmp_path, data_dir=data_dir)
    with pytest.raises(ConfigError, match="fewer than"):
        run_trial(replace(TINY, pruner="tpc", recoverer="tra", schedule="1:27"), workdir=tmp_path, data_dir=data_dir)


@pytest.mark.parametrize(("backbone", "model", "pipeline"), [
    ("mhformer", {"dim": 32, "depth": 2, "num_heads": 2, "mhg_depth": 1}, "seq2frame"),
    ("motionagformer", {"dim": 32, "depth": 2, "num_heads": 2, "dim_rep": 32}, "seq2seq"),
])
def test_evaluation_scores_every_test_frame_once(data_dir, backbone, model, pipeline):
    from h2ot_core.api import eval_windows
    from h2ot_core.data.loading import load_dataset
    from h2ot_core.engine.evaluate import evaluate
    from h2ot_core.factory import create_model

    data = load_dataset("synthetic", data_dir, seed=3, minutes=0.5)
    torch.manual_seed(0)
    net = create_model(backbone, "tpc", "none" if pipeline == "seq2frame" else "tra", "1:9", num_frames=27, **model)
    windows = eval_windows(data, net, 1 if pipeline == "seq2frame" else 27)
    ev = evaluate(net, windows, batch_size=64, flip=True, joints_left=data.joints_left,
                  joints_right=data.joints_right, root_joint=data.root_joint)
    assert ev.frames == sum(s.num_frames for s in data.test)
    assert {s.action for s in data.test} | {"avg"} == set(ev.metrics["mpjpe"])
    assert ("mpjve" in ev.metrics) == (pipeline == "seq2seq")
    assert all(math.isfinite(v) for per in ev.metrics.values() for v in per.values())


def test_the_loss_places_its_joint_weights_once_per_device_and_dtype():
    """A host-to-GPU copy of the weights at every step would block the host at every step."""
    loss = WeightedLoss({"wmpjpe": 1.0}, H36M_WEIGHTS)
    pred, target, mask = torch.randn(2, 5, 17, 3), torch.randn(2, 5, 17, 3), torch.ones(2, 5, dtype=torch.bool)
    first = loss(pred, target, mask)
    w32 = loss._weights(pred.device, torch.float32)
    assert loss(pred, target, mask) == first and loss._weights(pred.device, torch.float32) is w32
    assert loss._weights(pred.device, torch.float64).dtype == torch.float64
    assert torch.equal(w32, torch.tensor(H36M_WEIGHTS, dtype=torch.float32))


@pytest.mark.parametrize("name", ["adamw", "adam_amsgrad"])
def test_cpu_trials_keep_the_default_optimizer_update(name):
    """fused=True is for CUDA parameters only; a CPU trial's update (and so its results) stays as it was."""
    from h2ot_core.engine.recipes import OPTIMIZERS

    params = [torch.nn.Parameter(torch.randn(3, 3))]
    opt = OPTIMIZERS[name](params, 1e-3, 0.01)
    group = opt.param_groups[0]
    assert not group["fused"] and group["params"] == params and group["lr"] == 1e-3
    assert group["weight_decay"] == 0.01


@pytest.mark.slow
def test_best_on_val_and_the_official_recipe_and_protocol_run_end_to_end(tmp_path, data_dir):
    from h2ot_core.api import run_trial, validation_split
    from h2ot_core.data.loading import load_dataset

    spec = replace(TINY, selection="best_on_val", evaluate={"protocol": "official"},
                   train={**TINY.train, "epochs": 3, "recipe": "official"})
    result = run_trial(spec, workdir=tmp_path, data_dir=data_dir)
    best = min(result.history, key=lambda h: h["val_mpjpe"])
    assert result.selection == "best_on_val" and result.best_epoch == best["epoch"]
    assert result.metric("mpjpe") == pytest.approx(best["test_mpjpe"])
    # HoT's MixSTE rate: x0.99 after epochs 1 and 2 (x0.5 only after every 200th)
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3, 1e-3 * 0.99, 1e-3 * 0.99**2])
    train, val = validation_split(load_dataset("synthetic", data_dir, seed=3, minutes=0.5).train)
    assert val and train and not {(s.subject, s.action) for s in val} & {(s.subject, s.action) for s in train}
