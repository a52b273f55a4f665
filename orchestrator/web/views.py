"""What each page shows, as plain data for the templates and the JSON endpoints; every number from ``results``.

The leaderboard rows, the grouped statistics (mean ± std [95 % CI], N, the paired test against the unpruned
baseline), the Pareto front and the paper tables are those of ``h2ot leaderboard``, ``h2ot pareto`` and
``h2ot tables build``: the same functions, called with the same arguments. Query strings are parsed here into
those arguments; a bad value raises :class:`results.errors.ResultsError` (shown as a 400 page).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape
from sqlalchemy import Engine

from h2ot_core.contracts import METRICS, STATUSES, lower_is_better
from orchestrator.commands.results import SHOWN
from orchestrator.console import table_cell
from orchestrator.web.plan import grid_doc, plan_of
from results import browse
from results.errors import ResultsError, unknown
from results.queries import AXES, COST_COLUMNS, DERIVED_COLUMNS, check_campaign, leaderboard, metric_names
from results.stats import Summary, format_summary

#: one campaign row, everywhere it is shown (campaigns page, campaign page, the live JSON): key -> label
CAMPAIGN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kind", "kind"), ("profile", "profile"), ("dataset", "dataset"),
    *((s, s) for s in STATUSES), ("total", "trials"), ("started", "started (UTC)"),
    ("updated", "last update (UTC)"), ("device_hours", "device-hours"), ("eta", "ETA"))
#: rows per leaderboard page, and the most a ``per=`` may ask for
PER_PAGE, MAX_PER_PAGE = 50, 500
#: what ``group=seeds`` collapses: every axis but the seed (and the schedule's derived columns, which follow it)
SEED_GROUP = tuple(a for a in AXES if a not in ("seed", "tokens", "layer", "stages"))
#: the Pareto plot's cost axes (switchable; the accuracy axis is the campaign's metric)
PARETO_X = ("gflops", "latency_ms")


def num(column: str, value: Any) -> str:
    """A cell as the CLI's table prints it (the column's precision, thousands separators), ``–`` for none."""
    text = table_cell(column, value)
    return text if text else "–"


def stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def duration(seconds: float | None) -> str:
    """``42 s``, ``7 min``, ``3.2 h``; ``–`` for none."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- campaigns ---------------------------------------------------------------------------------------------

def campaign_rows(engine: Engine, names: Sequence[str] | None = None) -> list[dict[str, str]]:
    """One display row per campaign: ``name`` and every :data:`CAMPAIGN_COLUMNS` key, as text."""
    out = []
    for act in browse.campaign_activity(engine, names):
        plan = plan_of(act.grid_yaml)
        if plan.trials is not None:
            act.with_pending(plan.pending(browse.campaign_trial_keys(engine, act.name)))
        row: dict[str, str] = {"name": act.name, "kind": plan.kind, "profile": plan.profile or "–",
               "dataset": ", ".join(plan.datasets) or "–", **{s: str(act.counts.get(s, 0)) for s in STATUSES},
               "total": str(act.total), "started": stamp(act.started_at), "updated": stamp(act.updated_at),
               "device_hours": f"{act.device_hours:.3f}", "eta": duration(act.eta_s())}
        out.append(row)
    return out


