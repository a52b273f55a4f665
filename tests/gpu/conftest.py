"""GPU tests: collected only where CUDA is present, so a CPU-only run neither runs nor skips them.

Every test here is marked ``gpu``; ``pytest -m gpu`` (``benchmarks/gpu.sh``) runs exactly them.
"""

from __future__ import annotations

import pytest


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.cuda.is_available()


if not _has_cuda():
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gpu/" in item.nodeid:
            item.add_marker(pytest.mark.gpu)
