"""``h2ot campaign run | submit | validate | status | stop``: grids to Ray Tune (in the terminal, or as a Ray
job on a cluster), with resume and dedupe by trial_key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from h2ot_core.contracts import STATUSES
from orchestrator.commands.options import DbUrlOpt, FormatOpt
from orchestrator.console import err, out, print_rows, user_errors

if TYPE_CHECKING:
    from h2ot_core.contracts import TrialSpec
    from orchestrator.grid import GridSpec
    from orchestrator.launcher import CampaignOutcome, LaunchOptions

campaign_app = typer.Typer(no_args_is_help=True, help="Run ablation grids on Ray Tune, here or as a Ray job; resume; status; stop.")

GridArg = Annotated[Path, typer.Argument(help="grid YAML (search_spaces/...)", show_default=False)]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="named override in the grid (tiny, paper)")]
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


SeedsOpt = Annotated[int | None, typer.Option("--seeds", help="seeds 0..N-1 of every configuration "
                                                              "(overrides the file's seeds: N)")]
RerunOpt = Annotated[bool, typer.Option("--rerun", help="train again even trials already complete")]
RerunStoppedOpt = Annotated[bool, typer.Option(
    "--rerun-stopped", help="train again trials an early-stopping scheduler stopped (trials stopped by "
                            "`campaign stop` are always trained again)")]
CpusOpt = Annotated[float, typer.Option(help="CPUs per trial (fractions allowed)")]
GpusOpt = Annotated[float | None, typer.Option(
    help="GPUs per trial (0.25 = four trials per GPU; default: 1 when the cluster has GPUs, else 0)",
    show_default=False)]
MaxConcurrentOpt = Annotated[int | None, typer.Option(help="most trials at once")]
RetriesOpt = Annotated[int, typer.Option(help="restarts of a crashed trial (from its checkpoint)")]
AshaOpt = Annotated[bool, typer.Option("--asha", help="stop poor trials early (ASHA on the metric)")]
NameOpt = Annotated[str | None, typer.Option(help="campaign name (default: grid name[-profile])")]
JobAddressOpt = Annotated[str | None, typer.Option(
    "--address", show_default=False,
    help="Ray dashboard, http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS or H2OT_RAY_ADDRESS)")]


def _check_resources(cpus_per_trial: float, gpus_per_trial: float | None, retries: int,
                     max_concurrent: int | None) -> None:
    if cpus_per_trial <= 0 or (gpus_per_trial is not None and gpus_per_trial < 0) or retries < 0 or (
            max_concurrent is not None and max_concurrent < 1):
        raise typer.BadParameter("--cpus-per-trial > 0, --gpus-per-trial >= 0, --retries >= 0, "
                                 "--max-concurrent >= 1")


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
    from orchestrator.grid import load_grid

    grid = load_grid(grid_path, profile, seeds=seeds)
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
    seeds: SeedsOpt = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar="H2OT_STORAGE", show_default=False,
        help="where checkpoints, models and Ray's folders live: a shared path, s3://bucket/prefix or "
             "gs://bucket/prefix (default: the runs folder)")] = None,
) -> None:
    """Train every trial of GRID not yet complete in the leaderboard (re-run to resume after a crash).

    A search file (``search:`` instead of ``grid:``) proposes its trials with Optuna until its budget is
    spent; re-running it resumes the study.

    Exit code 0 when every trial ended complete or diverged, 1 when any failed or did not finish, 2 for a
    bad grid or option.
    """
    from orchestrator.grid import campaign_name, load_grid
    from orchestrator.launcher import LaunchOptions, run_campaign

    _check_resources(cpus_per_trial, gpus_per_trial, retries, max_concurrent)
    if num_cpus is not None and num_cpus < 1:
        raise typer.BadParameter("--num-cpus >= 1")
    grid = load_grid(grid_path, profile, seeds=seeds)
    campaign = campaign_name(grid, name)
    opts = LaunchOptions(address=address, num_cpus=num_cpus, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, retries=retries, asha=asha,
                         db_url=db_url, storage=None if dry_run else _preflight(address, num_cpus, storage))
    if grid.search is not None:
        _run_search(grid, campaign, opts, dry_run)
    elif dry_run:
        _dry_run(grid, campaign, db_url, rerun=rerun, rerun_stopped=rerun_stopped)
    else:
        _finish(run_campaign(grid, campaign, opts, rerun=rerun, rerun_stopped=rerun_stopped), grid.metric,
                db_url, "run the same command again to retry them")


def _preflight(address: str | None, num_cpus: int | None, storage: str | None) -> str:
    """Check the cluster address, then the storage (which writes a marker), before Ray starts or anything
    is written; returns the storage URI to use."""
    from orchestrator.launcher import LaunchOptions, preflight
    from orchestrator.storage import check as check_storage

    preflight(LaunchOptions(address=address, num_cpus=num_cpus))
    return check_storage(storage)


def _dry_run(grid: GridSpec, campaign: str, db_url: str | None, *, rerun: bool, rerun_stopped: bool) -> None:
    from orchestrator.launcher import partition

    specs = grid.expand()
    todo, done = partition(specs, db_url=db_url, rerun=rerun, rerun_stopped=rerun_stopped)
    _print_wide(_trials_table(grid, specs, {s.trial_key for s in done}))
    err.print(f"campaign {campaign}: {len(todo)} to run, {len(done)} kept (complete or stopped; dry run)")


def _finish(outcome: CampaignOutcome, metric: str, db_url: str | None, retry_hint: str) -> None:
    """Print each trial's outcome and the best trials; exit 1 when any failed or did not finish."""
    _print_outcome(outcome)
    _print_best(outcome.campaign, metric, db_url)
    if outcome.exit_code:
        err.print(f"[red]{len(outcome.unfinished)} trial(s) failed or did not finish[/]; see "
                  f"`h2ot campaign status {outcome.campaign}`; {retry_hint}")
        raise typer.Exit(outcome.exit_code)


