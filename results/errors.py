"""User-facing errors of the results package (the CLI prints them as one line, exit code 2)."""

from __future__ import annotations

from h2ot_core.errors import H2OTError
from h2ot_core.registry import unknown_message


class ResultsError(H2OTError, ValueError):
    """A leaderboard, query, table spec or export request that cannot be served as asked."""


def unknown(kind: str, name: object, known: list[str]) -> ResultsError:
    """``Unknown sort metric 'mpjep'. Did you mean: mpjpe? Known: ...`` as an error to raise."""
    return ResultsError(unknown_message(kind, name, known))
