"""Campaign progress on stderr, readable both in a terminal and in a log.

In a terminal (stderr is a tty) a live view is redrawn in place: a totals line (finished / running / failed
/ pending, elapsed time, ETA, best metric so far) and one line per running trial (its epoch, last training
loss and elapsed time). Anywhere else (nohup, Slurm, ``ray job logs``, a pipe) nothing is redrawn: one
timestamped line per trial start and finish, and a timestamped status line every
``$H2OT_PROGRESS_INTERVAL_S`` seconds (default 30; :mod:`orchestrator.clock`), so a log shows a long campaign's state while it runs.

The counts live in a :class:`CampaignCounter`, which a caller may share between several Tune runs: a search
trains one batch after another (one ``train_specs`` call, one :class:`CampaignProgress`, per batch), and its
counts, clock and display then carry over from batch to batch instead of restarting at ``0/n``::

    with CampaignCounter(campaign="my_search") as counter:   # the display closes when the block ends
        for batch in batches:
            ... CampaignProgress(len(todo), skipped=len(kept), counter=counter) ...

The ETA counts a running trial's finished epochs as that fraction of a trial: ``remaining trials x time per
trial so far``, with the time per trial measured over the trials finished and the epochs done.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from h2ot_core.contracts import TrialSpec, TrialStatus, metric_key
from h2ot_core.errors import H2OTError
from orchestrator import interrupt
from orchestrator.clock import DEFAULT_INTERVAL_S, duration, eta, eta_text, interval_s, timestamp
from orchestrator.trainable import RESULT_KEY, trial_spec

#: most seconds between two redraws of the terminal view (events redraw it at once)
REDRAW_S = 1.0
#: running trials listed in the terminal view (the rest are counted on one line)
MAX_TRIAL_LINES = 20
_TRAIN_LOSS = metric_key("train", "loss")
#: the flat key a campaign ranks by unless its grid says otherwise
TEST_MPJPE = metric_key("test", "mpjpe")


@dataclass
class RunningTrial:
    """A trial Tune started and has not finished: what its line shows."""

    key: str
    label: str
    started: float  # monotonic seconds
    epochs: int | None  # the trial's epochs (its recipe), None when unknown
    epoch: int = 0
    loss: float | None = None

    @property
    def fraction(self) -> float:
        """Share of the trial done (finished epochs over its epochs; 0 when unknown)."""
        return min(self.epoch / self.epochs, 1.0) if self.epochs else 0.0


def describe(spec: TrialSpec) -> tuple[str, str, int | None]:
    """``(trial_key, "mixste tpc/tra 1:9 seed 0", epochs)`` of a Tune trial's spec."""
    label = f"{spec.backbone} {spec.pruner}/{spec.recoverer} {spec.schedule or '-'} seed {spec.seed}"
    try:
        from h2ot_core.resolve import resolve_settings

        epochs: int | None = resolve_settings(spec.backbone, spec.train).epochs
    except H2OTError:  # the trial itself reports the bad setting; the view only loses its epoch count
        epochs = None
    return spec.trial_key, label, epochs


