"""A driver's claims: one launch of a campaign owns the trials it trains, so overlapping campaigns never train a
trial twice (:mod:`results.claims` holds the SQL).

* :func:`launch` records the launch (``campaign_runs``), renews its leases from a heartbeat thread every third
  of ``$H2OT_CLAIM_LEASE_S`` and, however the launch ends, releases them with the launch's outcome.
* :func:`train_claimed` hands trials to Tune only once claimed: a trial finished meanwhile (by any campaign)
  is read back and linked, never retrained; one held by a live lease elsewhere is not started, and the driver
  waits for it (saying once which campaign runs it) until it finishes there (then linked) or its lease expires
  (then taken over: it resumes from its checkpoint in the storage). A result whose claim was lost meanwhile is
  not published (:class:`orchestrator.sink.ResultsSink`) and the trial is looked at again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from h2ot_core.contracts import TrialSpec
from h2ot_core.environment import CLAIM_LEASE_S
from orchestrator import interrupt
from results.claims import ClaimOwner, Holder
from results.errors import ResultsError

if TYPE_CHECKING:
    from orchestrator.cluster import LaunchOptions
    from results.store import LeaderboardStore

log = logging.getLogger(__name__)


def lease_s() -> float:
    """``$H2OT_CLAIM_LEASE_S``: how long a claim lasts unless renewed (seconds, default 60)."""
    return CLAIM_LEASE_S.number(minimum=0.5, what="a number of seconds")


def grid_hash(text: str) -> str:
    """The content hash of a grid's resolved YAML (``campaign_runs.grid_hash``: sha256, hex)."""
    return hashlib.sha256(text.encode()).hexdigest()


class Heartbeat:
    """A daemon thread renewing ``owner``'s leases every third of the lease until :meth:`stop`."""

    def __init__(self, store: LeaderboardStore, owner: ClaimOwner, lease: float):
        self.store, self.owner, self.lease = store, owner, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"h2ot-heartbeat-{owner.run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.store.renew(self.owner, self.lease)
            except (ResultsError, SQLAlchemyError) as exc:  # a missed beat is retried: the lease has slack for two
                log.warning("could not renew the claims of campaign %s: %s", self.owner.campaign, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease)


@contextlib.contextmanager
def launch(store: LeaderboardStore, campaign: str, *, grid_path: str = "", grid_yaml: str = ""
           ) -> Iterator[Launch]:
    """One launch of ``campaign`` by this process: recorded, its leases kept alive, released at the end with
    the outcome the body sets on :attr:`Launch.outcome` (``interrupted`` when it raised)."""
    run = Launch(ClaimOwner(campaign), lease_s())
    store.begin_run(run.owner, grid_path=grid_path, grid_hash=grid_hash(grid_yaml))
    try:
        with Heartbeat(store, run.owner, run.lease):
            yield run
    except BaseException:
        if run.outcome == "complete":
            run.outcome = "interrupted"
        raise
    finally:
        with contextlib.suppress(ResultsError):  # a leaderboard gone for good: the leases expire by themselves
            store.end_run(run.owner, run.outcome)


@dataclass
class Launch:
    """This process's launch: its claim owner, lease (seconds) and outcome (set by the caller)."""

    owner: ClaimOwner
    lease: float
    outcome: str = "complete"


@dataclass
class Claimed:
    """What :func:`train_claimed` did: the status of each trial it trained (``outcomes``, ``errors``), the
    trials finished elsewhere and kept (``kept``), and whether the run was cut short (``interrupted``)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def _say_waiting(held: dict[str, Holder], said: set[str]) -> None:
    from orchestrator.console import err

    new = {k: h for k, h in held.items() if k not in said}
    by_campaign: dict[str, list[Holder]] = {}
    for holder in new.values():
        by_campaign.setdefault(holder.describe(), []).append(holder)
    for where, holders in sorted(by_campaign.items()):
        err.print(f"{len(holders)} trial(s) running in {where}: waiting for them (not trained twice)",
                  highlight=False)
    said.update(new)


def train_claimed(run: Launch, experiment: str, specs: Iterable[TrialSpec], opts: LaunchOptions,
                  store: LeaderboardStore, *, keep: Iterable[str], keep_stop_reasons: Iterable[str] | None = None,
                  trainer: Callable[..., Any], fresh: bool = False, **train: Any) -> Claimed:
    """Train ``specs`` under ``run``'s claims (see the module docstring); ``keep``: the statuses read back
    instead of trained; ``fresh``: discard a claimed trial's checkpoints first (``--rerun``). ``trainer``:
    :func:`orchestrator.launcher.train_specs` (a benchmark passes a trivial one), which gets
    ``train``'s keyword arguments (``metric``, ``mode``, ``tags``, ``kept``) and returns a sink (``outcomes``,
    ``errors``, ``lost``)."""
    done = Claimed()
    pending = list(specs)
    said: set[str] = set()
    keep = list(keep)
    while pending:
        out = store.hand_out([s.trial_key for s in pending], run.owner, run.lease, keep=keep,
                             keep_stop_reasons=keep_stop_reasons)
        done.kept.update(out.kept)
        dead = {k: h.run_id for k, h in out.held.items() if h.dead_here()}
        if dead and store.take_over(dead, run.owner, run.lease):  # a killed driver of this host: no lease to wait
            continue
        claimed = [s for s in pending if s.trial_key in set(out.claimed)]
        lost: set[str] = set()
        if claimed:
            if fresh:
                from orchestrator.checkpoints import discard_checkpoints

                discard_checkpoints(opts.storage, [s.trial_key for s in claimed])
            sink = trainer(run.owner.campaign, experiment, claimed, opts, store, run_id=run.owner.run_id, **train)
            lost = set(sink.lost)
            done.outcomes.update({k: v for k, v in sink.outcomes.items() if k not in lost})
            done.errors.update({k: v for k, v in sink.errors.items() if k not in lost})
            if interrupt.received() is not None or any(s.trial_key not in sink.outcomes for s in claimed):
                done.interrupted = True  # interrupted: hand out no more
                break
            store.release(run.owner, [s.trial_key for s in claimed if s.trial_key not in lost])
        pending = [s for s in pending if s.trial_key in out.held or s.trial_key in lost]
        if pending and not claimed:
            if interrupt.received() is not None:  # Ctrl-C while waiting for other campaigns' trials
                done.interrupted = True
                break
            _say_waiting(out.held, said)
            time.sleep(min(5.0, run.lease / 4))
    return done
