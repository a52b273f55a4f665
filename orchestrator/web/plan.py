"""What a campaign planned: its trial keys (a grid) or its number of trials (a search), from the resolved grid
it stored, so the campaigns page can count the trials still pending (planned, no row yet).

A grid is expanded with :func:`orchestrator.grid.load_grid`, the function ``campaign run`` uses, so the keys
are the ones the launcher writes. Results are cached by the stored YAML's text (a campaign re-run with
another grid stores another one).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from h2ot_core.errors import H2OTError

#: keys the launcher adds to the resolved grid that a grid file does not take back
_PROVENANCE_KEYS = ("profile", "default_profile")


@dataclass(frozen=True)
class Plan:
    """A campaign's plan: ``kind`` is ``grid`` or ``search``; ``keys`` the grid's trial keys; ``trials`` how
    many trials it plans (``None`` when the stored grid cannot be read: then nothing counts as pending)."""

    kind: str
    profile: str | None
    datasets: tuple[str, ...]
    keys: frozenset[str] = frozenset()
    trials: int | None = None

    def pending(self, stored: set[str]) -> int:
        """Planned trials of a grid without a row in the campaign; a search's trials not yet started."""
        if self.kind == "grid":
            return len(self.keys - stored)
        return max((self.trials or 0) - len(stored), 0)


def grid_doc(grid_yaml: str) -> Mapping[str, Any]:
    try:
        doc = yaml.safe_load(grid_yaml) if grid_yaml else None
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, Mapping) else {}


@functools.lru_cache(maxsize=256)
def plan_of(grid_yaml: str) -> Plan:
    """The :class:`Plan` of a campaign's stored resolved grid (cached by its text)."""
    from orchestrator.grid import load_grid

    doc = grid_doc(grid_yaml)
    kind = "search" if doc.get("search") else "grid"
    profile = None if doc.get("profile") is None else str(doc["profile"])
    axes = doc.get("grid") or {}
    raw = axes.get("dataset") if isinstance(axes, Mapping) else None
    datasets = tuple(str(d) for d in (raw if isinstance(raw, list) else [] if raw is None else [raw]))
    if not doc:
        return Plan(kind, profile, datasets)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in doc.items() if k not in _PROVENANCE_KEYS}))
        try:
            grid = load_grid(path)
        except (H2OTError, OSError):
            return Plan(kind, profile, datasets)
    if grid.search is not None:
        return Plan(kind, profile, datasets, trials=grid.search.trials * (grid.search.seeds or 1))
    keys = frozenset(s.trial_key for s in grid.expand())
    return Plan(kind, profile, tuple(str(d) for d in grid.axes.get("dataset", datasets)), keys, len(keys))
