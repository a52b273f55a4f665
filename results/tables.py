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

Only complete trials fill cells; the footnote states the selection rule and any trials that are not
complete (failed, diverged, stopped, running, pending).

Which campaign a spec reads (:func:`resolve_specs`). ``filters.campaign`` names a *grid*; it matches
every campaign run from that grid, whatever the profile: ``campaign: token_sweep`` matches the campaigns
``token_sweep``, ``token_sweep-tiny`` and ``token_sweep-paper`` (a campaign's grid and profile are read
from the resolved grid it stored; for a campaign stored without one, from its name ``GRID[-PROFILE]``).
When several campaigns match, the spec reads one of them: a campaign without profile first, else the most
recently created one (ties broken by name). ``h2ot tables build --campaign NAME`` names the campaign
instead. Whenever the campaign read is not the one the spec names, a note below the table says which
campaign and profile the numbers come from.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from h2ot_core.config import read_yaml
from h2ot_core.contracts import lower_is_better
from results.errors import ResultsError, unknown
from results.numbers import CONTENDED_MARK, CONTENDED_NOTE, LATENCY_VALUES
from results.queries import (
    AXES,
    COST_COLUMNS,
    DERIVED_COLUMNS,
    LEAN_COLUMNS,
    add_speedups,
    check_campaign,
    fetch_trials,
    seed_values,
)
from results.schema import Campaign
from results.stats import ALPHA, significantly_better, summarize

#: where ``h2ot tables build`` looks when given no spec
SPEC_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "tables"
SPEC_KEYS = frozenset({"name", "caption", "filters", "rows", "columns", "metric", "split", "action", "better",
                       "format", "aggregate", "extra", "extra_format", "baseline", "order", "labels", "footnote"})