@dataclass
class CampaignCounter:
    """The counts and clock of one campaign's progress, and its display; shareable across Tune runs.

    Args:
        total: trials to train; ``None``: the sum of what each :class:`CampaignProgress` submits.
        campaign: the name the status lines start with.
        metric: the flat report key ranked by (``test_mpjpe``); ``mode`` is ``min`` or ``max``.
        terminal: draw the live view (``None``: when ``console`` writes to a terminal).
        interval: seconds between status lines in a log (``None``: :func:`interval_s`).
        console: where to write (default: stderr).
        clock, wall: monotonic and wall-clock time sources (tests pass fakes).
    """

    total: int | None = None
    campaign: str = ""
    metric: str = TEST_MPJPE
    mode: str = "min"
    terminal: bool | None = None
    interval: float | None = None
    console: Console | None = None
    clock: Any = time.monotonic
    wall: Any = time.time
    submitted: int = 0
    kept: int = 0
    done: int = 0
    diverged: int = 0
    stopped: int = 0
    failed: int = 0
    retried: int = 0
    best: float | None = None
    running: dict[str, RunningTrial] = field(default_factory=dict)
    started: float | None = None
    _outcomes: dict[str, str] = field(default_factory=dict)
    _live: Live | None = None
    _last_draw: float = -math.inf
    _last_line: float = -math.inf
    _closed: bool = False

    def __post_init__(self) -> None:
        self.console = self.console or Console(stderr=True, soft_wrap=True, highlight=False)
        if self.terminal is None:
            self.terminal = self.console.is_terminal
        if self.interval is None:
            self.interval = interval_s()

    def __getstate__(self) -> dict[str, Any]:  # Tune may pickle its callbacks: no display, no console
        state = dict(self.__dict__)
        state.update(_live=None, console=None, clock=time.monotonic, wall=time.time)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True, soft_wrap=True, highlight=False)

    def __enter__(self) -> CampaignCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- counts ---------------------------------------------------------------------------------------

    @property
    def finished(self) -> int:
        return self.done + self.diverged + self.stopped + self.failed

    @property
    def planned(self) -> int:
        return max(self.total if self.total is not None else 0, self.submitted)

    @property
    def pending(self) -> int:
        return max(self.planned - self.finished - len(self.running), 0)

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def eta(self) -> float | None:
        """Seconds until every planned trial is done at the pace so far; ``None`` before any progress."""
        work = self.finished + sum(t.fraction for t in self.running.values())
        return eta(work, self.planned, self.elapsed()) if self.started is not None else None

    def submit(self, trials: int, kept: int) -> None:
        """``trials`` more to train and ``kept`` reused from the leaderboard; starts the clock and display."""
        self.submitted += trials
        self.kept += kept
        if self.started is None:
            self.started = self.clock()
            self._last_line = self.started
        if self.terminal and self._live is None:
            self._live = Live(self.view(), console=self.console, transient=False, auto_refresh=False)
            self._live.start()
        self.draw(force=True)

    def trial_started(self, key: str, label: str, epochs: int | None) -> None:
        self.running[key] = RunningTrial(key, label, self.clock(), epochs)
        self.event(f"started  {key}  {label}")

    def trial_result(self, key: str, result: dict[str, Any]) -> None:
        trial = self.running.get(key)
        if trial is not None:
            trial.epoch = int(result.get("epoch", trial.epoch) or 0)
            loss = result.get(_TRAIN_LOSS)
            trial.loss = float(loss) if isinstance(loss, int | float) else trial.loss
        if RESULT_KEY in result:
            self._outcomes[key] = str(json.loads(result[RESULT_KEY]).get("status", TrialStatus.COMPLETE))
            value = result.get(self.metric)
            if isinstance(value, int | float) and math.isfinite(value):
                better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
                self.best = float(value) if better else self.best
        self.draw()

    def trial_retried(self, key: str) -> None:
        self.retried += 1
        self.event(f"retrying {key} after an error (from its last checkpoint)")

    def trial_finished(self, key: str, *, error: bool = False) -> None:
        """``key`` ended: failed for good (``error``), or with the status its final report carried
        (``stopped`` without one: the scheduler stopped it early)."""
        trial = self.running.pop(key, None)
        status = TrialStatus.FAILED if error else self._outcomes.pop(key, TrialStatus.STOPPED)
        counters: dict[str, str] = {TrialStatus.COMPLETE: "done", TrialStatus.DIVERGED: "diverged",
                                    TrialStatus.FAILED: "failed"}
        attr = counters.get(status, "stopped")
        setattr(self, attr, getattr(self, attr) + 1)
        took = f" after {duration(self.clock() - trial.started)}" if trial else ""
        label = f"  {trial.label}" if trial else ""
        self.event(f"finished {key}{label}: {status}{took}")

    # --- display --------------------------------------------------------------------------------------

    def status_line(self) -> str:
        """``campaign x: 3/10 finished (2 complete, 1 failed), 2 running, 5 pending, 4 reused; elapsed
        1m02s, ETA 3m10s; best test_mpjpe 41.20``."""
        parts = [f"{self.done} complete"]
        parts += [f"{n} {what}" for n, what in ((self.diverged, "diverged"), (self.stopped, "stopped"),
                                               (self.failed, "failed")) if n]
        text = (f"{self.finished}/{self.planned} finished ({', '.join(parts)}), {len(self.running)} running, "
                f"{self.pending} pending")
        if self.retried:
            text += f", {self.retried} retried"
        if self.kept:
            text += f", {self.kept} reused"
        text += f"; elapsed {duration(self.elapsed())}, ETA {eta_text(self.eta())}"
        if self.best is not None:
            text += f"; best {self.metric} {self.best:.2f}"
        return f"campaign {self.campaign}: {text}" if self.campaign else text

    def view(self) -> RenderableType:
        """The terminal view: the status line, then one row per running trial (longest-running first)."""
        head = Text(self.status_line(), style="bold")
        if not self.running:
            return head
        now = self.clock()
        rows = sorted(self.running.values(), key=lambda t: t.started)
        table = Table.grid(padding=(0, 2))
        for _ in range(5):
            table.add_column(no_wrap=True)
        for t in rows[:MAX_TRIAL_LINES]:
            epochs = f"epoch {t.epoch}/{t.epochs}" if t.epochs else f"epoch {t.epoch}"
            loss = f"loss {t.loss:.4f}" if t.loss is not None else "loss -"
            table.add_row(f"  {t.key}", t.label, epochs, loss, duration(now - t.started))
        more = [Text(f"  ... and {len(rows) - MAX_TRIAL_LINES} more running")] if len(rows) > MAX_TRIAL_LINES else []
        return Group(head, table, *more)

    def event(self, text: str) -> None:
        """A trial started, finished or was retried: a timestamped line in a log, a redraw in a terminal."""
        if self.terminal:
            self.draw(force=True)
        else:
            self._print(text)

    def draw(self, *, force: bool = False) -> None:
        """Redraw the terminal view (at most every :data:`REDRAW_S` unless ``force``); in a log, print the
        status line when :attr:`interval` seconds have passed since the last one."""
        now = self.clock()
        if self.terminal:
            if self._live is not None and (force or now - self._last_draw >= REDRAW_S):
                self._live.update(self.view(), refresh=True)
                self._last_draw = now
        elif self.started is not None and now - self._last_line >= (self.interval or DEFAULT_INTERVAL_S):
            self._print(self.status_line())
            self._last_line = now

    def _print(self, text: str) -> None:
        assert self.console is not None
        self.console.print(f"{timestamp(self.wall())} {text}", markup=False, highlight=False)
        self.console.file.flush()

    def close(self) -> None:
        """The last frame (terminal) or a final status line (log); the display is closed. Idempotent."""
        if self.started is None or self._closed:
            return
        self._closed = True
        if self._live is not None:
            self._live.update(self.view(), refresh=True)
            self._live.stop()
            self._live = None
        elif not self.terminal:
            self._print(self.status_line())