def _run_args(grid_arg: str, *, profile: str | None, name: str | None, seeds: int | None, rerun: bool,
              rerun_stopped: bool, cpus_per_trial: float, gpus_per_trial: float | None,
              max_concurrent: int | None, retries: int, asha: bool) -> list[str]:
    """``h2ot campaign run ...`` as the job's entrypoint, every option given here passed on (never secrets:
    the leaderboard URL travels as an env var, not on the command line the dashboard shows)."""
    args = ["h2ot", "campaign", "run", grid_arg]
    for flag, value in (("--profile", profile), ("--name", name), ("--seeds", seeds),
                        ("--max-concurrent", max_concurrent)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--cpus-per-trial", f"{cpus_per_trial:g}", "--retries", str(retries)]
    if gpus_per_trial is not None:
        args += ["--gpus-per-trial", f"{gpus_per_trial:g}"]
    args += [flag for flag, on in (("--rerun", rerun), ("--rerun-stopped", rerun_stopped), ("--asha", asha)) if on]
    return args


def _grid_in(working_dir: Path, grid_path: Path) -> str:
    """The grid's path relative to the uploaded working directory (the job's current directory)."""
    try:
        return grid_path.resolve().relative_to(working_dir).as_posix()
    except ValueError:
        from h2ot_core.errors import ConfigError

        raise ConfigError(f"{grid_path}: the grid is not inside the working directory {working_dir} that the job "
                          f"uploads; move it there or pass --working-dir") from None


@user_errors
def submit(
    grid_path: GridArg,
    profile: ProfileOpt = None,
    address: JobAddressOpt = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="follow the job's log until it ends; exit with the campaign's code")] = False,
    working_dir: Annotated[Path | None, typer.Option(
        "--working-dir", help="directory uploaded as the job's working_dir (default: this repository)",
        show_default=False)] = None,
    rerun: RerunOpt = False,
    rerun_stopped: RerunStoppedOpt = False,
    cpus_per_trial: CpusOpt = 1.0,
    gpus_per_trial: GpusOpt = None,
    max_concurrent: MaxConcurrentOpt = None,
    retries: RetriesOpt = 2,
    asha: AshaOpt = False,
    db_url: DbUrlOpt = None,
    name: NameOpt = None,
    seeds: SeedsOpt = None,
) -> None:
    """Submit GRID to a Ray cluster as a Ray job running `h2ot campaign run`, and return (or --wait).

    The grid is checked here first. The working directory is uploaded (without .venv, .git, results/runs and
    caches); H2OT_DB_URL (or --db-url), MLFLOW_TRACKING_URI, H2OT_STORAGE, H2OT_DATA_DIR, H2OT_CACHE and
    H2OT_RUNS_DIR go with the job when set. The job id is printed on stdout and recorded on the campaign.
    """
    import shlex

    from orchestrator import jobs
    from orchestrator.grid import campaign_name, load_grid
    from orchestrator.provenance import REPO_ROOT, git_sha
    from results.store import LeaderboardStore

    _check_resources(cpus_per_trial, gpus_per_trial, retries, max_concurrent)
    grid = load_grid(grid_path, profile, seeds=seeds)
    campaign = campaign_name(grid, name)
    root = (working_dir or REPO_ROOT).resolve()
    if not root.is_dir():
        raise typer.BadParameter(f"--working-dir {working_dir}: not a directory")
    entrypoint = shlex.join(_run_args(
        _grid_in(root, grid_path), profile=profile, name=name, seeds=seeds, rerun=rerun,
        rerun_stopped=rerun_stopped, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        max_concurrent=max_concurrent, retries=retries, asha=asha))
    env = jobs.job_env(db_url)
    client = jobs.job_client(address)  # an unreachable dashboard fails here, before anything is written
    store = LeaderboardStore(db_url)  # schema created before the job's driver opens the same database
    job_id = jobs.submit(client, entrypoint, working_dir=root, env=env, campaign=campaign)
    store.ensure_campaign(
        campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml, version=grid.version,
        metric=grid.metric, mode=grid.mode, git_sha=git_sha(), ray_job_id=job_id)
    out.print(job_id, highlight=False, markup=False)
    shown = jobs.dashboard_address(address)
    err.print(f"campaign {campaign} submitted as Ray job {job_id} to {shown}: {entrypoint}", highlight=False,
              markup=False)
    err.print(f"  env passed to the job: {', '.join(sorted(env)) or 'none'}", highlight=False, markup=False)
    if "H2OT_DB_URL" not in env:
        err.print("  [yellow]no H2OT_DB_URL:[/] the job writes the default SQLite leaderboard on the node it runs "
                  "on; set H2OT_DB_URL to a database both sides reach", highlight=False)
    err.print(f"  follow: ray job logs --follow --address {shown} {job_id}\n"
              f"  status: h2ot campaign status {campaign} --address {shown}\n"
              f"  stop:   h2ot campaign stop {campaign} --address {shown}", highlight=False, markup=False)
    if not wait:
        return
    try:
        state = jobs.follow(client, job_id)
    except KeyboardInterrupt:
        err.print(f"detached; job {job_id} keeps running (h2ot campaign stop {campaign} --address {shown})",
                  highlight=False, markup=False)
        raise typer.Exit(130) from None
    code = jobs.exit_code(state)
    err.print(f"job {job_id}: {state.status} (exit code {code})", highlight=False, markup=False)
    if code:
        raise typer.Exit(code)


