"""``h2ot campaign run | validate | status``: grids to Ray Tune in the terminal, with resume and dedupe by
trial_key (``submit`` and ``stop``, a campaign as a Ray job: :mod:`orchestrator.commands.campaign_jobs`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from h2ot_core.contracts import STATUSES, StopReason, TrialStatus
from h2ot_core.environment import SCRATCH_DIR, STORAGE
from orchestrator.commands.campaign_jobs import print_job_state, stop, submit
from orchestrator.commands.options import (
    AppendOpt,
    AshaOpt,
    CpusOpt,
    DbUrlOpt,
    FormatOpt,
    GpusOpt,
    GridArg,
    JobAddressOpt,
    MaxConcurrentOpt,
    NameOpt,
    ProfileOpt,
    RerunOpt,
    RerunStoppedOpt,
    RetriesOpt,
    SeedsOpt,
    check_resources,
)
from orchestrator.console import ago, err, out, print_rows, user_errors
from orchestrator.grid_reuse import check_grid_reuse

if TYPE_CHECKING:
    from h2ot_core.contracts import TrialSpec
    from orchestrator.cluster import LaunchOptions
    from orchestrator.grid import GridSpec
    from orchestrator.launcher import CampaignOutcome
    from results.store import LeaderboardStore

campaign_app = typer.Typer(no_args_is_help=True, help="Run ablation grids on Ray Tune, here or as a Ray job; resume; status; stop.")

#: columns of the expanded-trials table, in order
TRIAL_COLUMNS = ("backbone", "pipeline", "pruner", "recoverer", "schedule", "frames", "dataset", "seed")


def _trials_table(grid: GridSpec, specs: list[TrialSpec], done: set[str] | None = None) -> Table:
    """One row per trial: key and axes (and, for a dry run, whether it runs or is reused)."""
    status = ("status",) if done is not None else ()
    table = Table("#", "trial_key", *TRIAL_COLUMNS, *status, title=grid.name)
    for i, spec in enumerate(specs):
        row = {**spec.to_dict(), "pipeline": spec.effective_pipeline}
        cells = [str(i), spec.trial_key, *(str(row[c]) for c in TRIAL_COLUMNS)]
        if done is not None:
            cells.append("kept" if spec.trial_key in done else "to run")
        table.add_row(*cells)
    return table


def _print_wide(table: Table) -> None:
    # Keys and axes are data: never truncate them to a narrow (or non-tty, 80-column) terminal.
    Console(width=max(out.width, 160), soft_wrap=True).print(table)



def _search_summary(grid: GridSpec) -> str:
    search = grid.search
    assert search is not None
    cap = f", at most {search.max_gflops} GFLOPs" if search.max_gflops is not None else ""
    objectives = ", ".join(f"{k} {v}" for k, v in search.objectives.items())
    return (f"search of {search.trials} configuration(s) x {search.seeds} seed(s) by {search.sampler} "
            f"(seed {search.sampler_seed}){cap}; objectives {objectives}")


@user_errors
def validate(grid_path: GridArg, profile: ProfileOpt = None, seeds: SeedsOpt = None, fmt: FormatOpt = "table"
             ) -> None:
    """Check a grid (every name and combination) and print its expanded trials, or a search's plan."""
    from orchestrator.datasets import check_data
    from orchestrator.grid import load_grid

    grid = load_grid(grid_path, profile, seeds=seeds)
    check_data(grid, str(grid_path))
    if grid.search is not None:
        err.print(f"{grid_path}: valid, {_search_summary(grid)}")
        return
    specs = grid.expand()
    if fmt == "table":
        _print_wide(_trials_table(grid, specs))
    else:
        rows = [{"trial_key": s.trial_key, **{c: getattr(s, c) for c in TRIAL_COLUMNS if c != "pipeline"},
                 "pipeline": s.effective_pipeline} for s in specs]
        print_rows(rows, ["trial_key", *TRIAL_COLUMNS], fmt, title=grid.name)
    err.print(f"{grid_path}: valid, {len(specs)} trials")


