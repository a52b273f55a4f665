"""Ray processes a driver started end with it, even when the driver is SIGKILLed (orchestrator.reaper)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.reaper import _alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
DRIVER = """
import time
from orchestrator.cluster import LaunchOptions, ray_session
with ray_session(LaunchOptions(num_cpus=1)):
    print("up", flush=True)
    time.sleep(600)
"""


def test_a_killed_drivers_ray_processes_are_stopped():
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    tree = descendants(proc.pid)
    assert len(tree) >= 3  # GCS, raylet, agents (and any idle worker)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30  # without the watcher the agents outlive the driver by about a minute
    while time.monotonic() < deadline and any(_alive(*p) for p in tree):
        time.sleep(0.25)
    left = [p for p in tree if _alive(*p)]
    for pid, _ in left:  # the test's own leftovers, should it fail
        os.kill(pid, signal.SIGKILL)
    assert left == []
