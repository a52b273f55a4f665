"""DPC-kNN scores (``h2ot_core/pruning/dpc.py``): the density peaks of well-separated clusters, one per cluster."""

from __future__ import annotations

import torch

from h2ot_core.pruning.base import top_k_sorted
from h2ot_core.pruning.dpc import dpc_knn_scores


def test_dpc_picks_one_centre_per_cluster():
    # three tight, well-separated clusters of 5, 4 and 3 frames: the 3 density peaks are one per cluster
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    feats = centres[labels] + 0.05 * torch.randn(12, 2, generator=gen)
    scores = dpc_knn_scores(feats[None])
    chosen = top_k_sorted(scores, 3)[0]
    assert sorted(labels[chosen].tolist()) == [0, 1, 2]
