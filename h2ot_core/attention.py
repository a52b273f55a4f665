"""Which attention kernel runs: torch's fused ``scaled_dot_product_attention`` or an explicit ``softmax(q kᵀ/√d) v``.

Every backbone, pruner-free block and recoverer attends through :func:`sdpa`. It asks :func:`choose_kernel`,
which decides from the call's shape (head width, number of keys), dtype, device and whether gradients flow
(training) — a rule measured with ``python -m benchmarks.attention_kernels`` and quoted where it is encoded.
Both kernels compute the same function: outputs and gradients agree to float rounding
(tests/h2ot_core/test_attention_kernels.py).
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import Tensor


class Kernel(StrEnum):
    """An attention implementation :func:`sdpa` can run."""

    fused = "fused"  # F.scaled_dot_product_attention in the inputs' dtype
    explicit = "explicit"  # the scores materialised: two batched GEMMs around a softmax
    fused_fp32 = "fused_fp32"  # the fused kernel in float32, output cast back (large bf16 training calls on a CPU)


#: Largest score tensor (``N·H·Tq·Tk`` elements) that :func:`sdpa` materialises for bf16 training on a CPU:
#: 64 Mi elements, 128 MB in bf16 (MixSTE's temporal attention at batch 2 is 16 Mi). Larger ones, whose saved
#: probabilities would dominate training memory, go to the fused kernel in float32.
CPU_LOW_PRECISION_SCORES = 1 << 26

#: fp32 training on a CPU: head widths at or under which the explicit kernel's forward + backward beats the fused
#: one, and the most keys it does so for. See :func:`choose_kernel` for the measurements.
CPU_FP32_TRAIN_EXPLICIT_MAX_WIDTH = 16
CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS = 34


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


def choose_kernel(q: Tensor, k: Tensor) -> Kernel:
    """The kernel for ``q [N, H, Tq, d]`` against ``k [N, H, Tk, d]``, from ``d``, ``Tk``, dtype, device and
    whether ``q`` needs gradients.

    - **GPU**: fused (flash / memory-efficient kernels never write the ``Tq x Tk`` scores).
    - **CPU, float32, inference**: fused. On 2 threads of a Xeon (Sapphire Rapids, AVX-512), forward only, per
      call at ~8k query tokens x 8 heads, fused against explicit: 16-wide heads 17 keys 2.5 against 2.3 ms,
      81 keys 4.1 against 4.9, 243 keys 9.0 against 45; 64-wide 17 keys 26 against 65, 243 keys 150 against 267.
    - **CPU, float32, training**: explicit only for narrow heads over few keys (up to
      :data:`CPU_FP32_TRAIN_EXPLICIT_MAX_WIDTH` wide, :data:`CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS` keys), where the
      fused kernel's backward walks tiles too small to pay: forward + backward, 16-wide heads over 17 keys 9.8
      against 6.6 ms (explicit 1.49x faster), 34 keys 11.0 against 10.3. Beyond, the fused kernel wins: 16-wide
      81 keys 15.5 against 20.0, 243 keys 32 against 111; 32-wide 17 keys 18.6 against 26.6; 64-wide 17 keys 204
      against 229. (``benchmarks/results/attention_kernels.md`` has the full table.)
    - **CPU, bf16**: with gradients the two matmuls run as whole batched bf16 GEMMs (float32 accumulation; the
      softmax reduces in float32 and rounds to bf16) up to :data:`CPU_LOW_PRECISION_SCORES` scores, and the
      fused kernel in float32 beyond: torch's fused CPU kernel multiplies small bf16 tiles one by one, its
      forward no faster than float32's and its backward about 9x slower. On an AVX512-BF16 EPYC forward +
      backward took 7.5 against 14 ms (MHFormer, 351 frames), 78 against 129 (MixSTE temporal, batch 2) and 29
      against 65 (spatial) with the fused kernel in float32; whole bf16 training steps ran 1.05-1.31x faster.
      Without gradients: fused in bf16, except where :func:`compiled_explicit_attention` says.
    """
    if q.device.type != "cpu":
        return Kernel.fused
    training = q.requires_grad and torch.is_grad_enabled()
    if q.dtype == torch.float32:
        narrow = q.shape[-1] <= CPU_FP32_TRAIN_EXPLICIT_MAX_WIDTH and k.shape[-2] <= CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS
        return Kernel.explicit if training and narrow else Kernel.fused
    if not training:
        return Kernel.explicit if compiled_explicit_attention(q, k) else Kernel.fused
    if q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] <= CPU_LOW_PRECISION_SCORES:
        return Kernel.explicit
    return Kernel.fused_fp32


def _fused_fp32(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    with torch.autocast("cpu", enabled=False):  # CPU autocast would cast the inputs back to bf16
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout_p)
    return out.to(q.dtype)


def fused_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """``F.scaled_dot_product_attention`` (looked up at each call, so a test's spy on it sees every call)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


#: each kernel's function ``(q, k, v, dropout_p) -> out``
KERNELS = {Kernel.fused: fused_attention, Kernel.explicit: explicit_attention, Kernel.fused_fp32: _fused_fp32}


def sdpa(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Attention of ``q [N, H, Tq, d]``, ``k, v [N, H, Tk, d]`` → ``[N, H, Tq, d]`` by :func:`choose_kernel`."""
    return KERNELS[choose_kernel(q, k)](q, k, v, dropout_p)
