"""Devices and numeric precision: one place that resolves ``--device``/``train.precision`` and runs them.

- :func:`resolve_device` turns ``auto | cpu | cuda | cuda:N`` into a ``torch.device``. ``auto`` is the
  accelerator this process was given: CUDA device 0 of what it can see (in a Ray trial Ray sets
  ``CUDA_VISIBLE_DEVICES`` to the GPU it assigned, so that is the assigned one), else the CPU.
- :func:`check_precision` / :func:`check_precision_on` refuse an unknown precision, ``fp16`` on a CPU,
  ``bf16`` on a GPU without bf16 and ``bf16`` on a CPU without bf16 matrix kernels (:func:`cpu_bf16_kernels`;
  ``H2OT_ALLOW_SLOW_BF16=1`` runs it anyway) — one line with the fix, before anything is built.
- :func:`autocast` is the mixed-precision context of a precision (``fp32``: none);
  :func:`grad_scaler` the loss scaler (enabled for ``fp16`` only).
- :func:`inference_model` prepares a model for fast low-precision inference: the weights of its Linear
  and Conv layers are stored in the precision's dtype, so autocast does not re-cast them on every call
  (on a CPU with AVX512-BF16 that is what makes bf16 pay), while norms, softmax statistics and the
  DPC-kNN clustering stay in float32/float64 (the GEMMs accumulate in float32).
- :func:`compile_blocks` (``--compile``) hands the backbone's blocks to ``torch.compile``, leaving the
  hourglass glue (pruning, gathering, recovery) eager: each block class is compiled once per token count.
- :func:`to_device` copies a host batch with pinned memory and ``non_blocking`` on CUDA.
- :func:`cpu_contended` says whether a CPU latency figure is measured under contention.

Torch is imported lazily by the functions that need it, except for type names.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

from h2ot_core.environment import ALLOW_SLOW_BF16
from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

ModelT = TypeVar("ModelT", bound="nn.Module")

#: the precisions a trial, ``predict``, ``evaluate`` and ``profile`` accept
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
#: what ``--device`` accepts (plus ``cuda:N``)
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: set to 1 to run bf16 on a CPU without bf16 matrix kernels (to check numerics; it is slow)
ALLOW_SLOW_BF16_ENV = ALLOW_SLOW_BF16.name


def dtype_of(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[check_precision(precision)]


def check_precision(precision: str, source: str = "--precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a :class:`ConfigError` with a did-you-mean."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{source}: {unknown_message('precision', precision, list(PRECISIONS))}")
    return precision


def _cuda_missing(spec: str) -> ConfigError:
    import torch

    why = ("this torch build has no CUDA support (torch " + torch.__version__ + ")" if torch.version.cuda is None
           else "no CUDA device is visible (CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
           + ")")
    return ConfigError(f"--device {spec}: {why}; use --device cpu (or auto), or run on a GPU node with the CUDA "
                       f"build of torch {torch.__version__.split('+')[0]}")


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` (or ``None``), ``cpu``, ``cuda`` or ``cuda:N`` → a usable ``torch.device``.

    Raises :class:`ConfigError` for an unknown spec, CUDA asked for where there is none, or an index
    beyond the visible devices.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    kind, sep, index = spec.partition(":")
    if kind != "cuda" or (sep and not index.isdigit()):
        raise ConfigError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N (N a device index)")
    if not torch.cuda.is_available():
        raise _cuda_missing(spec)
    n = int(index) if sep else 0
    count = torch.cuda.device_count()
    if n >= count:
        raise ConfigError(f"--device {spec}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", n)


def cpu_bf16_kernels() -> bool:
    """Whether this CPU has oneDNN's bf16 matrix kernels (x86 with AVX-512 or AMX, Arm with BF16).

    Without them torch multiplies bf16 matrices in scalar loops: on an AVX2-only AMD EPYC a 1024x1024 matmul
    ran at 0.9 GFLOP/s in bf16 against 72 in fp32, and a demo-size MixSTE training step 6x slower. With
    AVX512-BF16 or AMX, bf16 is the fast path (2.3x fp32's GEMM rate on an AVX512-BF16 EPYC, 6x on an AMX
    Xeon).
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else torch.cpu._is_avx512_supported()


