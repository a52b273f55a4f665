"""Parity with the official recipe and protocol on small data made here, against hand-computed numbers:
clips and steps per epoch (official = 2x), the loss on a padded batch, P1/P2 under both protocols."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from h2ot_core.data.base import PoseSequence
from h2ot_core.data.windows import ClipWindows, flip_poses
from h2ot_core.engine.evaluate import evaluate
from h2ot_core.engine.losses import WeightedLoss
from h2ot_core.engine.train import train_one_epoch
from h2ot_core.factory import create_model
from h2ot_core.metrics import p_mpjpe

J = 17
LEFT, RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)
RNG = np.random.default_rng(0)
#: a fixed target pose P and a different predicted pose Q (metres), roots at 0
P = RNG.normal(0, 0.2, (J, 3)).astype(np.float32)
Q = (P + RNG.normal(0, 0.03, (J, 3))).astype(np.float32)
P[0] = Q[0] = 0.0


def _sequence(action: str, frames: int) -> PoseSequence:
    """Frame t: target ``s·P`` and 2D input ``s`` everywhere, with ``s = t + 1``."""
    s = np.arange(1, frames + 1, dtype=np.float32)[:, None, None]
    return PoseSequence("S9", action, 0, np.broadcast_to(s, (frames, J, 2)).copy(), s * P)


class ScaledQ(nn.Module):
    """Predicts ``s·Q`` at every frame whose 2D input reads ``s``: a model with a known error."""

    pipeline = "seq2seq"

    def __init__(self) -> None:
        super().__init__()
        self.backbone = SimpleNamespace(in_chans=2)
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, replay=None):
        return SimpleNamespace(pose3d=x[..., :1, :1] * torch.from_numpy(Q))


def _windows(*sequences: PoseSequence, frames: int = 9) -> ClipWindows:
    return ClipWindows(list(sequences), frames, stride=frames, joints_left=LEFT, joints_right=RIGHT)


def test_an_official_epoch_lists_every_clip_twice_once_mirrored():
    # 10 and 20 frames at F = stride = 9: 2 + 3 = 5 windows
    windows = _windows(_sequence("Walking", 10), _sequence("Eating", 20))
    assert len(windows) == 5
    model = create_model("mixste", "none", "none", "", num_frames=9, dim=8, depth=1, num_heads=1)
    seen: list[torch.Tensor] = []

    def loss(pred, target, mask):
        seen.extend(target.detach())
        return (pred - target).square().mean()

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ours = train_one_epoch(model, windows, loss, opt, batch_size=2, generator=torch.Generator().manual_seed(0),
                           flip=True, joints_left=LEFT, joints_right=RIGHT)
    assert (ours.windows, ours.steps) == (5, 3)
    seen.clear()
    official = train_one_epoch(model, windows, loss, opt, batch_size=2, generator=torch.Generator().manual_seed(0),
                               flip=True, joints_left=LEFT, joints_right=RIGHT, epoch_clips="mirrored_copies")
    assert (official.windows, official.steps) == (10, 5)
    _, y, _ = windows.get(np.arange(5))
    expected = [*y, *flip_poses(y, LEFT, RIGHT)]
    for clip in expected:  # each window exactly once as is and once mirrored
        assert sum(bool(torch.equal(clip, s)) for s in seen) == 1


def test_the_loss_on_a_padded_batch():
    # 6 frames in a 9-frame window: 1 edge frame before, 2 after, s = [1,1,2,3,4,5,6,6,6]; pred 0, target s·u
    u = np.zeros((J, 3), np.float32)
    u[1:, 0] = 1.0
    s = np.arange(1, 7, dtype=np.float32)[:, None, None]
    windows = _windows(PoseSequence("S1", "Walking", 0, np.zeros((6, J, 2), np.float32), s * u))
    mpjpe = WeightedLoss({"mpjpe": 1.0}, [1.0] * J)
    for padded, mean_s in ((False, 21 / 6), (True, 34 / 9)):
        _, y, mask = windows.get([0], padded=padded)
        assert mpjpe(torch.zeros_like(y), y, mask).item() == pytest.approx(mean_s * 16 / 17, rel=1e-6)


def test_p1_p2_official_averages_padded_frames_and_real_frames_masks_them():
    windows = _windows(_sequence("Walking", 6), _sequence("Eating", 4))
    d = float(np.linalg.norm(Q - P, axis=-1).mean()) * 1000  # P1 of one frame at s = 1, mm
    e = float(p_mpjpe(torch.from_numpy(Q), torch.from_numpy(P)))  # P2 of one frame at s = 1 (scale-equivariant)
    # mean s: Walking real 21/6, padded [1,1,2,3,4,5,6,6,6] 34/9; Eating real 10/4, padded [1,1,1,2,3,4,4,4,4] 24/9
    means = {"real_frames": (21 / 6, 10 / 4), "official": (34 / 9, 24 / 9)}
    for protocol, (walk, eat) in means.items():
        ev = evaluate(ScaledQ(), windows, batch_size=2, flip=False, joints_left=LEFT, joints_right=RIGHT,
                      protocol=protocol)
        assert ev.frames == (10 if protocol == "real_frames" else 18)
        assert ev.metrics["mpjpe"]["Walking"] == pytest.approx(walk * d, rel=1e-5)
        assert ev.metrics["mpjpe"]["avg"] == pytest.approx((walk + eat) / 2 * d, rel=1e-5)
        assert ev.metrics["p_mpjpe"]["Walking"] == pytest.approx(walk * e, rel=1e-4)
        assert ev.metrics["p_mpjpe"]["Eating"] == pytest.approx(eat * e, rel=1e-4)


def test_p2_is_per_clip_whatever_the_batch():
    # one batch spanning both actions gives each action its own P2 (the official code mixed them)
    windows = _windows(_sequence("Walking", 5), _sequence("Eating", 40))
    one = evaluate(ScaledQ(), windows, batch_size=1, flip=False, joints_left=LEFT, joints_right=RIGHT,
                   protocol="official")
    many = evaluate(ScaledQ(), windows, batch_size=8, flip=False, joints_left=LEFT, joints_right=RIGHT,
                    protocol="official")
    assert many.metrics["p_mpjpe"] == pytest.approx(one.metrics["p_mpjpe"], rel=1e-6)


def test_official_p1_equals_hots_clip_averaged_formula():
    # HoT's test: each clip's mean error over its F frames (padding included) and J joints, clips averaged
    # per action, actions averaged. With every clip F frames long that is our frame-weighted official mean.
    sequences = [_sequence(action, frames) for action, frames in
                 (("Walking", 13), ("Walking 1", 4), ("Eating", 22), ("Sitting", 9), ("Sitting 2", 17))]
    windows = _windows(*sequences)
    ours = evaluate(ScaledQ(), windows, batch_size=3, flip=False, joints_left=LEFT, joints_right=RIGHT,
                    protocol="official")
    per_action: dict[str, list[float]] = {}
    for i in range(len(windows)):
        x, y, _ = windows.get([i], padded=True)
        pred = ScaledQ()(x).pose3d
        clip = float((pred - y).norm(dim=-1).mean()) * 1000
        per_action.setdefault(windows.actions[windows.window_action[i]], []).append(clip)
    expected = {a: float(np.mean(v)) for a, v in per_action.items()}
    for action, value in expected.items():
        assert ours.metrics["mpjpe"][action] == pytest.approx(value, rel=1e-6)  # float32 sums
    assert ours.metrics["mpjpe"]["avg"] == pytest.approx(float(np.mean(list(expected.values()))), rel=1e-6)
