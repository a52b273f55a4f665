"""Model cost: parameters, FLOPs in the papers' convention and in full, latency on a device and precision.

Conventions (those of the HoT/H2OT papers' cost columns, and of the official code that produced them):

- ``gflops`` — the papers' column: 2 × multiply-adds of ``nn.Linear`` and ``nn.Conv*`` layers for one
  clip at batch 1 (what thop counted on the official models), so attention matmuls are *not* included.
  Where a module of ours hoists input-independent work that the official module repeats (TRA projects
  its learnable queries once, HoT once per joint sequence), the module says so with
  ``hoisted_macs(*inputs)`` and the papers' column counts it, so it reproduces the published figures.
- ``gflops_total`` — what our implementation executes: every matmul, attention included, from
  ``torch.utils.flop_counter.FlopCounterMode`` with SDPA forced to its math kernel (the fused CPU
  kernel is not in the counter's registry). Hoisted work is not in it.
- ``latency_ms`` — median time of a forward pass of ``latency_batch`` clips on ``latency_device`` in a
  precision (CUDA events on a GPU), with ``latency_contended`` saying whether the CPU was shared.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from h2ot_core.contracts import Cost
from h2ot_core.device import (
    autocast,
    compile_blocks,
    cpu_contended,
    device_label,
    inference_model,
    synchronize,
)
from h2ot_core.models.base import backbone_of
from h2ot_core.recovering.attention import TRA


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
    bb = backbone_of(model)
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
        macs += cast(TRA, module).hoisted_macs(*inputs)

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
def measure_latency_ms(model: nn.Module, x: Tensor, *, repeats: int = 10, warmup: int = 2,
                       precision: str = "fp32") -> float:
    """Median milliseconds of a forward pass on ``x``'s device under ``precision``'s autocast (eval mode,
    after ``warmup`` passes).

    On the CPU each pass is timed with ``perf_counter``; on CUDA with a pair of CUDA events around it and
    one synchronisation after the last pass, so the figure is the GPU's time, not the launch time.
    """
    device = x.device
    was_training = model.training
    model.eval()
    try:
        with autocast(device, precision):
            for _ in range(warmup):
                model(x)
            if device.type == "cuda":
                synchronize(device)
                events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                          for _ in range(repeats)]
                for start, end in events:
                    start.record()
                    model(x)
                    end.record()
                synchronize(device)
                times = [start.elapsed_time(end) for start, end in events]
            else:
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def latency_fields(model: nn.Module, frames: int | None = None, *, batch: int = 1, repeats: int = 10,
                   precision: str = "fp32", contended: bool | None = None, compile: bool = False
                   ) -> dict[str, Any]:
    """The latency fields of :class:`Cost`: the median time of a forward pass of ``batch`` clips on the
    model's device in ``precision``, and how it was measured.

    The pass is timed on a copy prepared as inference runs it (:func:`h2ot_core.device.inference_model`:
    low-precision Linear/Conv weights under autocast), so ``model`` is left as it was. ``contended`` marks a
    CPU figure timed while other work shared the CPU (``None``: :func:`h2ot_core.device.cpu_contended`
    decides; always ``False`` on a GPU). ``compile`` times the copy with its blocks compiled
    (:func:`h2ot_core.device.compile_blocks`; the warm-up passes pay for compiling).
    """
    device = model_device(model)
    copied = precision != "fp32" or compile
    timed = inference_model(model, precision, copy_model=True) if copied else model
    if compile:
        compile_blocks(timed)
    ms = measure_latency_ms(timed, example_input(model, batch, frames).to(device), repeats=repeats,
                            precision=precision)
    if device.type == "cuda":
        contended = False
    elif contended is None:
        contended = cpu_contended(torch.get_num_threads())
    return {"latency_ms": ms, "latency_batch": batch, "latency_device": device_label(device),
            "latency_contended": contended}


def count_cost(model: nn.Module, frames: int | None = None, *, latency: bool = False, repeats: int = 10,
               batch: int = 1, precision: str = "fp32", contended: bool | None = None, compile: bool = False
               ) -> Cost:
    """Params and FLOPs for one clip at batch 1 (on the model's device; they do not depend on the
    precision), plus :func:`latency_fields` when ``latency`` is set."""
    device = model_device(model)
    gflops, total = count_flops(model, example_input(model, 1, frames).to(device))
    timing = latency_fields(model, frames, batch=batch, repeats=repeats, precision=precision,
                            contended=contended, compile=compile) if latency else {}
    return Cost(params=count_params(model), gflops=gflops, gflops_total=total,
                counter=f"linear+conv hooks; torch.utils.flop_counter (torch {torch.__version__})", **timing)
