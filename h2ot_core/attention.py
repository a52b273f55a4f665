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

#: fp32 training on a CPU takes the explicit kernel for up to this many keys (17 joints; 34 tokens in MHFormer's
#: hypothesis encoders), at any head width. See :func:`choose_kernel` for the measurements.
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
    - **CPU, float32, inference**: fused. Measured with ``python -m benchmarks.attention_kernels --threads 1
      --clock cpu`` (CPU time of one thread, robust on a shared machine) on a Xeon (Sapphire Rapids, AVX-512 +
      AMX), forward only, ~8k query tokens x 8 heads per call: the fused kernel took 0.17-1.02x the explicit
      one's time at every swept shape (8-64-wide heads, 17-243 keys), e.g. 16-wide heads over 17 keys 5.6
      against 6.0 ms, over 243 keys 17.0 against 78.4.
    - **CPU, float32, training** (forward + backward): explicit for few keys (at most
      :data:`CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS`), where the fused kernel's backward walks tiles too short to
      pay: explicit faster by 1.26-1.52x over 17 keys and 1.11-1.42x over 34 at 8-, 16-, 32-, 39- and 64-wide
      heads (8-wide, 17 keys: 1.40x, the fused kernel's "1.22x slower at 8-wide heads" of issue 18); the
      backbones' own 17-joint calls 1.28-1.38x. Fused from 81 keys on: explicit 0.63-0.86x at 8-39-wide heads
      over 81 keys (64-wide measured 1.13x once: left fused until more runs agree) and 0.26-0.71x over 243.
      On 2 threads at a 1-min load of 4-15 the wall-clock ratios swung 0.4-1.8x between runs at 17-34 keys
      (always below 0.9x from 243 keys on). ``benchmarks/results/attention_kernels.md`` has the tables.
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
        return Kernel.explicit if training and k.shape[-2] <= CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS else Kernel.fused
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
