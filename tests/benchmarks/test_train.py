"""``make bench-train`` times the same training objective on both sides: on tiny models with one random
official state_dict, the official step's first loss equals ours, and both sides then learn."""

from __future__ import annotations

import pytest
import torch

from benchmarks import official
from benchmarks.train import steps, timed_alternating
from h2ot_core.names import BACKBONE_INFO


@pytest.mark.parametrize("backbone", ["mixste", "motionbert", "motionagformer", "mhformer"])
def test_official_and_our_training_steps_start_from_the_same_loss(backbone):
    torch.manual_seed(0)
    size = {**BACKBONE_INFO[backbone].tiny, "num_heads": 8}  # the converters assume the official 8 heads
    fns = steps(backbone, 2, torch.device("cpu"), size=size, stochastic=False)
    hand_written = official.official_ref.bn
    first = {name: [float(fn()) for _ in range(2)] for name, fn in fns.items()}
    assert official.official_ref.bn is hand_written  # the training ops were swapped back
    if backbone != "mhformer":  # MHFormer's official loss covers all frames, ours the centre frame it outputs
        assert first["ours"][0] == pytest.approx(first["official"][0], rel=1e-4)
    for losses in first.values():  # "ours fused-only" goes on training the same model as "ours"
        assert losses[1] < losses[0]  # a real optimiser step ran


def test_timed_alternating_reverses_the_order_every_other_round():
    order: list[str] = []
    fns = {name: (lambda name=name: order.append(name) or torch.zeros(())) for name in ("a", "b", "c")}
    ms = timed_alternating(fns, 2)
    assert order == ["a", "b", "c", "a", "b", "c", "c", "b", "a"]
    assert set(ms) == {"a", "b", "c"}
