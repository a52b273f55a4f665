"""Run a search campaign: Optuna proposes, the cost model rejects for free, Ray Tune trains, the leaderboard
records, Optuna learns.

Why Optuna's ask/tell drives Tune here (rather than Tune's ``OptunaSearch``): a proposal must become a
:class:`TrialSpec` through the grid's own rules, be priced by the FLOPs model and be looked up in the
leaderboard *before* Tune sees it. Over-budget or invalid proposals are told to the study as failed with a
``rejected`` attribute and never count as trials; proposals whose ``trial_key`` is already complete (from a
grid or an earlier search) are told their stored values without training. The rest train in batches
through the same launcher, sink and MLflow logging as a grid.

The study is named after the campaign and stored beside the leaderboard, in Optuna's own namespace
(Optuna's schema has a table called ``trials`` too): on PostgreSQL the schema ``optuna`` of the same
database, on SQLite the file ``<leaderboard>.optuna.sqlite`` next to it (:func:`study_url`). So
``optuna-dashboard <study url>`` watches it live, and a killed driver resumes with the sampler's state:
trials it had asked but not told are trained (or read back) first, never sampled again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from h2ot_core.contracts import TrialSpec, TrialStatus, metric_key
from h2ot_core.errors import ConfigError, H2OTError
from orchestrator import interrupt
from orchestrator.claiming import Launch, launch, train_claimed
from orchestrator.cluster import (
    LaunchOptions,
    prepare,
    ray_session,
)
from orchestrator.grid import GridSpec
from orchestrator.launcher import CampaignOutcome, campaign_fields, train_specs
from orchestrator.search_budget import spec_gflops
from orchestrator.search_space import SearchSpec
from results.claims import STUDY_PREFIX
from results.errors import ResultsError
from results.usage import campaign_usage

if TYPE_CHECKING:
    from results.store import LeaderboardStore

log = logging.getLogger(__name__)

#: proposals rejected in a row before the search gives up (the space is almost all over budget)
MAX_REJECTED_IN_ROW = 2000
#: user attributes on the Optuna trials
REJECTED, KEYS, SPEC = "rejected", "trial_keys", "spec"
#: the study attribute saying what its layer and token parameters hold: "values" (new studies) or "positions"
PARAMS_ATTR = "h2ot.params"


#: the PostgreSQL schema holding the studies (a constant, never user input)
OPTUNA_SCHEMA = "optuna"


def study_url(db_url: str | None) -> str:
    """Where the studies of the leaderboard at ``db_url`` live (see the module docstring)."""
    from sqlalchemy.engine import make_url

    from results.db import resolve_url

    url = make_url(resolve_url(db_url))
    if url.get_backend_name() == "sqlite":
        db = url.database or ""
        return url.set(database=f"{db.removesuffix('.sqlite')}.optuna.sqlite").render_as_string(
            hide_password=False)
    return url.update_query_dict({"options": f"-csearch_path={OPTUNA_SCHEMA}"}).render_as_string(
        hide_password=False)


def _storage(store: LeaderboardStore) -> Any:
    import optuna
    from sqlalchemy import text

    engine = store.engine  # the leaderboard's, created or upgraded already
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    url = engine.url.render_as_string(hide_password=False)
    return optuna.storages.RDBStorage(study_url(url), engine_kwargs={"pool_pre_ping": True})


def _sampler(search: SearchSpec) -> Any:
    import optuna

    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=search.sampler_seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=search.sampler_seed,
                                         population_size=max(4, min(50, search.trials)))


def open_study(search: SearchSpec, campaign: str, store: LeaderboardStore) -> Any:
    """The campaign's study (created, or loaded with its trials and sampler state), beside ``store``.

    A new study records :data:`PARAMS_ATTR` ``values``: its ``layer_j`` / ``tokens_j`` parameters are the layers
    and token counts they mean. A study begun before (no attribute, trials already told) is marked
    ``positions`` and goes on sampling positions, so its sampler learns from one consistent history; its
    trials carry their real ``schedule`` as a user attribute either way.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=campaign, storage=_storage(store), directions=search.directions,
                                sampler=_sampler(search), load_if_exists=True)
    if PARAMS_ATTR not in study.user_attrs:
        study.set_user_attr(PARAMS_ATTR, "positions" if study.get_trials(deepcopy=False) else "values")
    return study


def stores_values(study: Any) -> bool:
    """Whether ``study`` samples layers and token counts as values (:func:`open_study`)."""
    return study.user_attrs.get(PARAMS_ATTR) == "values"