# -- the leaderboard of a campaign -------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardQuery:
    """A campaign page's view, parsed from its query string (every field round-trips through :meth:`url`)."""

    campaign: str
    filters: dict[str, list[str]]
    status: list[str]
    sort: str
    descending: bool
    group: bool
    page: int
    per: int
    x: str
    #: what the leaderboard ranks by (in SQL): the sort column, or the campaign's metric when rows are sorted
    #: by an axis or the status (in Python, afterwards)
    rank_by: str

    @classmethod
    def parse(cls, engine: Engine, params: Mapping[str, list[str]], campaign: str) -> BoardQuery:
        def one(key: str, default: str) -> str:
            values = params.get(key) or [default]
            return values[-1]

        grid = browse.campaign_grid(engine, campaign)
        if grid is None:
            check_campaign(engine, campaign)  # the did-you-mean error
        wanted = (grid_doc(grid or "").get("metric") or {}).get("name")
        metric = str(wanted) if isinstance(wanted, str) and browse.has_metric(engine, wanted) else "mpjpe"

        filters = {a: [v for v in params[a] if v != ""] for a in AXES if a in params}
        status = [s for s in params.get("status", []) if s]
        for s in status:
            if s not in STATUSES:
                raise unknown("status", s, list(STATUSES))
        sort = one("sort", metric)  # a metric or cost: the leaderboard checks it (with a did-you-mean)
        direction = one("dir", "")
        if direction not in ("", "asc", "desc"):
            raise ResultsError(f"dir={direction!r}: expected asc or desc")
        descending = direction == "desc" if direction else not _lower(sort)
        x = one("x", "gflops")
        if x not in PARETO_X:
            raise unknown("Pareto x axis", x, list(PARETO_X))
        return cls(campaign, {a: v for a, v in filters.items() if v}, status, sort, descending,
                   one("group", "") == "seeds", max(_int("page", one("page", "1")), 1),
                   min(max(_int("per", one("per", str(PER_PAGE))), 1), MAX_PER_PAGE), x,
                   metric if sort in (*AXES, "status") else sort)

    def params(self, **change: Any) -> list[tuple[str, str]]:
        """The query string's pairs, with ``change`` applied (``page=1`` unless the page is what changes)."""
        state = {"sort": self.sort, "dir": "desc" if self.descending else "asc",
                 "group": "seeds" if self.group else "", "page": self.page, "per": self.per, "x": self.x}
        if "page" not in change:
            change["page"] = 1
        state.update(change)
        pairs = [("name", self.campaign)]
        pairs += [(a, v) for a in AXES for v in self.filters.get(a, [])]
        pairs += [("status", s) for s in self.status]
        pairs += [(k, str(v)) for k, v in state.items() if v not in ("", None) and not (k == "per" and v == PER_PAGE)]
        return pairs

    def sort_params(self, column: str) -> list[tuple[str, str]]:
        """Sorting by ``column``: its natural direction first, the other one when it is already sorted by."""
        if column == self.sort:
            return self.params(dir="asc" if self.descending else "desc")
        return self.params(sort=column, dir="desc" if not _lower(column) else "asc")


def sortable(engine: Engine) -> list[str]:
    """What a leaderboard can be ranked by: every recorded metric, the cost and the derived columns."""
    return [*metric_names(engine), *COST_COLUMNS, *DERIVED_COLUMNS]


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ResultsError(f"{name}={text!r}: expected a whole number") from None


def _lower(column: str) -> bool:
    """Sort direction of a column: metrics and costs by their definition, axes ascending."""
    return lower_is_better(column) if column in METRICS else True


#: grouped leaderboards recently computed (a bootstrap per group: seconds over thousands of trials), so paging
#: and re-sorting one does not compute it again; keyed by the query and the campaign's trial count and last update
_GROUPED: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()
_GROUPED_KEEP = 8


def _grouped(engine: Engine, q: BoardQuery) -> list[dict[str, Any]]:
    act = browse.campaign_activity(engine, [q.campaign])
    version = (act[0].total, act[0].updated_at) if act else None
    key = (id(engine), q.campaign, tuple(sorted((a, tuple(v)) for a, v in q.filters.items())), tuple(q.status),
           q.rank_by, version)
    if key not in _GROUPED:
        _GROUPED[key] = leaderboard(engine, filters=q.filters, campaign=q.campaign, status=q.status or None,
                                    sort=q.rank_by, group_by=list(SEED_GROUP), agg="mean")
        while len(_GROUPED) > _GROUPED_KEEP:
            _GROUPED.popitem(last=False)
    _GROUPED.move_to_end(key)
    return _GROUPED[key]


def board(engine: Engine, q: BoardQuery) -> dict[str, Any]:
    """The campaign page's leaderboard: columns, this page's rows, the total and the page count.

    Rows are the lean leaderboard rows (every column shown is among them); a page ranked by a metric or cost
    fetches only the rows up to its last (as ``h2ot leaderboard --top``), a page sorted by an axis or the
    status sorts the ranked rows again, and so does a grouped page (its groups come from :func:`_grouped`).
    """
    in_leaderboard = q.sort == q.rank_by and not q.group  # grouped rows are cached, then sorted here
    descending = q.descending if in_leaderboard else None
    first = (q.page - 1) * q.per
    if q.group:
        rows = _grouped(engine, q)
        total = len(rows)
    else:
        rows = leaderboard(engine, filters=q.filters, campaign=q.campaign, status=q.status or None, sort=q.rank_by,
                           descending=descending, top=first + q.per if in_leaderboard else None, lean=True)
        total = browse.count_trials(engine, q.filters, q.campaign, q.status or None)
    if not in_leaderboard:
        present = sorted((r for r in rows if r.get(q.sort) is not None), key=lambda r: r[q.sort],
                         reverse=q.descending)
        rows = present + [r for r in rows if r.get(q.sort) is None]
    rows = rows[first:first + q.per]
    columns = _grouped_columns(q.rank_by) if q.group else list(dict.fromkeys([*SHOWN[:9], q.rank_by, *SHOWN[9:]]))
    return {"columns": columns, "rows": [_cells(r, columns, q.rank_by, q.group) for r in rows], "total": total,
            "pages": max(math.ceil(total / q.per), 1), "rank_by": q.rank_by, "first": first}


