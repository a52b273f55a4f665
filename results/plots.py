"""Figures from plain data (leaderboard rows, per-epoch dicts): PNG and PDF.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot state), so it is headless and safe to
call from any thread.

Files carry no timestamps (PDF ``CreationDate`` is dropped) so figures rebuild identically. Axes are
labelled with units (``MPJPE (mm)``, ``GFLOPs``) from ``h2ot_core.contracts.METRICS``.
:func:`plot_trials` reads the rows from the leaderboard for ``h2ot plots``.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sqlalchemy import Engine

from h2ot_core.contracts import METRICS, TrialStatus, lower_is_better, metric_key, parse_metric_key
from results.errors import ResultsError, unknown
from results.numbers import LATENCY_VALUES
from results.pareto import pareto_front
from results.queries import AXES, Campaigns, leaderboard, seed_values
from results.stats import summarize

Better = Literal["min", "max"]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
FORMATS = ("png", "pdf")
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}


def axis_label(name: str) -> str:
    """``MPJPE (mm)``, ``GFLOPs``, ``test MPJPE (mm)``: a metric, cost column or flat metric key as the
    papers label it, with its unit; any other name as it is."""
    if name in METRICS:
        return _label(name)
    parsed = parse_metric_key(name)
    if parsed is None or parsed[1] not in METRICS:
        return name
    split, bare, action = parsed
    return f"{split} {_label(bare)}" + ("" if action == "avg" else f", {action}")


def _label(name: str) -> str:
    return METRICS[name].label


def _save(fig: Figure, stem: str | Path) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, format=ext, dpi=150, bbox_inches="tight", metadata=_METADATA[ext])
        paths.append(path)
    return paths


def _config(row: Mapping[str, Any]) -> str:
    return "unpruned" if row["pruner"] == "none" else f"{row['pruner']}+{row['recoverer']}"


#: axes that do not make a different configuration on a plot: the seed (averaged over) and what the schedule
#: already says
_NOT_CONFIG = frozenset({"seed"})
#: on the tokens plot, the x axis and what a series is drawn across
_ALONG_TOKENS = frozenset({"seed", "tokens", "schedule"})


def config_key(row: Mapping[str, Any], skip: frozenset[str] = _NOT_CONFIG) -> tuple[Any, ...]:
    """What makes two trials the same configuration: every axis but ``skip``, the model size and precision."""
    model = row.get("model", row.get("model_json"))
    model_text = model if isinstance(model, str) else json.dumps(model or {}, sort_keys=True, default=str)
    return (*(row.get(a) for a in AXES if a not in skip), model_text, row.get("precision"))


@dataclass(frozen=True)
class ConfigPoint:
    """One configuration on a plot: the mean over its seeds of ``y`` (with the 95 % bootstrap interval the
    tables print, ``None`` for one seed) at the mean ``x``; ``contended``: a latency among them was timed while
    other trials shared the CPU."""

    row: Mapping[str, Any]  # its first trial (axes, labels)
    x: float
    y: float
    n: int
    ci_low: float | None
    ci_high: float | None
    contended: bool = False

    @property
    def yerr(self) -> tuple[float, float]:
        """Distances below and above the mean to the interval's ends (0 without an interval)."""
        if self.ci_low is None or self.ci_high is None:
            return 0.0, 0.0
        return self.y - self.ci_low, self.ci_high - self.y


def seed_means(rows: Sequence[Mapping[str, Any]], y: str, x: str,
               key: Any = config_key) -> list[ConfigPoint]:
    """Rows with both ``x`` and ``y`` grouped by ``key`` (a configuration), each summarised over its seeds by
    :func:`results.stats.summarize` (the tables' numbers); in the order configurations first appear."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get(x) is not None and r.get(y) is not None:
            groups[key(r)].append(r)
    points = []
    for members in groups.values():
        s = summarize(list(seed_values(members, y).values()))
        points.append(ConfigPoint(members[0], statistics.fmean(float(m[x]) for m in members), s.mean, s.n,
                                  s.ci_low, s.ci_high,
                                  bool(LATENCY_VALUES & {x, y}) and any(m.get("latency_contended") for m in members)))
    return points


def _seeds_note(points: Sequence[ConfigPoint]) -> str:
    ns = sorted({p.n for p in points})
    n = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    return (f"Points: mean over seeds (n = {n}); error bars: 95 % bootstrap interval of the mean, as in the tables"
            if ns[-1] > 1 else "One seed per point (no interval)")


def _contended_note(points: Sequence[ConfigPoint]) -> list[str]:
    hit = sum(p.contended for p in points)
    return [f"hollow: latency of {hit} of {len(points)} timed while other trials shared the CPU "
            "(latency_contended)"] if hit else []


def staircase(front: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The front ordered by x as a step line: from each point along x to the next point's x, then to its y
    (the boundary of what the front dominates)."""
    pts = sorted(front)
    xs, ys = [], []
    for i, (x, y) in enumerate(pts):
        if i:
            xs.append(x)
            ys.append(pts[i - 1][1])
        xs.append(x)
        ys.append(y)
    return xs, ys


