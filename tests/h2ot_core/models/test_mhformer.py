"""MHFormer backbone (``h2ot_core/models/mhformer.py``): seq2frame pruning keeps the centre, features of all hypotheses."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY, tiny_input

from h2ot_core.factory import create_model


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_mhformer_seq2frame_keeps_the_centre_frame_and_clusters_on_all_hypotheses() -> None:
    model = create_model("mhformer", "tpc", "none", "1:9", **TINY["mhformer"]).eval()
    out = model(tiny_input("mhformer"))
    assert (out.kept_index == 13).any(dim=1).all()
    tokens = model.backbone.embed(tiny_input("mhformer"))
    assert model.backbone.frame_features(tokens).shape == (2, 27, 3 * TINY["mhformer"]["dim"])
