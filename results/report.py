"""``h2ot report CAMPAIGN``: one Markdown page with the campaign's tables, plots, failures and provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from h2ot_core.contracts import STATUSES, StopReason, TrialStatus
from results.errors import ResultsError
from results.markdown import markdown_table
from results.numbers import CONTENDED_MARK, CONTENDED_NOTE, LATENCY_VALUES, number_text
from results.plots import learning_curves, pareto_chart, tokens_chart
from results.queries import check_campaign, leaderboard, metric_names
from results.render import to_markdown, write_table
from results.schema import Campaign, CampaignRun, Trial
from results.store import LeaderboardStore
from results.table_campaigns import resolve_specs, stored_campaigns
from results.table_spec import load_spec, spec_paths
from results.tables import build_table
from results.usage import campaign_usage

_LEADER_COLUMNS = ("trial_key", "pruner", "recoverer", "schedule", "seed", "precision", "mpjpe", "p_mpjpe", "gflops",
                   "speedup_flops", "latency_ms", "speedup_latency", "device_hours", "clips_per_s", "peak_memory_mb")
_PROVENANCE = ("git_sha", "device", "device_name", "data_fingerprint", "selection", "protocol")
#: provenance entries stored with the package versions that are settings, not versions
_SETTINGS = ("num_threads",)


def _fmt(column: str, value: Any) -> str:
    """A cell at its protocol's precision (:mod:`results.numbers`); ``–`` when missing."""
    return "–" if value is None else number_text(column, value)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return markdown_table(header, [[_fmt(h, v) for h, v in zip(header, row, strict=True)] for row in rows]
                          ).splitlines()


def _leader_cells(row: Mapping[str, Any]) -> list[Any]:
    """A leaderboard row's cells, its latencies marked when contended."""
    mark = CONTENDED_MARK if row.get("latency_contended") else ""
    return [f"{_fmt(c, row.get(c))}{mark}" if c in LATENCY_VALUES and row.get(c) is not None and mark
            else row.get(c) for c in _LEADER_COLUMNS]