class _Proposal:
    """One asked Optuna trial and the specs (one per seed) it stands for."""

    def __init__(self, number: int, specs: list[TrialSpec]):
        self.number, self.specs = number, specs


def _propose(search: SearchSpec, grid: GridSpec, study: Any, counts: dict[str, int]) -> _Proposal:
    """Ask until a proposal is valid and under the FLOPs cap; rejected ones are told failed, for free."""
    import optuna

    for _ in range(MAX_REJECTED_IN_ROW):
        trial = study.ask()
        combo = search.sample(trial, values=stores_values(study))
        try:
            spec = grid.spec_for(combo)
        except H2OTError as exc:
            trial.set_user_attr(REJECTED, f"invalid: {exc}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            counts["invalid"] += 1
            continue
        gflops = spec_gflops(spec)
        if search.max_gflops is not None and gflops > search.max_gflops:
            trial.set_user_attr(REJECTED, f"max_gflops: {gflops:.4g} > {search.max_gflops}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            counts["over_budget"] += 1
            continue
        specs = [replace(spec, seed=spec.seed + s) for s in range(search.seeds)]
        trial.set_user_attr(SPEC, spec.canonical_json())
        trial.set_user_attr(KEYS, [s.trial_key for s in specs])
        trial.set_user_attr("gflops", gflops)
        trial.set_user_attr("schedule", spec.schedule)
        return _Proposal(trial.number, specs)
    raise ConfigError(f"{search.path}: search: {MAX_REJECTED_IN_ROW} proposals in a row were invalid or over "
                      f"max_gflops; widen the space or raise the cap")


def _carried(study: Any) -> list[_Proposal]:
    """Trials a killed driver asked but never told: trained (or read back) before anything new is sampled."""
    import optuna

    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if SPEC not in t.user_attrs:  # killed between ask and the cost check: nothing to train or count
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            continue
        base = TrialSpec.from_dict(json.loads(t.user_attrs[SPEC]))
        keys = t.user_attrs[KEYS]
        specs = [replace(base, seed=base.seed + s) for s in range(len(keys))]
        out.append(_Proposal(t.number, specs))
    return out


def _counted(study: Any) -> int:
    """Proposals that count against ``budget.trials``: priced (they carry a spec), then told complete, pruned
    or failed in training. Rejected and abandoned ones never got a spec."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done) if SPEC in t.user_attrs)


def _tell(search: SearchSpec, study: Any, proposal: _Proposal, values: dict[str, dict[str, Any]]) -> str:
    """Tell the study what the leaderboard holds for ``proposal``; returns the state told."""
    import optuna

    rows = [values.get(s.trial_key, {}) for s in proposal.specs]
    statuses = {r.get("status") for r in rows}
    if statuses != {TrialStatus.COMPLETE}:
        state = optuna.trial.TrialState.PRUNED if TrialStatus.STOPPED in statuses else optuna.trial.TrialState.FAIL
        study.tell(proposal.number, state=state)
        return state.name.lower()
    objective_values = []
    for name in search.objectives:
        per_seed = [v for r in rows if (v := r.get(name)) is not None]
        if len(per_seed) < len(rows):
            study.tell(proposal.number, state=optuna.trial.TrialState.FAIL)
            return "fail"
        objective_values.append(sum(per_seed) / len(per_seed))
    study.tell(proposal.number, objective_values)
    return "complete"


def _parallel_trials(opts: LaunchOptions) -> int:
    """How many trials the cluster runs at once: one batch of proposals fills it."""
    import ray

    resources = ray.cluster_resources()
    if opts.gpus_per_trial:
        return max(1, int(resources.get("GPU", 0) // opts.gpus_per_trial))
    return max(1, int(resources.get("CPU", 1) // opts.cpus_per_trial))


def run_search(grid: GridSpec, campaign: str, opts: LaunchOptions, store: LeaderboardStore | None = None
               ) -> tuple[CampaignOutcome, dict[str, int]]:
    """Propose, reject, dedupe, train and tell until ``budget.trials`` proposals are done (or time is up).

    Returns the campaign outcome (per trial_key) and the counts of rejected proposals
    (``invalid``, ``over_budget``) and of proposals read back from the leaderboard (``reused``). ``store``:
    the campaign run's one leaderboard store (opened here, after the cluster and storage checks, if not given).
    """
    search = grid.search
    assert search is not None
    opts = prepare(opts)
    if store is None:
        from results.store import LeaderboardStore

        store = LeaderboardStore(opts.db_url)
    store.ensure_campaign(campaign, **campaign_fields(grid, opts))
    counts = {"invalid": 0, "over_budget": 0, "reused": 0}
    outcome = CampaignOutcome(campaign)
    with launch(store, campaign, grid_path=str(grid.path), grid_yaml=grid.resolved_yaml) as run:
        claim_study(store, run)
        _search(search, grid, campaign, opts, store, run, counts, outcome)
    return outcome, counts


def claim_study(store: LeaderboardStore, run: Launch) -> None:
    """Hold the campaign's study for this launch: a second driver of a live study is refused in one line
    (two drivers telling one Optuna study would both train its proposals); a study whose driver is gone (its
    lease expired, or a dead process of this host) is taken over, and resumes."""
    key = f"{STUDY_PREFIX}{run.owner.campaign}"
    holder = store.claim(key, run.owner, run.lease)
    if holder is not None and holder.dead_here():  # its driver was killed on this host: no lease to wait out
        store.take_over({key: holder.run_id}, run.owner, run.lease)
        holder = store.claim(key, run.owner, run.lease)
    if holder is not None:
        run.outcome = "refused"
        raise ResultsError(f"study {run.owner.campaign} is being run by {holder.host}/{holder.pid} since "
                           f"{holder.claimed_at:%Y-%m-%d %H:%M:%S} UTC; stop it (h2ot campaign stop "
                           f"{run.owner.campaign}) or wait for it")


def _search(search: SearchSpec, grid: GridSpec, campaign: str, opts: LaunchOptions, store: LeaderboardStore,
            run: Launch, counts: dict[str, int], outcome: CampaignOutcome) -> None:
    """The search loop of :func:`run_search`, under ``run``'s claim of the study."""
    study = open_study(search, campaign, store)
    started = time.monotonic()
    trained = search.trained_objective or grid.metric
    from results.store import mlflow_experiment

    with ray_session(opts) as (opts, _):
        asha_opts = replace(opts, asha=search.asha or opts.asha)
        batch_size = opts.max_concurrent or _parallel_trials(opts)
        while True:
            left = search.trials - _counted(study)
            if left <= 0:
                break
            if search.max_hours is not None and time.monotonic() - started > search.max_hours * 3600:
                log.warning("search %s: max_hours reached with %d trial(s) left", campaign, left)
                break
            if grid.budget.max_device_hours is not None and campaign_usage(store.engine, campaign).spent_budget():
                log.warning("search %s: max_device_hours spent with %d trial(s) left", campaign, left)
                break
            batch = _carried(study)[:left]
            while len(batch) < min(batch_size, left):
                batch.append(_propose(search, grid, study, counts))
            specs = [s for p in batch for s in p.specs]
            kept = store.keys_with_status([s.trial_key for s in specs], {TrialStatus.COMPLETE})
            store.link(campaign, kept)
            todo = [s for s in specs if s.trial_key not in kept]
            if todo:  # claimed first: a grid campaign may be training the same configuration
                done = train_claimed(run, mlflow_experiment(grid.name, grid.profile, campaign), todo, asha_opts,
                                     store, keep=[TrialStatus.COMPLETE], trainer=train_specs,
                                     metric=metric_key("test", trained),
                                     mode="min" if search.objectives.get(trained, "min") == "min" else "max",
                                     tags={"grid": str(grid.path), "search": "optuna"}, kept=len(kept),
                                     budget=grid.budget)
                outcome.errors.update(done.errors)
                kept |= set(done.kept)
                todo = [s for s in todo if s.trial_key not in done.kept]
                if interrupt.received() is not None:  # the batch is not told: the next run trains it first
                    run.outcome = "interrupted"
                    outcome.interrupted = interrupt.received()
                    outcome.statuses.update({s.trial_key: done.outcomes.get(s.trial_key, TrialStatus.PENDING)
                                             for s in todo})
                    break
            counts["reused"] += sum(all(s.trial_key in kept for s in p.specs) for p in batch)
            for key in kept:
                outcome.kept[key] = TrialStatus.COMPLETE
            values = store.trial_values([s.trial_key for s in specs])
            for p in batch:
                _tell(search, study, p, values)
            for s in todo:
                outcome.statuses[s.trial_key] = values.get(s.trial_key, {}).get("status") or TrialStatus.PENDING