def cpu_bf16_refusal(source: str) -> ConfigError | None:
    """The error for bf16 on this CPU, or ``None`` when it has bf16 kernels (or ``H2OT_ALLOW_SLOW_BF16=1``)."""
    import torch

    if ALLOW_SLOW_BF16.raw() == "1" or cpu_bf16_kernels():
        return None
    isa = torch.backends.cpu.get_cpu_capability()
    return ConfigError(f"{source}: bf16 on this CPU ({isa}, no AVX-512/AMX bf16 kernels) multiplies matrices "
                       f"about 80x slower than fp32; use fp32 here, or a CPU with AVX-512/AMX, or a GPU "
                       f"({ALLOW_SLOW_BF16_ENV}=1 runs it anyway)")


def check_precision_on(device: torch.device, precision: str, source: str = "--precision") -> str:
    """``precision`` if ``device`` can run it: fp16 needs CUDA; bf16 needs a GPU with bf16, or a CPU with bf16
    matrix kernels (:func:`cpu_bf16_refusal`)."""
    import torch

    check_precision(precision, source)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"{source}: fp16 needs a CUDA device, this runs on the {device.type}; use fp32 (or "
                          f"bf16 on a CPU with AVX-512/AMX), or --device cuda on a GPU node")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{source}: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")
    if precision == "bf16" and device.type == "cpu" and (refusal := cpu_bf16_refusal(source)) is not None:
        raise refusal
    return precision


def device_label(device: torch.device) -> str:
    """What the leaderboard records as ``latency_device``: ``cpu`` or ``cuda:<GPU name>`` (≤ 64 chars)."""
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"[:64]
    return device.type


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """Autocast to ``precision`` on ``device`` (a no-op context for fp32)."""
    import torch

    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype_of(precision))


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The loss scaler of a training run: active for fp16 (on CUDA), a pass-through otherwise."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """Copy a host tensor to ``device``; on CUDA through pinned memory without blocking the host."""
    if device.type != "cuda" or t.device == device:
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_model(model: ModelT, precision: str, *, copy_model: bool = False) -> ModelT:
    """``model`` in eval mode, with the weights of its Linear and Conv layers in ``precision``'s dtype.

    Run it under :func:`autocast`: matmuls then take the low-precision weights as they are and accumulate in
    float32, and everything autocast keeps in float32 (norm statistics, reductions) stays there. Norm
    weights, buffers and the clustering are untouched. ``copy_model`` leaves ``model`` itself as it was.
    """
    from torch import nn

    if copy_model:
        model = copy.deepcopy(model)
    model.eval()
    if check_precision(precision) == "fp32":
        return model
    dtype = dtype_of(precision)
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            module.to(dtype)
    return model


def check_compile(source: str = "--compile") -> None:
    """``torch.compile`` on a CPU generates C++: refuse up front (one line, exit 2) without a compiler."""
    import shutil

    if not any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        raise ConfigError(f"{source}: torch.compile needs a C++ compiler (g++ or clang++) on PATH; "
                          "install one or run without --compile")


def compile_blocks(model: nn.Module) -> int:
    """``torch.compile`` each block of the backbone in place; returns how many were handed over.

    The blocks are the backbone's ``compile_units()``: the children of its top-level ``ModuleList``s
    (MixSTE's spatial and temporal blocks, MotionAGFormer's layers, ...) plus any block it adds (MHFormer's
    CHI). The hourglass around them stays eager: the pruner's data-dependent
    selection would break a whole-model graph, and the block index would force one graph per block, while
    per-block compilation gives one graph per block class and token count (parameters are graph inputs).
    Compiling is lazy: the first forward pass pays for it (tens of seconds on two CPU cores).
    """
    import torch

    # One graph per block class, input layout (spatial/temporal), token count and batch: an H2OT schedule
    # needs more than dynamo's default of 8 before it would fall back to eager.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    from h2ot_core.models.base import backbone_of

    bb = backbone_of(model)
    blocks = bb.compile_units()
    for block in blocks:
        block.compile(dynamic=False)
    return len(blocks)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def cpu_contended(threads: int) -> bool:
    """Whether a CPU timing on ``threads`` threads is measured under contention.

    True when the process uses fewer threads than the node has CPUs — Ray packs trials by their CPU
    request, so the rest of the node runs other trials — or when the 1-minute load average exceeds the
    node's CPUs (something else is running, as on a shared machine). A figure marked so is a time under
    load, comparable only with other figures marked so.
    """
    cpus = usable_cpus()
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        load = 0.0
    return threads < cpus or load > cpus + 0.5


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (``None``: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
