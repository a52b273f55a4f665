"""A paper table built from the leaderboard: a :class:`~results.table_spec.TableSpec`'s trials aggregated
into cells (mean, std and bootstrap interval over seeds), the best cell bold only where a test over seeds
says so, and the notes every table carries. Rendering: :mod:`results.render`.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from h2ot_core.contracts import TrialStatus
from results.errors import ResultsError
from results.numbers import CONTENDED_MARK, CONTENDED_NOTE, LATENCY_VALUES
from results.queries import DERIVED_COLUMNS, LEAN_COLUMNS, add_speedups, fetch_trials, seed_values
from results.stats import ALPHA, significantly_better, summarize
from results.table_spec import TableSpec

MISSING = "–"
MINUS = "−"


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
        filled = [(c.mean, c) for r in table.row_keys if (c := table.cells[(r, col)]).mean is not None]
        if len(filled) < 2:
            continue
        compared = True
        best, runner_up = [c for _, c in sorted(filled, key=lambda mc: mc[0] if lower else -mc[0])[:2]]
        if best.mean != runner_up.mean and significantly_better(best.by_seed, runner_up.by_seed,
                                                                lower_is_better=lower):
            best.rank, runner_up.rank = 1, 2
    return compared


BOLD_RULE = (f"Bold: a column's best value, only where it beats the runner-up (underlined) in a paired t-test "
             f"over seeds (Welch's t-test when they share no seed), two-sided, α = {ALPHA}; a single seed or a "
             f"difference within noise is never bold.")


#: each protocol in a footnote
PROTOCOL_TEXT = {"official": "P1/P2 averaged over every frame of the edge-padded windows, as HoT's test and the "
                             "published numbers; P2 per clip",
                 "real_frames": "P1/P2 averaged over the real frames, edge padding masked; P2 per clip"}


def check_one_protocol(spec: TableSpec, rows: list[dict[str, Any]]) -> None:
    """A table never mixes protocols in a cell: a :class:`ResultsError` naming the spec and the counts when its
    trials were scored under two, unless ``protocol`` is one of its row or column axes (split, each labelled)."""
    if "protocol" in (*spec.rows, *spec.columns):
        return
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["protocol"]] += 1
    if len(counts) > 1:
        found = ", ".join(f"{n} {p}" for p, n in sorted(counts.items()))
        raise ResultsError(f"table {spec.name}: its trials were scored under different protocols ({found}); a table "
                           f"never mixes them: add `protocol: official` (or real_frames) to its filters, or "
                           f"make protocol a row or column axis")


def _notes(spec: TableSpec, selected: list[dict[str, Any]]) -> list[str]:
    notes = [spec.footnote] if spec.footnote else []
    if spec.source_note:
        notes.append(spec.source_note)
    complete = [r for r in selected if r["status"] == TrialStatus.COMPLETE]
    protocols = sorted({r["protocol"] for r in complete})
    if protocols:
        notes.append(f"Protocol: {protocols[0]} ({PROTOCOL_TEXT.get(protocols[0], protocols[0])}).")
    rules = sorted({r["selection"] for r in complete})
    rule_text = {"last_epoch": "the last epoch's weights",
                 "best_on_val": "the epoch best on a held-out tenth of the training takes",
                 "best_on_test": "the epoch best on the test set, the official practice"}
    if rules:
        notes.append("Checkpoint selection: " + "; ".join(f"{r} ({rule_text.get(r, r)})" for r in rules) + ".")
    if "best_on_test" in rules:
        notes.append("Warning: some cells select checkpoints on the test set (best_on_test).")
    incomplete: defaultdict[str, int] = defaultdict(int)
    for r in selected:
        if r["status"] != TrialStatus.COMPLETE:
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
    complete = [r for r in selected if r["status"] == TrialStatus.COMPLETE]
    check_one_protocol(spec, complete)
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
            base = statistics.fmean([m for b in base_rows if (m := extras[(b, e)].mean) is not None] or [0.0])
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