def pareto_chart(rows: Sequence[Mapping[str, Any]], stem: str | Path, *, metric: str = "mpjpe",
                 cost: str = "gflops", better: Better = "min", title: str = "", note: str = "") -> list[Path]:
    """Accuracy vs cost, one point per configuration: the mean over its seeds with the 95 % interval as error
    bars (:func:`seed_means`); one marker per pruner+recoverer; the Pareto front of the means drawn as a
    staircase and its points solid, dominated points faded, unpruned baselines outlined in black, latencies
    timed under CPU contention hollow.

    ``rows`` are leaderboard rows (need ``pruner``, ``recoverer``, ``metric`` and ``cost``); rows missing
    either value are left out. ``note`` (e.g. the hypervolume) goes under the figure with the seeds' note.
    Returns the PNG and PDF paths.
    """
    points = seed_means(rows, metric, cost)
    if not points:
        raise ResultsError(f"No trial has both {metric!r} and {cost!r}: nothing to plot")
    xy = [(p.x, p.y) for p in points]
    on_front = set(pareto_front(xy, (lower_is_better(cost), better == "min")))
    configs = sorted({_config(p.row) for p in points})
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, config in enumerate(configs):
        labelled = False
        for front in (True, False):
            for contended in (False, True):
                pts = [p for j, p in enumerate(points) if _config(p.row) == config and (j in on_front) == front
                       and p.contended == contended]
                if not pts:
                    continue
                baseline = config == "unpruned"
                colour = f"C{i}"
                ax.errorbar([p.x for p in pts], [p.y for p in pts], yerr=list(zip(*(p.yerr for p in pts), strict=True)),
                            fmt="none", ecolor=colour, elinewidth=1, capsize=2, alpha=1.0 if front else 0.3,
                            zorder=2)
                ax.scatter([p.x for p in pts], [p.y for p in pts], marker=MARKERS[i % len(MARKERS)],
                           label=None if labelled else config, s=70 if baseline else 40,
                           facecolors="none" if contended else colour,
                           edgecolors="black" if baseline else colour, linewidths=1.2 if contended else 0.8,
                           alpha=1.0 if front else 0.3, zorder=3 if front else 2)
                labelled = True
    xs, ys = staircase([xy[j] for j in on_front])
    ax.plot(xs, ys, "k--", lw=1, label="Pareto front (of the means)", zorder=1)
    ax.set_xlabel(axis_label(cost))
    ax.set_ylabel(axis_label(metric))
    ax.set_title(title or f"{axis_label(metric)} vs {axis_label(cost)}", fontsize=10)
    notes = [_seeds_note(points), *_contended_note(points), *([note] if note else [])]
    fig.text(0.5, -0.02, "\n".join(notes), ha="center", va="top", fontsize=6, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, stem)


#: the fields of a tokens-plot series key (:func:`config_key` without the axes along the x axis)
_SERIES_FIELDS = (*(a for a in AXES if a not in _ALONG_TOKENS), "model", "precision")
_SERIES_TEXT = {"layer": "layer {}", "stages": "{} stage(s)", "frames": "{} frames", "seed": "seed {}"}


def _series_label(key: tuple[Any, ...], varying: Sequence[str]) -> str:
    """``tpc+tra``, plus whichever other fields differ between the plot's series (``mixste layer 3``)."""
    named = dict(zip(_SERIES_FIELDS, key, strict=True))
    parts = [f"{named['pruner']}+{named['recoverer']}"]
    parts += [_SERIES_TEXT.get(f, "{}").format(named[f]) for f in varying if f not in ("pruner", "recoverer")]
    return " ".join(parts)