def _latency_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the report says about how its latencies were timed."""
    timed = [r for r in rows if r.get("latency_ms") is not None]
    contended = [r for r in timed if r.get("latency_contended")]
    if not contended:
        return []
    return [f"Latency: {len(contended)} of {len(timed)} timed trials were timed while other trials shared the "
            f"CPU (contended); their latencies and latency speed-ups are marked {CONTENDED_MARK} and read slower "
            "and noisier than alone (`h2ot profile` times one configuration alone).", ""]


def _first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[-1:] or ["(no error recorded)"]
    return line[0][:limit]


def build_report(engine: Engine, campaign: str, out_dir: str | Path, *,
                 histories: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
                 qualitative: tuple[Path | None, str] | None = None) -> Path:
    """Write ``<out_dir>/<campaign>.md`` (plus figures and table files under it); returns the page's path.

    ``histories`` (trial label -> per-epoch dicts) draws the learning curves; by default those of the best
    :data:`CURVES_TOP` complete trials, as the leaderboard keeps them (``trials.history_json``). ``qualitative``
    (a figure under ``out_dir`` made by the caller, ``h2ot video``'s best pruned trial beside its unpruned
    baseline, and its caption; no figure: the caption says why) adds a section showing it.
    """
    check_campaign(engine, campaign)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        info = conn.execute(select(*Campaign.__table__.columns).where(Campaign.name == campaign)).mappings().one()
    # rank by the campaign's metric when trials recorded it (a grid may name one no trial reports yet)
    sort = info["metric"] if info["metric"] in metric_names(engine) else "mpjpe"
    rows = leaderboard(engine, campaign=campaign, sort=sort)
    if not rows:
        raise ResultsError(f"Campaign {campaign!r} has no trials yet: nothing to report")
    counts = Counter(r["status"] for r in rows)
    gone = LeaderboardStore(engine=engine).interrupted(campaign)
    if gone:  # recorded running, but no driver renews their claims: not live
        counts[TrialStatus.RUNNING] -= len(gone)
        counts[StopReason.INTERRUPTED] = len(gone)
    lines = [f"# Campaign `{campaign}`", "",
             f"Grid: `{info['grid_path'] or '–'}` (version {info['version']}); ranking metric "
             f"`{info['metric']}` ({info['mode']}); launched from git `{info['git_sha'] or 'unknown'}`.", "",
             "## What ran", "", *_md_table(["status", "trials"], [(s, counts[s]) for s in (*STATUSES, *sorted(set(counts) - set(STATUSES))) if counts[s]]),
             ""]
    lines += ["## What it cost", "", *(f"- {line}" for line in campaign_usage(engine, campaign).lines()), ""]
    lines += _launches_section(engine, campaign)
    lines += _latency_lines(rows)
    lines += _tables_section(engine, campaign, out)
    if "search" in (yaml.safe_load(info["grid_yaml"] or "") or {}):
        lines += _front_section(engine, campaign, out)
    lines += _plots_section(rows, _stored_histories(engine, rows) if histories is None else histories, out)
    if qualitative is not None:
        lines += _qualitative_section(*qualitative, out)
    complete = [r for r in rows if r["status"] == TrialStatus.COMPLETE]
    lines += ["## Leaderboard", "", *_md_table(_LEADER_COLUMNS, [_leader_cells(r) for r in complete]), ""]
    if any(r.get("latency_contended") for r in complete):
        lines += [CONTENDED_NOTE, ""]
    bad = [r for r in rows if r["status"] in (TrialStatus.FAILED, TrialStatus.DIVERGED)]
    lines += ["## Failures", ""]
    lines += (_md_table(["trial_key", "status", "pruner", "recoverer", "schedule", "error"],
                        [[r["trial_key"], r["status"], r["pruner"], r["recoverer"], r["schedule"],
                          _first_line(r["error"]) if r["status"] == TrialStatus.FAILED else "training loss became NaN/inf"]
                         for r in bad]) if bad else ["None."])
    lines += ["", "## Provenance", ""]
    prov = [[c, ", ".join(sorted({str(r[c]) for r in rows if r.get(c) is not None})) or "–"] for c in _PROVENANCE]
    prov.append(["package versions", "; ".join(_versions(rows)) or "–"])
    threads = sorted({str(r["package_versions"][k]) for r in rows for k in _SETTINGS
                      if isinstance(r.get("package_versions"), Mapping) and k in r["package_versions"]})
    if threads:
        prov.append(["threads per trial", ", ".join(threads)])
    lines += _md_table(["field", "values"], prov)
    path = out / f"{campaign}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return path


def _qualitative_section(figure: Path | None, caption: str, out: Path) -> list[str]:
    lines = ["## Qualitative: best pruned trial vs unpruned baseline", ""]
    if figure is None:
        return [*lines, f"No figure: {caption}.", ""]
    where = Path(figure).resolve().relative_to(out.resolve()).as_posix()
    return [*lines, f"![best pruned vs unpruned]({where})", "", caption, ""]


def _front_section(engine: Engine, campaign: str, out: Path) -> list[str]:
    """A search campaign's Pareto front (MPJPE vs GFLOPs): its trials, hypervolume and plot."""
    from results.front import campaign_front, front_text, write_front

    try:
        front = campaign_front(engine, campaign)
    except ResultsError as exc:
        return ["## Pareto front", "", str(exc), ""]
    write_front(front, out / "figures", "front")
    return ["## Pareto front", "", front_text(front, "markdown").rstrip(), "",
            "![Pareto front: MPJPE vs GFLOPs](figures/front.png)", ""]