@user_errors
def run(
    grid_path: GridArg,
    profile: ProfileOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would run; start nothing")] = False,
    rerun: RerunOpt = False,
    rerun_stopped: RerunStoppedOpt = False,
    address: Annotated[str | None, typer.Option(
        "--address", show_default=False,
        help="join a Ray cluster: auto or HEAD:6379 (default: RAY_ADDRESS, then H2OT_RAY_ADDRESS, else a local "
             "instance; a Ray job's driver has RAY_ADDRESS)")] = None,
    num_cpus: Annotated[int | None, typer.Option(
        "--num-cpus", help="CPUs of the local Ray instance (default: what Ray detects)", show_default=False)] = None,
    cpus_per_trial: CpusOpt = 1.0,
    gpus_per_trial: GpusOpt = None,
    max_concurrent: MaxConcurrentOpt = None,
    retries: RetriesOpt = 2,
    asha: AshaOpt = False,
    db_url: DbUrlOpt = None,
    name: NameOpt = None,
    append: AppendOpt = False,
    seeds: SeedsOpt = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE.name, show_default=False,
        help="where checkpoints, models and Ray's folders live: a shared path, s3://bucket/prefix or "
             "gs://bucket/prefix (default: the runs folder)")] = None,
) -> None:
    """Train every trial of GRID not yet complete in the leaderboard (re-run to resume after a crash).

    A search file (``search:`` instead of ``grid:``) proposes its trials with Optuna until its budget is
    spent; re-running it resumes the study.

    Exit code 0 when every trial ended complete or diverged, 1 when any failed or did not finish, 2 for a
    bad grid or option, 130 after Ctrl-C (143 after SIGTERM): the trials in flight are recorded stopped
    (interrupted) and the same command resumes them; a second Ctrl-C exits at once.
    """
    from orchestrator import interrupt
    from orchestrator.cluster import LaunchOptions, prepare, resolve_address
    from orchestrator.datasets import check_data
    from orchestrator.grid import campaign_name, check_search_budget, load_grid
    from orchestrator.launcher import run_campaign
    from results.store import LeaderboardStore

    check_resources(cpus_per_trial, gpus_per_trial, retries, max_concurrent)
    if num_cpus is not None and num_cpus < 1:
        raise typer.BadParameter("--num-cpus >= 1")
    grid = load_grid(grid_path, profile, seeds=seeds)
    campaign = campaign_name(grid, name)
    if dry_run:
        check_data(grid, str(grid_path))
        _dry_run(grid, campaign, db_url, rerun=rerun, rerun_stopped=rerun_stopped, append=append)
        return
    check_search_budget(grid)
    if resolve_address(address) is None:  # the trials run on this machine: their data must be here
        check_data(grid, str(grid_path))
    # Where the campaign runs is checked once, before anything is written (a bad --address leaves no trace).
    opts = prepare(LaunchOptions(address=address, num_cpus=num_cpus, cpus_per_trial=cpus_per_trial,
                                 gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, retries=retries,
                                 asha=asha, db_url=db_url, storage=storage))
    store = LeaderboardStore(db_url)  # the campaign run's one store
    check_grid_reuse(store.campaign_row(campaign), campaign, grid, append=append)
    with interrupt.catching():
        if grid.search is not None:
            _run_search(grid, campaign, opts, store)
        else:
            _finish(run_campaign(grid, campaign, opts, store=store, rerun=rerun, rerun_stopped=rerun_stopped),
                    grid.metric, store, "run the same command again to retry them", rerun=rerun)


