"""The synthetic generator's files, read back by a minimal numpy-only reader written independently here."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from h2ot_core.data.skeleton import BONE_LENGTHS_MM, BONE_OF_JOINT, KEPT_32, PARENTS_17
from h2ot_core.data.synth import generate, write_synthetic

H36M_SUBJECTS = {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
H36M_BASE_ACTIONS = {"Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
                     "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether"}


def read_pickled(path: Path, key: str):
    """VideoPose3D's own way of reading these files (trusted, self-made files only)."""
    with np.load(path, allow_pickle=True) as f:
        return f[key].item()


def test_files_have_the_videopose3d_layout(synth_dir: Path, synth_params: tuple[int, float]) -> None:
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted([
        "data_3d_h36m.npz", "data_2d_h36m_gt.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "synthetic_labels.npz",
        "synthetic.json"])
    pos3d = read_pickled(synth_dir / "data_3d_h36m.npz", "positions_3d")
    assert set(pos3d) == H36M_SUBJECTS
    for name, layout in (("data_2d_h36m_gt.npz", None), ("data_2d_h36m_cpn_ft_h36m_dbb.npz", "h36m")):
        pos2d = read_pickled(synth_dir / name, "positions_2d")
        meta = read_pickled(synth_dir / name, "metadata")
        assert meta["num_joints"] == 17
        assert meta["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
        assert meta.get("layout_name") == layout
        assert set(pos2d) == set(pos3d)
        for subject, actions in pos3d.items():
            assert set(pos2d[subject]) == set(actions)
            for action, world in actions.items():
                assert action.split(" ")[0] in H36M_BASE_ACTIONS
                assert world.dtype == np.float32 and world.ndim == 3 and world.shape[1:] == (32, 3)
                views = pos2d[subject][action]
                assert isinstance(views, list) and len(views) == 4
                for px in views:
                    assert px.dtype == np.float32 and px.shape == (world.shape[0], 17, 2)
                    assert np.isfinite(px).all()
    assert json.loads((synth_dir / "synthetic.json").read_text())["seed"] == synth_params[0]


def test_total_length_follows_minutes(synth_dir: Path, synth_params: tuple[int, float]) -> None:
    minutes = synth_params[1]
    pos3d = read_pickled(synth_dir / "data_3d_h36m.npz", "positions_3d")
    frames = sum(w.shape[0] for actions in pos3d.values() for w in actions.values())
    assert abs(frames - minutes * 60 * 50) < 0.25 * minutes * 60 * 50


def test_bone_lengths_constant_and_equal_to_reference(synth_dir: Path) -> None:
    pos3d = read_pickled(synth_dir / "data_3d_h36m.npz", "positions_3d")
    for subject, actions in pos3d.items():
        for world in actions.values():
            joints = world[:, list(KEPT_32)].astype(np.float64)
            for j in range(1, 17):
                length = np.linalg.norm(joints[:, j] - joints[:, PARENTS_17[j]], axis=-1)
                expected = BONE_LENGTHS_MM[subject][BONE_OF_JOINT[j]] / 1000.0
                np.testing.assert_allclose(length, expected, atol=2e-5)  # float32 storage of ~5 m coordinates


def test_gt_2d_is_the_projection_and_inside_the_images(synth_dir: Path) -> None:
    """Re-project with an independent copy of VideoPose3D's camera model (S9 camera 2)."""
    q = np.array([0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915])
    t = np.array([-1670.9921875, 5211.98583984375, 1528.387939453125]) / 1000
    f, c = np.array([1149.1407470703125, 1148.7989501953125]), np.array([519.8158569335938, 501.40264892578125])
    k = np.array([-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427])
    p = np.array([0.0014843869721516967, -0.0007599993259645998])
    pos3d = read_pickled(synth_dir / "data_3d_h36m.npz", "positions_3d")["S9"]
    gt = read_pickled(synth_dir / "data_2d_h36m_gt.npz", "positions_2d")["S9"]
    for action, world in pos3d.items():
        x = world[:, list(KEPT_32)].astype(np.float64) - t
        # rotate by the inverse quaternion: v' = v + 2w(u×v) + 2u×(u×v) with u = -q.xyz
        u = -q[1:]
        uv = np.cross(u, x)
        cam = x + 2 * (q[0] * uv + np.cross(u, uv))
        xx = cam[..., :2] / cam[..., 2:]
        r2 = (xx**2).sum(-1, keepdims=True)
        xxx = xx * (1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3 + (p * xx).sum(-1, keepdims=True)) + p * r2
        np.testing.assert_allclose(gt[action][2], f * xxx + c, atol=0.05)
        assert (cam[..., 2] > 2.0).all()
    for actions in read_pickled(synth_dir / "data_2d_h36m_gt.npz", "positions_2d").values():
        for views in actions.values():
            for px in views:
                assert (px >= 0).all() and (px <= 1000).all()


def test_cpn_noise_is_realistic_and_temporally_correlated(synth_dir: Path) -> None:
    gt = read_pickled(synth_dir / "data_2d_h36m_gt.npz", "positions_2d")
    cpn = read_pickled(synth_dir / "data_2d_h36m_cpn_ft_h36m_dbb.npz", "positions_2d")
    errors, lag1 = [], []
    for subject in gt:
        for action in gt[subject]:
            for a, b in zip(gt[subject][action], cpn[subject][action], strict=True):
                e = (b - a).astype(np.float64)
                errors.append(np.linalg.norm(e, axis=-1).ravel())
                d = e - e.mean(0)
                lag1.append((d[1:] * d[:-1]).sum() / (d * d).sum())
    errors = np.concatenate(errors)
    assert 2.0 < np.median(errors) < 6.0  # real CPN on H36M: median ≈ 3 px, mean ≈ 4 px
    assert errors.max() > 15.0  # outliers exist
    assert np.median(lag1) > 0.5  # smooth over time, not white jitter


def test_labels_speed_and_segments(synth_dir: Path) -> None:
    with np.load(synth_dir / "synthetic_labels.npz", allow_pickle=True) as f:
        labels, names = f["labels"].item(), list(f["segment_names"])
    assert names == ["still", "walk", "gesture", "sit", "burst"]
    pos3d = read_pickled(synth_dir / "data_3d_h36m.npz", "positions_3d")
    speeds, segments = [], []
    for subject, actions in pos3d.items():
        for action, world in actions.items():
            entry = labels[subject][action]
            assert entry["speed"].shape == entry["segment"].shape == (world.shape[0],)
            speeds.append(entry["speed"])
            segments.append(entry["segment"])
    speeds, segments = np.concatenate(speeds), np.concatenate(segments)
    assert set(np.unique(segments)) == set(range(len(names)))  # every kind of motion occurs
    still, burst = speeds[segments == 0].mean(), speeds[segments == 4].mean()
    assert still < 0.5 * burst
    assert 0.05 < speeds.mean() < 2.0


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    a, b, c = generate(7, 0.2), generate(7, 0.2), generate(8, 0.2)
    for subject, actions in a.positions_3d.items():
        for action, world in actions.items():
            np.testing.assert_array_equal(world, b.positions_3d[subject][action])
            np.testing.assert_array_equal(a.cpn_2d[subject][action][1], b.cpn_2d[subject][action][1])
    first = next(iter(a.positions_3d["S1"]))
    other = c.positions_3d["S1"][first]
    assert other.shape != a.positions_3d["S1"][first].shape or not np.allclose(other, a.positions_3d["S1"][first])


def _write(args: tuple[str, int]) -> str:
    folder, seed = args
    return str(write_synthetic(Path(folder), seed=seed, minutes=0.2))


def test_concurrent_generation_leaves_one_complete_folder(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "seed1"
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_write, [(str(target), 1)] * 3))
    assert results == [str(target)] * 3
    assert sorted(p.name for p in tmp_path.joinpath("cache").iterdir()) == ["seed1"]  # no temp folders left
    expected = generate(1, 0.2).positions_3d["S5"]
    got = read_pickled(target / "data_3d_h36m.npz", "positions_3d")["S5"]
    for action, world in expected.items():
        np.testing.assert_array_equal(got[action], world)


def test_rejects_non_positive_minutes() -> None:
    from h2ot_core.errors import ConfigError

    with pytest.raises(ConfigError, match="minutes"):
        generate(0, 0.0)
