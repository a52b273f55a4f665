"""Reading configuration files: one YAML reader and one deep merge for grids, trial files and table specs.

Torch-free (PyYAML only), so the CLI, the grid loader and ``results`` share it without importing models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from h2ot_core.errors import ConfigError, H2OTError


def read_yaml(path: str | Path, what: str, *, error: type[H2OTError] = ConfigError) -> dict[str, Any]:
    """The mapping a YAML file holds (``{}`` for an empty file), read with ``yaml.safe_load``.

    ``what`` names the file's role in messages (``grid file``, ``trial file``, ``table spec``). A missing
    or unreadable file, a syntax error (reported as ``path:line:column``) or a document that is not a
    mapping raises ``error`` (default :class:`ConfigError`) with a message that starts with the path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist") from None
    except IsADirectoryError:
        raise error(f"{path}: cannot read {what}: it is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise error(f"{path}: cannot read {what}: {reason}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}: {what} is not valid YAML (YAML syntax error: {problem})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{path}: a {what} must be a mapping of keys, got {type(doc).__name__}")
    return doc


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base`` (neither is modified): mappings recursively, anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
