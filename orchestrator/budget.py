"""A campaign's device budget: ``budget: {max_device_hours: H, price_per_device_hour: P}`` in a grid (a search
gives the same keys under ``search.budget``).

``max_device_hours`` stops the launcher from starting new trials once the campaign's trials have spent that many
device-hours (their measured :class:`~h2ot_core.contracts.Usage`, plus the epochs running trials have reported);
trials running then finish, so a campaign can overshoot by what they spend. Trials never started are recorded
``stopped`` for :attr:`~h2ot_core.contracts.StopReason.BUDGET`; a later run of the grid with a larger budget
trains them. ``price_per_device_hour`` only prices what was spent (``h2ot campaign status``, the report).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

#: the keys of a device budget, in ``budget:`` of a grid and in ``search.budget``
DEVICE_BUDGET_KEYS = ("max_device_hours", "price_per_device_hour")


@dataclass(frozen=True)
class DeviceBudget:
    """``max_device_hours``: device-hours after which no new trial starts; ``price_per_device_hour``: dollars
    per device-hour. ``None``: not given."""

    max_device_hours: float | None = None
    price_per_device_hour: float | None = None


def _positive(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} must be a number")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{where}: {value!r} must be greater than 0")
    return float(value)


def check_device_budget(path: Path, raw: Any, where: str = "budget", *, others: tuple[str, ...] = ()) -> DeviceBudget:
    """The checked device budget of ``raw`` (the mapping at ``where`` in ``path``; ``None``: none). ``others``
    are further keys the mapping may hold (a search's ``trials``, ...), checked by their owner."""
    if raw is None:
        return DeviceBudget()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: {where}: expected {{max_device_hours: H, price_per_device_hour: P}}, got {raw!r}")
    for key in raw:
        if key not in (*DEVICE_BUDGET_KEYS, *others):
            raise ConfigError(f"{path}: {where}.{key}: "
                              f"{unknown_message('budget key', key, [*DEVICE_BUDGET_KEYS, *others])}")
    return DeviceBudget(*(_positive(f"{path}: {where}.{key}", raw.get(key)) for key in DEVICE_BUDGET_KEYS))
