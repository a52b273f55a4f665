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
    """
    t, d = features.shape[1:]
    # float64: the 1e-6 tie-breaking noise is below float32's resolution near density 1, which
    # would leave mutual nearest neighbours tied and both counted as centres.
    features = features.double()
    dist = torch.cdist(features, features) / d**0.5  # [N, T, T]
    k = min(k, t)
    knn = dist.topk(k, dim=-1, largest=False).values
    density = torch.exp(-(knn**2).mean(dim=-1))  # [N, T]
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