def _versions(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct set of package versions the trials ran with: ``python 3.11.7, torch 2.13.0+cpu, ...``."""
    sets = set()
    for r in rows:
        found = {k: str(v) for k, v in (r.get("package_versions") or {}).items() if k not in _SETTINGS}
        if r.get("torch_version"):
            found["torch"] = str(r["torch_version"])
        if found:
            sets.add(", ".join(f"{k} {v}" for k, v in sorted(found.items())))
    return sorted(sets)


def _tables_section(engine: Engine, campaign: str, out: Path) -> list[str]:
    lines = ["## Tables", ""]
    # every spec of the campaign's grid, whatever its profile (token_sweep-tiny is built by token_sweep's specs)
    ref = next(c for c in stored_campaigns(engine) if c.name == campaign)
    paths = [p for p in spec_paths() if (grid := load_spec(p).campaign) is not None and ref.matches(grid)]
    specs = resolve_specs(engine, paths, campaign=campaign, named=True)
    built = 0
    for spec in specs:
        table = build_table(engine, spec)
        if table.row_keys:
            write_table(table, out / "tables")
            lines += [to_markdown(table), ""]
            built += 1
    if not built:
        lines += ["No table spec in search_spaces/tables selects this campaign; see the leaderboard below.", ""]
    return lines


def _launches_section(engine: Engine, campaign: str) -> list[str]:
    """Each launch of the campaign with the grid it ran (``campaign_runs``), and a note when they ran more than
    one grid (``--append``, or the grid file edited between launches): the grid named above is the latest."""
    with engine.connect() as conn:
        runs = conn.execute(select(CampaignRun.started_at, CampaignRun.grid_path, CampaignRun.grid_hash,
                                   CampaignRun.host, CampaignRun.outcome)
                            .where(CampaignRun.campaign == campaign).order_by(CampaignRun.started_at)).all()
    if not runs:
        return []
    lines = ["## Launches", ""]
    grids = {r.grid_hash for r in runs if r.grid_hash}
    if len(grids) > 1:
        lines += [f"These launches ran {len(grids)} different grids (`--append`, or the grid edited in between): "
                  "the trials of all of them are this campaign's, and the grid named above is the latest.", ""]
    cells = [(r.started_at.isoformat(sep=" ", timespec="seconds"), f"`{r.grid_path or '–'}`",
              f"`{(r.grid_hash or '–')[:12]}`", r.host, r.outcome or "running, or its driver was killed")
             for r in runs]
    return [*lines, *_md_table(["started", "grid", "grid hash", "host", "outcome"], cells), ""]


#: the learning curves a report draws by default: this many of the best complete trials
CURVES_TOP = 8


def _stored_histories(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``label -> per-epoch reports`` of the best :data:`CURVES_TOP` complete trials of ``rows`` (ranked), as the
    leaderboard stores them; trials without a history are left out."""
    chosen = [r for r in rows if r["status"] == TrialStatus.COMPLETE][:CURVES_TOP]
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Trial.trial_key, Trial.history_json).where(
            Trial.trial_key.in_([r["trial_key"] for r in chosen]))).all())
    out: dict[str, list[dict[str, Any]]] = {}
    for r in chosen:
        history = json.loads(stored.get(r["trial_key"]) or "[]")
        if history:
            model = f"{r['pruner']}+{r['recoverer']} {r['schedule']}" if r.get("schedule") else "unpruned"
            out[f"{model} s{r['seed']} ({r['trial_key'][:6]})"] = history
    return out


def _plots_section(rows: Sequence[Mapping[str, Any]], histories: Mapping[str, Any] | None, out: Path
                   ) -> list[str]:
    lines = ["## Plots", ""]
    complete = [r for r in rows if r["status"] == TrialStatus.COMPLETE]
    figures = out / "figures"
    if any(r.get("gflops") is not None and r.get("mpjpe") is not None for r in complete):
        pareto_chart(complete, figures / "pareto")
        lines += ["![MPJPE vs GFLOPs](figures/pareto.png)", ""]
    if len({r["tokens"] for r in complete if r["pruner"] != "none" and r.get("mpjpe") is not None}) > 1:
        tokens_chart(complete, figures / "tokens")
        lines += ["![MPJPE vs tokens](figures/tokens.png)", ""]
    if histories:
        learning_curves(histories, figures / "curves")
        lines += ["![Learning curves](figures/curves.png)", ""]
    if len(lines) == 2:
        lines += ["No plottable results.", ""]
    return lines
