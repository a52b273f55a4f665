"""The circuit breaker in front of the MLflow tracking server, and the MLflow client's HTTP settings.

The first failed call opens the breaker (one warning); while it is open calls are skipped at once, and at
most every ``$H2OT_MLFLOW_PROBE_S`` seconds one is let through to find the server back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from h2ot_core.environment import MLFLOW_HTTP_SETTINGS, MLFLOW_PROBE_S, mask_secret

log = logging.getLogger(__name__)

#: MLflow error codes that are about the request, not the server being away
_REQUEST_ERRORS = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS",
                             "BAD_REQUEST", "INVALID_STATE", "PERMISSION_DENIED", "UNAUTHENTICATED",
                             "CUSTOMER_UNAUTHORIZED"})


def http_defaults() -> None:
    """Short MLflow HTTP retries and timeout for this process: 2 retries 1 s and 2 s apart instead of 7 over
    ~4 minutes, 20 s per request instead of 120 (:data:`~h2ot_core.environment.MLFLOW_HTTP_SETTINGS`; values
    the user exported win)."""
    for setting in MLFLOW_HTTP_SETTINGS:
        os.environ.setdefault(setting.name, str(setting.default))


def error_gist(exc: BaseException) -> str:
    """The gist of an error: the OS error of a failed connection, else its first line (shortened)."""
    text = str(exc).strip()
    os_error = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    if os_error:
        return os_error.group(0).strip()
    if "timed out" in text or "timeout" in text.lower():
        return "timed out"
    lines = text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


#: (signs in an error's text, lower case; what it means) for a tracking store that answers but cannot write
_STORE_FAULTS = ((("no space left on device", "database or disk is full", "disk quota exceeded"),
                  "MLflow tracking store {} is full (free space on its disk)"),
                 (("read-only file system", "readonly database", "attempt to write a readonly"),
                  "MLflow tracking store {} is read-only (make it writable)"))


def store_fault(exc: BaseException, uri: str) -> str:
    """What a failed MLflow call says about the tracking store at ``uri`` (masked): full, read-only, or (else)
    unreachable."""
    text = str(exc).lower()
    for signs, what in _STORE_FAULTS:
        if any(sign in text for sign in signs):
            return what.format(uri)
    return f"MLflow tracking server {uri} unreachable"


def is_request_error(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) in _REQUEST_ERRORS


#: loggers that repeat, with a traceback each, what the breaker's single warning says: urllib3's per-retry
#: warning, and MLflow's SQL store logging every failed statement (a full or read-only store)
_QUIET_LOGGERS = {"urllib3.connectionpool": logging.ERROR, "mlflow.store.db.utils": logging.CRITICAL}


@contextlib.contextmanager
def quiet_clients() -> Iterator[None]:
    loggers = {logging.getLogger(name): level for name, level in _QUIET_LOGGERS.items()}
    before = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in before.items():
            logger.setLevel(level)


class Breaker:
    """Circuit breaker in front of the tracking server.

    Closed: calls go through. The first failure opens it (one warning); while open, calls are skipped at
    once, and at most every ``probe_s`` seconds one call is let through (for an ``http(s)`` URI only after
    the server's ``/health`` answered) to find the server back.
    """

    def __init__(self, uri: str, probe_s: float | None = None):
        http_defaults()
        self.uri = uri
        self.probe_s = MLFLOW_PROBE_S.number(what="a number of seconds") if probe_s is None else probe_s
        self.down_since: float | None = None
        self.next_probe = 0.0
        self.skipped = 0
        self.failed = 0
        self.outages = 0
        self.first_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self.down_since is not None

    def probe_soon(self) -> None:
        """Let the next call probe a server found down without waiting for the interval."""
        self.next_probe = 0.0

    def allow(self) -> bool:
        """Whether a call may go through now."""
        if self.down_since is None:
            return True
        now = time.monotonic()
        if now < self.next_probe:
            self.skipped += 1
            return False
        self.next_probe = now + self.probe_s
        if not self._healthy():
            self.skipped += 1
            return False
        return True

    def _healthy(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return True  # a local store: the call itself is the probe
        import requests

        try:
            with quiet_clients():
                return requests.get(self.uri.rstrip("/") + "/health", timeout=5).ok
        except requests.RequestException:
            return False

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
        """``fn(*args)`` through the breaker: ``("ok", value)``, ``("skipped", None)`` while it is open, or
        ``("failed", None)``. Never raises: a request the server refused is one warning, an unreachable server
        opens the breaker."""
        if not self.allow():
            return "skipped", None
        try:
            with quiet_clients():
                value = fn(*args)
        except Exception as exc:  # MLflow is the browser: nothing it raises may stop training
            if is_request_error(exc):
                log.warning("MLflow refused %s: %s", what, error_gist(exc))
            else:
                self.trip(what, exc)
            return "failed", None
        self.reset()
        return "ok", value

    def trip(self, what: str, exc: BaseException) -> None:
        self.failed += 1
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.next_probe = self.down_since + self.probe_s
        self.outages += 1
        self.first_error = error_gist(exc)
        log.warning("%s (%s: %s); training goes on and the leaderboard keeps every result; MLflow calls are "
                    "skipped until it answers again (checked every %g s), then backfilled (or run `h2ot campaign "
                    "sync`)", store_fault(exc, mask_secret(self.uri)), what, self.first_error, self.probe_s)

    def reset(self) -> None:
        if self.down_since is None:
            return
        log.warning("MLflow tracking server %s answers again after %.0f s (%d call(s) skipped); backfilling "
                    "what it missed", mask_secret(self.uri), time.monotonic() - self.down_since, self.skipped)
        self.down_since = None


