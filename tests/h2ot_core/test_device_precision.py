"""Devices and precision: resolution and validation, bf16 training and inference on the CPU, trial keys,
precision-independent clustering, latency fields, and no per-step host synchronisation."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from h2ot_core import device as dev
from h2ot_core.contracts import TrialSpec
from h2ot_core.errors import ConfigError
from orchestrator.cli import app

runner = CliRunner()
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True, scope="module")
def _bf16_on_any_cpu():
    """These tests check bf16's arithmetic, which is the same on a CPU without bf16 kernels (only slower, and
    the models here are tiny): run it there too. The refusal without the override is tested below."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(dev.ALLOW_SLOW_BF16_ENV, "1")
        yield

TINY = TrialSpec(
    backbone="mixste", pruner="tpc", recoverer="tra", schedule="1:9", frames=27, dataset="synthetic", seed=3,
    model={"dim": 32, "depth": 2, "num_heads": 2},
    data={"minutes": 0.5},
    train={"epochs": 1, "batch_size": 4, "lr": 1e-3, "max_train_windows": 12, "max_test_windows": 8,
           "num_threads": 1, "latency_repeats": 2},
)


# --- resolution and validation ------------------------------------------------------------------------


def test_devices_resolve_and_bad_ones_say_what_to_use(monkeypatch):
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert dev.resolve_device("auto") == (torch.device("cuda", 0) if HAS_CUDA else torch.device("cpu"))
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        dev.resolve_device("gpu")
    with pytest.raises(ConfigError, match="expected auto"):
        dev.resolve_device("cuda:x")
    # Without a GPU here, these paths can only be reached with CUDA's availability mocked.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="use --device cpu"):
        dev.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dev.resolve_device("cuda") == torch.device("cuda", 0)
    assert dev.resolve_device("auto") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"only 1 CUDA device\(s\) visible"):
        dev.resolve_device("cuda:1")


def test_precisions_are_checked_against_the_device():
    cpu = torch.device("cpu")
    assert dev.check_precision_on(cpu, "fp32") == "fp32"
    assert dev.check_precision_on(cpu, "bf16") == "bf16"
    with pytest.raises(ConfigError, match=r"fp16 needs a CUDA device.*use fp32 \(or bf16 on a CPU with AVX-512/AMX"):
        dev.check_precision_on(cpu, "fp16")
    with pytest.raises(ConfigError, match="Did you mean: bf16"):
        dev.check_precision("bf61")


def test_bf16_on_a_cpu_without_bf16_kernels_is_refused_unless_allowed(monkeypatch):
    """Without oneDNN's bf16 kernels (an AVX2-only CPU) torch multiplies bf16 matrices ~80x slower than fp32.
    Whether this machine has them is hardware, so the probe is patched both ways."""
    cpu = torch.device("cpu")
    monkeypatch.delenv(dev.ALLOW_SLOW_BF16_ENV)
    monkeypatch.setattr(dev, "cpu_bf16_kernels", lambda: False)
    with pytest.raises(ConfigError, match=r"--precision: bf16 on this CPU \(\w+, no AVX-512/AMX bf16 kernels\).*"
                                          r"use fp32 here.*H2OT_ALLOW_SLOW_BF16=1 runs it anyway"):
        dev.check_precision_on(cpu, "bf16")
    r = runner.invoke(app, ["profile", "--backbone", "mixste", "--precision", "bf16"])
    assert r.exit_code == 2 and "no AVX-512/AMX bf16 kernels" in r.output and "Traceback" not in r.output
    assert dev.check_precision_on(cpu, "fp32") == "fp32"
    monkeypatch.setenv(dev.ALLOW_SLOW_BF16_ENV, "1")
    assert dev.check_precision_on(cpu, "bf16") == "bf16"
    monkeypatch.delenv(dev.ALLOW_SLOW_BF16_ENV)
    monkeypatch.setattr(dev, "cpu_bf16_kernels", lambda: True)
    assert dev.check_precision_on(cpu, "bf16") == "bf16"


