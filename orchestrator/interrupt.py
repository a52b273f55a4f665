"""Ctrl-C and SIGTERM of a campaign's driver: stop gracefully once, exit at once the second time.

``h2ot campaign run`` (a grid or a search) runs inside :func:`catching`. The first SIGINT or SIGTERM is
only noted: Tune's loop asks the :func:`stopper` at every step and stops every trial (their actors
end; nothing more starts), the sink records the trials that were in flight ``stopped`` for
:attr:`~h2ot_core.contracts.StopReason.INTERRUPTED` (resumable: the same command trains them again from their
last epoch checkpoint), and the CLI exits ``128 + signal`` (130 for SIGINT, 143 for SIGTERM). A second
signal ends the process at once with that code; trials it leaves ``running`` are shown interrupted once
their claim lapses, and the next run trains them again all the same.

Tune's own SIGINT handler is switched off (``TUNE_DISABLE_SIGINT_HANDLER``): it would swallow the first
Ctrl-C without telling us, and knows nothing of SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.console import err

#: the signals a driver stops gracefully on
SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: what the CLI prints after an interrupted run
RESUME_HINT = "interrupted; run the same command to resume"

_received: int | None = None


def received() -> int | None:
    """The first signal received while :func:`catching` was active (``None``: not interrupted)."""
    return _received


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


def _handle(signum: int, frame: Any) -> None:
    global _received
    if _received is not None:  # the second signal: no more waiting
        os._exit(exit_code(_received))
    _received = signum
    err.print(f"{signal.Signals(signum).name} received: stopping the running trials and recording them "
              f"stopped (interrupted); press Ctrl-C again to exit at once", highlight=False, markup=False)


_active = False


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Note SIGINT/SIGTERM instead of dying, for the block's duration (only in the main thread, the one
    Python delivers signals to; elsewhere the block runs unguarded). What ran inside reads
    :func:`received` and keeps it in its outcome: it is forgotten when the block ends."""
    global _received, _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    before = {s: signal.getsignal(s) for s in SIGNALS}
    _active = True
    arm()
    try:
        yield
    finally:
        _received, _active = None, False
        for s, handler in before.items():
            signal.signal(s, handler)


def arm() -> None:
    """(Re)install the handlers inside :func:`catching`: ``ray.init`` replaces SIGTERM's with its own, which
    aborts the driver, so every Tune run calls this once Ray is up."""
    if _active and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handle)


def stopper() -> Any:
    """Tune's stopper: the whole experiment stops once a signal was received (no trial is stopped alone).

    Made here, not at import: importing this module (the launcher does; ``--dry-run`` imports the launcher)
    imports no Ray."""
    from ray.tune import Stopper

    class InterruptStopper(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return _received is not None

    return InterruptStopper()
