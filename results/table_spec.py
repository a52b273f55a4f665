"""Paper tables as data: a YAML spec selects trials and lays one metric out as rows x columns.

Spec keys (``search_spaces/tables/*.yaml``)::

    name: pruning_mixste                 # output file stem (default: the YAML file's stem)
    caption: "..."                       # table caption
    filters: {campaign: NAME, backbone: [mixste], ...}   # campaign and/or axis values
    rows: [pruner]                       # axes spanning the rows
    columns: [recoverer]                 # axes spanning the columns (may be empty)
    metric: mpjpe                        # or a list, or {name, split, action}
    split: test                          # default test
    action: avg                          # default avg
    better: min                          # default: the metric's direction
    format: "{:.1f}"                     # number format of a cell
    aggregate: mean_std                  # over seeds: mean_std ("mean ± std" when n > 1) or mean
    extra: [gflops]                      # per-row cost columns (mean over the row's trials)
    extra_format: "{:.2f}"
    baseline: {pruner: none}             # row of reference for relative deltas of the extra columns
    order: {pruner: [none, tpc, tps]}    # value order (default: sorted)
    labels: {pruner: {none: Unpruned}, axes: {pruner: Pruning}}
    footnote: "..."                      # added before the automatic notes

Only complete trials fill cells (:mod:`results.tables` builds them); the footnote states the selection rule
and any trials that are not complete (failed, diverged, stopped, running, pending). Which campaign a spec
reads: :mod:`results.table_campaigns`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h2ot_core.config import read_yaml
from h2ot_core.contracts import PIPELINES, PROTOCOLS, SELECTIONS, lower_is_better
from h2ot_core.vocabulary import name_problem
from results.errors import ResultsError, unknown
from results.queries import AXES, COST_COLUMNS, DERIVED_COLUMNS

#: where ``h2ot tables build`` looks when given no spec
SPEC_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "tables"
SPEC_KEYS = frozenset({"name", "caption", "filters", "rows", "columns", "metric", "split", "action", "better",
                       "format", "aggregate", "extra", "extra_format", "baseline", "order", "labels", "footnote"})
AGGREGATES = ("mean_std", "mean")


@dataclass(frozen=True)
class TableSpec:
    """A parsed table spec (see module docstring)."""

    name: str
    path: str
    rows: tuple[str, ...]
    columns: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("mpjpe",)
    split: str = "test"
    action: str = "avg"
    better: str = "min"
    fmt: str = "{:.1f}"
    aggregate: str = "mean_std"
    extra: tuple[str, ...] = ()
    extra_fmt: str = "{:.2f}"
    baseline: Mapping[str, Any] = field(default_factory=dict)
    filters: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    campaign: str | None = None
    caption: str = ""
    footnote: str = ""
    order: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: set by :func:`resolve_specs` when the campaign read differs from the one the spec names
    source_note: str = ""


def _list(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _check_format(path: Path, key: str, fmt: Any) -> str:
    try:
        str(fmt).format(1.5)
    except (ValueError, IndexError, KeyError):
        raise ResultsError(f"{path}: {key}: {fmt!r} is not a number format such as '{{:.1f}}'") from None
    return str(fmt)


def _metrics(path: Path, raw: Any) -> tuple[tuple[str, ...], dict[str, str]]:
    if isinstance(raw, Mapping):
        name = raw.get("name")
        if not isinstance(name, str):
            raise ResultsError(f"{path}: metric.name: expected a metric name, got {name!r}")
        return (name,), {k: str(raw[k]) for k in ("split", "action") if k in raw}
    names = _list(raw if raw is not None else "mpjpe")
    if not names or not all(isinstance(n, str) for n in names):
        raise ResultsError(f"{path}: metric: expected a name or a list of names, got {raw!r}")
    return names, {}


#: axes whose values are a fixed vocabulary, checked in a spec's filters
VOCABULARY_VALUES: dict[str, tuple[str, ...]] = {"protocol": PROTOCOLS, "selection": SELECTIONS, "pipeline": PIPELINES}


def load_spec(path: str | Path) -> TableSpec:
    """Parse and check one table spec file (unknown keys and axes get did-you-mean errors)."""
    path = Path(path)
    raw = read_yaml(path, "table spec", error=ResultsError)
    for key in raw:
        if key not in SPEC_KEYS:
            raise ResultsError(f"{path}: {unknown('table spec key', key, sorted(SPEC_KEYS))}")
    rows, columns = _list(raw.get("rows")), _list(raw.get("columns"))
    if not rows:
        raise ResultsError(f"{path}: rows: give at least one axis, e.g. rows: [pruner]")
    filters = dict(raw.get("filters") or {})
    campaign = filters.pop("campaign", None)
    baseline = dict(raw.get("baseline") or {})
    for where, names in (("rows", rows), ("columns", columns), ("filters", filters), ("baseline", baseline),
                         ("order", raw.get("order") or {})):
        for axis in names:
            if axis not in AXES:
                raise ResultsError(f"{path}: {where}: {unknown('axis', axis, list(AXES))}")
    for axis, allowed in VOCABULARY_VALUES.items():  # a typo here would silently select nothing
        for value in _list(filters.get(axis)):
            if value not in allowed:
                raise ResultsError(f"{path}: filters.{axis}: {unknown(axis, value, list(allowed))}")
    if set(baseline) - set(rows):
        raise ResultsError(f"{path}: baseline: keys {sorted(set(baseline) - set(rows))} must be row axes {rows}")
    metrics, where_metric = _metrics(path, raw.get("metric"))
    aggregate = str(raw.get("aggregate", "mean_std"))
    if aggregate not in AGGREGATES:
        raise ResultsError(f"{path}: aggregate: {unknown('aggregation', aggregate, list(AGGREGATES))}")
    better = str(raw.get("better", "min" if lower_is_better(metrics[0]) else "max"))
    if better not in ("min", "max"):
        raise ResultsError(f"{path}: better: expected min or max, got {better!r}")
    extra = tuple(str(e) for e in _list(raw.get("extra")))
    for e in extra:
        if e not in (*COST_COLUMNS, *DERIVED_COLUMNS):
            raise ResultsError(f"{path}: extra: {unknown('cost column', e, [*COST_COLUMNS, *DERIVED_COLUMNS])}")
    name = raw.get("name") or path.stem
    if (problem := name_problem(name)) is not None:
        raise ResultsError(f"{path}: name: {problem}")
    return TableSpec(
        name=name, path=str(path), rows=rows, columns=columns, metrics=metrics,
        split=str(raw.get("split", where_metric.get("split", "test"))),
        action=str(raw.get("action", where_metric.get("action", "avg"))), better=better,
        fmt=_check_format(path, "format", raw.get("format", "{:.1f}")), aggregate=aggregate, extra=extra,
        extra_fmt=_check_format(path, "extra_format", raw.get("extra_format", "{:.2f}")), baseline=baseline,
        filters={k: _list(v) for k, v in filters.items()}, campaign=None if campaign is None else str(campaign),
        caption=str(raw.get("caption", "")), footnote=str(raw.get("footnote", "")).strip(),
        order={k: _list(v) for k, v in (raw.get("order") or {}).items()},
        labels={k: dict(v) for k, v in (raw.get("labels") or {}).items()},
    )


def spec_paths(names: Sequence[str | Path] = ()) -> list[Path]:
    """The spec files for ``names`` (paths, or stems in :data:`SPEC_DIR`); all of them when empty."""
    if not names:
        return sorted(SPEC_DIR.glob("*.yaml"))
    paths = []
    for name in names:
        p = Path(name)
        if not p.exists() and (SPEC_DIR / f"{name}.yaml").exists():
            p = SPEC_DIR / f"{name}.yaml"
        if not p.exists():
            raise unknown("table spec", str(name), [q.stem for q in SPEC_DIR.glob("*.yaml")])
        paths.append(p)
    return paths
