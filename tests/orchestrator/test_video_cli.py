"""``h2ot video``: keypoint input, several models side by side (seq2seq and seq2frame), trial keys and campaigns
from a real leaderboard, ``--gt`` with per-panel MPJPE, and every bad input as one line with no output left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import TINY
from typer.testing import CliRunner

from h2ot_core.checkpoint import save_native
from h2ot_core.contracts import Cost, MetricRecord, TrialResult, TrialSpec
from h2ot_core.factory import create_model, model_config
from h2ot_core.video.decode import read_frames, video_info
from orchestrator.cli import app
from results.store import LeaderboardStore
from tests.h2ot_core.video.motion import HEIGHT, WIDTH, as_coco, h36m_pixels

runner = CliRunner()
T = 30


def _checkpoint(path: Path, backbone: str = "mixste", pruner: str = "none", recoverer: str = "none",
                schedule: str = "", **overrides) -> Path:
    torch.manual_seed(0)
    size = {**TINY[backbone], **overrides}
    save_native(path, create_model(backbone, pruner, recoverer, schedule, **size),
                model_config(backbone, pruner, recoverer, schedule, **size))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video")
    coco = as_coco(h36m_pixels(T))
    np.save(root / "coco.npy", np.concatenate([coco, np.full((T, 17, 1), 0.9)], -1))
    return {"root": root, "kp": root / "coco.npy",
            "base": _checkpoint(root / "base.pt"), "hot": _checkpoint(root / "hot.pt", pruner="tpc", recoverer="tra",
                                                                      schedule="1:9"),
            "s2f": _checkpoint(root / "s2f.pt", "mhformer"),
            "j16": _checkpoint(root / "j16.pt", num_joints=16)}


def _run(*args: str):
    return runner.invoke(app, ["video", *args, "--device", "cpu"])


def _error_line(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    return lines[0]


def test_keypoints_to_3d_side_by_side(files, tmp_path):
    out = tmp_path / "out"
    res = _run(str(files["kp"]), "-m", str(files["base"]), "-m", str(files["s2f"]), "--image-size",
               f"{WIDTH}x{HEIGHT}", "--out", str(out))
    assert res.exit_code == 0, res.output
    poses = np.load(out / "poses3d.npy")
    assert poses.shape == (2, T, 17, 3) and np.isfinite(poses).all()
    doc = json.loads((out / "poses3d.json").read_text())
    assert "metres" in doc["poses3d.npy"] and doc["fps"] == 50.0
    assert [m["pipeline"] for m in doc["models"]] == ["seq2seq", "seq2frame"]
    assert [t["stage"] for t in doc["timing"]] == ["2D (read keypoints)", "lifting base", "lifting s2f", "render"]
    for stage in ("2D (read keypoints)", "lifting base", "render"):
        assert any(line.startswith(stage) and "ms/frame" in line and "FPS" in line for line in res.output.splitlines())
    frames = list(read_frames(out / "video.mp4"))
    info = video_info(out / "video.mp4")
    assert len(frames) == T and (info.width, info.height) == (frames[0].shape[1], frames[0].shape[0])
    assert info.fps == 50.0


def _store(url: str, files: dict[str, Path]) -> dict[str, str]:
    store = LeaderboardStore(url)
    store.ensure_campaign("cmp")
    keys = {}
    for name, (pruner, recoverer, schedule, mpjpe) in {"base": ("none", "none", "", 50.0),
                                                       "hot": ("tpc", "tra", "1:9", 55.0)}.items():
        spec = TrialSpec(backbone="mixste", pruner=pruner, recoverer=recoverer, schedule=schedule, frames=27,
                         dataset="synthetic", model={k: v for k, v in TINY["mixste"].items() if k != "num_frames"})
        store.mark_running(spec, "cmp")
        store.upsert_result(TrialResult(spec.trial_key, spec.to_dict(), "complete",
                                        [MetricRecord("mpjpe", "test", mpjpe)], Cost(params=1, gflops=0.05, gflops_total=0.06),
                                        checkpoint_uri=str(files[name])), campaign="cmp")
        keys[name] = spec.trial_key
    return keys


def test_trial_keys_campaigns_and_ground_truth(files, tmp_path, monkeypatch):
    monkeypatch.setenv("H2OT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("H2OT_DATA_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    keys = _store(url, files)
    out = tmp_path / "gt"
    res = _run("-m", keys["hot"][:8], "--gt", "synthetic:S9:Photo:0", "--max-frames", "20", "--out", str(out),
               "--db-url", url)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "poses3d.json").read_text())
    assert doc["models"][0]["mpjpe_mm"] > 0 and doc["input"] == "synthetic:S9:Photo:0" and doc["frames"] == 20
    assert f"{keys['hot'][:10]} mixste-27 tpc+tra 1:9: MPJPE" in res.output
    res = _run(str(files["kp"]), "--campaign", "cmp", "--top", "2", "--image-size", f"{WIDTH}x{HEIGHT}",
               "--out", str(tmp_path / "c"), "--db-url", url, "--format", "gif")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "c" / "poses3d.npy").shape[0] == 2
    assert (tmp_path / "c" / "video.gif").is_file()
    # unknown trial key: a did-you-mean from the leaderboard
    typo = keys["base"][:-1] + ("0" if keys["base"][-1] != "0" else "1")
    res = _run(str(files["kp"]), "-m", typo, "--image-size", "1000x1002", "--out", str(tmp_path / "x"),
               "--db-url", url)
    assert res.exit_code == 2 and f"Did you mean: {keys['base']}" in _error_line(res)
    # --gt of another length
    res = _run(str(files["kp"]), "-m", str(files["base"]), "--image-size", "1000x1002", "--gt",
               "synthetic:S9:Photo:0", "--max-frames", "20", "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "has 20 frames" in _error_line(res) and f"has {T}" in _error_line(res)
    assert not (tmp_path / "x").exists()


def test_bad_inputs_are_one_line_and_leave_no_output(files, tmp_path):
    out = tmp_path / "never"
    bad = files["root"] / "bad.npy"
    np.save(bad, np.zeros((10, 18, 2)))
    broken = files["root"] / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 50)
    cases = {
        "wrong joint count": ([str(bad), "-m", str(files["base"]), "--image-size", "100x100"],
                              "bad.npy: 18 joints per pose"),
        "checkpoint for another joint count": ([str(files["kp"]), "-m", str(files["j16"]), "--image-size", "100x100"],
                                               "j16.pt: the checkpoint lifts 16 joints"),
        "corrupt video": ([str(broken), "-m", str(files["base"])], "broken.mp4: not a readable video"),
        "no frame size": ([str(files["kp"]), "-m", str(files["base"])], "--image-size"),
        "missing input": ([str(tmp_path / "nope.mp4"), "-m", str(files["base"])], "nope.mp4: no such file"),
        "no detector weights offline": ([str(files["root"]), "-m", str(files["base"]), "--detector-weights",
                                         str(tmp_path)], "no yolox_tiny_8xb8-300e_humanart-6f3252f9.onnx"),
    }
    frames = files["root"] / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(frames / "0001.png")
    cases["no detector weights offline"][0][0] = str(frames)
    for name, (args, message) in cases.items():
        res = _run(*args, "--out", str(out))
        assert res.exit_code == 2, (name, res.output)
        assert message in _error_line(res), name
        assert not out.exists(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


def test_report_adds_the_best_pruned_trial_beside_the_baseline(files, tmp_path, monkeypatch):
    from orchestrator.commands import video

    monkeypatch.setattr(video, "REPORT_FRAMES", 12)
    monkeypatch.setenv("H2OT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("H2OT_DATA_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    keys = _store(url, files)
    res = runner.invoke(app, ["report", "cmp", "--out", str(tmp_path / "r"), "--db-url", url])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r" / "cmp.md").read_text(encoding="utf-8")
    assert "## Qualitative: best pruned trial vs unpruned baseline" in page
    assert "![best pruned vs unpruned](figures/qualitative.gif)" in page
    assert f"{keys['hot'][:10]} mixste-27 tpc+tra 1:9:" in page and f"{keys['base'][:10]} mixste-27 unpruned:" in page
    from PIL import Image

    with Image.open(tmp_path / "r" / "figures" / "qualitative.gif") as gif:
        assert gif.n_frames == 12
