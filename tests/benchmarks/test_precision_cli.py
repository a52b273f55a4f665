"""``python -m benchmarks.precision`` refuses an unknown section up front instead of running nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_unknown_section_is_a_usage_error_that_names_it(tmp_path):
    out = tmp_path / "precision.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.precision", "--sections", "gemm,infr", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--sections: unknown infr; known: gemm, infer, acc, train, modes" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
