"""``h2ot leaderboard | tables build | export | report | plots``: read-only views of the leaderboard DB."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.console import err, out, user_errors

tables_app = typer.Typer(no_args_is_help=True, help="Paper tables (Markdown, LaTeX, CSV) from table specs.")

DbOpt = Annotated[str | None, typer.Option("--db-url", envvar="H2OT_DB_URL",
                                           help="leaderboard URL (default: SQLite under results/runs)")]


def _list_opt(name: str) -> Any:
    return Annotated[str | None, typer.Option(f"--{name}", help=f"{name} values, comma-separated")]


BackboneOpt, PrunerOpt, RecovererOpt = _list_opt("backbone"), _list_opt("pruner"), _list_opt("recoverer")
ScheduleOpt, DatasetOpt, PipelineOpt = _list_opt("schedule"), _list_opt("dataset"), _list_opt("pipeline")
FramesOpt, SeedOpt, TokensOpt, LayerOpt = _list_opt("frames"), _list_opt("seed"), _list_opt("tokens"), _list_opt("layer")
CampaignOpt = Annotated[str | None, typer.Option("--campaign", help="only trials of this campaign")]
StatusOpt = Annotated[str | None, typer.Option("--status", help="complete,failed,diverged,running")]
#: leaderboard columns shown as a table / csv / markdown (JSON carries every column)
SHOWN = ("trial_key", "status", "backbone", "pruner", "recoverer", "schedule", "frames", "dataset", "seed",
         "mpjpe", "p_mpjpe", "params", "gflops", "latency_ms", "speedup_flops", "speedup_latency")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _filters(**axes: str | None) -> dict[str, list[str]]:
    return {axis: _split(v) for axis, v in axes.items() if v}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _columns(rows: list[dict[str, Any]], sort: str, group_by: list[str]) -> list[str]:
    if group_by:
        first = rows[0] if rows else {}
        base = [*group_by, "n", sort, *(c for c in SHOWN if c not in group_by and c != sort)]
        return [c for c in dict.fromkeys(base) if c in first] + [c for c in (f"{sort}_std",) if c in first]
    return list(dict.fromkeys([*SHOWN[:9], sort, *SHOWN[9:]]))


def _print_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    if fmt == "json":
        out.print_json(json.dumps(rows, default=str), indent=2) if rows else out.print("[]", highlight=False)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(r.get(c)) for c in columns] for r in rows])
        out.print(buf.getvalue(), end="", highlight=False, markup=False)
    elif fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
        out.print("\n".join(lines), highlight=False, markup=False)
    else:
        table = Table(*columns)
        for r in rows:
            table.add_row(*(_cell(r.get(c)) for c in columns))
        Console(width=max(out.width, 200), soft_wrap=True).print(table)


FORMATS = ("table", "csv", "json", "markdown")


@user_errors
def leaderboard(
    backbone: BackboneOpt = None, pruner: PrunerOpt = None, recoverer: RecovererOpt = None,
    schedule: ScheduleOpt = None, frames: FramesOpt = None, dataset: DatasetOpt = None, seed: SeedOpt = None,
    pipeline: PipelineOpt = None, tokens: TokensOpt = None, layer: LayerOpt = None,
    campaign: CampaignOpt = None, status: StatusOpt = None,
    sort: Annotated[str, typer.Option(help="metric or cost column to rank by")] = "mpjpe",
    split: Annotated[str, typer.Option(help="metric split")] = "test",
    action: Annotated[str, typer.Option(help="metric action (avg or an action name)")] = "avg",
    descending: Annotated[bool | None, typer.Option("--descending/--ascending",
                                                    help="default: the metric's direction")] = None,
    top: Annotated[int | None, typer.Option(help="show the best N rows")] = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="axes, comma-separated")] = None,
    agg: Annotated[str, typer.Option(help="per group: best trial or mean (with _std)")] = "best",
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown")] = "table",
    db_url: DbOpt = None,
) -> None:
    """Trials ranked by a metric, with params, GFLOPs and speed-up vs the unpruned baseline."""
    from results.db import make_engine
    from results.errors import unknown
    from results.queries import leaderboard as query

    if fmt not in FORMATS:
        raise unknown("format", fmt, list(FORMATS))
    filters = _filters(backbone=backbone, pruner=pruner, recoverer=recoverer, schedule=schedule, frames=frames,
                       dataset=dataset, seed=seed, pipeline=pipeline, tokens=tokens, layer=layer)
    groups = _split(group_by)
    rows = query(make_engine(db_url), filters, campaign=campaign, status=_split(status) or None, sort=sort,
                 split=split, action=action, descending=descending, top=top, group_by=groups,
                 agg=agg)  # type: ignore[arg-type]
    _print_rows(rows, _columns(rows, sort, groups), fmt)
    if not rows:
        err.print("no trials match")


@user_errors
def build(
    specs: Annotated[list[str] | None, typer.Argument(help="spec files or names in search_spaces/tables "
                                                           "(default: all)", show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("paper_tables"),
    db_url: DbOpt = None,
) -> None:
    """Write <name>.md, .tex and .csv per table spec (byte-identical on rebuild)."""
    from results.db import make_engine
    from results.render import build_tables
    from results.tables import spec_paths

    written, skipped = build_tables(make_engine(db_url), spec_paths(specs or []), out_dir, skip_empty=not specs)
    for name in skipped:
        err.print(f"skipped {name}: its filters select no complete trial")
    for path in written:
        out.print(str(path), highlight=False)


@user_errors
def export(
    out_file: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="parquet, csv or arrow")] = "parquet",
    actions: Annotated[bool, typer.Option(help="also per-action metric columns")] = False,
    backbone: BackboneOpt = None, pruner: PrunerOpt = None, recoverer: RecovererOpt = None,
    schedule: ScheduleOpt = None, frames: FramesOpt = None, dataset: DatasetOpt = None, seed: SeedOpt = None,
    pipeline: PipelineOpt = None, tokens: TokensOpt = None, layer: LayerOpt = None,
    campaign: CampaignOpt = None, status: StatusOpt = None, db_url: DbOpt = None,
) -> None:
    """One row per trial: axes, wide metrics (test_mpjpe, ...), cost and provenance."""
    from results.db import make_engine
    from results.errors import unknown
    from results.export import WRITERS, export_table, write_export

    if fmt not in WRITERS:
        raise unknown("export format", fmt, list(WRITERS))
    filters = _filters(backbone=backbone, pruner=pruner, recoverer=recoverer, schedule=schedule, frames=frames,
                       dataset=dataset, seed=seed, pipeline=pipeline, tokens=tokens, layer=layer)
    table = export_table(make_engine(db_url), filters=filters, campaign=campaign, status=_split(status) or None,
                         actions=actions)
    path = write_export(table, out_file, fmt)
    err.print(f"wrote {table.num_rows} trials, {table.num_columns} columns to {path}")


@user_errors
def report(
    campaign: Annotated[str, typer.Argument(help="campaign name")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("reports"),
    db_url: DbOpt = None,
) -> None:
    """One Markdown page: the campaign's tables and plots, what ran, what failed and why, provenance."""
    from results.db import make_engine
    from results.report import build_report

    out.print(str(build_report(make_engine(db_url), campaign, out_dir)), highlight=False)


