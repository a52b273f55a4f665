"""MotionAGFormer backbone (``h2ot_core/models/motionagformer.py``): its frame batch norm on pruned lengths."""

from __future__ import annotations

import pytest
import torch

from h2ot_core.models.motionagformer import FrameBatchNorm


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_frame_norm_uses_and_updates_only_the_leading_frames() -> None:
    norm = FrameBatchNorm(10).train()
    x = torch.randn(4, 6, 8) * 3 + 2
    y = norm(x)
    expected = (x - x.mean(dim=(0, 2), keepdim=True)) / torch.sqrt(x.var(dim=(0, 2), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    assert not torch.equal(norm.running_mean[:6], torch.zeros(6))
    assert torch.equal(norm.running_mean[6:], torch.zeros(4))
    assert torch.equal(norm.running_var[6:], torch.ones(4))
    assert int(norm.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="11 nodes exceed the 10"):
        norm(torch.randn(2, 11, 3))