def _run_search(grid: GridSpec, campaign: str, opts: LaunchOptions, dry_run: bool) -> None:
    from orchestrator.search import run_search

    err.print(f"campaign {campaign}: {_search_summary(grid)}")
    if dry_run:
        return
    outcome, counts = run_search(grid, campaign, opts)
    err.print(f"proposals rejected before training: {counts['over_budget']} over max_gflops, "
              f"{counts['invalid']} invalid; {counts['reused']} read back from the leaderboard")
    _finish(outcome, grid.metric, opts.db_url, "run the same command again to resume the search")


def _print_best(campaign: str, metric: str, db_url: str | None, top: int = 10) -> None:
    """The campaign's best complete trials by its metric, as ``h2ot leaderboard --campaign NAME`` shows them."""
    from orchestrator.commands.results import print_leaderboard
    from results.db import make_engine
    from results.queries import leaderboard

    rows = leaderboard(make_engine(db_url), campaign=campaign, status=["complete"], sort=metric, top=top)
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
    """Trials of a campaign by status (complete ... pending), and its Ray job's state if it ran as one."""
    from results.store import LeaderboardStore

    store = LeaderboardStore(db_url)
    counts = dict(store.campaign_status(name))
    if grid_path is not None:
        from orchestrator.grid import load_grid

        keys = [s.trial_key for s in load_grid(grid_path, profile).expand()]
        known = sum(1 for k in keys if store.trial_status(k) is not None)
        counts["pending"] = len(keys) - known
    rows = [{"status": key, "trials": counts[key]} for key in (*STATUSES, *sorted(set(counts) - set(STATUSES)))
            if key in counts]
    print_rows(rows, ["status", "trials"], fmt, title=f"campaign {name}", compact=False)
    _print_job_state(name, db_url, address, out if fmt == "table" else err)


