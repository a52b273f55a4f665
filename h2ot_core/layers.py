"""Shared transformer layers (timm's anatomy, written here to avoid a timm/torchvision dependency).

Attention goes through :func:`h2ot_core.attention.sdpa`, which picks torch's fused kernel or an explicit
softmax by the call's shape, dtype, device and whether it trains (a measured rule).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from h2ot_core.attention import sdpa


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval or ``p == 0``)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        # `training` first: at eval, p (which differs per block) is never read, so compiled blocks share a graph.
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Linear → GELU → Dropout → Linear → Dropout on the last axis."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0,
                 act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, out or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over the second-to-last axis with a fused ``qkv`` projection.

    Input ``[N, T, C]`` (``N`` independent sequences of ``T`` tokens), output ``[N, T, C]``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[N, T, C]`` → q, k, v each ``[N, H, T, C/H]`` (views of one projection, no copies)."""
        n, t = x.shape[:2]
        qkv = self.qkv(x).view(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv_heads(x)
        out = sdpa(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(n, t, c)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``; ``[N, T, C]``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def attention_received(q: Tensor, k: Tensor) -> Tensor:
    """Mean attention each key token receives: ``q, k [N, H, T, d]`` → ``[N, T]``.

    Materialises one ``T x T`` map per head; only used at pruning points (TPA), never per block.
    """
    attn = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
    return attn.mean(dim=(1, 2))
