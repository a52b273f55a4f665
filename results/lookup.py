"""Trials named by key: what ``h2ot video --model KEY`` needs to load and label a trained trial."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from results.errors import ResultsError
from results.schema import Trial

#: the columns a model lookup returns
MODEL_COLUMNS: tuple[str, ...] = ("trial_key", "status", "backbone", "pruner", "recoverer", "schedule", "frames",
                                  "dataset", "pipeline", "gflops", "latency_ms", "latency_device", "precision",
                                  "checkpoint_uri", "data_json")
#: a key prefix shorter than this is not matched (too many trials would share it)
MIN_PREFIX = 6


def _row(values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(MODEL_COLUMNS, values, strict=True))
    row["data"] = json.loads(row.pop("data_json") or "{}")
    return row


def trials_by_key(engine: Engine, keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per key, in order: the trial with that key, or the only one whose key starts with it
    (at least :data:`MIN_PREFIX` characters). An unknown or ambiguous key is a :class:`ResultsError` with a
    did-you-mean over the leaderboard's keys."""
    cols = [getattr(Trial, c) for c in MODEL_COLUMNS]
    rows = []
    with engine.connect() as conn:
        for key in keys:
            found = conn.execute(select(*cols).where(Trial.trial_key == key)).all()
            if not found and len(key) >= MIN_PREFIX:
                found = conn.execute(select(*cols).where(Trial.trial_key.startswith(key, autoescape=True))
                                     .order_by(Trial.trial_key).limit(5)).all()
            if len(found) > 1:
                raise ResultsError(f"Trial key prefix {key!r} is ambiguous: "
                                   f"{', '.join(r[0] for r in found)}; give more of the key")
            if not found:
                known = list(conn.execute(select(Trial.trial_key)).scalars())
                close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                raise ResultsError(f"Unknown trial key {key!r}.{hint} ({len(known)} trials in the leaderboard; "
                                   f"h2ot leaderboard lists them)")
            rows.append(_row(found[0]))
    return rows