def _dry_run(grid: GridSpec, campaign: str, db_url: str | None, *, rerun: bool, rerun_stopped: bool,
             append: bool) -> None:
    """What a run would train, and what it would keep from the leaderboard; starts nothing, imports no torch."""
    from orchestrator.launcher import partition
    from results.db import leaderboard_missing, open_read_only
    from results.store import LeaderboardStore

    missing = leaderboard_missing(db_url)
    # read only: a dry run never creates a leaderboard (a typo in the path stays visible)
    store = None if missing is not None else LeaderboardStore(engine=open_read_only(db_url))
    if store is not None:
        check_grid_reuse(store.campaign_row(campaign), campaign, grid, append=append)
    if grid.search is not None:
        err.print(f"campaign {campaign}: {_search_summary(grid)}")
        return
    specs = grid.expand()
    todo: list[TrialSpec]
    done: list[TrialSpec]
    if store is None:
        err.print(f"no leaderboard at {missing} yet: every trial would run", highlight=False, markup=False)
        todo, done = specs, []
    else:
        todo, done = partition(specs, store, rerun=rerun, rerun_stopped=rerun_stopped)
    _print_wide(_trials_table(grid, specs, {s.trial_key for s in done}))
    budget = grid.budget
    limit = (f"; budget {budget.max_device_hours:g} device-hours" if budget.max_device_hours is not None else "")
    err.print(f"campaign {campaign}: {len(todo)} to run, {len(done)} kept (complete or stopped; dry run){limit}; "
              f"what it costs: h2ot campaign estimate {grid.path}", highlight=False)


#: the text of an error from a full disk (ENOSPC), in a trial's error line
DISK_FULL = "No space left on device"


def _finish(outcome: CampaignOutcome, metric: str, store: LeaderboardStore, retry_hint: str, *,
            rerun: bool = False) -> None:
    """Print each trial's outcome and the best trials (and, when the device budget stopped trials, one line
    saying so); exit 1 when any failed or did not finish, 130/143 when the run was interrupted."""
    _print_outcome(outcome)
    if outcome.interrupted is not None:
        from orchestrator.interrupt import RESUME_HINT

        again = " (with --rerun it trains every trial again; without, only those not complete)" if rerun else ""
        err.print(f"[yellow]{RESUME_HINT}[/]{again}", highlight=False)
        raise typer.Exit(outcome.exit_code)
    _print_best(outcome.campaign, metric, store)
    full = [k for k, e in outcome.errors.items() if DISK_FULL in e]
    if full:
        err.print(f"{len(full)} trial(s) ran out of disk space ({DISK_FULL}): free space on the storage (--storage "
                  f"/ {STORAGE.name}) and the scratch folder ({SCRATCH_DIR.name}), then run the same command "
                  f"again", highlight=False, markup=False)
    refused = sum(e == f"stopped: {StopReason.BUDGET}" for e in outcome.errors.values())
    if refused:
        from results.usage import campaign_usage, hours_text

        usage = campaign_usage(store.engine, outcome.campaign)
        err.print(f"[yellow]budget spent[/]: {hours_text(usage.total)} of {hours_text(usage.max_device_hours or 0.0)} "
                  f"device-hours; {refused} trial(s) not started, recorded stopped (budget); raise "
                  f"budget.max_device_hours and run again to train them", highlight=False)
    if outcome.exit_code:
        err.print(f"[red]{len(outcome.unfinished)} trial(s) failed or did not finish[/]; see "
                  f"`h2ot campaign status {outcome.campaign}`; {retry_hint}")
        raise typer.Exit(outcome.exit_code)


def _run_search(grid: GridSpec, campaign: str, opts: LaunchOptions, store: LeaderboardStore) -> None:
    from orchestrator.search import run_search

    err.print(f"campaign {campaign}: {_search_summary(grid)}")
    outcome, counts = run_search(grid, campaign, opts, store)
    err.print(f"proposals rejected before training: {counts['over_budget']} over max_gflops, "
              f"{counts['invalid']} invalid; {counts['reused']} read back from the leaderboard")
    _finish(outcome, grid.metric, store, "run the same command again to resume the search")


def _print_best(campaign: str, metric: str, store: LeaderboardStore, top: int = 10) -> None:
    """The campaign's best complete trials by its metric, as ``h2ot leaderboard --campaign NAME`` shows them."""
    from orchestrator.commands.results import print_leaderboard
    from results.queries import leaderboard

    rows = leaderboard(store.engine, campaign=campaign, status=[TrialStatus.COMPLETE], sort=metric, top=top)
    err.print(f"best of campaign {campaign} (all of it: h2ot leaderboard --campaign {campaign}):")
    print_leaderboard(rows, metric, [], "table")


