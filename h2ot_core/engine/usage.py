"""Measure what a trial costs to run: device seconds of training and evaluation, peak memory, device name.

Times are wall-clock seconds around the work with the device synchronised at both ends, so on a GPU they
are the GPU's busy time for that work plus the host's part of it (data copies, Python), which is what the
device was held for. Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU (reset when the trial
starts) and the process's peak resident set on a CPU (``resource.getrusage``: never reset, so a reused
worker process reports the highest peak of its trials); :attr:`h2ot_core.contracts.Usage.peak_memory_kind`
says which.
"""

from __future__ import annotations

import functools
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from h2ot_core.device import synchronize

CUDA_PEAK = "cuda_max_allocated"
CPU_PEAK = "cpu_peak_rss"
_MIB = 1024.0 * 1024.0


class Stopwatch:
    """Seconds of device work: ``with watch: ...`` synchronises ``device`` before and after, and adds the
    time in between to :attr:`seconds`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._t0


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows, else ``cpu``."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()[:128]
    return (platform.processor() or platform.machine() or "cpu")[:128]


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, the CPU's model name otherwise (at most 128 characters)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)[:128]
    return cpu_name()


def reset_peak_memory(device: torch.device) -> None:
    """Start a trial's peak-memory count (a GPU's; a process's peak resident set cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """``{"peak_memory_mb", "peak_memory_kind"}``: the GPU's peak allocation since the last reset, or the
    process's peak resident set on a CPU (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / _MIB, "peak_memory_kind": CUDA_PEAK}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return {"peak_memory_mb": rss * scale / _MIB, "peak_memory_kind": CPU_PEAK}
