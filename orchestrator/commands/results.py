"""``h2ot leaderboard | tables build | export | report | plots``: read-only views of the leaderboard DB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from h2ot_core.registry import unknown_message
from h2ot_core.vocabulary import check_name
from orchestrator.commands.options import (
    ColumnsOpt,
    DbUrlOpt,
    FormatOpt,
    TrialFilter,
    split_list,
    with_trial_filter,
)
from orchestrator.console import (
    TABLE_FORMATS,
    cell_text,
    check_columns,
    err,
    fail,
    out,
    print_rows,
    user_errors,
)

tables_app = typer.Typer(no_args_is_help=True, help="Paper tables (Markdown, LaTeX, CSV) from table specs.")

#: leaderboard columns shown as a table / csv / markdown (JSON carries every column)
SHOWN = ("trial_key", "status", "backbone", "pruner", "recoverer", "schedule", "frames", "dataset", "seed",
         "protocol", "selection", "mpjpe", "p_mpjpe", "params", "gflops", "latency_ms", "speedup_flops",
         "speedup_latency", "device_hours")
#: where the metrics start in :data:`SHOWN` (the sort column goes there)
_FIRST_METRIC = SHOWN.index("mpjpe")


#: default columns shown only when some row has them (trials recorded before their device time was measured)
MEASURED_SINCE_0006 = frozenset({"device_hours"})

#: the leaderboard columns a narrow terminal loses first
DROP_ORDER = ("params", "device_hours", "speedup_latency", "p_mpjpe", "speedup_flops", "status", "latency_ms", "seed")


def print_leaderboard(rows: list[dict[str, Any]], sort: str, group_by: list[str], fmt: str, title: str = "",
                      columns: list[str] | None = None) -> None:
    """Leaderboard rows as ``h2ot leaderboard`` shows them (also used by ``campaign run`` for its best trials).

    ``columns`` (``--columns``) replaces the default columns, and the compact table then keeps every one of
    them. In a table or Markdown a latency timed under CPU contention carries a mark, explained on stderr;
    CSV gets the ``latency_contended`` column instead.
    """
    from results.numbers import CONTENDED_MARK, CONTENDED_NOTE, LATENCY_VALUES

    shown = check_columns(columns, rows, _columns(rows, sort, group_by)) if columns else _columns(rows, sort, group_by)
    marked = LATENCY_VALUES & set(shown)
    contended = any(r.get("latency_contended") for r in rows) and bool(marked)
    if contended and fmt in ("table", "markdown"):
        rows = [{**r, **{c: f"{cell_text(c, r[c])}{CONTENDED_MARK}" for c in marked if r.get(c) is not None}}
                if r.get("latency_contended") else r for r in rows]
    elif contended and fmt == "csv" and "latency_contended" not in shown:
        shown = [*shown, "latency_contended"]
    if columns and fmt == "json":
        rows = [{c: r.get(c) for c in shown} for r in rows]
    shown = print_rows(rows, shown, fmt, title=title, compact=not columns, droppable=() if columns else DROP_ORDER)
    if contended and fmt in ("table", "markdown") and marked & set(shown):
        err.print(CONTENDED_NOTE, highlight=False, markup=False)


def _columns(rows: list[dict[str, Any]], sort: str, group_by: list[str]) -> list[str]:
    if group_by:
        first = rows[0] if rows else {}
        base = [*group_by, "n", sort, *(c for c in SHOWN if c not in group_by and c != sort)]
        stats = (f"{sort}_std", f"{sort}_ci_low", f"{sort}_ci_high", "p_vs_baseline")
        return [c for c in dict.fromkeys(base) if c in first] + [c for c in stats if c in first]
    shown = list(dict.fromkeys([*SHOWN[:_FIRST_METRIC], sort, *SHOWN[_FIRST_METRIC:]]))
    # device time exists only on rows trained since it is measured: no empty column for older leaderboards
    return [c for c in shown if c not in MEASURED_SINCE_0006 or c == sort or any(r.get(c) is not None for r in rows)]


@user_errors
@with_trial_filter
def leaderboard(
    *,
    where: TrialFilter,
    sort: Annotated[str, typer.Option(help="metric or cost column to rank by")] = "mpjpe",
    split: Annotated[str, typer.Option(help="metric split")] = "test",
    action: Annotated[str, typer.Option(help="metric action (avg or an action name)")] = "avg",
    descending: Annotated[bool | None, typer.Option("--descending/--ascending",
                                                    help="default: the metric's direction")] = None,
    top: Annotated[int | None, typer.Option(help="show the best N rows")] = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="axes, comma-separated")] = None,
    agg: Annotated[str, typer.Option(help="per group: best trial, or mean (with _std, a 95% bootstrap CI over seeds and the "
                                             "paired-test p-value against the unpruned baseline)")] = "best",
    fmt: FormatOpt = "table",
    columns: ColumnsOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Trials ranked by a metric, with params, GFLOPs and speed-up vs the unpruned baseline.

    The table leaves out columns with the same value in every row (stated once above it); --columns picks
    the columns (any field --format json shows)."""
    from results.db import open_read_only
    from results.queries import leaderboard as query

    groups = split_list(group_by)
    rows = query(open_read_only(db_url), **where.query(), sort=sort, split=split, action=action,
                 descending=descending, top=top, group_by=groups, agg=agg)  # type: ignore[arg-type]
    print_leaderboard(rows, sort, groups, fmt, columns=split_list(columns) or None)
    if not rows:
        err.print("no trials match")