def _grouped_columns(metric: str) -> list[str]:
    return [*SEED_GROUP, "n", metric, "p_vs_baseline",
            *(c for c in ("mpjpe", "p_mpjpe", "params", "gflops", "latency_ms", "speedup_flops", "speedup_latency")
              if c != metric)]


def _cells(row: Mapping[str, Any], columns: Sequence[str], metric: str, grouped: bool) -> dict[str, Any]:
    """A row's cells as text; a grouped row's metric as ``mean ± std [95 % CI]`` (``format_summary``) and its
    trial keys, for links."""
    cells = {c: num(c, row.get(c)) for c in columns}
    if grouped and row.get(metric) is not None and "n" in row:
        summary = Summary(int(row["n"]), float(row[metric]), float(row.get(f"{metric}_std") or 0.0),
                          row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"))
        cells[metric] = format_summary(summary, digits=2)
    if grouped:
        p = row.get("p_vs_baseline")
        cells["p_vs_baseline"] = "–" if p is None else f"{p:.3g}"
    keys = [k for k in str(row.get("trial_keys") or row.get("trial_key") or "").split(",") if k]
    link = ("/trial?" + urlencode([("key", keys[0])]) if len(keys) == 1 else
            "/compare?" + urlencode([("key", k) for k in keys[:4]]) if keys else "")
    return {"cells": cells, "keys": keys, "link": link, "status": row.get("status", "")}


#: what the Pareto plot's hover shows of each point's configuration
PARETO_FIELDS = ("backbone", "pruner", "recoverer", "schedule", "frames", "seed")


def pareto(engine: Engine, campaign: str, x: str, y: str) -> dict[str, Any]:
    """The Pareto plot's data, column-wise (10,000 points stay a small response): every complete trial's ``keys``,
    ``xs``, ``ys`` and ``configs`` (values of :data:`PARETO_FIELDS`), the indices of the ``front`` (ascending
    ``x``) and, for a search, the hypervolume."""
    from results.front import front_of, hypervolume_note

    if x not in PARETO_X:
        raise unknown("Pareto x axis", x, list(PARETO_X))
    front = front_of(browse.plot_rows(engine, campaign, x, y, PARETO_FIELDS), x, y, source=f"campaign {campaign!r}")
    rows = front.rows
    search = plan_of(browse.campaign_grid(engine, campaign) or "").kind == "search"
    return {"x": x, "y": y, "xlabel": METRICS[x].label, "ylabel": METRICS[y].label if y in METRICS else y,
            "keys": [r["trial_key"] for r in rows], "xs": [float(f"{r[x]:.6g}") for r in rows],
            "ys": [float(f"{r[y]:.6g}") for r in rows], "fields": PARETO_FIELDS,
            "configs": [[r[f] for f in PARETO_FIELDS] for r in rows],
            "front": [i for i, r in enumerate(rows) if r["on_front"]],
            "hypervolume": front.hypervolume if search else None,
            "note": hypervolume_note(front) if search else
            f"{len(front.front)} non-dominated of {len(rows)} complete trials."}


# -- paper tables -------------------------------------------------------------------------------------------

def campaign_tables(engine: Engine, campaign: str) -> tuple[list[Any], str]:
    """``(tables, note)``: the built tables of the specs that select ``campaign`` (``h2ot tables build
    --campaign NAME``), or none and why."""
    from results.table_campaigns import resolve_specs
    from results.table_spec import spec_paths
    from results.tables import build_table

    try:
        specs = resolve_specs(engine, spec_paths(), campaign=campaign)
    except ResultsError as exc:
        return [], str(exc)
    tables, refused = [], []
    for spec in specs:
        try:
            table = build_table(engine, spec)
        except ResultsError as exc:  # e.g. trials of two protocols: refused, said on the page
            refused.append(str(exc))
            continue
        if table.row_keys:
            tables.append(table)
    if refused:
        return tables, " ".join(refused)
    return tables, "" if tables else "No table spec selects a complete trial of this campaign yet."


def table_file(engine: Engine, campaign: str, spec_name: str, ext: str) -> tuple[str, bytes]:
    """``(file name, bytes)`` of one table as ``h2ot tables build --campaign CAMPAIGN`` writes it."""
    from results.render import RENDERERS
    from results.table_campaigns import resolve_specs
    from results.table_spec import spec_paths
    from results.tables import build_table

    if ext not in RENDERERS:
        raise unknown("table format", ext, list(RENDERERS))
    specs = {s.name: s for s in resolve_specs(engine, spec_paths(), campaign=campaign)}
    if spec_name not in specs:
        raise unknown("table", spec_name, list(specs))
    return f"{spec_name}.{ext}", RENDERERS[ext](build_table(engine, specs[spec_name])).encode("utf-8")


def table_html(table: Any) -> dict[str, Any]:
    """A built table's header, body and notes for the template; best cells bold, runners-up underlined
    (the Markdown and LaTeX marks), every label escaped."""
    from results.render import _body, header

    def mark(text: str, cell: Any) -> Markup:
        tag = {1: "strong", 2: "u"}.get(cell.rank or 0)
        return Markup(f"<{tag}>{escape(text)}</{tag}>") if tag else Markup(escape(text))

    return {"name": table.spec.name, "caption": table.spec.caption, "header": header(table),
            "rows": _body(table, mark, lambda text: text), "notes": table.notes, "axes": len(table.row_axes)}


# -- trials -------------------------------------------------------------------------------------------------

COST_FIELDS = ("params", "gflops", "gflops_total", "latency_ms", "latency_device", "precision", "latency_batch",
               "latency_contended", "speedup_flops", "speedup_latency", "gflops_change_pct")
PROVENANCE_FIELDS = ("git_sha", "torch_version", "device", "data_fingerprint", "selection", "best_epoch",
                     "epochs_run", "resumed_from_epoch", "created_at", "started_at", "finished_at")
#: history keys that are not curves
_NOT_CURVES = ("epoch",)


def trial(engine: Engine, key: str) -> dict[str, Any]:
    """One trial's whole record (:func:`results.browse.trial_records`) with its speed-ups, per-action metric
    table and curves."""
    from results.queries import add_speedups

    found = browse.trial_records(engine, [key])
    if key not in found:
        raise ResultsError(f"no trial with key {key!r} in this leaderboard")
    rec = add_speedups(engine, [found[key]])[0]
    return {**rec, "actions": action_table(rec["metrics"]), "curves": curves(rec["history"]),
            "spec_text": json.dumps(rec["spec"], indent=2, sort_keys=True)}


def action_table(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"columns": ["test mpjpe", ...], "rows": [(action, [cells])]}``: every metric per action, ``avg`` first."""
    columns = sorted({(m["split"], m["name"]) for m in metrics}, key=lambda c: (c[0] != "test", c))
    actions = sorted({m["action"] for m in metrics}, key=lambda a: (a != "avg", a))
    value = {(m["split"], m["name"], m["action"]): m["value"] for m in metrics}
    return {"columns": [f"{s} {n}" for s, n in columns],
            "rows": [(a, [num(n, value.get((s, n, a))) for s, n in columns]) for a in actions]}


def curves(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-epoch series from the trial's reports: ``{"epochs": [...], "series": {key: [...]}}`` (numbers only)."""
    rows = [h for h in history if isinstance(h, Mapping)]
    keys = sorted({k for h in rows for k, v in h.items() if k not in _NOT_CURVES and isinstance(v, int | float)
                   and not isinstance(v, bool)})
    return {"epochs": [h.get("epoch", i + 1) for i, h in enumerate(rows)],
            "series": {k: [h.get(k) for h in rows] for k in keys}}


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k in sorted(value):
            out.update(_flat(value[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value) if not isinstance(value, str) else value}


def compare(engine: Engine, keys: Sequence[str]) -> dict[str, Any]:
    """2–4 trials side by side: settings (those that differ flagged), metrics and cost, curves to overlay."""
    keys = list(dict.fromkeys(k for k in keys if k))
    if not 2 <= len(keys) <= 4:
        raise ResultsError(f"compare takes 2 to 4 trials (key=...&key=...), got {len(keys)}")
    trials = [trial(engine, k) for k in keys]
    settings = [_flat(t["spec"]) for t in trials]
    names = sorted(set().union(*settings))
    rows = [(n, [s.get(n, "–") for s in settings]) for n in names]
    metric_names_ = sorted({m["name"] for t in trials for m in t["metrics"] if m["split"] == "test"
                            and m["action"] == "avg"})
    values = [{m["name"]: m["value"] for m in t["metrics"] if m["split"] == "test" and m["action"] == "avg"}
              for t in trials]
    metrics = [(f"test {n}", [num(n, v.get(n)) for v in values]) for n in metric_names_]
    metrics += [(c, [num(c, t.get(c)) for t in trials]) for c in COST_FIELDS]
    return {"keys": keys, "trials": trials,
            "settings": [(n, cells, len(set(cells)) > 1) for n, cells in rows],
            "metrics": [(n, cells, len(set(cells)) > 1) for n, cells in metrics],
            "curves": {t["trial_key"]: t["curves"] for t in trials}}