@user_errors
def plots(
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("figures"),
    kind: Annotated[str, typer.Option(help="pareto and/or tokens, comma-separated")] = "pareto,tokens",
    metric: Annotated[str, typer.Option(help="accuracy metric (test split, avg)")] = "mpjpe",
    backbone: BackboneOpt = None, pruner: PrunerOpt = None, recoverer: RecovererOpt = None,
    frames: FramesOpt = None, dataset: DatasetOpt = None, campaign: CampaignOpt = None, db_url: DbOpt = None,
) -> None:
    """Accuracy vs GFLOPs (Pareto front marked) and accuracy vs token count, as PNG and PDF."""
    from results.db import make_engine
    from results.errors import unknown
    from results.plots import pareto_chart, tokens_chart
    from results.queries import leaderboard as query

    charts = {"pareto": lambda rows: pareto_chart(rows, out_dir / "pareto", metric=metric),
              "tokens": lambda rows: tokens_chart(rows, out_dir / "tokens", metric=metric)}
    kinds = _split(kind)
    for k in kinds:
        if k not in charts:
            raise unknown("plot kind", k, list(charts))
    filters = _filters(backbone=backbone, pruner=pruner, recoverer=recoverer, frames=frames, dataset=dataset)
    rows = query(make_engine(db_url), filters, campaign=campaign, status=["complete"], sort=metric)
    for k in kinds:
        for path in charts[k](rows):
            out.print(str(path), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard)
    tables_app.command("build")(build)
    app.add_typer(tables_app, name="tables")
    app.command("export")(export)
    app.command("report")(report)
    app.command("plots")(plots)
