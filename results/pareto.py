"""Pareto fronts and hypervolume of two objectives (e.g. GFLOPs and MPJPE, both minimised).

A point dominates another when it is no worse in both objectives and better in at least one. The
hypervolume is the area dominated by the front and bounded by a reference point (a point worse than every
point of interest: the larger it is, the more weight the extremes of the front get); a larger hypervolume
is a better front. Objectives to maximise are negated internally, so the caller states directions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_min(points: Sequence[Sequence[float]], minimize: Sequence[bool]) -> np.ndarray:
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    return p * np.where(np.asarray(minimize, dtype=bool), 1.0, -1.0)


def pareto_front(points: Sequence[Sequence[float]], minimize: Sequence[bool] = (True, True)) -> list[int]:
    """Indices of the non-dominated points, ordered by the first objective (ties: the second).

    Duplicates of a front point are all kept (none dominates the other). ``points`` is ``[N, 2]``.
    """
    p = _as_min(points, minimize)
    order = np.lexsort((p[:, 1], p[:, 0]))
    front: list[int] = []
    best_y = np.inf
    last: tuple[float, float] | None = None
    for i in order:
        x, y = p[i]
        if y < best_y or (last is not None and (x, y) == last):
            front.append(int(i))
            best_y, last = min(best_y, y), (x, y)
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float],
                minimize: Sequence[bool] = (True, True)) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` (points not better than it add nothing)."""
    p = _as_min(points, minimize)
    ref = _as_min([reference], minimize)[0]
    if p.size == 0:
        return 0.0
    p = p[(p[:, 0] < ref[0]) & (p[:, 1] < ref[1])]
    area, best_y = 0.0, ref[1]
    for x, y in p[np.lexsort((p[:, 1], p[:, 0]))]:  # ascending x, then y
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def reference_point(points: Sequence[Sequence[float]], minimize: Sequence[bool] = (True, True),
                    margin: float = 0.1) -> tuple[float, float]:
    """A default reference: the nadir of ``points`` pushed out by ``margin`` of each objective's range."""
    p = _as_min(points, minimize)
    worst, best = p.max(axis=0), p.min(axis=0)
    span = np.where(worst > best, worst - best, np.abs(worst) + 1.0)
    ref = (worst + margin * span) * np.where(np.asarray(minimize, dtype=bool), 1.0, -1.0)
    return float(ref[0]), float(ref[1])
