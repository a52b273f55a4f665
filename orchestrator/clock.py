"""Time as the progress displays show it (``h2ot campaign run``, ``h2ot train``), free of Ray and torch.

A log (stderr not a terminal) gets a timestamped status line every ``$H2OT_PROGRESS_INTERVAL_S`` seconds
(default 30); durations read ``42s``, ``3m05s``, ``2h07m``.
"""

from __future__ import annotations

import math
import os
import time

from h2ot_core.errors import H2OTError

#: seconds between two status lines when stderr is not a terminal (a log); i19's settings table lists it
PROGRESS_INTERVAL_ENV = "H2OT_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 30.0


def interval_s() -> float:
    """``$H2OT_PROGRESS_INTERVAL_S`` (seconds between status lines in a log), default 30."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise H2OTError(f"{PROGRESS_INTERVAL_ENV}={raw!r}: expected a number of seconds > 0, e.g. 30")
    return value


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
