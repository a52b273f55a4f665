"""Model cost: parameters, FLOPs in the papers' convention and in full, CPU latency.

Conventions (see ``reference/h2ot-method.md`` §9):

- ``gflops`` — the papers' column: 2 × multiply-adds of ``nn.Linear`` and ``nn.Conv*`` layers for one
  clip at batch 1 (what thop counted on the official models), so attention matmuls are *not* included.
  Where a module of ours hoists input-independent work that the official module repeats (TRA projects
  its learnable queries once, HoT once per joint sequence), the module says so with
  ``hoisted_macs(*inputs)`` and the papers' column counts it, so it reproduces the published figures.
- ``gflops_total`` — what our implementation executes: every matmul, attention included, from
  ``torch.utils.flop_counter.FlopCounterMode`` with SDPA forced to its math kernel (the fused CPU
  kernel is not in the counter's registry). Hoisted work is not in it.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from h2ot_core.contracts import Cost


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _linear_conv_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(module, nn.Linear):
        return inputs[0].numel() // module.in_features * module.in_features * module.out_features
    conv: nn.modules.conv._ConvNd = module  # type: ignore[assignment]
    per_output = conv.in_channels // conv.groups * math.prod(conv.kernel_size)
    return output.numel() * per_output


def example_input(model: nn.Module, batch: int = 1, frames: int | None = None) -> Tensor:
    """Random ``[batch, F, J, C_in]`` input matching the model's backbone."""
    bb = getattr(model, "backbone", model)
    return torch.randn(batch, frames or bb.num_frames, bb.num_joints, bb.in_chans)


@torch.no_grad()
def count_flops(model: nn.Module, x: Tensor) -> tuple[float, float]:
    """``(gflops, gflops_total)`` of one forward pass on ``x`` (divide by batch yourself)."""
    macs = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal macs
        macs += _linear_conv_macs(module, inputs, output)

    def hoisted(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        nonlocal macs
        macs += module.hoisted_macs(*inputs)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    handles += [m.register_forward_hook(hoisted) for m in model.modules() if hasattr(m, "hoisted_macs")]
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 2 * macs / 1e9, counter.get_total_flops() / 1e9


@torch.inference_mode()
def measure_latency_ms(model: nn.Module, x: Tensor, *, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall-clock milliseconds of a forward pass (eval mode, after ``warmup`` passes)."""
    was_training = model.training
    model.eval()
    try:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)


def count_cost(model: nn.Module, frames: int | None = None, *, latency: bool = False, repeats: int = 10) -> Cost:
    """Params and FLOPs for one clip at batch 1; batch-1 CPU latency when ``latency`` is set."""
    x = example_input(model, 1, frames)
    gflops, total = count_flops(model, x)
    ms = measure_latency_ms(model, x, repeats=repeats) if latency else None
    return Cost(params=count_params(model), gflops=gflops, gflops_total=total, latency_ms=ms,
                counter=f"linear+conv hooks; torch.utils.flop_counter (torch {torch.__version__})")
