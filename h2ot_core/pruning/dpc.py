"""Density-peaks clustering scores (DPC-kNN), shared by TPC and the multi-granularity pruner.

Rodriguez & Laio (Science 2014) with the kNN density of Du et al.; used by TCFormer and HoT's TPC.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dpc_knn_scores(features: Tensor, k: int = 2) -> Tensor:
    """Density-peak score ``rho * delta`` of every token.

    Args:
        features: ``[N, T, D]`` token features (N independent sets of T tokens).
        k: neighbours for the local density; the token itself is one of them (distance 0), as in HoT.

    Returns:
        ``[N, T]`` scores; cluster centres are the top-scoring tokens.

    Precision-independent: autocast is off here and the features are taken in float32 (the Gram matmul)
    and float64 (the rest), so a bf16/fp16 run keeps the frames fp32 keeps for the same features.
    """
    with torch.autocast(features.device.type, enabled=False):
        return _dpc_knn_scores(features.float(), k)


def _dpc_knn_scores(features: Tensor, k: int) -> Tensor:
    t, d = features.shape[1:]
    # Squared distances from one Gram matmul in the features' own precision (torch.cdist spends
    # more time concatenating padded copies than multiplying); the O(T^2) rest in float64, where
    # the 1e-6 tie-breaking noise is many ulps wide near density 1, so mutual nearest neighbours
    # cannot stay tied and both count as centres.
    gram = features @ features.transpose(1, 2)  # [N, T, T]
    sq = gram.diagonal(dim1=1, dim2=2)  # [N, T]; using the Gram diagonal makes dist(i, i) exactly 0
    dist2 = ((sq[:, :, None] + sq[:, None, :] - 2 * gram).clamp_min(0) / d).double()  # [N, T, T], / D as HoT
    k = min(k, t)
    knn2 = dist2.topk(k, dim=-1, largest=False).values
    density = torch.exp(-knn2.mean(dim=-1))  # [N, T]
    dist = dist2.sqrt()
    # HoT breaks density ties with 1e-6 uniform noise. We draw it once per token *position* from a
    # fixed seed and share it across the batch, so a clip's kept frames do not depend on which
    # other clips share its batch (batched and one-by-one inference agree) and runs are repeatable.
    noise = torch.rand(t, generator=torch.Generator(device="cpu").manual_seed(0), dtype=density.dtype)
    density = density + 1e-6 * noise.to(density.device)
    # delta_i: distance to the nearest denser token; the densest token takes the largest distance.
    denser = density[:, None, :] > density[:, :, None]  # [N, T(i), T(j)]: rho_j > rho_i
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    delta = torch.where(denser, dist, dist_max).min(dim=-1).values
    return (density * delta).float()