def _print_outcome(outcome: CampaignOutcome) -> None:
    table = Table("trial_key", "status", "error", title=f"campaign {outcome.campaign}")
    for key, status in outcome.kept.items():
        table.add_row(key, f"{status} (reused)", "")
    for key, status in outcome.statuses.items():
        table.add_row(key, status, outcome.errors.get(key, ""))
    _print_wide(table)


@user_errors
def status(
    name: Annotated[str, typer.Argument(help="campaign name (as printed by campaign run)")],
    db_url: DbUrlOpt = None,
    grid_path: Annotated[Path | None, typer.Option("--grid", help="grid file, to count pending trials")] = None,
    profile: ProfileOpt = None,
    address: JobAddressOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Trials of a campaign by status (complete ... pending) with their device-hours, the total (how much went
    to failed or stopped trials, the budget left, an ETA while it runs), and its Ray job's state if it ran as one.

    Trials recorded running whose driver is gone (no live claim) are shown ``interrupted``, with how long ago.
    Reads only: the leaderboard is opened read-only (nothing is ever created)."""
    from results.db import open_read_only
    from results.store import LeaderboardStore
    from results.usage import campaign_usage

    store = LeaderboardStore(engine=open_read_only(db_url))
    counts = dict(store.campaign_status(name))
    if grid_path is not None:
        from orchestrator.grid import load_grid

        keys = [s.trial_key for s in load_grid(grid_path, profile).expand()]
        counts[TrialStatus.PENDING] = len(keys) - len(store.trial_statuses(keys))
    gone = store.interrupted(name)
    if gone:  # recorded running, but no driver renews their claims: shown as interrupted, not live
        counts[TrialStatus.RUNNING] -= len(gone)
        if not counts[TrialStatus.RUNNING]:
            del counts[TrialStatus.RUNNING]
        counts[StopReason.INTERRUPTED] = len(gone)
    usage = campaign_usage(store.engine, name)
    rows = [{"status": key, "trials": counts[key],
             "device_hours": usage.hours.get(key) if usage.measured.get(key) else None}
            for key in (*STATUSES, *sorted(set(counts) - set(STATUSES))) if key in counts]
    print_rows(rows, ["status", "trials", "device_hours"], fmt, title=f"campaign {name}", compact=False)
    console = out if fmt == "table" else err
    if gone:
        err.print(f"{len(gone)} trial(s) interrupted {ago(max(gone.values()))}: their driver stopped renewing its "
                  f"claims (killed, or its node lost); `h2ot campaign run` of the grid takes them over",
                  highlight=False)
    for line in usage.lines(pending=counts.get(TrialStatus.PENDING, 0)):
        console.print(line, highlight=False)
    print_job_state(store, name, address, console)


@user_errors
def list_campaigns(db_url: DbUrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Every campaign in the leaderboard: its grid, trials by status, first start and last update."""
    from results.browse import campaign_activity
    from results.db import open_read_only

    rows = [{"campaign": a.name, "grid": a.grid_path, "trials": a.total,
             **{str(s): a.counts.get(s, 0) for s in STATUSES if s != TrialStatus.PENDING},
             "started": a.started_at.isoformat(sep=" ", timespec="seconds") if a.started_at else None,
             "updated": a.updated_at.isoformat(sep=" ", timespec="seconds") if a.updated_at else None}
            for a in campaign_activity(open_read_only(db_url))]
    columns = ["campaign", "grid", "trials", *(str(s) for s in STATUSES if s != TrialStatus.PENDING),
               "started", "updated"]
    print_rows(rows, columns, fmt, title="campaigns", compact=False)
    if not rows:
        err.print("no campaigns yet: h2ot campaign run GRID")


def register(app: typer.Typer) -> None:
    campaign_app.command("list")(list_campaigns)
    campaign_app.command("run")(run)
    campaign_app.command("submit")(submit)
    campaign_app.command("stop")(stop)
    campaign_app.command("validate")(validate)
    campaign_app.command("status")(status)
    from orchestrator.commands.estimate import estimate  # issue 18: price a grid before it runs

    campaign_app.command("estimate")(estimate)
    from orchestrator.commands.sync import sync  # MLflow backfill (issue 10)

    campaign_app.command("sync")(sync)
    app.add_typer(campaign_app, name="campaign")
