"""Clip windows: coverage, edge padding, masks, flips, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from h2ot_core.data.base import PoseSequence
from h2ot_core.data.windows import ClipWindows, flip_poses
from h2ot_core.errors import DataError

LEFT, RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)


def _sequences(lengths: list[int], valid_last: bool = False) -> list[PoseSequence]:
    """Sequences whose every value encodes (sequence, frame), so gathered windows can be decoded."""
    out = []
    for i, n in enumerate(lengths):
        frame = np.arange(n, dtype=np.float32)[:, None, None]
        pose2d = np.broadcast_to(frame + 1000 * i, (n, 17, 2)).copy()
        pose3d = np.broadcast_to(frame + 1000 * i, (n, 17, 3)).copy()
        valid = np.arange(n) % 3 != 0 if valid_last and i == len(lengths) - 1 else None
        out.append(PoseSequence("S1", ["Walking 1", "Eating", "Walking"][i % 3], 0, pose2d, pose3d, valid))
    return out


@pytest.mark.parametrize("frames", [1, 4, 9, 27])
def test_seq2seq_test_stride_covers_every_frame_once(frames: int) -> None:
    seqs = _sequences([5, 27, 31, 60])
    win = ClipWindows(seqs, frames, stride=frames)
    x, y, mask = win.get(np.arange(len(win)))
    assert x.shape == (len(win), frames, 17, 2) and y.shape == (len(win), frames, 17, 3) and mask.dtype == torch.bool
    real = y[..., 0, 0][mask].numpy()
    expected = np.concatenate([np.arange(n) + 1000 * i for i, n in enumerate([5, 27, 31, 60])])
    np.testing.assert_array_equal(np.sort(real), np.sort(expected))  # each real frame exactly once
    assert win.actions == ["Eating", "Walking"]  # grouped as the H36M protocol groups actions


def test_edge_padding_replicates_the_ends_and_is_masked() -> None:
    win = ClipWindows(_sequences([5]), 9, stride=9)
    x, _, mask = win.get([0])
    values = x[0, :, 0, 0].tolist()
    assert values == [0, 0, 0, 1, 2, 3, 4, 4, 4]  # centred, edge-replicated
    assert mask[0].tolist() == [False, False, True, True, True, True, True, False, False]


def test_training_stride_overlaps_and_valid_mask_counts() -> None:
    win = ClipWindows(_sequences([40, 30], valid_last=True), 10, stride=4)
    assert len(win) == 9 + 6
    _, y, mask = win.get(np.arange(len(win)))
    frames = y[..., 0, 0]
    second = frames >= 1000
    assert not bool(mask[second & (frames % 3 == 1000 % 3)].any())  # invalid frames never count
    assert set(frames[~second & mask].tolist()) == set(range(40))  # every real frame is seen
    assert int((~mask[~second]).sum()) == 2  # 8 * 4 + 10 = 42 = 40 frames + one padded frame per end


def test_seq2frame_centres_every_frame() -> None:
    seqs = _sequences([3, 8])
    win = ClipWindows(seqs, 7, stride=1, pipeline="seq2frame")
    assert len(win) == 11
    x, y, mask = win.get(np.arange(len(win)))
    centre = y[:, 3, 0, 0].numpy()
    np.testing.assert_array_equal(centre, np.r_[np.arange(3), 1000 + np.arange(8)])
    assert mask[:, 3].all() and mask.sum() == len(win)
    assert x[0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 2, 2]  # padding for the first frame of a 3-frame sequence


def test_flip_twice_is_identity_and_mirrors() -> None:
    x = torch.randn(2, 5, 17, 3)
    once = flip_poses(x, LEFT, RIGHT)
    assert torch.equal(flip_poses(once, LEFT, RIGHT), x)
    assert torch.equal(once[..., 1, 0], -x[..., 4, 0]) and torch.equal(once[..., 0, 1], x[..., 0, 1])
    win = ClipWindows(_sequences([12]), 4, stride=4)
    plain, flipped = win.get([1]), win.get([1], flip=True)
    assert torch.equal(flipped[0], flip_poses(plain[0], LEFT, RIGHT)) and torch.equal(flipped[2], plain[2])


def test_batches_shuffle_deterministically_and_cover_all() -> None:
    win = ClipWindows(_sequences([50, 20]), 5, stride=5)
    runs = [[idx for *_, idx in win.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1))]
            for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    order = torch.cat(runs[0])
    assert sorted(order.tolist()) == list(range(len(win))) and order.tolist() != list(range(len(win)))
    x, y, mask, idx = next(win.batches(4, shuffle=False, flip=True, generator=torch.Generator().manual_seed(0)))
    assert idx.dtype == torch.long and x.shape[0] == 4
    px, py, pmask = win.get(idx)
    mirrored = flip_poses(px, LEFT, RIGHT)
    for i in range(4):  # each window is either as stored or mirrored, in 2D and 3D alike
        same = torch.equal(x[i], px[i]) and torch.equal(y[i], py[i])
        flipped = torch.equal(x[i], mirrored[i]) and torch.equal(y[i], flip_poses(py[i], LEFT, RIGHT))
        assert same != flipped
    assert torch.equal(mask, pmask)
    assert np.array_equal(win.window_action[idx.numpy()], win.window_action[:4])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"frames": 0, "stride": 1}, "frames must be >= 1"),
    ({"frames": 9, "stride": 0}, "stride must be >= 1"),
])
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ClipWindows(_sequences([10]), **kwargs)


def test_empty_sequence_is_rejected() -> None:
    empty = PoseSequence("S9", "Walking", 2, np.zeros((0, 17, 2), np.float32), np.zeros((0, 17, 3), np.float32))
    with pytest.raises(DataError, match="S9/Walking/camera 2 has no frames"):
        ClipWindows([*_sequences([10]), empty], 9, stride=9)
