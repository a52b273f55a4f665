"""CLI: ls, profile --json, predict round-trips and bad input through the real `h2ot` app."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from h2ot_core.checkpoint import load_native, save_native
from h2ot_core.factory import create_model, model_config
from h2ot_core.inference import predict_clips
from orchestrator.cli import app

runner = CliRunner()
TINY = dict(num_frames=27, dim=32, depth=3, num_heads=2)


def test_ls_lists_every_registry():
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    for name in ("mixste", "motionbert", "motionagformer", "mhformer", "tpc", "tpa", "tpmo", "tps",
                 "dpc_multigrain", "tra", "tri", "synthetic", "h36m", "hot_mixste"):
        assert name in result.stdout


def test_ls_describes_every_entry_in_one_line():
    from h2ot_core.convert import CONVERTERS
    from h2ot_core.names import BACKBONES, DATASETS, PRUNERS, RECOVERERS

    for registry in (BACKBONES, PRUNERS, RECOVERERS, DATASETS, CONVERTERS):
        for name in registry.names():
            text = registry.description(name)
            assert text and "\n" not in text and len(text) <= 110, (registry.kind, name, text)
    rows = json.loads(runner.invoke(app, ["ls", "--format", "json"]).stdout)
    assert all(r["notes"] for r in rows)
    mocap = next(r for r in rows if r["name"] == "mocap_clips")
    assert "pip install 'h2ot-lab[mocap]'" in mocap["notes"]
    table = runner.invoke(app, ["ls"]).stdout
    assert "pip install 'h2ot-lab[mocap]'" in table  # cells are text, not console markup


def test_profile_json_reports_cost_that_falls_with_pruning():
    args = ["profile", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "3", "--heads", "2",
            "--repeats", "2", "--json"]
    base = runner.invoke(app, args)
    pruned = runner.invoke(app, [*args, "--pruner", "tpc", "--schedule", "1:9", "--recoverer", "tra"])
    assert base.exit_code == 0 and pruned.exit_code == 0, base.output + pruned.output
    a, b = json.loads(base.stdout), json.loads(pruned.stdout)
    for row in (a, b):
        assert {"params", "gflops", "gflops_total", "latency_ms"} <= set(row)
        assert row["latency_ms"] > 0 and row["gflops_total"] >= row["gflops"] > 0
    assert b["gflops"] < a["gflops"]
    assert b["params"] > a["params"]  # TRA and the stage embedding add parameters


@pytest.mark.parametrize(("args", "message"), [
    (["--backbone", "mixtse"], "Did you mean: mixste"),
    (["--backbone", "mixste", "--pruner", "tpc", "--schedule", "3:243", "--recoverer", "tra"], "fewer than"),
])
def test_profile_bad_input_is_one_line_exit_2(args, message):
    result = runner.invoke(app, ["profile", *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


@pytest.fixture
def native_ckpt(tmp_path):
    torch.manual_seed(0)
    spec = ("mixste", "tpc", "tra", "1:9")
    model = create_model(*spec, **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_native(tmp_path / "m.pt", model, model_config(*spec, **TINY))
    return path, model.eval()


@pytest.mark.parametrize("flip", [False, True])
def test_predict_round_trip(tmp_path, native_ckpt, flip):
    path, model = native_ckpt
    x = np.random.default_rng(0).normal(size=(5, 27, 17, 2)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    args = ["predict", str(path), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--batch-size", "2"]
    result = runner.invoke(app, args + (["--flip"] if flip else []))
    assert result.exit_code == 0, result.output
    y = np.load(tmp_path / "out.npy")
    assert y.shape == (5, 27, 17, 3)
    expected = predict_clips(model, torch.from_numpy(x), flip=flip).numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5)
    reloaded, config = load_native(path)
    assert config["schedule"] == "1:9" and reloaded.num_frames == 27


def test_predict_wrong_shape_and_wrong_file(tmp_path, native_ckpt):
    path, _ = native_ckpt
    np.save(tmp_path / "bad.npy", np.zeros((2, 26, 17, 2), np.float32))
    result = runner.invoke(app, ["predict", str(path), str(tmp_path / "bad.npy"), str(tmp_path / "o.npy")])
    assert result.exit_code == 2 and "(N, 27, 17, 2)" in result.stderr and "(2, 26, 17, 2)" in result.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    np.save(tmp_path / "ok.npy", np.zeros((1, 27, 17, 2), np.float32))
    result = runner.invoke(app, ["predict", str(tmp_path / "junk.pt"), str(tmp_path / "ok.npy"), str(tmp_path / "o.npy")])
    assert result.exit_code == 2 and "junk.pt" in result.stderr
    assert not (tmp_path / "o.npy").exists()


def test_file_torch_refuses_is_one_line_with_its_cause(tmp_path):
    # A pickle holding an object, not tensors: weights_only refuses it with a paragraph advising
    # weights_only=False; the user gets one line with the cause and no such advice.
    torch.save({"w": PurePosixPath("x")}, tmp_path / "obj.pth")
    result = runner.invoke(app, ["checkpoint", "convert", "hot_mixste", str(tmp_path / "obj.pth"),
                                 str(tmp_path / "out.pt")])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "obj.pth" in line and "PurePosixPath" in line and "weights_only" not in line
    assert not (tmp_path / "out.pt").exists()


def test_native_checkpoint_of_another_shape_is_refused(tmp_path):
    model = create_model("mixste", **TINY)
    config = model_config("mixste", **{**TINY, "dim": 64})
    path = save_native(tmp_path / "wrong.pt", model, config)
    from h2ot_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_native(path)


def test_version_prints_the_package_version_and_exits_0():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"h2ot {version('h2ot-lab')}"


def test_shell_completion_is_offered():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_format_is_one_word_on_ls_and_profile():
    rows = json.loads(runner.invoke(app, ["ls", "--format", "json"]).stdout)
    assert {"registry": "pruner", "name": "tpc", "notes": "Token Pruning Cluster (HoT): keeps the frames that are "
            "DPC-kNN cluster centres"} in rows
    csv_lines = runner.invoke(app, ["ls", "--format", "csv"]).stdout.splitlines()
    assert csv_lines[0] == "registry,name,notes" and any(line.startswith("recoverer,tri,Token Recovering "
                                                                        "Interpolation") for line in csv_lines)
    args = ["profile", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "3", "--heads", "2",
            "--repeats", "1"]
    as_format = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    as_alias = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert set(as_format) == set(as_alias) and as_format["gflops"] == as_alias["gflops"]
    markdown = runner.invoke(app, [*args, "--format", "markdown"]).stdout.splitlines()
    assert markdown[0].startswith("| backbone | pruner |") and len(markdown) == 3
    bad = runner.invoke(app, ["ls", "--format", "yml"])
    assert bad.exit_code == 2 and "Unknown format 'yml'" in bad.stderr


def test_predict_refuses_pixel_coordinates_and_says_how_to_normalise(tmp_path, native_ckpt):
    path, _ = native_ckpt
    pixels = np.random.default_rng(0).uniform(0, 1000, size=(1, 27, 17, 2)).astype(np.float32)
    np.save(tmp_path / "px.npy", pixels)
    result = runner.invoke(app, ["predict", str(path), str(tmp_path / "px.npy"), str(tmp_path / "o.npy")])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "px.npy: coordinates up to 99" in line and "look like pixels" in line and "x / W * 2 - 1" in line
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_zero_batch_size_is_a_usage_error_not_a_traceback(tmp_path, native_ckpt, command):
    path, _ = native_ckpt
    np.save(tmp_path / "in.npy", np.zeros((1, 27, 17, 2), np.float32))
    args = [str(path), *([str(tmp_path / "in.npy"), str(tmp_path / "o.npy")] if command == "predict" else [])]
    result = runner.invoke(app, [command, *args, "--batch-size", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == "Error: --batch-size 0: expected 1 or more"


def test_profile_without_latency_reports_the_counts_only():
    args = ["profile", "--backbone", "mixste", "--frames", "27", "--dim", "32", "--depth", "3", "--heads", "2",
            "--format", "json"]
    counted = json.loads(runner.invoke(app, [*args, "--no-latency"]).stdout)
    timed = json.loads(runner.invoke(app, [*args, "--repeats", "1"]).stdout)
    assert not any(k.startswith("latency_") for k in counted) and timed["latency_ms"] > 0
    assert {k: counted[k] for k in ("params", "gflops", "gflops_total")} == \
        {k: timed[k] for k in ("params", "gflops", "gflops_total")}


def test_default_output_folders_are_git_ignored():
    import inspect
    import shutil
    import subprocess
    from pathlib import Path

    from orchestrator.commands import results

    repo = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    defaults = [str(inspect.signature(fn).parameters["out_dir"].default)
                for fn in (results.build, results.plots, results.report)]
    assert sorted(defaults) == ["figures", "paper_tables", "reports"]
    for folder in defaults:
        done = subprocess.run(["git", "check-ignore", "-q", f"{folder}/x.md"], cwd=repo)
        assert done.returncode == 0, f"{folder}/ is not git-ignored"
