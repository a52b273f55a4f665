"""Figures from plain data (leaderboard rows, per-epoch dicts): PNG and PDF.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot state), so it is headless and safe to
call from any thread.

Files carry no timestamps (PDF ``CreationDate`` is dropped) so figures rebuild identically. Axes are
labelled with units (``MPJPE (mm)``, ``GFLOPs``) from ``h2ot_core.contracts.METRICS``.
:func:`plot_trials` reads the rows from the leaderboard for ``h2ot plots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure
from sqlalchemy import Engine

from h2ot_core.contracts import METRICS, TrialStatus, lower_is_better, metric_key, parse_metric_key
from results.errors import ResultsError, unknown
from results.pareto import pareto_front
from results.queries import leaderboard

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


def pareto_chart(rows: Sequence[Mapping[str, Any]], stem: str | Path, *, metric: str = "mpjpe",
                 cost: str = "gflops", better: Better = "min", title: str = "", note: str = "") -> list[Path]:
    """Accuracy vs cost: one marker per pruner+recoverer, the Pareto front drawn and its points solid,
    dominated points faded, unpruned baselines outlined in black.

    ``rows`` are leaderboard rows (need ``pruner``, ``recoverer``, ``metric`` and ``cost``); rows missing
    either value are left out. ``note`` (e.g. the hypervolume) goes under the title. Returns the PNG and
    PDF paths.
    """
    usable = [r for r in rows if r.get(metric) is not None and r.get(cost) is not None]
    if not usable:
        raise ResultsError(f"No trial has both {metric!r} and {cost!r}: nothing to plot")
    points = [(float(r[cost]), float(r[metric])) for r in usable]
    on_front = set(pareto_front(points, (lower_is_better(cost), better == "min")))
    configs = sorted({_config(r) for r in usable})
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, config in enumerate(configs):
        for front in (True, False):
            pts = [p for j, (p, r) in enumerate(zip(points, usable, strict=True))
                   if _config(r) == config and (j in on_front) == front]
            if not pts:
                continue
            baseline = config == "unpruned"
            ax.scatter(*zip(*pts, strict=True), marker=MARKERS[i % len(MARKERS)], color=f"C{i}",
                       label=config if front or not any(_config(usable[j]) == config for j in on_front) else None,
                       s=70 if baseline else 40, edgecolors="black" if baseline else "none",
                       alpha=1.0 if front else 0.3, zorder=3 if front else 2)
    line = sorted(points[j] for j in on_front)
    ax.plot([p[0] for p in line], [p[1] for p in line], "k--", lw=1, label="Pareto front", zorder=2)
    ax.set_xlabel(axis_label(cost))
    ax.set_ylabel(axis_label(metric))
    ax.set_title(title or f"{axis_label(metric)} vs {axis_label(cost)}", fontsize=10)
    if note:
        fig.text(0.5, -0.02, note, ha="center", va="top", fontsize=6, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, stem)


def tokens_chart(rows: Sequence[Mapping[str, Any]], stem: str | Path, *, metric: str = "mpjpe",
                 title: str = "") -> list[Path]:
    """``metric`` vs final token count, one line per pruner (mean over seeds); unpruned as a line."""
    lines: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    baselines = []
    for r in rows:
        if r.get(metric) is None:
            continue
        if r["pruner"] == "none":
            baselines.append(float(r[metric]))
        elif r.get("tokens") is not None:
            lines[r["pruner"]][int(r["tokens"])].append(float(r[metric]))
    if not lines:
        raise ResultsError(f"No pruned trial with a token count and {metric!r}: nothing to plot")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (pruner, by_tokens) in enumerate(sorted(lines.items())):
        xs = sorted(by_tokens)
        ax.plot(xs, [sum(by_tokens[x]) / len(by_tokens[x]) for x in xs], marker=MARKERS[i % len(MARKERS)],
                label=pruner)
    if baselines:
        ax.axhline(sum(baselines) / len(baselines), color="gray", ls=":", label="unpruned")
    ax.set_xlabel("tokens kept (last stage)")
    ax.set_ylabel(axis_label(metric))
    ax.set_title(title or f"{axis_label(metric)} vs token count")
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
        ax.set_ylabel(axis_label(key))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


#: ``h2ot plots --kind``: chart name -> function of (rows, stem, metric)
CHARTS = {"pareto": pareto_chart, "tokens": tokens_chart}


def plot_trials(engine: Engine, out_dir: str | Path, kinds: Sequence[str], *, metric: str = "mpjpe",
                filters: Mapping[str, Sequence[Any]] | None = None, campaign: str | None = None,
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
