"""Pose metrics against hand-computed values, and P-MPJPE's invariance to similarity transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from h2ot_core.metrics import (
    ActionAccumulator,
    aggregate_by_action,
    auc,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pck,
    procrustes_align,
)


def _rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture
def poses():
    gen = torch.Generator().manual_seed(0)
    target = 0.3 * torch.randn(5, 17, 3, generator=gen, dtype=torch.float64)
    pred = target + 0.02 * torch.randn(5, 17, 3, generator=gen, dtype=torch.float64)
    return pred, target, gen


def test_mpjpe_hand_computed():
    target = torch.zeros(1, 2, 3)
    pred = torch.tensor([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.0]]])  # a 3-4-5 mm triangle on joint 0
    assert mpjpe(pred, target).item() == pytest.approx(2.5)
    assert mpjpe(target + torch.tensor([0.01, 0.0, 0.0]), target).item() == pytest.approx(10.0)


def test_p_mpjpe_is_zero_for_a_similar_pose_and_invariant_to_similarity_transforms(poses):
    pred, target, gen = poses
    rot, scale, shift = _rotation(gen), 1.7, torch.tensor([0.5, -0.2, 3.0], dtype=torch.float64)
    assert p_mpjpe(scale * target @ rot + shift, target).max().item() < 1e-6
    base = p_mpjpe(pred, target)
    moved = p_mpjpe(0.6 * pred @ rot - shift, target)
    torch.testing.assert_close(moved, base, atol=1e-6, rtol=1e-6)
    assert (base <= mpjpe(pred, target) + 1e-9).all() and (base > 0).all()


def test_procrustes_refuses_reflections(poses):
    _, target, _ = poses
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    # A mirror image of a non-planar pose is not a rotation of it, so an error must remain.
    assert (p_mpjpe(mirrored, target) > 1.0).all()
    aligned = procrustes_align(mirrored, target)
    assert aligned.shape == target.shape


def test_p_mpjpe_is_vectorised_over_leading_axes(poses):
    pred, target, _ = poses
    batched = p_mpjpe(pred.reshape(1, 5, 17, 3), target.reshape(1, 5, 17, 3))
    assert batched.shape == (1, 5)
    torch.testing.assert_close(batched[0], torch.stack([p_mpjpe(p, t) for p, t in zip(pred, target, strict=True)]))


def test_n_mpjpe_ignores_scale_only():
    target = torch.tensor([[[0.1, 0.2, 0.3], [-0.2, 0.1, 0.0]]])
    assert n_mpjpe(2.5 * target, target).item() == pytest.approx(0.0, abs=1e-4)
    assert n_mpjpe(target + 0.05, target).item() > 1.0


def test_mpjve_hand_computed():
    target = torch.zeros(3, 1, 3)
    pred = torch.zeros(3, 1, 3)
    pred[1, 0, 0] = 0.01  # a 10 mm blip: velocity errors of 10 mm on both steps around it
    torch.testing.assert_close(mpjve(pred, target), torch.tensor([10.0, 10.0]))
    assert mpjve(target + 0.3, target).abs().max().item() == 0.0


def test_pck_and_auc_hand_cases():
    target = torch.zeros(1, 2, 3)
    pred = torch.tensor([[[0.1, 0.0, 0.0], [0.2, 0.0, 0.0]]])
    assert pck(pred, target).item() == pytest.approx(50.0)
    assert pck(pred, target, joints=[0]).item() == pytest.approx(100.0)
    one = torch.tensor([[[0.0725, 0.0, 0.0]]])
    # thresholds 75, 80, ..., 150 mm exceed 72.5 mm: 16 of the 31
    assert auc(one, torch.zeros(1, 1, 3)).item() == pytest.approx(100 * 16 / 31, rel=1e-5)
    assert auc(target, target).item() == pytest.approx(100 * 30 / 31, rel=1e-5)  # 0 mm is not < 0 mm


def test_actions_are_averaged_without_weights():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0])
    result = aggregate_by_action(values, torch.tensor([0, 0, 0, 1]), ["Walking", "Sitting"])
    assert result == {"Walking": 2.0, "Sitting": 10.0, "avg": 6.0}


def test_accumulator_sums_over_batches_and_skips_empty_actions():
    acc = ActionAccumulator(["A", "B", "C"])
    acc.add("mpjpe", torch.tensor([4.0, 6.0]), torch.tensor([0, 2]))
    acc.add("mpjpe", torch.tensor([8.0]), torch.tensor([0]))
    out = acc.result()["mpjpe"]
    assert out == {"A": 6.0, "C": 6.0, "avg": 6.0}
    assert "B" not in out
    assert all(math.isfinite(v) for v in out.values())


def test_metrics_accept_float32_and_match_numpy_reference(poses):
    pred, target, _ = poses
    ref = np.linalg.norm(pred.numpy() - target.numpy(), axis=-1).mean(axis=-1) * 1000
    np.testing.assert_allclose(mpjpe(pred.float(), target.float()).numpy(), ref, rtol=1e-5)