def test_train_precision_is_a_checked_setting():
    from h2ot_core.engine.recipes import resolve_settings

    assert resolve_settings("mixste").precision == "fp32"
    assert resolve_settings("mixste", {"precision": "bf16", "latency_batch": 8}).latency_batch == 8
    with pytest.raises(ConfigError, match=r"train.precision' is 'fp61'; known: bf16, fp16, fp32"):
        resolve_settings("mixste", {"precision": "fp61"})
    with pytest.raises(ConfigError, match=r"train.latency' must be true or false"):
        resolve_settings("mixste", {"latency": "no"})
    with pytest.raises(ConfigError, match=r"train.latency_batch' must be a positive integer"):
        resolve_settings("mixste", {"latency_batch": 0})


def _one_line_exit_2(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


TRAIN = ["train", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "2", "--heads", "2",
         "--epochs", "1", "--dataset", "synthetic"]


@pytest.mark.parametrize(("args", "needles"), [
    (["profile", "--backbone", "mixste", "--precision", "fp16", "--device", "cpu"], ("fp16 needs a CUDA device",)),
    (["profile", "--backbone", "mixste", "--precision", "bf61"], ("Did you mean: bf16",)),
    (["profile", "--backbone", "mixste", "--device", "tpu"], ("expected auto, cpu, cuda or cuda:N",)),
    ([*TRAIN, "--precision", "fp61"], ("train.precision", "fp61")),
    ([*TRAIN, "--precision", "fp16", "--device", "cpu"], ("fp16 needs a CUDA device",)),
    (["predict", "missing.pt", "in.npy", "out.npy", "--precision", "fp16", "--device", "cpu"],
     ("fp16 needs a CUDA device",)),
    (["evaluate", "missing.pt", "--precision", "half"], ("Unknown precision 'half'", "fp16")),
])
def test_bad_device_or_precision_is_one_line_exit_2_before_anything_is_built(tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(runner.invoke(app, [*args]), *needles)
    assert not any(tmp_path.iterdir())  # no workdir, no data, no checkpoint


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(runner.invoke(app, [*TRAIN, "--device", "cuda"]), "--device cuda", "use --device cpu")
    assert not any(tmp_path.iterdir())


def test_a_ray_gpu_id_maps_to_its_visible_index():
    from orchestrator.trainable import cuda_index

    assert cuda_index("3", "2,3") == 1
    assert cuda_index("2", "2,3") == 0
    assert cuda_index("1", None) == 1  # CUDA_VISIBLE_DEVICES left unset: Ray's id is the physical index
    assert cuda_index("GPU-abc", "GPU-abc") == 0


# --- keys ---------------------------------------------------------------------------------------------


def test_fp32_keeps_its_key_and_bf16_gets_its_own():
    fp32 = replace(TINY, train={**TINY.train, "precision": "fp32"})
    bf16 = replace(TINY, train={**TINY.train, "precision": "bf16"})
    assert fp32.trial_key == TINY.trial_key
    assert bf16.trial_key != TINY.trial_key
    assert "precision" not in fp32.canonical_json()


# --- clustering and kept frames -----------------------------------------------------------------------


@pytest.mark.parametrize("pruner", ["tpc", "dpc_multigrain"])
def test_dpc_clustering_keeps_the_same_frames_under_bf16_autocast(pruner):
    from h2ot_core.names import PRUNERS
    from h2ot_core.pruning.base import PruneContext

    torch.manual_seed(0)
    tokens = torch.randn(3, 81, 17, 32)
    ctx = PruneContext(inputs=torch.randn(3, 81, 17, 2), frame_features=tokens.flatten(2))
    module = PRUNERS.get(pruner)()
    fp32 = module.select(tokens, 27, ctx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = module.select(tokens, 27, ctx)
    assert torch.equal(fp32, bf16)


def test_dpc_scores_are_float64_work_even_under_autocast():
    from h2ot_core.pruning.dpc import dpc_knn_scores

    torch.manual_seed(1)
    f = torch.randn(2, 243, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = dpc_knn_scores(f)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, dpc_knn_scores(f))


# --- training and inference in bf16 on the CPU --------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def trials(tmp_path_factory, data_dir):
    """The tiny trial trained in fp32 and in bf16 on the same data."""
    from h2ot_core.api import run_trial

    data = data_dir
    out = {}
    for precision in ("fp32", "bf16"):
        spec = replace(TINY, train={**TINY.train, "precision": precision})
        out[precision] = run_trial(spec, workdir=tmp_path_factory.mktemp(precision), data_dir=data, device="cpu")
    return out


def test_a_bf16_training_run_completes_and_differs_from_fp32_only_slightly(trials):
    fp32, bf16 = trials["fp32"], trials["bf16"]
    assert fp32.status == bf16.status == "complete"
    assert bf16.provenance["precision"] == "bf16" and bf16.provenance["device"] == "cpu"
    a, b = fp32.metric("mpjpe"), bf16.metric("mpjpe")
    assert a != b and abs(a - b) / a < 0.02
    la, lb = fp32.metric("loss", "train"), bf16.metric("loss", "train")
    assert abs(la - lb) / la < 0.02


def test_latency_fields_are_filled_after_training(trials):
    for result in trials.values():
        cost = result.cost
        assert cost.latency_ms > 0 and cost.latency_batch == 1 and cost.latency_device == "cpu"
        assert isinstance(cost.latency_contended, bool)
        assert cost.gflops > 0


def test_latency_can_be_off_or_at_another_batch(tmp_path):
    from h2ot_core.api import run_trial

    train = {**TINY.train, "max_train_windows": 4, "max_test_windows": 2}
    off = run_trial(replace(TINY, train={**train, "latency": False}), workdir=tmp_path / "off",
                    data_dir=tmp_path / "data")
    assert off.cost.latency_ms is None and off.cost.latency_batch is None and off.cost.gflops > 0
    four = run_trial(replace(TINY, train={**train, "latency_batch": 4}), workdir=tmp_path / "four",
                     data_dir=tmp_path / "data")
    assert four.cost.latency_batch == 4 and four.cost.latency_ms > 0


def test_bf16_inference_is_close_to_fp32_on_the_same_weights(trials, tmp_path):
    """bf16 against fp32 on one checkpoint, on motion clips: the arithmetic alone (fp32's frame selection
    replayed) stays within 3e-2 of fp32's output, and the whole pass (``predict_file``, flip included, its own
    selection) within a few millimetres per joint.

    The bounds are looser than the official-size benchmark's 2e-2 because this model is tiny and has seen
    12 windows: its near-equal frame features make TPC's selection a coin toss that bf16 can flip, and its
    small outputs inflate relative differences.
    """
    from h2ot_core.checkpoint import load_native
    from h2ot_core.data.synthetic import load_synthetic
    from h2ot_core.inference import predict_file

    clips = [seq.pose2d[:27] for seq in load_synthetic(tmp_path / "clips", minutes=0.5).test][:5]
    assert len(clips) == 5 and all(c.shape == (27, 17, 2) for c in clips)
    x = np.stack(clips).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ckpt = trials["fp32"].checkpoint_uri

    model, _ = load_native(ckpt)
    fast = dev.inference_model(model, "bf16", copy_model=True)
    with torch.inference_mode():
        ref = model.eval()(torch.from_numpy(x))
        with dev.autocast(torch.device("cpu"), "bf16"):
            replayed = fast(torch.from_numpy(x), replay=ref.stage_positions).pose3d.float()
    assert float((replayed - ref.pose3d).norm() / ref.pose3d.norm()) < 3e-2

    predict_file(ckpt, tmp_path / "x.npy", tmp_path / "fp32.npy", flip=True, batch_size=2, precision="fp32")
    predict_file(ckpt, tmp_path / "x.npy", tmp_path / "bf16.npy", flip=True, batch_size=2, precision="bf16")
    a, b = np.load(tmp_path / "fp32.npy"), np.load(tmp_path / "bf16.npy")
    assert b.dtype == np.float32 and a.shape == b.shape and np.isfinite(b).all()
    assert np.linalg.norm(a - b, axis=-1).mean() * 1000 < 10.0  # mm per joint, on outputs of ~400 mm error


def test_cli_predict_evaluate_and_profile_take_bf16(trials, tmp_path, data_dir):
    import json

    np.save(tmp_path / "x.npy", np.zeros((2, 27, 17, 2), np.float32))
    ckpt = trials["fp32"].checkpoint_uri
    r = runner.invoke(app, ["predict", ckpt, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--precision",
                            "bf16", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "y.npy").shape == (2, 27, 17, 3)
    r = runner.invoke(app, ["evaluate", ckpt, "--precision", "bf16", "--device", "cpu", "--data-dir", str(data_dir),
                            "--batch-size", "32"])
    assert r.exit_code == 0, r.output
    assert "mpjpe" in r.stdout and "avg" in r.stdout
    r = runner.invoke(app, ["profile", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "2",
                            "--heads", "2", "--repeats", "2", "--batch", "3", "--precision", "bf16", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["precision"] == "bf16" and row["latency_batch"] == 3 and row["latency_ms"] > 0
    assert row["latency_device"] in ("cpu", f"cuda:{torch.cuda.get_device_name(0)}" if HAS_CUDA else "cpu")


def test_compiled_predict_matches_eager_and_profile_reports_it(trials, tmp_path):
    """``--compile``: the blocks go through torch.compile (graphs shared by the blocks of a class, so the
    recompile guard is not hit) and the predictions are the eager ones; a last batch of another size works."""
    import json

    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.normal(size=(5, 27, 17, 2)).astype(np.float32))
    ckpt = trials["fp32"].checkpoint_uri
    outs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        r = runner.invoke(app, ["predict", ckpt, str(tmp_path / "x.npy"), str(tmp_path / f"{name}.npy"),
                                "--batch-size", "3", "--device", "cpu", "--flip", *extra])
        assert r.exit_code == 0, r.output
        outs[name] = np.load(tmp_path / f"{name}.npy")
    assert outs["compiled"].shape == (5, 27, 17, 3)
    np.testing.assert_allclose(outs["compiled"], outs["eager"], rtol=1e-4, atol=1e-5)
    r = runner.invoke(app, ["profile", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "2",
                            "--heads", "2", "--pruner", "tpc", "--recoverer", "tra", "--schedule", "1:9",
                            "--repeats", "2", "--precision", "bf16", "--compile", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["compiled"] is True and row["precision"] == "bf16" and row["latency_ms"] > 0


def test_cpu_attention_under_bf16_autocast_picks_its_path_by_gradients_and_size(monkeypatch):
    """On a CPU in bf16: without gradients the fused kernel runs in bf16; with gradients the two matmuls run
    as bf16 GEMMs (the fused kernel's backward is slow there), and beyond the score cap the fused kernel runs
    in float32 (autocast off around it, or autocast would cast back). Output and gradients match float32."""
    import torch.nn.functional as F

    import h2ot_core.attention as kernels

    seen: list[torch.dtype] = []
    real = F.scaled_dot_product_attention

    def spy(q, *args, **kwargs):
        seen.append(q.dtype)
        return real(q, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    q, k, v = (torch.randn(3, 2, 17, 8, requires_grad=True) for _ in range(3))
    ref_q, ref_k, ref_v = (t.detach().bfloat16().float().requires_grad_() for t in (q, k, v))
    ref = real(ref_q, ref_k, ref_v)
    ref.sum().backward()
    grads = []
    for cap in (kernels.CPU_LOW_PRECISION_SCORES, 3 * 2 * 17 * 17 - 1):  # the explicit path, then the fused one
        monkeypatch.setattr(kernels, "CPU_LOW_PRECISION_SCORES", cap)
        for t in (q, k, v):
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = kernels.sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16())
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
        out.float().sum().backward()
        torch.testing.assert_close(q.grad, ref_q.grad, rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(v.grad, ref_v.grad, rtol=2e-2, atol=2e-2)
        grads.append(q.grad.clone())
    assert seen == [torch.float32]  # only the capped call reached the fused kernel, in float32
    assert not torch.equal(grads[0], grads[1])  # two different paths really ran
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        kernels.sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert seen == [torch.float32, torch.bfloat16]


def test_compiled_bf16_cpu_attention_materialises_short_or_wide_attention_only(monkeypatch):
    """Under torch.compile, bf16 inference on a CPU computes 17-key attention as bf16 GEMMs around a softmax and
    leaves 200 keys of 16-wide heads to the fused kernel; both agree with float32."""
    import torch.nn.functional as F

    import h2ot_core.attention as kernels

    traced: list[tuple[int, int]] = []
    real = F.scaled_dot_product_attention

    def spy(q, k, *args, **kwargs):  # runs while dynamo traces: records which shapes reach the fused kernel
        traced.append((k.shape[-2], q.shape[-1]))
        return real(q, k, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    assert not kernels.compiled_explicit_attention(torch.zeros(1, 1, 17, 64), torch.zeros(1, 1, 17, 64))  # eager
    attend = torch.compile(kernels.sdpa, dynamic=False)
    for keys, width in ((17, 16), (200, 16)):
        q, k, v = (torch.randn(2, 2, keys, width) for _ in range(3))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = attend(q.bfloat16(), k.bfloat16(), v.bfloat16())
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), real(q, k, v), rtol=3e-2, atol=3e-2)
    assert traced == [(200, 16)]


def test_compile_blocks_hands_every_block_to_torch_compile():
    from h2ot_core.factory import create_model

    model = create_model("mixste", "tpc", "tra", "1:9", num_frames=27, dim=32, depth=3, num_heads=2).eval()
    assert dev.compile_blocks(model) == 6  # three spatial and three temporal blocks
    compiled = [m for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert len(compiled) == 6


def test_compile_without_a_cxx_compiler_is_one_line_exit_2(tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    _one_line_exit_2(runner.invoke(app, ["predict", "missing.pt", "in.npy", "out.npy", "--compile"]),
                     "torch.compile needs a C++ compiler", "without --compile")
    assert not any(tmp_path.iterdir())


# --- no host synchronisation per step ------------------------------------------------------------------


class _Syncs:
    """Counts the tensor → Python conversions (each one waits for the device), except the optimiser's:
    Adam keeps its step counter in a host tensor whatever the device, so reading it never waits."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in ("item", "__float__", "__int__", "__bool__", "__index__", "tolist"):
            real = getattr(torch.Tensor, name)

            def counted(t, *a, _real=real, **k):
                if f"torch{os.sep}optim{os.sep}" not in sys._getframe(1).f_code.co_filename:
                    self.count += 1
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize(("check_every", "syncs"), [(None, 1), (4, 12 // 4 + 1)])
def test_the_training_loop_syncs_once_per_epoch_or_every_n_steps(monkeypatch, check_every, syncs):
    from h2ot_core.data.loading import load_dataset
    from h2ot_core.data.windows import ClipWindows
    from h2ot_core.engine.losses import WeightedLoss
    from h2ot_core.engine.train import train_one_epoch
    from h2ot_core.factory import create_model

    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset("synthetic", tmp, seed=0, minutes=0.5)
    windows = ClipWindows(data.train, 27, stride=9, pipeline="seq2seq", joints_left=data.joints_left,
                          joints_right=data.joints_right)
    torch.manual_seed(0)
    model = create_model("mixste", "tps", "tri", "1:9", num_frames=27, dim=16, depth=2, num_heads=2)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loss = WeightedLoss({"mpjpe": 1.0}, (1.0,) * data.num_joints)
    counter = _Syncs(monkeypatch)
    steps: list[tuple[int, int]] = []  # a progress bar's on_step adds no device read
    stats = train_one_epoch(model, windows, loss, opt, batch_size=2, generator=torch.Generator().manual_seed(0),
                            flip=True, joints_left=data.joints_left, joints_right=data.joints_right,
                            max_windows=24, check_every=check_every, on_step=lambda *a: steps.append(a))
    assert stats.steps == 12 and math.isfinite(stats.loss)
    assert counter.count == syncs
    assert steps == [(i, 12) for i in range(1, 13)]


def test_a_nan_loss_is_caught_at_the_next_check(monkeypatch):
    from h2ot_core.data.loading import load_dataset
    from h2ot_core.data.windows import ClipWindows
    from h2ot_core.engine.train import train_one_epoch
    from h2ot_core.factory import create_model

    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset("synthetic", tmp, seed=0, minutes=0.5)
    windows = ClipWindows(data.train, 27, stride=9, pipeline="seq2seq", joints_left=data.joints_left,
                          joints_right=data.joints_right)
    model = create_model("mixste", num_frames=27, dim=16, depth=1, num_heads=2)
    opt = torch.optim.SGD(model.parameters(), 1e-3)
    calls = {"n": 0}

    def nan_at_step_3(pred, target, mask):
        calls["n"] += 1
        loss = (pred - target).abs().mean()
        return loss * float("nan") if calls["n"] == 3 else loss

    stats = train_one_epoch(model, windows, nan_at_step_3, opt, batch_size=2, generator=torch.Generator(),
                            flip=False, joints_left=data.joints_left, joints_right=data.joints_right,
                            max_windows=40, check_every=5)
    assert stats.diverged and stats.steps == 5 and math.isnan(stats.loss)


# --- the leaderboard compares latencies like with like -------------------------------------------------


def test_speedup_latency_compares_only_the_same_precision_device_and_batch(tmp_path):
    from h2ot_core.contracts import Cost, MetricRecord, TrialResult
    from results.queries import leaderboard
    from results.store import LeaderboardStore

    store = LeaderboardStore(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    base = TrialSpec("mixste", frames=27)
    pruned = TrialSpec("mixste", "tpc", "tra", "1:9", frames=27)

    def put(spec, precision, ms, device="cpu", batch=1):
        spec = replace(spec, train={"precision": precision})
        cost = Cost(100, 2.0 if spec.pruner == "none" else 1.0, 2.2, ms, latency_batch=batch, latency_device=device,
                    latency_contended=False)
        store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "complete", [MetricRecord("mpjpe", "test", 40.0)],
                                        cost))

    put(base, "fp32", 10.0)
    put(base, "bf16", 6.0)
    put(pruned, "fp32", 5.0)
    put(pruned, "bf16", 4.0)
    put(replace(pruned, seed=1), "fp32", 1.0, device="cuda:NVIDIA H200")  # no GPU baseline: no latency speed-up
    rows = {(r["precision"], r["latency_device"]): r for r in leaderboard(store.engine, {"pruner": ["tpc"]})}
    assert rows[("fp32", "cpu")]["speedup_latency"] == pytest.approx(2.0)
    assert rows[("bf16", "cpu")]["speedup_latency"] == pytest.approx(1.5)
    assert rows[("fp32", "cuda:NVIDIA H200")]["speedup_latency"] is None
    assert all(r["speedup_flops"] == pytest.approx(2.0) for r in rows.values())  # FLOPs ignore the precision
    store.engine.dispose()
