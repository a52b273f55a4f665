"""Options several ``h2ot`` commands share, declared once: the leaderboard URL, ``--format`` and the trial filters.

``DbUrlOpt`` and ``FormatOpt`` are ``Annotated`` aliases to use as a parameter's type. The trial filters
(``--backbone`` ... ``--layer``, ``--campaign``, ``--status``) are added by :func:`with_trial_filter` and
reach the command as one :class:`TrialFilter`, so each command declares them with one word.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from h2ot_core.contracts import PIPELINES, PROTOCOLS, SELECTIONS, STATUSES, TRIAL_AXES
from h2ot_core.environment import DB_URL
from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message
from orchestrator.console import TABLE_FORMATS, fail

F = TypeVar("F", bound=Callable[..., Any])

DbUrlOpt = Annotated[str | None, typer.Option("--db-url", envvar=DB_URL.name, show_default=False,
                                              help="leaderboard URL (default: leaderboard.sqlite in $H2OT_RUNS_DIR, else results/runs)")]


def _check_format(value: str) -> str:
    if value not in TABLE_FORMATS:
        raise fail(unknown_message("format", value, list(TABLE_FORMATS)))
    return value


FormatOpt = Annotated[str, typer.Option("--format", callback=_check_format,
                                        help="table, json, csv or markdown")]
ColumnsOpt = Annotated[str | None, typer.Option("--columns", show_default=False,
                                                help="columns to show, comma-separated (default: the usual ones, "
                                                     "less those equal in every row)")]


def at_least_one(param: typer.CallbackParam, value: int | None) -> int | None:
    """Option callback: a count that must be 1 or more (``--batch-size 0``), refused in one line, exit 2."""
    if value is not None and value < 1:
        raise fail(f"{param.opts[0] if param.opts else param.name} {value}: expected 1 or more")
    return value

#: the axes a trial can be filtered on (``results.queries.AXES`` too)
FILTER_AXES = TRIAL_AXES


def known_values(axis: str) -> list[str] | None:
    """The values an axis filter can match (the registries' names); ``None``: any value (schedules, numbers)."""
    from h2ot_core.names import BACKBONES, DATASETS, PRUNERS, RECOVERERS

    named = {"backbone": BACKBONES.names, "pruner": PRUNERS.names, "recoverer": RECOVERERS.names,
             "dataset": DATASETS.names, "pipeline": lambda: list(PIPELINES), "selection": lambda: list(SELECTIONS),
             "protocol": lambda: list(PROTOCOLS)}
    return named[axis]() if axis in named else None


def check_filter_values(axes: dict[str, list[str]]) -> None:
    """A filter value no trial can have (``--pruner tcp``) is a typo: refused with a did-you-mean, as in grids."""
    for axis, values in axes.items():
        known = known_values(axis)
        for value in values:
            if known is not None and value not in known:
                raise ConfigError(f"--{axis}: {unknown_message(axis, value, known)}")


def split_list(value: str | None) -> list[str]:
    """``"tpc, tps"`` → ``["tpc", "tps"]``; ``None`` or blank → ``[]``."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@dataclass(frozen=True)
class TrialFilter:
    """The trials a command reads: axis values (any of, per axis), campaigns (any of), statuses (any of)."""

    axes: dict[str, list[str]] = field(default_factory=dict)
    campaign: list[str] | None = None
    status: list[str] | None = None

    def query(self) -> dict[str, Any]:
        """As keyword arguments of ``results.queries.leaderboard`` and ``results.export.export_table``."""
        return {"filters": self.axes, "campaign": self.campaign, "status": self.status}


def _filter_params() -> list[inspect.Parameter]:
    def opt(name: str, help_text: str) -> inspect.Parameter:
        annotation = Annotated[str | None, typer.Option(f"--{name}", help=help_text, show_default=False)]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)

    return [*(opt(axis, f"only these {axis} values, comma-separated") for axis in FILTER_AXES),
            opt("campaign", "only trials of these campaigns, comma-separated"),
            opt("status", f"only these statuses, comma-separated: {', '.join(STATUSES)}")]


_FILTER_PARAMS = _filter_params()


def with_trial_filter(fn: F) -> F:
    """Give command ``fn`` the filter options; it receives them as its keyword-only ``where: TrialFilter``."""
    sig = inspect.signature(fn, eval_str=True)
    if "where" not in sig.parameters:
        raise TypeError(f"{fn.__qualname__} needs a keyword-only parameter 'where: TrialFilter'")
    params = [p for p in sig.parameters.values() if p.name != "where"]
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {p.name: kwargs.pop(p.name, None) for p in _FILTER_PARAMS}
        axes = {a: split_list(values[a]) for a in FILTER_AXES if values[a]}
        check_filter_values(axes)
        where = TrialFilter(axes, split_list(values["campaign"]) or None, split_list(values["status"]) or None)
        return fn(*args, where=where, **kwargs)

    new = sig.replace(parameters=[*positional, *_FILTER_PARAMS, *keyword])
    wrapper.__signature__ = new  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
    return wrapper  # type: ignore[return-value]


# -- the options of `campaign run` and `campaign submit` ----------------------------------------------------
GridArg = Annotated[Path, typer.Argument(help="grid YAML (search_spaces/...)", show_default=False)]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="named override in the grid (tiny, paper)")]

SeedsOpt = Annotated[int | None, typer.Option("--seeds", help="seeds 0..N-1 of every configuration "
                                                              "(overrides the file's seeds: N)")]
RerunOpt = Annotated[bool, typer.Option("--rerun", help="train again even trials already complete")]
RerunStoppedOpt = Annotated[bool, typer.Option(
    "--rerun-stopped", help="train again trials an early-stopping scheduler stopped (trials stopped by "
                            "`campaign stop` are always trained again)")]
AppendOpt = Annotated[bool, typer.Option(
    "--append", help="run this grid under a campaign name that another grid used (its trials join that campaign); "
                     "without it that is refused")]
CpusOpt = Annotated[float, typer.Option(help="CPUs per trial (fractions allowed)")]
GpusOpt = Annotated[float | None, typer.Option(
    help="GPUs per trial (0.25 = four trials per GPU; default: 1 when the cluster has GPUs, else 0)",
    show_default=False)]
MaxConcurrentOpt = Annotated[int | None, typer.Option(help="most trials at once")]
RetriesOpt = Annotated[int, typer.Option(help="restarts of a crashed trial (from its checkpoint)")]
AshaOpt = Annotated[bool, typer.Option("--asha", help="stop poor trials early (ASHA on the metric)")]
NameOpt = Annotated[str | None, typer.Option(help="campaign name (default: grid name[-profile])")]
JobAddressOpt = Annotated[str | None, typer.Option(
    "--address", show_default=False,
    help="Ray dashboard, http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS or H2OT_RAY_ADDRESS)")]


def check_resources(cpus_per_trial: float, gpus_per_trial: float | None, retries: int,
                     max_concurrent: int | None) -> None:
    if cpus_per_trial <= 0 or (gpus_per_trial is not None and gpus_per_trial < 0) or retries < 0 or (
            max_concurrent is not None and max_concurrent < 1):
        raise typer.BadParameter("--cpus-per-trial > 0, --gpus-per-trial >= 0, --retries >= 0, "
                                 "--max-concurrent >= 1")
