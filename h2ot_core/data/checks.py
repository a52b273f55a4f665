"""Validation helpers shared by the readers: every failure names the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from h2ot_core.errors import DataError


def key_path(*keys: object) -> str:
    """``positions_3d['S1']['Walking'][2]`` style location of a value inside a file."""
    head, *rest = keys
    return str(head) + "".join(f"[{k!r}]" for k in rest)


def expect_dict(value: Any, path: Path, where: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where} is a {type(value).__name__}; expected a dict")
    return value


def expect_item(mapping: dict, key: object, path: Path, where: str) -> Any:
    if key not in mapping:
        known = ", ".join(sorted(map(str, mapping))) or "nothing"
        raise DataError(f"{path}: {where} has no key {key!r}; it holds {known}")
    return mapping[key]


def expect_array(value: Any, path: Path, where: str, shape: tuple[int | None, ...],
                 min_frames: int = 1) -> np.ndarray:
    """``value`` as a finite float array whose shape matches ``shape`` (``None`` = any size).

    The first axis is frames and must hold at least ``min_frames``.
    """
    spec = "(" + ", ".join("T" if i == 0 and d is None else "*" if d is None else str(d)
                           for i, d in enumerate(shape)) + ")"
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        raise DataError(f"{path}: {where} is a {type(value).__name__}; expected a numeric array {spec}")
    if value.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, value.shape, strict=True)):
        raise DataError(f"{path}: {where} has shape {value.shape}; expected {spec}")
    if value.shape[0] < min_frames:
        raise DataError(f"{path}: {where} has {value.shape[0]} frames; expected at least {min_frames}")
    if not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))[0]
        raise DataError(f"{path}: {where} holds NaN/inf (first at index {tuple(int(i) for i in bad)}); "
                        f"expected finite values")
    return value