@user_errors
def build(
    specs: Annotated[list[str] | None, typer.Argument(help="spec files or names in search_spaces/tables "
                                                           "(default: all)", show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("paper_tables"),
    campaign: Annotated[str | None, typer.Option(
        "--campaign", help="build from this campaign (e.g. token_sweep-tiny), or several comma-separated (each "
                           "into OUT/<campaign>/); default: per spec, a campaign of the grid it names, without "
                           "profile first, else the most recent")] = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Write <name>.md, .tex and .csv per table spec (byte-identical on rebuild); fails if none is built."""
    from results.db import open_read_only
    from results.errors import ResultsError
    from results.render import build_tables
    from results.table_spec import spec_paths

    engine, paths, names = open_read_only(db_url), spec_paths(specs or []), split_list(campaign)
    written: list[Path] = []
    skipped: list[str] = []
    chosen: list[str | None] = [*names] or [None]  # None: each spec picks its campaign
    for name in chosen:
        folder = out_dir / name if len(names) > 1 and name else out_dir
        done, passed = build_tables(engine, paths, folder, skip_empty=not specs, campaign=name)
        written += done
        skipped += [f"{s} ({name})" if len(names) > 1 else s for s in passed]
    for name in skipped:
        err.print(f"skipped {name}: its filters select no complete trial")
    for path in written:
        out.print(str(path), highlight=False)
    if not written:
        raise ResultsError("no table built: no spec selects a complete trial"
                           + (f" of campaign {campaign!r}" if campaign else "; name a campaign with --campaign"))


@user_errors
@with_trial_filter
def export(
    out_file: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str | None, typer.Option("--format", help="parquet, csv or arrow (default: by the --out "
                                                             "suffix: .parquet, .csv, .arrow)", show_default=False)]
    = None,
    actions: Annotated[bool, typer.Option(help="also per-action metric columns")] = False,
    *,
    where: TrialFilter,
    db_url: DbUrlOpt = None,
) -> None:
    """One row per trial: axes, wide metrics (test_mpjpe, ...), cost and provenance."""
    from results.db import open_read_only
    from results.export import export_format, export_trials

    export_format(out_file, fmt)  # a bad name or format before the database is opened
    table = export_trials(open_read_only(db_url), out_file, fmt, actions=actions, **where.query())
    err.print(f"wrote {table.num_rows} trials, {table.num_columns} columns to {out_file}")


@user_errors
def report(
    campaign: Annotated[str | None, typer.Argument(help="campaign name, or several comma-separated (one page "
                                                        "each; or --campaign)", show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("reports"),
    campaign_opt: Annotated[str | None, typer.Option("--campaign", help="campaign name(s) (e.g. token_sweep-tiny)",
                                                     show_default=False)] = None,
    video: Annotated[bool, typer.Option(help="add the qualitative figure: the best pruned trial beside the unpruned "
                                             "baseline on a test clip (h2ot video, a few seconds)")] = True,
    db_url: DbUrlOpt = None,
) -> None:
    """One Markdown page per campaign: its tables and plots, what ran, what failed and why, provenance."""
    from results.db import open_read_only
    from results.errors import ResultsError
    from results.report import build_report

    if campaign and campaign_opt and campaign != campaign_opt:
        raise ResultsError(f"two campaigns given ({campaign!r} and --campaign {campaign_opt!r}); give one")
    names = split_list(campaign or campaign_opt)
    if not names:
        raise ResultsError("name the campaign: h2ot report NAME (or --campaign NAME)")
    for name in names:
        check_name(name, "campaign")  # it names the report's file: no path in it
    from results.queries import check_campaign

    engine = open_read_only(db_url)
    check_campaign(engine, names)  # every name before any page is written
    for name in names:
        qualitative = None
        if video:
            from orchestrator.commands.video import campaign_figure

            qualitative = campaign_figure(engine, name, out_dir.resolve() / "figures")
        out.print(str(build_report(engine, name, out_dir, qualitative=qualitative)), highlight=False)


@user_errors
@with_trial_filter
def plots(
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("figures"),
    kind: Annotated[str, typer.Option(help="pareto and/or tokens, comma-separated")] = "pareto,tokens",
    metric: Annotated[str, typer.Option(help="accuracy metric (test split, avg)")] = "mpjpe",
    *,
    where: TrialFilter,
    db_url: DbUrlOpt = None,
) -> None:
    """Accuracy vs GFLOPs (Pareto front marked) and accuracy vs token count, as PNG and PDF.

    Plots complete trials unless --status says otherwise.
    """
    from results.db import open_read_only
    from results.plots import plot_trials

    for path in plot_trials(open_read_only(db_url), out_dir, split_list(kind), metric=metric, **where.query()):
        out.print(str(path), highlight=False)


@user_errors
def pareto(
    campaign: Annotated[str, typer.Option("--campaign", help="campaign name, or several comma-separated (one front "
                                                            "over their trials)", show_default=False)],
    x: Annotated[str, typer.Option("--x", help="cost axis (metric or cost column)")] = "gflops",
    y: Annotated[str, typer.Option("--y", help="accuracy axis (test split, avg)")] = "mpjpe",
    ref: Annotated[str | None, typer.Option(help="hypervolume reference point X,Y (default: the worst "
                                                 "values pushed out by 10% of their range)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="also write pareto.md/.tex/.csv/.png/.pdf here")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or markdown (or latex)")] = "table",
    db_url: DbUrlOpt = None,
) -> None:
    """The campaign's non-dominated trials in (X, Y) and the hypervolume they dominate."""
    from results.db import open_read_only
    from results.front import FRONT_COLUMNS, campaign_front, front_text, hypervolume_note, write_front

    if fmt not in (*TABLE_FORMATS, "latex"):
        raise fail(unknown_message("format", fmt, [*TABLE_FORMATS, "latex"]))
    front = campaign_front(open_read_only(db_url), split_list(campaign), x, y, _point(ref))
    if fmt in ("table", "json"):
        columns = [*FRONT_COLUMNS, x, y]
        print_rows([{c: r.get(c) for c in columns} for r in front.front], columns, fmt, compact=False)
    else:
        out.print(front_text(front, fmt), end="", highlight=False, markup=False)
    if out_dir is not None:
        for path in write_front(front, out_dir):
            err.print(str(path), highlight=False)
    err.print(hypervolume_note(front), highlight=False)


def _point(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise fail(f"--ref {text!r}: expected two numbers X,Y, e.g. 0.05,600") from None
    return x, y


def register(app: typer.Typer) -> None:
    app.command("pareto")(pareto)
    app.command("leaderboard")(leaderboard)
    tables_app.command("build")(build)
    app.add_typer(tables_app, name="tables")
    app.command("export")(export)
    app.command("report")(report)
    app.command("plots")(plots)
