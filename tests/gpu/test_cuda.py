"""On CUDA, in fp32, bf16 and fp16: a tiny trial, predict, profile, and a training loop without per-step syncs.

Collected only where CUDA is present (``tests/gpu/conftest.py``); run with ``benchmarks/gpu.sh``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from h2ot_core.contracts import TrialSpec
from orchestrator.cli import app

pytestmark = pytest.mark.gpu
runner = CliRunner()
PRECISIONS = ["fp32", "bf16", "fp16"]

TINY = TrialSpec(
    backbone="mixste", pruner="tpc", recoverer="tra", schedule="1:9", frames=27, dataset="synthetic", seed=3,
    model={"dim": 32, "depth": 2, "num_heads": 2}, data={"minutes": 0.5},
    train={"epochs": 2, "batch_size": 8, "lr": 1e-3, "max_train_windows": 64, "max_test_windows": 16,
           "latency_repeats": 5, "latency_batch": 4},
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def trials(tmp_path_factory, data_dir):
    from h2ot_core.api import run_trial

    return {p: run_trial(replace(TINY, train={**TINY.train, "precision": p}), workdir=tmp_path_factory.mktemp(p),
                         data_dir=data_dir, device="auto")
            for p in PRECISIONS}


def test_auto_is_the_first_visible_gpu():
    from h2ot_core.device import resolve_device

    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_tiny_trial_trains_on_cuda(trials, precision):
    result = trials[precision]
    assert result.status == "complete", result.error
    assert result.provenance["device"] == "cuda:0" and result.provenance["precision"] == precision
    cost = result.cost
    assert cost.latency_ms > 0 and cost.latency_batch == 4 and cost.latency_device.startswith("cuda:")
    assert cost.latency_contended is False
    fp32 = trials["fp32"].metric("mpjpe")
    assert abs(result.metric("mpjpe") - fp32) / fp32 < 0.05


@pytest.mark.parametrize("precision", PRECISIONS)
def test_predict_on_cuda_matches_the_cpu(trials, precision, tmp_path):
    """``h2ot predict --device cuda`` against the CPU's fp32 on motion clips (on noise, TPC's selection is a
    coin toss between near-equal frames): fp32 within 2e-2 relative; bf16 and fp16, whose own selection may
    flip a near-equal frame of this tiny model, within the CPU bf16 test's 10 mm per joint."""
    from h2ot_core.data.synthetic import load_synthetic
    from h2ot_core.inference import predict_file

    clips = [seq.pose2d[:27] for seq in load_synthetic(tmp_path / "clips", minutes=0.5).test][:6]
    x = np.stack(clips).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ckpt = trials["fp32"].checkpoint_uri
    predict_file(ckpt, tmp_path / "x.npy", tmp_path / "cpu.npy", flip=True, device="cpu")
    r = runner.invoke(app, ["predict", ckpt, str(tmp_path / "x.npy"), str(tmp_path / "gpu.npy"), "--flip",
                            "--device", "cuda", "--precision", precision])
    assert r.exit_code == 0, r.output
    a, b = np.load(tmp_path / "cpu.npy"), np.load(tmp_path / "gpu.npy")
    assert b.dtype == np.float32 and a.shape == b.shape == (len(clips), 27, 17, 3) and np.isfinite(b).all()
    if precision == "fp32":
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 2e-2
    else:
        assert np.linalg.norm(a - b, axis=-1).mean() * 1000 < 10.0


@pytest.mark.parametrize("precision", PRECISIONS)
def test_profile_times_on_cuda(precision):
    r = runner.invoke(app, ["profile", "--backbone", "mixste", "--pruner", "tpc", "--recoverer", "tra", "--schedule",
                            "3:81", "--device", "cuda:0", "--precision", precision, "--batch", "4", "--repeats", "5",
                            "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["latency_device"].startswith("cuda:") and row["latency_ms"] > 0 and row["latency_batch"] == 4
    assert row["latency_contended"] is False and row["gflops"] == pytest.approx(167.51, abs=0.01)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_training_loop_does_not_sync_per_step(precision):
    """CUDA's sync debug mode warns at every synchronising call: one per epoch (the loss read) is all, in
    fp16 too (the fused optimiser takes the GradScaler's overflow flag on the device)."""
    from h2ot_core.data.loading import load_dataset
    from h2ot_core.data.windows import ClipWindows
    from h2ot_core.device import grad_scaler
    from h2ot_core.engine.losses import WeightedLoss
    from h2ot_core.engine.recipes import OPTIMIZERS
    from h2ot_core.engine.train import train_one_epoch
    from h2ot_core.factory import create_model

    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset("synthetic", tmp, seed=0, minutes=0.5)
    windows = ClipWindows(data.train, 27, stride=9, pipeline="seq2seq", joints_left=data.joints_left,
                          joints_right=data.joints_right)
    device = torch.device("cuda", 0)
    model = create_model("mixste", num_frames=27, dim=32, depth=2, num_heads=2).to(device)
    opt = OPTIMIZERS["adamw"](model.parameters(), 1e-3, 0.0)
    loss = WeightedLoss({"mpjpe": 1.0, "velocity": 1.0}, (1.0,) * data.num_joints)
    kwargs = dict(batch_size=4, generator=torch.Generator().manual_seed(0), flip=True, joints_left=data.joints_left,
                  joints_right=data.joints_right, max_windows=16, precision=precision,
                  scaler=grad_scaler(device, precision), check_every=None)
    train_one_epoch(model, windows, loss, opt, **kwargs)  # warm-up: lazy CUDA initialisation syncs once
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            stats = train_one_epoch(model, windows, loss, opt, **{**kwargs, "max_windows": 32})
        finally:
            torch.cuda.set_sync_debug_mode(0)
    # "called a synchronizing CUDA operation"; not the one-off notice that the debug mode is a prototype
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert stats.steps == 8 and not stats.diverged
    assert len(syncs) <= 1, [str(w.message) for w in syncs]
