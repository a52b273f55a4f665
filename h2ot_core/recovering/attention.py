"""TRA — Token Recovering Attention (HoT, CVPR 2024).

``F`` learnable queries (zero-initialised) cross-attend to the ``f`` kept tokens of each joint:
``Y = Q0 + proj(softmax(Q0 Wq (X Wk)^T / sqrt(d)) X Wv)``; no FFN, no extra norm.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from h2ot_core.attention import sdpa
from h2ot_core.recovering.base import TokenRecoverer


class TRA(TokenRecoverer):
    stage: ClassVar[str] = "tokens"

    def __init__(self, num_frames: int, dim: int, num_heads: int = 8, qkv_bias: bool = True, **_: object):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"TRA: dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.queries = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, kept_index: Tensor, num_frames: int) -> Tensor:
        """``x [B, f, J, C]`` → ``[B, F, J, C]``; attention runs per joint sequence (batch ``B*J``)."""
        b, f, j, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        seq = x.transpose(1, 2).reshape(b * j, f, c)
        # The queries do not depend on the input: project them once, broadcast over B*J.
        q = self.linear_q(self.queries).view(1, num_frames, h, d).transpose(1, 2).expand(b * j, h, num_frames, d)
        k = self.linear_k(seq).view(b * j, f, h, d).transpose(1, 2)
        v = self.linear_v(seq).view(b * j, f, h, d).transpose(1, 2)
        out = sdpa(q, k, v)  # [B*J, H, F, d]
        out = self.proj(out.transpose(1, 2).reshape(b * j, num_frames, c)) + self.queries
        return out.view(b, j, num_frames, c).transpose(1, 2)

    def hoisted_macs(self, x: Tensor, kept_index: Tensor, num_frames: int) -> int:
        """Multiply-adds of ``linear_q`` that HoT's TRA spends and this one does not.

        HoT projects the expanded queries once per joint sequence (``B*J`` times); we project them once.
        The papers' ``gflops`` column counts HoT's way (see :func:`h2ot_core.cost.count_flops`).
        """
        b, _, j, _ = x.shape
        return (b * j - 1) * num_frames * self.linear_q.in_features * self.linear_q.out_features