AGGREGATES = ("mean_std", "mean")
MISSING = "–"
MINUS = "−"


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
    return TableSpec(
        name=str(raw.get("name") or path.stem), path=str(path), rows=rows, columns=columns, metrics=metrics,
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


@dataclass(frozen=True)
class CampaignRef:
    """A stored campaign seen as a run of a grid: ``token_sweep-tiny`` is grid ``token_sweep``, profile ``tiny``."""

    name: str
    grid: str | None
    profile: str | None
    created_at: datetime | None = None

    def matches(self, grid: str) -> bool:
        """Whether this campaign ran grid ``grid`` (any profile)."""
        if self.grid is not None:
            return self.grid == grid
        return self.name == grid or self.name.startswith(f"{grid}-")

    def profile_for(self, grid: str) -> str | None:
        if self.grid is not None:
            return self.profile
        if self.name.startswith(f"{grid}-"):
            return self.name[len(grid) + 1:] or None
        return None

    def describe(self, grid: str | None = None) -> str:
        profile = self.profile_for(grid) if grid else self.profile
        return f"`{self.name}` (" + (f"profile `{profile}`" if profile else "no profile") + ")"


def _grid_of(grid_yaml: str | None) -> tuple[str | None, str | None]:
    """``(grid name, profile)`` from a campaign's stored resolved grid, ``(None, None)`` when absent."""
    if not grid_yaml:
        return None, None
    try:
        doc = yaml.safe_load(grid_yaml)
    except yaml.YAMLError:
        return None, None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
        return None, None
    profile = doc.get("profile")
    return doc["name"], None if profile is None else str(profile)


def stored_campaigns(engine: Engine) -> list[CampaignRef]:
    """Every campaign in the database with the grid and profile it ran."""
    with engine.connect() as conn:
        rows = conn.execute(select(Campaign.name, Campaign.grid_yaml, Campaign.created_at)
                            .order_by(Campaign.name)).all()
    return [CampaignRef(name, *_grid_of(grid_yaml), created_at) for name, grid_yaml, created_at in rows]


def pick_campaign(campaigns: Sequence[CampaignRef], grid: str) -> CampaignRef | None:
    """The campaign a spec naming grid ``grid`` reads: no profile first, then the most recent, then by name."""
    matching = [c for c in campaigns if c.matches(grid)]
    if not matching:
        return None
    def rank(c: CampaignRef) -> tuple[bool, float, str]:
        created = c.created_at.timestamp() if c.created_at else float("-inf")
        return c.profile_for(grid) is not None, -created, c.name

    return min(matching, key=rank)


def _sourced(spec: TableSpec, ref: CampaignRef) -> TableSpec:
    if ref.name == spec.campaign:
        return spec
    grid = spec.campaign or ref.grid
    note = f"Campaign: {ref.describe(grid)}" + (f", a run of grid `{grid}`." if grid else ".")
    return replace(spec, campaign=ref.name, source_note=note)


def resolve_specs(engine: Engine, paths: Sequence[str | Path], *, campaign: str | None = None,
                  named: bool = False) -> list[TableSpec]:
    """Load the specs in ``paths`` and point each at the campaign it reads (module docstring).

    Without ``campaign``, a spec naming a grid reads :func:`pick_campaign`'s choice; a spec whose grid has
    no campaign keeps its name (and selects nothing). With ``campaign`` (an unknown name gets a
    did-you-mean), ``named`` specs (the user listed them) all read it; otherwise only the specs of that
    campaign's grid are kept, and an error says so when there are none.
    """
    specs = [load_spec(p) for p in paths]
    known = stored_campaigns(engine)
    if campaign is None:
        out = []
        for spec in specs:
            ref = pick_campaign(known, spec.campaign) if spec.campaign else None
            out.append(_sourced(spec, ref) if ref else spec)
        return out
    check_campaign(engine, campaign)
    ref = next(c for c in known if c.name == campaign)
    if named:
        return [_sourced(spec, ref) for spec in specs]
    kept = [spec for spec in specs if spec.campaign and ref.matches(spec.campaign)]
    if not kept:
        grids = sorted({s.campaign for s in specs if s.campaign})
        raise ResultsError(f"No table spec selects campaign {campaign!r} (grid {ref.grid or campaign!r}); "
                           f"the specs select grids: {', '.join(grids) or '(none)'}. Name a spec to build it "
                           f"from this campaign: h2ot tables build SPEC --campaign {campaign}")
    return [_sourced(spec, ref) for spec in kept]


@dataclass
class Cell:
    """One aggregated number: mean over the trials (seeds) of a cell, sample std, count, and over seeds the
    95 % bootstrap interval and the ``seed -> value`` pairs the bold rule compares."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    rank: int | None = None  # 1 = best in its column and significantly so, 2 = the runner-up it beat
    ci_low: float | None = None
    ci_high: float | None = None
    by_seed: dict[int, float] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Sequence[float], by_seed: Mapping[int, float] | None = None) -> Cell:
        if not values:
            return cls()
        mean = math.fsum(values) / len(values)
        # sample std in floats (statistics.stdev is exact but ~50x slower on large tables)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        low = high = None
        if by_seed is not None and len(by_seed) > 1:
            summary = summarize(list(by_seed.values()))
            low, high = summary.ci_low, summary.ci_high
        return cls(mean, std, len(values), None, low, high, dict(by_seed or {}))


@dataclass
class Table:
    """A rendered-ready table: header labels, row labels, cells and notes (no markup yet)."""

    spec: TableSpec
    row_axes: tuple[str, ...]
    row_keys: list[tuple[Any, ...]]
    col_keys: list[tuple[Any, ...]]  # (column axis values..., metric)
    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], Cell]
    extras: dict[tuple[tuple[Any, ...], str], Cell]
    deltas: dict[tuple[tuple[Any, ...], str], float | None]
    notes: list[str]
    trials: int
    #: rows with a latency timed under CPU contention: their latency extras are marked (:data:`CONTENDED_MARK`)
    contended: set[tuple[Any, ...]] = field(default_factory=set)

    def label(self, axis: str, value: Any) -> str:
        if value is None:
            return MISSING
        return str(self.spec.labels.get(axis, {}).get(value, value))

    def axis_label(self, axis: str) -> str:
        return str(self.spec.labels.get("axes", {}).get(axis, axis))

    def text(self, cell: Cell, fmt: str, *, with_std: bool = True) -> str:
        """``41.0 ± 1.4 [40.2, 41.9]`` (std and 95 % interval only for ``mean_std`` tables and more than one
        seed), ``–`` when empty."""
        if cell.mean is None:
            return MISSING
        text = fmt.format(cell.mean)
        if with_std and self.spec.aggregate == "mean_std" and cell.std is not None:
            text += " ± " + fmt.format(cell.std)
            if cell.ci_low is not None and cell.ci_high is not None:
                text += f" [{fmt.format(cell.ci_low)}, {fmt.format(cell.ci_high)}]"
        return text.replace("-", MINUS)

    def delta_text(self, value: float | None) -> str:
        if value is None:
            return MISSING
        return f"{value:+.1f}%".replace("-", MINUS)

    def extra_mark(self, row_key: tuple[Any, ...], extra: str) -> str:
        """:data:`CONTENDED_MARK` on a latency extra of a row with a contended latency, else nothing."""
        return CONTENDED_MARK if extra in LATENCY_VALUES and row_key in self.contended else ""


def _ordered(spec: TableSpec, axis: str, values: set[Any]) -> list[Any]:
    preferred = [v for v in spec.order.get(axis, ()) if v in values]
    # None (e.g. the token count of an unpruned trial) first, then numbers, then strings
    rest = sorted(values - set(preferred), key=lambda v: (v is not None, isinstance(v, str), v if v is not None else 0))
    return [*preferred, *rest]


def _rank(table: Table) -> bool:
    """Bold a column's best cell only where a test over seeds says it beats the runner-up (α = ALPHA);
    the runner-up it beat is underlined. Returns whether any column had two filled cells to compare."""
    lower = table.spec.better == "min"
    compared = False
    for col in table.col_keys:
        filled = [c for r in table.row_keys if (c := table.cells[(r, col)]).mean is not None]
        if len(filled) < 2:
            continue
        compared = True
        best, runner_up = sorted(filled, key=lambda c: c.mean if lower else -c.mean)[:2]  # type: ignore[operator]
        if best.mean != runner_up.mean and significantly_better(best.by_seed, runner_up.by_seed,
                                                                lower_is_better=lower):
            best.rank, runner_up.rank = 1, 2
    return compared


BOLD_RULE = (f"Bold: a column's best value, only where it beats the runner-up (underlined) in a paired t-test "
             f"over seeds (Welch's t-test when they share no seed), two-sided, α = {ALPHA}; a single seed or a "
             f"difference within noise is never bold.")


def _notes(spec: TableSpec, selected: list[dict[str, Any]]) -> list[str]:
    notes = [spec.footnote] if spec.footnote else []
    if spec.source_note:
        notes.append(spec.source_note)
    rules = sorted({r["selection"] for r in selected if r["status"] == "complete"})
    rule_text = {"last_epoch": "the last epoch's weights", "best_on_test": "the epoch best on the test set"}
    if rules:
        notes.append("Checkpoint selection: " + "; ".join(f"{r} ({rule_text.get(r, r)})" for r in rules) + ".")
    if "best_on_test" in rules:
        notes.append("Warning: some cells select checkpoints on the test set (best_on_test).")
    incomplete = defaultdict(int)
    for r in selected:
        if r["status"] != "complete":
            incomplete[r["status"]] += 1
    if incomplete:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(incomplete.items()))
        notes.append(f"Incomplete: {sum(incomplete.values())} of {len(selected)} source trials are not "
                     f"complete ({counts}); their cells are missing ({MISSING}) or averaged over fewer seeds.")
    if spec.aggregate == "mean_std":
        notes.append("Cells: mean ± sample std [95 % bootstrap interval of the mean] over seeds where more than "
                     "one seed ran.")
    return notes


def build_table(engine: Engine, spec: TableSpec) -> Table:
    """Select ``spec``'s trials and aggregate them into a :class:`Table` (complete trials only).

    A campaign missing from the database selects nothing (an empty table), like any other filter.
    """
    selected = fetch_trials(engine, filters=spec.filters, campaign=spec.campaign, metrics=spec.metrics,
                            split=spec.split, action=spec.action, columns=LEAN_COLUMNS)
    if set(spec.extra) & set(DERIVED_COLUMNS):
        add_speedups(engine, selected)
    complete = [r for r in selected if r["status"] == "complete"]
    row_values = {a: {r[a] for r in complete} for a in spec.rows}
    col_values = {a: {r[a] for r in complete} for a in spec.columns}
    present_rows = {tuple(r[a] for a in spec.rows) for r in complete}
    present_cols = {tuple(r[a] for a in spec.columns) for r in complete}
    row_keys = [k for k in itertools.product(*(_ordered(spec, a, row_values[a]) for a in spec.rows))
                if k in present_rows]
    col_combos = [k for k in itertools.product(*(_ordered(spec, a, col_values[a]) for a in spec.columns))
                  if k in present_cols]
    col_keys = [(*c, m) for c in col_combos for m in spec.metrics]
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in complete:
        grouped[(tuple(r[a] for a in spec.rows), tuple(r[a] for a in spec.columns))].append(r)
    cells = {}
    for rk in row_keys:
        for ck in col_keys:
            members = grouped.get((rk, ck[:-1]), [])
            values = [m for m in members if m[ck[-1]] is not None]
            cells[(rk, ck)] = Cell.of([float(m[ck[-1]]) for m in values], seed_values(values, ck[-1]))
    by_row: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in complete:
        by_row[tuple(r[a] for a in spec.rows)].append(r)
    extras = {(rk, e): Cell.of([float(m[e]) for m in by_row[rk] if m[e] is not None])
              for rk in row_keys for e in spec.extra}
    deltas: dict[tuple[tuple[Any, ...], str], float | None] = {}
    if spec.baseline:
        base_rows = [rk for rk in row_keys
                     if all(str(rk[spec.rows.index(a)]) == str(v) for a, v in spec.baseline.items())]
        for e in spec.extra:
            base = statistics.fmean([extras[(b, e)].mean for b in base_rows if extras[(b, e)].mean is not None]
                                    or [0.0])
            for rk in row_keys:
                mean = extras[(rk, e)].mean
                deltas[(rk, e)] = None if mean is None or not base else 100.0 * (mean / base - 1.0)
    contended = {rk for rk in row_keys if any(m.get("latency_contended") for m in by_row[rk])} \
        if LATENCY_VALUES & set(spec.extra) else set()
    table = Table(spec, spec.rows, row_keys, col_keys, cells, extras, deltas, _notes(spec, selected),
                  len(selected), contended)
    if contended:
        table.notes.append(CONTENDED_NOTE)
    if _rank(table):
        table.notes.append(BOLD_RULE)
    return table
