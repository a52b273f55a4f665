"""Shared transformer layers (timm's anatomy, written here to avoid a timm/torchvision dependency).

Attention goes through :func:`sdpa`: ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU), except
in bf16 on a CPU, where training and compiled inference run it as two batched bf16 GEMMs around a softmax
(torch's fused CPU kernel is slow in bf16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


#: Largest score tensor (``N·H·Tq·Tk`` elements) that :func:`sdpa` materialises for bf16 on a CPU: 64 Mi
#: elements, 128 MB in bf16 (MixSTE's temporal attention at batch 2 is 16 Mi). Larger ones, whose saved
#: probabilities would dominate training memory, go to the fused kernel in float32.
CPU_LOW_PRECISION_SCORES = 1 << 26


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """``softmax(q kᵀ / √d) v`` with the scores materialised: ``q [N, H, Tq, d]``, ``k, v [N, H, Tk, d]``."""
    probs = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    return (F.dropout(probs, dropout_p, training=True) if dropout_p else probs) @ v


def compiled_explicit_attention(q: Tensor, k: Tensor) -> bool:
    """Whether bf16 inference on a CPU materialises the scores: only under ``torch.compile`` (``--compile``),
    and only for up to 128 keys or 64-wide heads.

    Compiled, the scale and softmax fuse into one pass between two bf16 GEMMs, and that beat the fused kernel
    in bf16 (EPYC with AVX512-BF16, one attention call: MixSTE spatial 2.8 against 9.3 ms, 81 keys 0.9 against
    1.9, MHFormer 1.3 against 2.1; whole compiled models 1.06-1.17x faster). Over 243 keys with 16- or 32-wide
    heads (MotionAGFormer's and MotionBERT's temporal attention) the softmax dominates and the fused kernel
    won (8.7 against 16 ms). Eager, the scores' separate passes ate the gain (0.98-1.05x), so it stays fused.
    """
    return torch.compiler.is_compiling() and (k.shape[-2] <= 128 or q.shape[-1] >= 64)


def sdpa(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Attention of ``q [N, H, Tq, d]``, ``k, v [N, H, Tk, d]`` → ``[N, H, Tq, d]``.

    ``F.scaled_dot_product_attention`` (fused kernels) in float32 and on a GPU. In bf16 on a CPU torch's fused
    kernel multiplies small tiles one by one: its forward is no faster than float32's and its backward about
    9x slower. So there:

    - **with gradients** (training) the two matmuls run as whole batched bf16 GEMMs (float32 accumulation;
      the softmax reduces in float32 and rounds to bf16) up to :data:`CPU_LOW_PRECISION_SCORES` scores, and
      the fused kernel in float32 beyond (output cast back). On an AVX512-BF16 EPYC forward + backward took
      7.5 against 14 ms (MHFormer, 351 frames), 78 against 129 (MixSTE temporal, batch 2) and 29 against 65
      (spatial) with the fused kernel in float32, and whole bf16 training steps ran 1.05-1.31x faster;
    - **without** (inference) the fused bf16 kernel, except where :func:`compiled_explicit_attention` says.
    """
    if q.device.type != "cpu" or q.dtype == torch.float32:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if not q.requires_grad:
        if compiled_explicit_attention(q, k):
            return explicit_attention(q, k, v)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] <= CPU_LOW_PRECISION_SCORES:
        return explicit_attention(q, k, v, dropout_p)
    with torch.autocast("cpu", enabled=False):  # CPU autocast would cast the inputs back to bf16
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout_p)
    return out.to(q.dtype)


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
