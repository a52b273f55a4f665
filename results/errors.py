"""User-facing errors of the results package (the CLI prints them as one line, exit code 2)."""

from __future__ import annotations

import difflib

from h2ot_core.errors import H2OTError


class ResultsError(H2OTError, ValueError):
    """A leaderboard, query, table spec or export request that cannot be served as asked."""


def unknown(kind: str, name: object, known: list[str]) -> ResultsError:
    """``Unknown sort metric 'mpjep'. Did you mean: mpjpe? Known: ...`` as an error to raise."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    shown = ", ".join(sorted(known)) or "(none)"
    return ResultsError(f"Unknown {kind} {name!r}.{hint} Known: {shown}")
