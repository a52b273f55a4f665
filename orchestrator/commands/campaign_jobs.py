"""``h2ot campaign submit | stop``: a campaign as a Ray job on a cluster (Ray's Job Submission API), and the
job's state for ``h2ot campaign status``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from h2ot_core.environment import DASHBOARD_SETTINGS, DB_URL
from orchestrator.commands.options import (
    AppendOpt,
    AshaOpt,
    CpusOpt,
    DbUrlOpt,
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
from orchestrator.console import err, out, user_errors
from orchestrator.grid_reuse import check_grid_reuse

if TYPE_CHECKING:
    from rich.console import Console

    from orchestrator.jobs import JobState
    from results.store import LeaderboardStore


def _run_args(grid_arg: str, *, profile: str | None, name: str | None, seeds: int | None, rerun: bool,
              rerun_stopped: bool, cpus_per_trial: float, gpus_per_trial: float | None,
              max_concurrent: int | None, retries: int, asha: bool, append: bool = False) -> list[str]:
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
    args += [flag for flag, on in (("--rerun", rerun), ("--rerun-stopped", rerun_stopped), ("--asha", asha),
                                   ("--append", append)) if on]
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
    append: AppendOpt = False,
    seeds: SeedsOpt = None,
) -> None:
    """Submit GRID to a Ray cluster as a Ray job running `h2ot campaign run`, and return (or --wait).

    The grid is checked here first. The working directory is uploaded (without .venv, .git, results/runs and
    caches); the settings marked "to job" in `h2ot config` (the leaderboard, MLflow, storage, data and trial
    settings) go with the job when set, --db-url as H2OT_DB_URL. The job id is printed on stdout and recorded on the campaign.
    """
    import shlex

    from orchestrator import jobs
    from orchestrator.grid import campaign_name, load_grid
    from orchestrator.provenance import REPO_ROOT, git_sha
    from results.store import LeaderboardStore

    check_resources(cpus_per_trial, gpus_per_trial, retries, max_concurrent)
    grid = load_grid(grid_path, profile, seeds=seeds)
    campaign = campaign_name(grid, name)
    root = (working_dir or REPO_ROOT).resolve()
    if not root.is_dir():
        raise typer.BadParameter(f"--working-dir {working_dir}: not a directory")
    entrypoint = shlex.join(_run_args(
        _grid_in(root, grid_path), profile=profile, name=name, seeds=seeds, rerun=rerun,
        rerun_stopped=rerun_stopped, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        max_concurrent=max_concurrent, retries=retries, asha=asha, append=append))
    env = jobs.job_env(db_url)
    client = jobs.job_client(address)  # an unreachable dashboard fails here, before anything is written
    store = LeaderboardStore(db_url)  # schema created before the job's driver opens the same database
    check_grid_reuse(store.campaign_row(campaign), campaign, grid, append=append)
    job_id = jobs.submit(client, entrypoint, working_dir=root, env=env, campaign=campaign)
    store.ensure_campaign(
        campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml, version=grid.version,
        metric=grid.metric, mode=grid.mode, git_sha=git_sha(), ray_job_id=job_id)
    out.print(job_id, highlight=False, markup=False)
    shown = jobs.dashboard_address(address)
    err.print(f"campaign {campaign} submitted as Ray job {job_id} to {shown}: {entrypoint}", highlight=False,
              markup=False)
    err.print(f"  env passed to the job: {', '.join(sorted(env)) or 'none'}", highlight=False, markup=False)
    if DB_URL.name not in env:
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
    why = " (why: its driver log, above)" if state.status == "FAILED" else ""
    err.print(f"job {job_id}: {state.status} (exit code {code}){why}", highlight=False, markup=False)
    if code:
        raise typer.Exit(code)


def print_failure(client: Any, state: JobState, address: str) -> None:
    """A failed job's last driver-log lines on stderr, where the reason is (``h2ot: not found`` on the head,
    a data error, a traceback): a bare ``FAILED (exit code 127)`` says nothing. (``submit --wait`` has just
    streamed that log.)"""
    from orchestrator import jobs

    if state.status != "FAILED":
        return
    tail = jobs.log_tail(client, state.job_id)
    if not tail:
        err.print(f"  (its driver log is empty or unreadable; Ray says: {state.message or 'nothing'})",
                  highlight=False, markup=False)
        return
    err.print(f"  last lines of its driver log (all of it: ray job logs --address {address} {state.job_id}):",
              highlight=False, markup=False)
    for line in tail:
        err.print(f"  | {line}", highlight=False, markup=False)



def print_job_state(store: LeaderboardStore, name: str, address: str | None, console: Console = out) -> None:
    """``ray job ID: STATE`` (on ``console``) when the campaign ran as a Ray job and the dashboard answers,
    else why not (on stderr)."""
    from orchestrator import jobs
    from orchestrator.cluster import ClusterError

    row = store.campaign_row(name)
    job_id = row and row.get("ray_job_id")
    if not job_id:
        return
    if address is None and not any(s.raw() for s in DASHBOARD_SETTINGS):
        err.print(f"ray job {job_id} (its state: --address http://HEAD:8265, or set RAY_ADDRESS)",
                  highlight=False, markup=False)
        return
    try:
        client = jobs.job_client(address, timeout_s=5)
        state = jobs.job_state(client, job_id)
    except (ClusterError, jobs.JobError) as exc:
        err.print(f"ray job {job_id}: state unknown ({exc})", highlight=False, markup=False)
        return
    code = f", exit code {state.exit_code}" if state.exit_code is not None else ""
    console.print(f"ray job {job_id}: {state.status}{code}", highlight=False, markup=False)
    print_failure(client, state, jobs.dashboard_address(address))


@user_errors
def stop(
    target: Annotated[str, typer.Argument(help="campaign name or Ray job id", show_default=False)],
    address: JobAddressOpt = None,
    db_url: DbUrlOpt = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the job to end")] = 60.0,
) -> None:
    """Stop a campaign's Ray job; its trials still running are recorded `stopped` (the next run trains them)."""
    from orchestrator import jobs
    from results.store import LeaderboardStore

    store = LeaderboardStore(db_url)
    row = store.campaign_row(target)
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
    campaign = row["name"] if row is not None else (before.campaign or jobs.campaign_of_job(store, job_id))
    from results.rows import now

    asked = now()
    state = jobs.stop(client, job_id, timeout_s=timeout)
    if not state.finished:
        err.print(f"[red]job {job_id} is still {state.status} after {timeout:g} s[/]; its rows are left as "
                  f"they are; run the same command again", highlight=False)
        raise typer.Exit(1)
    ended = jobs.end_running_trials(store, campaign, since=asked) if campaign else []
    if campaign:  # its driver is gone: its trials are free for the next run at once, not after their leases
        store.release_campaign(campaign)
    was = "" if before.finished else f" (was {before.status})"
    out.print(f"ray job {job_id}: {state.status}{was}", highlight=False, markup=False)
    if campaign:
        err.print(f"campaign {campaign}: {len(ended)} running trial(s) recorded stopped; the next "
                  f"`h2ot campaign run/submit` of its grid trains them again", highlight=False, markup=False)
