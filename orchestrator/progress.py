"""A live campaign view on stderr (done / running / failed, best so far) in place of Ray's log stream."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.text import Text

from h2ot_core.contracts import metric_key
from orchestrator.trainable import RESULT_KEY

#: the flat key a campaign ranks by unless its grid says otherwise
TEST_MPJPE = metric_key("test", "mpjpe")


class CampaignProgress(Callback):
    """Tune callback drawing one status line; picklable (the live display is rebuilt after unpickling).

    Args:
        total: trials submitted to Tune.
        skipped: trials already complete in the leaderboard (not submitted).
        metric_key: the flat report key ranked by (``test_mpjpe``); ``mode`` is ``min`` or ``max``.
    """

    def __init__(self, total: int, *, skipped: int = 0, metric_key: str = TEST_MPJPE, mode: str = "min"):
        self.total, self.skipped = total, skipped
        self.metric_key, self.mode = metric_key, mode
        self.running: set[str] = set()
        self.done = self.failed = self.retried = 0
        self.best: float | None = None
        self._live: Live | None = None
        #: the launcher submits a long campaign in chunks: the line is closed after the last one
        self.more_to_come = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_live"] = None
        return state

    def _line(self) -> Text:
        pending = max(self.total - self.done - self.failed - len(self.running), 0)
        parts: list[str | tuple[str, str]] = [
            (f"{self.done + self.failed}/{self.total}", "bold"), " finished: ", (f"{self.done} done", "green"),
            f", {len(self.running)} running, ", (f"{self.failed} failed", "red" if self.failed else ""),
            f", {pending} pending",
        ]
        if self.retried:
            parts.append(f", {self.retried} retried")
        if self.skipped:
            parts.append(f", {self.skipped} reused")
        if self.best is not None:
            parts.append(f"; best {self.metric_key} {self.best:.2f}")
        return Text.assemble(*parts)

    def _refresh(self) -> None:
        if self._live is None:
            self._live = Live(self._line(), console=Console(stderr=True), transient=False,
                              auto_refresh=False)
            self._live.start()
        self._live.update(self._line(), refresh=True)

    def setup(self, **info: Any) -> None:
        self._refresh()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric_key)
        if RESULT_KEY in result and isinstance(value, int | float):
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            self.best = value if better else self.best
        self._refresh()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.retried += 1
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.done += 1
        self._refresh()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.more_to_come and all(t.status in ("TERMINATED", "ERROR") for t in trials):
            return  # a chunk of the campaign ended, not the campaign
        if self._live is not None:
            self._live.update(self._line(), refresh=True)
            self._live.stop()
            if not self._live.console.is_terminal:  # a terminal gets its newline from Live itself
                self._live.console.line()
            self._live = None
