"""Time as the progress displays show it (``h2ot campaign run``, ``h2ot train``), free of Ray and torch.

A log (stderr not a terminal) gets a timestamped status line every ``$H2OT_PROGRESS_INTERVAL_S`` seconds
(default 30); durations read ``42s``, ``3m05s``, ``2h07m``.
"""

from __future__ import annotations

import time

from h2ot_core.environment import PROGRESS_INTERVAL_S

#: seconds between two status lines when stderr is not a terminal (a log)
PROGRESS_INTERVAL_ENV = PROGRESS_INTERVAL_S.name
DEFAULT_INTERVAL_S = float(str(PROGRESS_INTERVAL_S.default_value()))
#: the shortest interval accepted (a status line a millisecond is a log flood, not progress)
MIN_INTERVAL_S = 0.001


def interval_s() -> float:
    """``$H2OT_PROGRESS_INTERVAL_S`` (seconds between status lines in a log), default 30."""
    return PROGRESS_INTERVAL_S.number(minimum=MIN_INTERVAL_S, what="a number of seconds")


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for a status line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def timestamp(wall: float) -> str:
    """Local time as a log line starts: ``2025-06-01 14:03:07``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def eta(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left at the pace so far (``done`` of ``total`` units in ``elapsed`` s); ``None`` before any."""
    if done <= 0:
        return None
    return max(total - done, 0.0) * elapsed / done


def eta_text(seconds: float | None) -> str:
    return "?" if seconds is None else duration(seconds)