class CampaignProgress(Callback):
    """The Tune callback feeding a :class:`CampaignCounter` (its own, or one shared across Tune runs).

    Args:
        total: trials submitted to this Tune run (or these runs: the launcher's chunks share one instance).
        skipped: trials already complete in the leaderboard (not submitted).
        metric_key: the flat report key ranked by (``test_mpjpe``); ``mode`` is ``min`` or ``max``.
        counter: a caller's counter to add to (a search's batches); its display stays open until the caller
            closes it. ``None``: a counter of this run, closed when the run ends.
        campaign: the name status lines start with.
    """

    def __init__(self, total: int, *, skipped: int = 0, metric_key: str = TEST_MPJPE, mode: str = "min",
                 counter: CampaignCounter | None = None, campaign: str = ""):
        self.total, self.skipped = total, skipped
        self.owns_counter = counter is None
        self.counter = counter if counter is not None else CampaignCounter(campaign=campaign, metric=metric_key,
                                                                           mode=mode)
        self._submitted = False
        #: the launcher submits a long campaign in chunks: the display is closed after the last one
        self.more_to_come = False

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        if not self._submitted:  # once, though each chunk's Tune run calls setup
            self._submitted = True
            self.counter.submit(self.total, self.skipped)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.counter.draw()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, label, epochs = describe(trial_spec(trial))
        self.counter.trial_started(key, label, epochs)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.counter.trial_result(_key(trial), result)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.counter.trial_retried(_key(trial))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.counter.trial_finished(_key(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.counter.trial_finished(_key(trial), error=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        ended = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        if interrupt.received() is not None:  # the sink records every trial in flight stopped
            for key in list(self.counter.running):
                self.counter.trial_finished(key)
        elif self.more_to_come and ended:
            return  # a chunk of the campaign ended, not the campaign
        if self.owns_counter:
            self.counter.close()


def _key(trial: Any) -> str:
    return trial_spec(trial).trial_key
