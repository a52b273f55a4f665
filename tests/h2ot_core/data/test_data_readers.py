"""Readers on generated files, and every bad-input case as a DataError naming the file and key."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from h2ot_core.data.cameras import camera, world_to_camera
from h2ot_core.data.loading import load_dataset
from h2ot_core.data.mocap_clips import TEST_CLIPS, humanoid_joints, load_mocap_clips, resample
from h2ot_core.data.skeleton import BONE_LENGTHS_MM, KEPT_32
from h2ot_core.errors import ConfigError, DataError
from h2ot_core.names import dataset_info

CPN = "data_2d_h36m_cpn_ft_h36m_dbb.npz"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _read(path: Path, key: str):
    with np.load(path, allow_pickle=True) as f:
        return {k: f[k].item() if f[k].dtype == object else f[k] for k in f.files}[key]


def _rewrite(path: Path, key: str, value: object) -> None:
    with np.load(path, allow_pickle=True) as f:
        content = {k: f[k] for k in f.files}
    content[key] = np.array(value, dtype=object)
    np.savez(path, **content)


def test_h36m_reader_on_generated_files(synth_dir: Path) -> None:
    data = load_dataset("h36m", synth_dir, source="gt")
    assert {s.subject for s in data.train} == {"S1", "S5", "S6", "S7", "S8"}
    assert {s.subject for s in data.test} == {"S9", "S11"}
    assert len(data.fingerprint) == 16
    world = _read(synth_dir / "data_3d_h36m.npz", "positions_3d")
    seq = data.test[0]
    cam = world_to_camera(world[seq.subject][seq.action][:, list(KEPT_32)].astype(np.float64),
                          camera(seq.subject, seq.camera))
    np.testing.assert_allclose(seq.pose3d, cam - cam[:, :1], atol=1e-5)
    assert np.all(seq.pose3d[:, 0] == 0)
    assert seq.pose2d.dtype == np.float32 and np.abs(seq.pose2d).max() <= 1.0
    # gt and cpn share the 3D targets, differ in 2D
    cpn = load_dataset("h36m", synth_dir, source="cpn")
    assert cpn.fingerprint != data.fingerprint
    np.testing.assert_array_equal(cpn.test[0].pose3d, seq.pose3d)


def test_synthetic_dataset_generates_caches_and_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H2OT_CACHE", str(tmp_path))
    data = load_dataset("synthetic", seed=5, minutes=0.2)
    folder = tmp_path / "synthetic" / "seed5_min0.2"
    assert (folder / "synthetic.json").is_file()
    assert data.name == "synthetic" and data.extras["segment_names"][0] == "still"
    for seq in data.train + data.test:
        labels = data.extras["labels"][(seq.subject, seq.action)]
        assert labels["speed"].shape == (seq.num_frames,)
    again = load_dataset("synthetic", seed=5, minutes=0.2)
    assert again.fingerprint == data.fingerprint
    np.testing.assert_array_equal(load_dataset("h36m", folder).train[0].pose2d, data.train[0].pose2d)


def test_unknown_source_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'openpose'"):
        load_dataset("h36m", tmp_path, source="openpose")
    with pytest.raises(DataError, match=r"data_3d_h36m\.npz: file not found"):
        load_dataset("h36m", tmp_path)
    with pytest.raises(DataError, match="needs a data folder"):
        load_dataset("h36m")


@pytest.mark.parametrize(("case", "message"), [
    ("truncated_file", r"data_3d_h36m\.npz: cannot read key 'positions_3d'"),
    ("missing_key", r"data_3d_h36m\.npz: missing key 'positions_3d'"),
    ("nan", r"positions_3d\['S1'\]\['\w+'\] holds NaN/inf"),
    ("wrong_joints", r"positions_3d\['S1'\]\['\w+'\] has shape \(\d+, 31, 3\); expected \(T, 32, 3\)"),
    ("missing_2d_action", r"data_2d_h36m_cpn_ft_h36m_dbb\.npz: positions_2d\['S1'\] has no key"),
    ("three_cameras", r"positions_2d\['S1'\]\['\w+'\] holds 3 camera arrays; expected a list of 4"),
    ("short_2d", r"positions_2d\['S1'\]\['\w+'\]\[0\] has \d+ frames; expected at least"),
    ("bad_metadata", r"metadata\['num_joints'\] is 16; expected 17"),
    ("unknown_subject", r"subject 'S2' has no published cameras"),
])
def test_bad_h36m_files_raise_data_error(synth_dir: Path, tmp_path: Path, case: str, message: str) -> None:
    folder = _copy(synth_dir, tmp_path / "bad")
    p3, p2 = folder / "data_3d_h36m.npz", folder / CPN
    pos3d, pos2d = _read(p3, "positions_3d"), _read(p2, "positions_2d")
    action = sorted(pos3d["S1"])[0]
    if case == "truncated_file":
        p3.write_bytes(p3.read_bytes()[: p3.stat().st_size // 2])
    elif case == "missing_key":
        np.savez(p3, poses=np.zeros(3))
    elif case == "nan":
        pos3d["S1"][action][5, 3, 1] = np.nan
        _rewrite(p3, "positions_3d", pos3d)
    elif case == "wrong_joints":
        pos3d["S1"][action] = pos3d["S1"][action][:, :31]
        _rewrite(p3, "positions_3d", pos3d)
    elif case == "missing_2d_action":
        del pos2d["S1"][action]
        _rewrite(p2, "positions_2d", pos2d)
    elif case == "three_cameras":
        pos2d["S1"][action] = pos2d["S1"][action][:3]
        _rewrite(p2, "positions_2d", pos2d)
    elif case == "short_2d":
        pos2d["S1"][action][0] = pos2d["S1"][action][0][:-3]
        _rewrite(p2, "positions_2d", pos2d)
    elif case == "bad_metadata":
        _rewrite(p2, "metadata", {"layout_name": "h36m", "num_joints": 16})
    elif case == "unknown_subject":
        pos3d["S1"], pos2d["S1"] = pos3d.pop("S5"), pos2d["S5"]
        pos3d = {"S2" if k == "S1" else k: v for k, v in pos3d.items()}
        _rewrite(p3, "positions_3d", pos3d)
        pos2d["S2"] = pos2d["S5"]
        _rewrite(p2, "positions_2d", pos2d)
        with pytest.raises(DataError, match=message):
            load_dataset("h36m", folder, train_subjects=("S2",))
        return
    with pytest.raises(DataError, match=message):
        load_dataset("h36m", folder)


def test_longer_2d_is_truncated_and_camera_range_checked(synth_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synth_dir, tmp_path / "long")
    pos2d = _read(folder / CPN, "positions_2d")
    action = sorted(pos2d["S9"])[0]
    pos2d["S9"][action] = [np.concatenate([v, v[-5:]]) for v in pos2d["S9"][action]]  # CPN is often longer
    _rewrite(folder / CPN, "positions_2d", pos2d)
    data = load_dataset("h36m", folder, cameras=[1])
    seq = next(s for s in data.test if s.action == action)
    assert seq.camera == 1 and seq.pose2d.shape[0] == seq.pose3d.shape[0]
    with pytest.raises(DataError, match=r"camera index 4 is out of range; expected 0\.\.3"):
        load_dataset("h36m", folder, cameras=[0, 4])


def test_pickle_that_imports_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    tmp_path.joinpath("data_2d_h36m_cpn_ft_h36m_dbb.npz").write_bytes(b"")
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=np.array({"S1": Evil()}, dtype=object))
    with pytest.raises(DataError, match=r"data_3d_h36m\.npz: cannot read key 'positions_3d'.*builtins\.print"):
        load_dataset("h36m", tmp_path)
    assert pickle.dumps  # the standard pickle module stays untouched


def _write_3dhp(folder: Path, *, valid_len: int | None = None, cam: str = "0") -> None:
    rng = np.random.default_rng(0)
    entry = {"data_2d": rng.uniform(0, 2048, (30, 17, 2)), "data_3d": rng.normal(0, 500, (30, 17, 3))}
    np.savez(folder / "data_train_3dhp.npz", data=np.array({"S1 Seq1": [{cam: entry}, 25]}, dtype=object))
    test = {"data_2d": rng.uniform(0, 1080, (20, 17, 2)), "data_3d": rng.normal(0, 500, (20, 17, 3)),
            "valid": np.r_[np.ones(15), np.zeros(valid_len or 5)]}
    np.savez(folder / "data_test_3dhp.npz", data=np.array({"TS5": test}, dtype=object))


def test_mpi_inf_3dhp_reader(tmp_path: Path) -> None:
    _write_3dhp(tmp_path)
    data = load_dataset("mpi_inf_3dhp", tmp_path)
    assert data.root_joint == 14 and data.joints_left == (5, 6, 7, 11, 12, 13)
    train, test = data.train[0], data.test[0]
    assert (train.subject, train.action, train.camera) == ("S1", "Seq1", 0)
    assert np.all(train.pose3d[:, 14] == 0) and np.abs(train.pose3d).max() < 10  # metres
    assert test.valid is not None and test.valid.sum() == 15
    assert np.abs(test.pose2d[..., 0]).max() <= 1.0  # 1920 wide for TS5
    with pytest.raises(DataError, match=r"camera index '20' is out of range; expected 0\.\.13"):
        load_dataset("mpi_inf_3dhp", tmp_path, cameras=[20])


def test_mpi_inf_3dhp_bad_inputs(tmp_path: Path) -> None:
    _write_3dhp(tmp_path, valid_len=3)
    with pytest.raises(DataError, match=r"data_test_3dhp\.npz: data\['TS5'\]\['valid'\] has 18 frames; expected 20"):
        load_dataset("mpi_inf_3dhp", tmp_path)
    _write_3dhp(tmp_path, cam="x")
    with pytest.raises(DataError, match=r"data_train_3dhp\.npz: camera index 'x' is out of range"):
        load_dataset("mpi_inf_3dhp", tmp_path)


def _clip(frames: int, knee: float) -> dict:
    """A hand-made DeepMimic clip: standing upright, right knee bent by ``knee`` radians, 30 fps."""
    row = [1 / 30, 0, 0.9, 0, 1, 0, 0, 0] + [1, 0, 0, 0] * 3 + [knee] + [1, 0, 0, 0] * 2 + [0] \
        + [1, 0, 0, 0] + [0] + [1, 0, 0, 0] * 2 + [0]
    assert len(row) == 44
    return {"Loop": "none", "Frames": [row] * frames}


def test_mocap_clip_conversion(tmp_path: Path) -> None:
    clip = np.asarray(_clip(16, np.pi / 2)["Frames"])
    assert resample(clip).shape[0] == 26  # 0.5 s at 50 Hz, both ends included
    joints = humanoid_joints(resample(clip))
    thigh, shin = joints[:, 2] - joints[:, 1], joints[:, 3] - joints[:, 2]
    cos = (thigh * shin).sum(-1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shin, axis=-1)
    np.testing.assert_allclose(cos, 0.0, atol=1e-9)  # the knee angle is the bend between thigh and shin
    tmp_path.joinpath("humanoid3d_walk.txt").write_text(json.dumps(_clip(31, 0.0)))
    tmp_path.joinpath("humanoid3d_kick.txt").write_text(json.dumps(_clip(31, 0.3)))
    data = load_mocap_clips(tmp_path, subject="S5")
    assert [s.action for s in data.test] == ["walk"] * 4 and [s.action for s in data.train] == ["kick"] * 4
    pose = data.test[0].pose3d[0]
    np.testing.assert_allclose(np.linalg.norm(pose[2] - pose[1]), BONE_LENGTHS_MM["S5"]["thigh"] / 1000, rtol=1e-5)
    assert pose[10, 1] < pose[0, 1] - 0.5  # head above the pelvis (camera y points down)


def test_mocap_clip_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pybullet_data" else real_find_spec(name, *a))
    with pytest.raises(DataError, match=r"pip install 'h2ot-lab\[mocap\]'"):
        load_dataset("mocap_clips")
    tmp_path.joinpath("humanoid3d_walk.txt").write_text(json.dumps({"Frames": [[0.1] * 43] * 3}))
    with pytest.raises(DataError, match=r"humanoid3d_walk\.txt: 'Frames' has shape \(3, 43\); expected \(K, 44\)"):
        load_mocap_clips(tmp_path)


def test_real_mocap_clips_from_pybullet() -> None:
    """The real clips pybullet ships (installed by `make test` with the `mocap` extra), end to end."""
    import pybullet_data

    folder = Path(pybullet_data.getDataPath()) / "data" / "motions"
    data = load_dataset("mocap_clips")
    sequences = data.train + data.test
    clips = {s.action for s in sequences}
    assert len(clips) >= 15 and {s.action for s in data.test} == set(TEST_CLIPS)
    assert not {s.action for s in data.train} & {s.action for s in data.test}  # split by clip
    thigh = BONE_LENGTHS_MM["S1"]["thigh"] / 1000
    for s in sequences:
        assert s.pose3d.shape == (s.num_frames, 17, 3) and s.pose2d.shape == (s.num_frames, 17, 2)
        assert np.isfinite(s.pose3d).all() and np.isfinite(s.pose2d).all()
        np.testing.assert_allclose(s.pose3d[:, 0], 0.0)  # root-relative
        np.testing.assert_allclose(np.linalg.norm(s.pose3d[:, 2] - s.pose3d[:, 1], axis=-1), thigh, rtol=1e-5)
        assert np.abs(s.pose2d).max() < 1.05, (s.action, s.camera)  # every camera sees the body ...
    outside = np.concatenate([(np.abs(s.pose2d) > 1).ravel() for s in sequences])
    assert outside.mean() < 1e-3  # ... all but a fast run's few frames at the image border
    walk = next(s for s in sequences if s.action == "walk" and s.camera == 0)
    keyframes = np.asarray(json.loads((folder / "humanoid3d_walk.txt").read_text())["Frames"])
    assert walk.num_frames == int(keyframes[:-1, 0].sum() * 50 + 1e-6) + 1  # resampled to 50 Hz
    speed = {s.action: np.linalg.norm(np.diff(s.pose3d, axis=0), axis=-1).mean() * 50
             for s in sequences if s.camera == 0}  # m/s, mean over joints and frames
    assert speed["run"] > 2 * speed["walk"] > 0.5
    for action in ("walk", "run", "punch"):  # upright clips: head above the pelvis (camera y points down)
        upright = next(s for s in sequences if s.action == action)
        assert (upright.pose3d[:, 10, 1] < -0.4).all()


def test_registered_dataset_facts_match_the_readers(synth_dir: Path, tmp_path: Path) -> None:
    # The files each DatasetInfo lists are the ones its reader reads (here: the synthetic folder, which
    # holds exactly what the h36m reader reads), and its joint count is what the reader returns.
    for name in ("h36m", "synthetic"):
        info = dataset_info(name)
        assert all((synth_dir / f).is_file() for f in info.files), name
        assert load_dataset("h36m", synth_dir).num_joints == info.num_joints
    _write_3dhp(tmp_path)
    info = dataset_info("mpi_inf_3dhp")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(info.files)
    assert load_dataset("mpi_inf_3dhp", tmp_path).num_joints == info.num_joints
    with pytest.raises(DataError, match=r"holding data_train_3dhp\.npz, data_test_3dhp\.npz"):
        load_dataset("mpi_inf_3dhp")
