"""``seeds: N`` / ``--seeds N`` against a ``seed`` axis that a grid's include chain (or a profile) sets.

The shipped grids inherit ``seed: [0]`` from their base files; asking for N seeds replaces that single seed.
What cannot be replaced is refused naming the file that set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from h2ot_core.config import read_yaml
from h2ot_core.errors import ConfigError


def as_list(value: Any) -> list[Any]:
    """An axis value as its list of values (a scalar is a one-value axis)."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _own_docs(path: Path) -> list[tuple[Path, Mapping[str, Any]]]:
    """Each file of ``path``'s include chain with its own document, in merge order (includes first)."""
    path = path.resolve()
    doc = read_yaml(path, "grid file")
    includes = doc.get("include") or []
    chain: list[tuple[Path, Mapping[str, Any]]] = []
    for inc in [includes] if isinstance(includes, str) else includes:
        chain += _own_docs(path.parent / inc)
    return [*chain, (path, doc)]


def _seed_origin(path: Path, profile: str | None) -> tuple[Path, str]:
    """The file that set the merged ``grid.seed`` axis, and where in it (``grid`` or ``profiles.NAME``): a
    profile's value lands over the merged grid, so the last file setting it in the profile wins."""
    def seed_in(section: Any) -> bool:
        return isinstance(section, Mapping) and isinstance(section.get("grid"), Mapping) and "seed" in section["grid"]

    origin = (path, "grid")
    for file, doc in _own_docs(path):
        if seed_in(doc):
            origin = (file, "grid")
    for file, doc in _own_docs(path):
        profiles = doc.get("profiles")
        if profile is not None and isinstance(profiles, Mapping) and seed_in(profiles.get(profile)):
            origin = (file, f"profiles.{profile}.grid")
    return origin


def _shown(file: Path) -> str:
    """A file as a message shows it: relative to the working directory when under it."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def check_seed_override(path: Path, profile: str | None, doc: Mapping[str, Any], seeds: int, where: str) -> None:
    """``seeds: N`` / ``--seeds N`` replaces a single seed (``seed: [0]``) that an include set; ``--seeds``
    also one the grid file itself set. Several seeds, or ``seeds:`` beside a ``seed`` axis in the same
    file, are refused, naming the file that set the axis."""
    grid = doc.get("grid")
    if not isinstance(grid, Mapping) or "seed" not in grid:
        return
    values = as_list(grid["seed"])
    file, section = _seed_origin(path, profile)
    same_file = file == path.resolve()
    if len(values) == 1 and (where == "--seeds" or not same_file):
        return
    why = f"{len(values)} seeds" if len(values) > 1 else "in the same file"
    raise ConfigError(f"{path}: {where}: {seeds} asked, but {_shown(file)} sets {section}.seed {values} ({why}); "
                      f"give `seeds: N` or a `seed` axis, not both")
