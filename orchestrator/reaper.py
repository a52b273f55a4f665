"""Ray processes a driver started are stopped with it, even when the driver is SIGKILLed.

A local Ray instance's processes (GCS, raylet, dashboard and runtime-env agents, workers) are the driver's
descendants; a driver that exits normally stops them (``ray.shutdown``), but one killed outright leaves the
agents orphaned for 10-60 s. :func:`watch` starts a small watcher process in a session of its own that waits
for the driver to end and then kills whatever of those processes is still there. Processes are named by pid
and start time (``/proc/<pid>/stat``), so a recycled pid is never touched. Linux only (``/proc``); elsewhere
it does nothing.

    python -m orchestrator.reaper DRIVER_PID:START PID:START ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")
#: seconds between two looks at the driver
POLL_S = 0.25


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, start time in clock ticks)`` of ``pid``; ``None`` when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """``(pid, start time)`` of every process below ``pid`` now."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append(int(entry.name))
                starts[int(entry.name)] = found[1]
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append((child, starts[child]))
        todo.extend(children.get(child, []))
    return out


def _alive(pid: int, start: int) -> bool:
    found = _stat(pid)
    return found is not None and found[1] == start


def watch() -> None:
    """Start the watcher for this process and its descendants now (call right after starting Ray)."""
    if not PROC.is_dir():
        return
    me = os.getpid()
    found = _stat(me)
    tree = descendants(me)
    if found is None or not tree:
        return
    args = [f"{me}:{found[1]}", *(f"{pid}:{start}" for pid, start in tree)]
    subprocess.Popen([sys.executable, "-m", "orchestrator.reaper", *args], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                     close_fds=True)


def main(argv: list[str]) -> None:
    (driver, driver_start), *tree = [tuple(map(int, a.split(":"))) for a in argv]
    while _alive(driver, driver_start):
        time.sleep(POLL_S)
    for pid, start in tree:
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1:])
