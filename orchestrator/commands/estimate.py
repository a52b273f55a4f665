"""``h2ot campaign estimate GRID``: what a grid will cost before it runs (device-hours, wall time, dollars).

Each distinct backbone size of the grid is timed for a few training steps on the target device
(:mod:`h2ot_core.estimate`; cached in ``$H2OT_CACHE``), then every trial is priced by its epochs, steps and
evaluated windows. A device this machine does not have is refused (exit 2).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.commands.options import FormatOpt, GridArg, ProfileOpt, SeedsOpt
from orchestrator.console import err, out, print_rows, user_errors

#: per backbone size; step and window times are the means over its trials (priced by FLOPs: h2ot_core.estimate)
COLUMNS = ("backbone", "size", "trials", "epochs", "steps_per_epoch", "train_step_ms", "eval_ms_per_window",
           "device_hours_per_trial", "device_hours")


def _size_label(size: str) -> str:
    """``dim 32, depth 2, heads 2, 27 frames, batch 16`` of a size key."""
    d = json.loads(size)
    model = ", ".join(f"{k.replace('num_', '')} {v}" for k, v in d["model"].items())
    return ", ".join(p for p in (model, f"{d['frames']} frames", f"batch {d['batch']}") if p)


@user_errors
def estimate(
    grid_path: GridArg,
    profile: ProfileOpt = None,
    seeds: SeedsOpt = None,
    device: Annotated[str, typer.Option("--device", help="the device the trials will run on: cpu, cuda or cuda:N "
                                                          "(timed here, so this machine must have it)")] = "cpu",
    devices: Annotated[int, typer.Option("--devices", help="devices the campaign runs on at once "
                                                            "(the wall time)")] = 1,
    cpus_per_trial: Annotated[int, typer.Option("--cpus-per-trial", help="CPU threads a trial gets "
                                                                          "(as campaign run's option)")] = 1,
    price: Annotated[float | None, typer.Option(
        "--price-per-device-hour", show_default=False,
        help="dollars per device-hour (default: the grid's budget.price_per_device_hour)")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Device-hours per trial and in total, the wall time on N devices, and dollars at a price: GRID priced by
    timing a few training steps of each backbone size on the target device (cached)."""
    from h2ot_core.device import resolve_device
    from h2ot_core.environment import CACHE
    from h2ot_core.errors import ConfigError
    from h2ot_core.estimate import RateCache, estimate_trials, makespan_hours
    from h2ot_core.resolve import resolve_settings
    from orchestrator.grid import load_grid
    from orchestrator.trainable import data_dir
    from results.usage import dollars_text, duration_text, hours_text

    if devices < 1:
        raise ConfigError(f"--devices: {devices} must be at least 1")
    if cpus_per_trial < 1:
        raise ConfigError(f"--cpus-per-trial: {cpus_per_trial} must be at least 1")
    if price is not None and not price > 0:
        raise ConfigError(f"--price-per-device-hour: {price} must be greater than 0")
    target = resolve_device(device)  # cuda where there is none: one line naming --device and its value
    grid = load_grid(grid_path, profile, seeds=seeds)
    specs = grid.expand()
    price = price if price is not None else grid.budget.price_per_device_hour

    def settings_of(spec: Any) -> Any:
        return resolve_settings(spec.backbone, spec.train, source=f"{grid.path}: trial {spec.trial_key}")

    found = estimate_trials(specs, settings_of, target, cache=RateCache(str(CACHE.value())), threads=cpus_per_trial,
                            data_dir_of=data_dir,
                            on_measure=lambda spec: err.print(
                                f"timing {spec.backbone} {spec.pruner}/{spec.recoverer} {spec.schedule or '-'} on "
                                f"{target} ...", highlight=False))
    rows: list[dict[str, Any]] = []
    for size in dict.fromkeys(e.size for e in found):
        group = [e for e in found if e.size == size]
        first = group[0]
        total = sum(e.device_hours for e in group)
        rows.append({"backbone": first.spec.backbone, "size": _size_label(size), "trials": len(group),
                     "epochs": first.epochs, "steps_per_epoch": first.steps_per_epoch,
                     "train_step_ms": 1e3 * sum(e.rates.step_s for e in group) / len(group),
                     "eval_ms_per_window": 1e3 * sum(e.rates.eval_window_s for e in group) / len(group),
                     "device_hours_per_trial": total / len(group), "device_hours": total})
    print_rows(rows, COLUMNS, fmt, title=f"estimate of {grid.name} on {target}", compact=False)
    total = sum(e.device_hours for e in found)
    wall = makespan_hours((e.device_hours for e in found), devices)
    line = (f"{len(found)} trial(s): {hours_text(total)} device-hours; about {duration_text(wall)} of wall time on "
            f"{devices} device(s)")
    if price is not None:
        line += f"; {dollars_text(total * price)} at ${price:g}/device-hour"
    (out if fmt == "table" else err).print(line, highlight=False)
