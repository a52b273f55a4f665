"""What a trial's usage measures on each device: GPU peak allocation and name (CUDA mocked), CPU peak RSS."""

from __future__ import annotations

import pytest
import torch

from h2ot_core.contracts import Usage
from h2ot_core.engine import usage


def test_cuda_usage_reads_the_gpus_peak_allocation_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(f"reset {d}"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 1024**3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(usage, "synchronize", lambda d: calls.append(f"sync {d}"))
    gpu = torch.device("cuda", 0)
    usage.reset_peak_memory(gpu)
    with usage.Stopwatch(gpu) as watch:
        pass
    assert calls == ["reset cuda:0", "sync cuda:0", "sync cuda:0"] and watch.seconds >= 0
    assert usage.peak_memory(gpu) == {"peak_memory_mb": 3072.0, "peak_memory_kind": usage.CUDA_PEAK}
    assert usage.device_name(gpu) == "NVIDIA H100 80GB HBM3"


def test_cpu_usage_is_the_processes_peak_rss() -> None:
    cpu = torch.device("cpu")
    found = usage.peak_memory(cpu)
    assert found["peak_memory_kind"] == usage.CPU_PEAK and found["peak_memory_mb"] > 10
    assert usage.device_name(cpu) == usage.cpu_name() != ""


def test_usage_from_history_sums_the_timed_epochs() -> None:
    history = [{"epoch": 1, "train_windows": 100}, {"epoch": 2, "device_seconds_train": 30.0,
                                                     "device_seconds_eval": 6.0, "train_windows": 300}]
    found = Usage.from_history(history, device_name="x")
    assert found == Usage(30.0, 6.0, 0.01, 10.0, device_name="x")
    assert Usage.from_history(history[:1]) is None
