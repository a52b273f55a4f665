"""Numbers as people read them: each metric rounded to the precision its protocol reports, not to a number of
significant figures (``591.2`` and ``591.4`` stay apart; ``3 s.f.`` printed both as ``591``).

Millimetre errors (MPJPE, P-MPJPE, ...) and percentages (PCK, AUC, changes) to 0.1, as the papers and the
protocols report them; speed-ups to 0.01x; latencies to 0.01 ms; GFLOPs and device-hours to three significant
figures without an exponent (a tiny model's ``0.0201``, a full one's ``1235``); device seconds and clips/s to
0.1, memory to whole MiB; counts as integers. Used by ``h2ot report``
and the terminal tables; JSON keeps every digit.
"""

from __future__ import annotations

import math
from typing import Any

from h2ot_core.contracts import METRICS, parse_metric_key

#: decimals per unit of :data:`h2ot_core.contracts.METRICS`; ``None``: significant figures
DECIMALS_BY_UNIT: dict[str, int | None] = {"mm": 1, "%": 1, "x": 2, "ms": 2, "GFLOPs": None, "h": None, "s": 1,
                                           "clips/s": 1, "MiB": 0}
#: significant figures of numbers without a fixed precision (GFLOPs, losses, unknown columns)
SIGNIFICANT = 3
#: the columns that are latencies, marked wherever shown when timed under CPU contention
LATENCY_VALUES = frozenset({"latency_ms", "speedup_latency"})
CONTENDED_MARK = "†"
CONTENDED_NOTE = (f"{CONTENDED_MARK} Latency timed while other trials shared the CPU (latency_contended): slower "
                  "and noisier than alone; `h2ot profile` times one configuration alone.")


def decimals(column: str) -> int | None:
    """Decimals ``column`` (a metric, cost or flat key such as ``test_mpjpe``) is shown with; ``None``: by
    significant figures."""
    parsed = parse_metric_key(column)
    bare = parsed[1] if parsed else column.removesuffix("_std").removesuffix("_ci_low").removesuffix("_ci_high")
    metric = METRICS.get(bare)
    return DECIMALS_BY_UNIT.get(metric.unit) if metric is not None else None


def significant(value: float, digits: int = SIGNIFICANT) -> str:
    """``value`` to ``digits`` significant figures in plain notation: ``0.0201``, ``1.17``, ``1235``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{places}f}"


def number_text(column: str, value: Any) -> str:
    """One value of ``column`` as text: protocol precision for floats, ``–``-free (empty for ``None``)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    places = decimals(column)
    return significant(value) if places is None else f"{value:.{places}f}"
