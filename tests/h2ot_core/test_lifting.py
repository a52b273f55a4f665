"""Windowed lifting of any length: lengths 1, < F, = F, several × F; seq2seq and seq2frame; the merge rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import TINY, TINY_FRAMES

from h2ot_core.errors import ConfigError, ShapeError
from h2ot_core.factory import create_model
from h2ot_core.lifting import lift_sequence, tent_weights

F = TINY_FRAMES


def _model(backbone: str = "mixste", pipeline: str | None = None, pruner: str = "none", recoverer: str = "none",
           schedule: str = ""):
    torch.manual_seed(0)
    return create_model(backbone, pruner, recoverer, schedule, pipeline=pipeline, **TINY[backbone]).eval()


def _keypoints(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.01, (frames, 17, 2)), axis=0).astype(np.float32)


@torch.inference_mode()
def _forward(model, clip: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(clip)[None]).pose3d[0].numpy()


@pytest.mark.parametrize("frames", [1, 10, F, 4 * F + 5])
@pytest.mark.parametrize(("backbone", "pipeline"), [("mixste", "seq2seq"), ("mhformer", "seq2frame")])
def test_every_length_gives_one_finite_pose_per_frame(frames, backbone, pipeline):
    model = _model(backbone, pipeline)
    lifted = lift_sequence(model, _keypoints(frames), batch_size=8)
    assert lifted.poses.shape == (frames, 17, 3)
    assert lifted.poses.dtype == np.float32
    assert np.isfinite(lifted.poses).all()
    expected_windows = frames if pipeline == "seq2frame" else max(1, -(-(frames - F) // (F - F // 4)) + 1)
    assert lifted.stats.windows == expected_windows
    assert lifted.stats.batches == -(-expected_windows // 8)
    assert lifted.stats.model_seconds > 0


def test_clip_of_exactly_f_frames_is_one_forward_pass():
    model = _model()
    kp = _keypoints(F)
    np.testing.assert_allclose(lift_sequence(model, kp).poses, _forward(model, kp), atol=1e-5)


def test_short_clip_is_edge_padded_like_training():
    model = _model()
    kp = _keypoints(5)
    left = (F - 5) // 2
    padded = np.pad(kp, ((left, F - 5 - left), (0, 0), (0, 0)), mode="edge")
    np.testing.assert_allclose(lift_sequence(model, kp).poses, _forward(model, padded)[left:left + 5], atol=1e-5)


def test_overlapping_windows_are_merged_by_the_tent_weighted_mean():
    model = _model()
    overlap = 9
    kp = _keypoints(2 * F - overlap)  # two windows exactly, sharing 9 frames
    first, second = _forward(model, kp[:F]), _forward(model, kp[F - overlap:])
    tent = tent_weights(F)
    expected = np.concatenate([first[:F - overlap], np.zeros((overlap, 17, 3)), second[overlap:]])
    w1, w2 = tent[F - overlap:], tent[:overlap]
    expected[F - overlap:F] = (first[F - overlap:] * w1[:, None, None] + second[:overlap] * w2[:, None, None]) \
        / (w1 + w2)[:, None, None]
    np.testing.assert_allclose(lift_sequence(model, kp, overlap=overlap).poses, expected, atol=1e-5)


def test_seq2frame_slides_one_frame_at_a_time():
    model = _model("mixste", "seq2frame")
    kp = _keypoints(40)
    padded = np.pad(kp, ((F // 2, F // 2), (0, 0), (0, 0)), mode="edge")
    lifted = lift_sequence(model, kp, batch_size=16).poses
    for t in (0, 13, 39):
        np.testing.assert_allclose(lifted[t], _forward(model, padded[t:t + F])[0], atol=1e-5)


def test_pruned_model_and_flip_and_confidence_channel():
    model = _model("mixste", pruner="tpc", recoverer="tra", schedule="1:9")
    kp = np.concatenate([_keypoints(60), np.full((60, 17, 1), 0.9, np.float32)], axis=-1)
    plain = lift_sequence(model, kp).poses
    flipped = lift_sequence(model, kp, flip=True)
    assert flipped.stats.flip and flipped.poses.shape == (60, 17, 3)
    assert not np.allclose(plain, flipped.poses)


def test_bad_inputs_are_one_line_errors():
    model = _model()
    with pytest.raises(ShapeError, match="the model lifts 17 joints, the keypoints have 16"):
        lift_sequence(model, np.zeros((5, 16, 2), np.float32), source="a.npy")
    with pytest.raises(ShapeError, match="NaN"):
        lift_sequence(model, np.full((5, 17, 2), np.nan, np.float32))
    with pytest.raises(ShapeError, match=r"\(T, J, 2 or 3\)"):
        lift_sequence(model, np.zeros((0, 17, 2), np.float32))
    with pytest.raises(ConfigError, match="--overlap 27"):
        lift_sequence(model, _keypoints(5), overlap=F)
