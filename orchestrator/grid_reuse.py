"""A campaign name stands for one grid: running another grid under a name already used is refused, unless
``--append`` says the trials are meant to join that campaign.

Without it, a second grid's trials would silently merge into the first one's campaign and its report would
credit the second grid for all of them. "Another grid" is another grid ``name``, or another file with other
contents: the same grid file edited (an axis value added) stays the same campaign, as resuming after such an
edit must, and so does a copy of it (a Ray job runs the copy in its uploaded working directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from h2ot_core.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.grid import GridSpec


def _grid_name(grid_yaml: str | None) -> str | None:
    try:
        doc = yaml.safe_load(grid_yaml or "") or {}
    except yaml.YAMLError:
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    return str(name) if name else None


def other_grid(row: dict[str, Any], grid: GridSpec) -> str | None:
    """The grid campaign ``row`` ran when it is not ``grid`` (its path, else its name); ``None``: the same grid,
    or a campaign that ran none (``h2ot train``'s)."""
    old_path, old_name = row.get("grid_path") or "", _grid_name(row.get("grid_yaml"))
    if old_name is not None and old_name != grid.name:
        return old_path or old_name
    # Another file with other contents. A path that is no file here (relative to another working directory,
    # on another machine) cannot be compared, and a copy (a Ray job's uploaded working_dir) is the same grid.
    old, new = Path(old_path), Path(grid.path)
    if old_path and old.is_file() and old.resolve() != new.resolve() and old.read_bytes() != new.read_bytes():
        return old_path
    return None


def check_grid_reuse(row: dict[str, Any] | None, campaign: str, grid: GridSpec, *, append: bool) -> None:
    """Refuse (:class:`ConfigError`, exit 2) to run ``grid`` as ``campaign`` when that campaign ran another
    grid, unless ``append``."""
    if row is None or append:
        return
    old = other_grid(row, grid)
    if old is not None:
        raise ConfigError(f"{grid.path}: campaign {campaign!r} already ran another grid ({old}); give this one its "
                          f"own name (--name NAME), or add its trials to {campaign!r} with --append")
