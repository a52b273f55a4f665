"""MLflow backfilled from the leaderboard: after a tracking outage, at the end of a campaign, or with
``h2ot campaign sync NAME``.

The leaderboard keeps every trial's per-epoch history (``trials.history_json``), so a run MLflow missed is
created, and a run that lacks part of its record is completed; a run already complete is left alone, so
syncing twice changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from h2ot_core.contracts import IN_FLIGHT_STATUSES, TrialResult, TrialSpec, TrialStatus
from h2ot_core.environment import mask_secret
from orchestrator.tracking.tracker import LOGGED_TAG, ROLE_TAG, STATUS_TAG, TRIAL_TAG, CampaignTracker

if TYPE_CHECKING:
    from mlflow.entities import Run

    from results.store import LeaderboardStore

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What a backfill did: counts per kind of thing written, and what it could not do."""

    trials: int = 0
    in_sync: int = 0
    runs_created: int = 0
    runs_updated: int = 0
    params: int = 0
    steps: int = 0
    finals: int = 0
    unfinished: int = 0
    #: trials whose record could not be written (tracking server down, or a request MLflow refused)
    missed: list[str] = field(default_factory=list)
    #: trial_key -> number of runs, where an older version of H2OT Lab left more than one
    duplicates: dict[str, int] = field(default_factory=dict)
    #: trial_key -> its MLflow run, for every trial found in sync or synced now
    run_ids: dict[str, str] = field(default_factory=dict)
    #: False when the tracking server could not be reached to compare runs at all
    reachable: bool = True
    #: the first error of an outage met during the sync
    error: str | None = None
    #: the MLflow experiment synced
    experiment: str = ""

    @property
    def not_synced(self) -> int:
        """Finished trials MLflow may still lack after this sync."""
        return len(self.missed) if self.reachable else self.trials - self.unfinished

    @property
    def changed(self) -> bool:
        return bool(self.runs_created or self.runs_updated)

    def summary(self) -> str:
        text = (f"{self.trials} trial(s): {self.in_sync} already in MLflow, {self.runs_created} run(s) created, "
                f"{self.runs_updated} updated ({self.steps} epoch step(s), {self.finals} final value(s), "
                f"{self.params} param(s) logged)")
        if self.unfinished:
            text += f"; {self.unfinished} unfinished trial(s) left for their campaign run"
        if not self.reachable:
            text = f"{self.trials} trial(s): the tracking server did not answer, nothing compared"
        elif self.missed:
            text += f"; {len(self.missed)} not synced"
        return text



def trial_runs(tracker: CampaignTracker) -> dict[str, list[Run]]:
    """trial_key -> its runs in the experiment (oldest first)."""
    assert tracker.experiment_id is not None
    found: dict[str, list[Run]] = {}
    token = None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'",
                                       max_results=1000, order_by=["attributes.start_time ASC"],
                                       page_token=token)
        for run in page:
            key = run.data.tags.get(TRIAL_TAG)
            if key:
                found.setdefault(key, []).append(run)
        token = page.token
        if not token:
            return found

def sync(tracker: CampaignTracker, results: list[TrialResult]) -> SyncReport:
    """Backfill MLflow through ``tracker`` from the leaderboard's ``results`` (finished trials; others are
    counted only)."""
    report = SyncReport(trials=len(results))
    tracker.breaker.probe_soon()  # a sync is one request: ask a server found down once more right away
    if not tracker.ready():
        report.reachable = False
        return report
    state, runs = tracker.guarded("listing the experiment's runs", trial_runs, tracker)
    if state != "ok":
        report.reachable = False
        return report
    for result in results:
        key = result.trial_key
        if result.status in IN_FLIGHT_STATUSES:
            report.unfinished += 1
            continue
        # none in this experiment: the trial may have begun under another campaign's (it keeps that one run)
        found = runs.get(key) or tracker.guarded(f"the run of trial {key}", tracker.find_trial, key)[1] or []
        if len(found) > 1:
            report.duplicates[key] = len(found)
        run = found[0] if found else None
        if run is not None and run.data.tags.get(LOGGED_TAG) == "complete" \
                and run.data.tags.get(STATUS_TAG) == result.status:
            report.in_sync += 1
            report.run_ids[key] = run.info.run_id
            continue
        if run is None:
            state, run_id = tracker.guarded(f"the run of trial {key}", tracker.create_trial_run,
                                       TrialSpec.from_dict(result.spec))
            known: set[int] | None = set()
        else:
            state, run_id, known = "ok", run.info.run_id, None
            tracker.run_keys[run_id] = key
        if state == "ok":
            state, counts = tracker.guarded(f"the result of trial {key}", tracker.record, run_id, result, known)
        if state != "ok":
            report.missed.append(key)
            tracker.partial.add(key)
            continue
        tracker.partial.discard(key)
        if run is None:
            report.runs_created += 1
        else:
            report.runs_updated += 1
        report.params += counts.params
        report.steps += counts.steps
        report.finals += counts.finals
        report.run_ids[key] = run_id
    if not tracker.live and not report.unfinished and tracker.parent_run_id is not None:
        # the campaign's run was left RUNNING by a campaign that could not close it: every trial is done
        failed = any(r.status == TrialStatus.FAILED for r in results)
        tracker.guarded(f"closing campaign {tracker.campaign}", tracker.close_parent, "FAILED" if failed else "FINISHED")
    if report.duplicates:
        log.warning("MLflow experiment %s has several runs for %d trial(s) (left by an older version); "
                    "the oldest one of each was synced", tracker.experiment, len(report.duplicates))
    return report



def sync_campaign(campaign: str, *, db_url: str | None = None, uri: str | None = None,
                  store: LeaderboardStore | None = None, warn: bool = False) -> SyncReport:
    """Backfill MLflow with every finished trial of ``campaign`` from the leaderboard (idempotent), outside
    a campaign run (the campaign's parent run is closed once every trial is finished).

    ``warn``: say in one warning what MLflow still lacks (for callers that go on, e.g. a campaign run with
    nothing left to train); ``h2ot campaign sync`` reports it itself.
    """
    if store is None:
        from results.store import LeaderboardStore

        store = LeaderboardStore(db_url)
    results, experiment = store.campaign_results(campaign)
    # One request, not a campaign: a server found down is asked again at once, not after the probe interval.
    tracker = CampaignTracker(campaign, experiment, uri=uri, probe_s=0.0, live=False)
    report = sync(tracker, results)
    report.error, report.experiment = tracker.breaker.first_error, experiment
    store.record_run_ids(report.run_ids)
    if warn and report.not_synced:
        log.warning("MLflow lacks %d trial(s) of campaign %s (the leaderboard has all of them): run "
                    "`h2ot campaign sync %s` once %s answers", report.not_synced, campaign, campaign,
                    mask_secret(tracker.uri))
    elif warn and report.changed:
        log.warning("MLflow backfilled from the leaderboard: %s", report.summary())
    return report