def _print_job_state(name: str, db_url: str | None, address: str | None, console: Console = out) -> None:
    """``ray job ID: STATE`` when the campaign ran as a Ray job and the dashboard answers, else why not."""
    from orchestrator import jobs
    from orchestrator.launcher import ClusterError

    row = jobs.campaign_row(db_url, name)
    job_id = row and row.get("ray_job_id")
    if not job_id:
        return
    if address is None and not any(os.environ.get(v) for v in jobs.DASHBOARD_ENV):
        err.print(f"ray job {job_id} (its state: --address http://HEAD:8265, or set RAY_ADDRESS)",
                  highlight=False, markup=False)
        return
    try:
        state = jobs.job_state(jobs.job_client(address, timeout_s=5), job_id)
    except (ClusterError, jobs.JobError) as exc:
        err.print(f"ray job {job_id}: state unknown ({exc})", highlight=False, markup=False)
        return
    code = f", exit code {state.exit_code}" if state.exit_code is not None else ""
    console.print(f"ray job {job_id}: {state.status}{code}", highlight=False, markup=False)


@user_errors
def stop(
    target: Annotated[str, typer.Argument(help="campaign name or Ray job id", show_default=False)],
    address: JobAddressOpt = None,
    db_url: DbUrlOpt = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the job to end")] = 60.0,
) -> None:
    """Stop a campaign's Ray job; its trials still running are recorded `stopped` (the next run trains them)."""
    from orchestrator import jobs

    row = jobs.campaign_row(db_url, target)
    if row is not None and not row.get("ray_job_id"):
        raise jobs.JobError(f"campaign {target} has no Ray job (it was not submitted with `h2ot campaign "
                            f"submit` or `ray job submit`); a campaign run in a terminal stops with Ctrl-C")
    job_id = row["ray_job_id"] if row is not None else target
    client = jobs.job_client(address)
    try:
        before = jobs.job_state(client, job_id)
    except jobs.JobError:
        if row is None:
            raise jobs.JobError(f"{target!r} is neither a campaign in the leaderboard nor a Ray job on this "
                                f"cluster (`h2ot leaderboard`, `ray job list`)") from None
        raise
    campaign = row["name"] if row is not None else (before.campaign or jobs.campaign_of_job(db_url, job_id))
    state = jobs.stop(client, job_id, timeout_s=timeout)
    if not state.finished:
        err.print(f"[red]job {job_id} is still {state.status} after {timeout:g} s[/]; its rows are left as "
                  f"they are; run the same command again", highlight=False)
        raise typer.Exit(1)
    ended = jobs.end_running_trials(db_url, campaign) if campaign else []
    was = "" if before.finished else f" (was {before.status})"
    out.print(f"ray job {job_id}: {state.status}{was}", highlight=False, markup=False)
    if campaign:
        err.print(f"campaign {campaign}: {len(ended)} running trial(s) recorded stopped; the next "
                  f"`h2ot campaign run/submit` of its grid trains them again", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    campaign_app.command("run")(run)
    campaign_app.command("submit")(submit)
    campaign_app.command("stop")(stop)
    campaign_app.command("validate")(validate)
    campaign_app.command("status")(status)
    from orchestrator.commands.sync import sync  # MLflow backfill (issue 10)

    campaign_app.command("sync")(sync)
    app.add_typer(campaign_app, name="campaign")