def token_series(rows: Sequence[Mapping[str, Any]], metric: str = "mpjpe"
                 ) -> tuple[dict[str, list[ConfigPoint]], dict[str, float]]:
    """The tokens plot's data: ``label -> points`` (one series per pruner+recoverer, and per backbone, layer,
    number of stages ... where those vary; x = tokens kept, y = mean over seeds) and ``label -> mean`` of the
    unpruned baselines. No point averages two configurations."""
    pruned = [r for r in rows if r["pruner"] != "none" and r.get("tokens") is not None]
    series_of = {id(r): config_key(r, _ALONG_TOKENS) for r in pruned}
    keys = list(dict.fromkeys(series_of.values()))
    varying = [f for i, f in enumerate(_SERIES_FIELDS) if len({k[i] for k in keys}) > 1]
    series: dict[str, list[ConfigPoint]] = {}
    for k in keys:
        members = [r for r in pruned if series_of[id(r)] == k]
        points = seed_means(members, metric, "tokens")
        series[_series_label(k, varying)] = sorted(points, key=lambda p: p.x)
    baselines: dict[str, list[float]] = defaultdict(list)
    backbones = {r["backbone"] for r in rows}
    for r in rows:
        if r["pruner"] == "none" and r.get(metric) is not None:
            baselines["unpruned" + (f" {r['backbone']}" if len(backbones) > 1 else "")].append(float(r[metric]))
    return series, {k: statistics.fmean(v) for k, v in baselines.items()}


def tokens_chart(rows: Sequence[Mapping[str, Any]], stem: str | Path, *, metric: str = "mpjpe",
                 title: str = "") -> list[Path]:
    """``metric`` vs final token count: one line per pruner+recoverer (:func:`token_series`), each point the
    mean over seeds with its 95 % interval; unpruned baselines as horizontal lines."""
    series, baselines = token_series(rows, metric)
    if not any(series.values()):
        raise ResultsError(f"No pruned trial with a token count and {metric!r}: nothing to plot")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    points = [p for pts in series.values() for p in pts]
    for i, (label, pts) in enumerate(sorted(series.items())):
        ax.errorbar([p.x for p in pts], [p.y for p in pts], yerr=list(zip(*(p.yerr for p in pts), strict=True)),
                    marker=MARKERS[i % len(MARKERS)], capsize=2, label=label)
    for j, (label, value) in enumerate(sorted(baselines.items())):
        ax.axhline(value, color="gray", ls=[":", "-.", "--"][j % 3], label=label)
    ax.set_xlabel("tokens kept (last stage)")
    ax.set_ylabel(axis_label(metric))
    ax.set_title(title or f"{axis_label(metric)} vs token count")
    fig.text(0.5, -0.02, _seeds_note(points), ha="center", va="top", fontsize=6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, stem)


def learning_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], stem: str | Path, *,
                    keys: Sequence[str] = (metric_key("train", "loss"), metric_key("test", "mpjpe")),
                    title: str = "") -> list[Path]:
    """Per-epoch curves: one panel per key, one line per trial (``label -> [{epoch, key: value}, ...]``)."""
    present = [k for k in keys if any(k in row for hist in histories.values() for row in hist)]
    if not present:
        raise ResultsError(f"No history has any of {list(keys)}: nothing to plot")
    fig = Figure(figsize=(5 * len(present), 3.5))
    axes = fig.subplots(1, len(present), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        for label, hist in sorted(histories.items()):
            pts = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(hist) if key in row]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.2, 1.4 ticks
        ax.set_ylabel(axis_label(key))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


#: ``h2ot plots --kind``: chart name -> function of (rows, stem, metric)
CHARTS = {"pareto": pareto_chart, "tokens": tokens_chart}


def plot_trials(engine: Engine, out_dir: str | Path, kinds: Sequence[str], *, metric: str = "mpjpe",
                filters: Mapping[str, Sequence[Any]] | None = None, campaign: Campaigns = None,
                status: Sequence[str] | None = None) -> list[Path]:
    """Draw each chart of ``kinds`` (see :data:`CHARTS`) for the selected trials into ``out_dir/<kind>``.

    Trials are read from the leaderboard (test split, average over actions); ``status`` defaults to
    complete trials only. Returns the PNG and PDF paths.
    """
    for kind in kinds:
        if kind not in CHARTS:
            raise unknown("plot kind", kind, list(CHARTS))
    rows = leaderboard(engine, filters, campaign=campaign, status=list(status or [TrialStatus.COMPLETE]), sort=metric)
    return [path for kind in kinds for path in CHARTS[kind](rows, Path(out_dir) / kind, metric=metric)]
