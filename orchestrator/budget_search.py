"""The Tune searcher that starts a campaign's trials only while its device budget lasts (:mod:`orchestrator.budget`).

Tune asks a searcher for a trial only when it can start one, so checking the budget in :meth:`suggest` stops
*launching* without stopping the trials already running. Used only when the grid has ``budget.max_device_hours``;
other campaigns hand Tune their whole grid (``tune.grid_search``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ray.tune.search import Searcher

from h2ot_core.contracts import TrialSpec


class BudgetedTrials(Searcher):
    """Suggests ``specs`` in order, each as ``{"spec": TrialSpec.to_dict()}``, while ``spent()`` (device-hours)
    is below ``limit``; the specs it never suggested are :attr:`refused`."""

    def __init__(self, specs: Iterable[TrialSpec], spent: Callable[[], float], limit: float):
        super().__init__()
        self._queue = deque(specs)
        self._spent, self._limit = spent, limit
        self.refused: list[TrialSpec] = []

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its search algorithm into the experiment folder (for a restore this project never does);
        # the live measure of what was spent (a leaderboard engine) stays behind
        return {**self.__dict__, "_spent": None}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._queue and self._spent() >= self._limit:
            self.refused.extend(self._queue)
            self._queue.clear()
        if not self._queue:
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's sentinel, a str
        return {"spec": self._queue.popleft().to_dict()}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Nothing to learn: the order is the grid's."""
