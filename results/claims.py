"""Claims with leases: which driver trains a trial right now, so overlapping campaigns never train it twice.

A driver (one launch of ``h2ot campaign run``: a :class:`ClaimOwner`) claims each trial before it hands the
trial to Tune, in one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per key (the dialect's insert, on SQLite
and PostgreSQL alike): the row is written when no one holds the key, when its lease has passed (the driver
that held it is gone) or when it is the driver's own; otherwise it stays with its live holder. The driver
renews its leases while it runs (a heartbeat) and releases them when it ends. A worker's result is published
only while the driver still holds the trial's claim (:meth:`ClaimsMixin.holds`, inside the write's
transaction).

Times are naive UTC from the clock of the process that writes them: hosts sharing a leaderboard need clocks
in step to well within a lease (NTP does it).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from h2ot_core.contracts import TrialStatus
from results.rows import now, status_where
from results.schema import Campaign, CampaignRun, CampaignTrial, Claim, Trial

#: prefix of the claim that holds a search's study (one live driver per study)
STUDY_PREFIX = "study/"


@dataclass(frozen=True)
class ClaimOwner:
    """One driver: its campaign, a fresh ``run_id`` per launch, its host and process id."""

    campaign: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, and until when (naive UTC)."""

    trial_key: str
    campaign: str
    run_id: str
    host: str
    pid: int
    lease_until: datetime
    claimed_at: datetime

    def expired(self, at: datetime | None = None) -> bool:
        return self.lease_until <= (at or now())

    def dead_here(self) -> bool:
        """Whether the holder is a process of this host that no longer runs (its lease need not be waited out; a
        recycled pid reads as alive, and the lease is waited for)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's process: alive
            return False
        return False

    def describe(self) -> str:
        """``campaign X (host/pid since 10:02:03 UTC)``."""
        return f"campaign {self.campaign} ({self.host}/{self.pid} since {self.claimed_at:%Y-%m-%d %H:%M:%S} UTC)"


@dataclass
class Handout:
    """What :meth:`ClaimsMixin.hand_out` found for each key: claimed now (train it), finished meanwhile (kept,
    with its status; linked to the campaign), or held by a live lease elsewhere."""

    claimed: list[str] = field(default_factory=list)
    kept: dict[str, TrialStatus] = field(default_factory=dict)
    held: dict[str, Holder] = field(default_factory=dict)


def _holder(row: Any) -> Holder:
    return Holder(row.trial_key, row.campaign, row.run_id, row.host, row.pid, row.lease_until, row.claimed_at)


class ClaimsMixin:
    """The claim methods of :class:`results.store.LeaderboardStore` (which provides ``_write``, ``_insert``,
    ``engine`` and ``_link_ids``)."""

    engine: Any
    _insert: Callable[..., Any]
    _write: Callable[..., Any]
    _link_ids: Callable[..., None]

    # -- one driver's launch -----------------------------------------------------------------------------
    def begin_run(self, owner: ClaimOwner, *, grid_path: str = "", grid_hash: str = "") -> None:
        """Record the launch of ``owner`` (its ``campaign_runs`` row)."""
        values = dict(run_id=owner.run_id, campaign=owner.campaign, grid_path=grid_path, grid_hash=grid_hash,
                      host=owner.host, pid=owner.pid, started_at=now())
        self._write(lambda conn: conn.execute(insert(CampaignRun).values(values)))

    def end_run(self, owner: ClaimOwner, outcome: str) -> None:
        """The launch ended with ``outcome``: its row says so and every claim it held is released."""
        def write(conn: Connection) -> None:
            conn.execute(update(CampaignRun).where(CampaignRun.run_id == owner.run_id)
                         .values(ended_at=now(), outcome=outcome))
            conn.execute(delete(Claim).where(Claim.run_id == owner.run_id))

        self._write(write)

    # -- claims ------------------------------------------------------------------------------------------
    def _claim(self, conn: Connection, key: str, owner: ClaimOwner, lease_s: float, at: datetime) -> Holder | None:
        """Claim ``key`` for ``owner``; ``None`` when it is now ``owner``'s, else its live holder."""
        values = dict(trial_key=key, campaign=owner.campaign, run_id=owner.run_id, host=owner.host, pid=owner.pid,
                      lease_until=at + timedelta(seconds=lease_s), claimed_at=at)
        stmt = self._insert(Claim).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["trial_key"],
            set_={k: stmt.excluded[k] for k in values if k != "trial_key"},
            where=or_(Claim.lease_until <= at, Claim.run_id == owner.run_id),
        ).returning(Claim.run_id)
        if conn.execute(stmt).scalar() is not None:
            return None
        row = conn.execute(select(Claim.__table__).where(Claim.trial_key == key)).one()
        return _holder(row)

    def claim(self, key: str, owner: ClaimOwner, lease_s: float) -> Holder | None:
        """Claim ``key`` for ``owner`` for ``lease_s`` seconds (a lease that expired, or ``owner``'s own, is taken
        over); returns ``None`` when claimed, else the live holder that kept it."""
        return self._write(lambda conn: self._claim(conn, key, owner, lease_s, now()))

    def hand_out(self, keys: Iterable[str], owner: ClaimOwner, lease_s: float, *, keep: Iterable[str],
                 keep_stop_reasons: Iterable[str] | None = None) -> Handout:
        """Before ``keys`` are handed to Tune, in one transaction: those whose row is now in a ``keep`` status
        (finished meanwhile, e.g. by another campaign) are linked to ``owner.campaign`` and kept; the others are
        claimed for ``owner``, except those a live lease holds elsewhere."""
        ordered = sorted(set(keys))
        where = status_where(keep, keep_stop_reasons)

        def kept(conn: Connection, among: list[str]) -> dict[str, tuple[int, TrialStatus]]:
            found: dict[str, tuple[int, TrialStatus]] = {}
            if where is not None:
                for i in range(0, len(among), 500):
                    found.update({key: (tid, TrialStatus(status)) for tid, key, status in conn.execute(
                        select(Trial.id, Trial.trial_key, Trial.status).where(Trial.trial_key.in_(among[i:i + 500]),
                                                                              where))})
            return found

        def write(conn: Connection) -> Handout:
            out = Handout()
            at = now()
            done = kept(conn, ordered)
            for key in ordered:
                if key not in done:
                    holder = self._claim(conn, key, owner, lease_s, at)
                    if holder is None:
                        out.claimed.append(key)
                    else:
                        out.held[key] = holder
            # Read again once claimed: a trial finished (and released) elsewhere between the first read and
            # the claim is seen now (PostgreSQL reads each statement's committed state); it is not retrained.
            late = kept(conn, out.claimed)
            if late:
                conn.execute(delete(Claim).where(Claim.run_id == owner.run_id, Claim.trial_key.in_(sorted(late))))
                out.claimed = [k for k in out.claimed if k not in late]
                done.update(late)
            out.kept = {k: status for k, (_, status) in done.items()}
            self._link_ids(conn, owner.campaign, [tid for tid, _ in done.values()])
            return out

        return self._write(write)

    def take_over(self, runs: Mapping[str, str], owner: ClaimOwner, lease_s: float) -> int:
        """Give ``owner`` the claims ``trial_key -> run_id`` still held by those runs (whose driver is known to be
        gone before its lease ends: a dead process on this host); returns how many it took."""
        def write(conn: Connection) -> int:
            at, taken = now(), 0
            for key, run_id in sorted(runs.items()):
                done = conn.execute(update(Claim).where(Claim.trial_key == key, Claim.run_id == run_id).values(
                    campaign=owner.campaign, run_id=owner.run_id, host=owner.host, pid=owner.pid,
                    lease_until=at + timedelta(seconds=lease_s), claimed_at=at))
                taken += int(done.rowcount or 0)
            return taken

        return self._write(write) if runs else 0

    def renew(self, owner: ClaimOwner, lease_s: float) -> int:
        """Extend every lease ``owner`` holds to ``lease_s`` seconds from now; returns how many it holds."""
        def write(conn: Connection) -> int:
            done = conn.execute(update(Claim).where(Claim.run_id == owner.run_id)
                                .values(lease_until=now() + timedelta(seconds=lease_s)))
            return int(done.rowcount or 0)

        return self._write(write)

    def release(self, owner: ClaimOwner | str, keys: Iterable[str] | None = None) -> int:
        """Delete the claims of ``owner`` (a :class:`ClaimOwner` or a run id): ``keys`` only, or all of them.
        Returns how many were released."""
        run_id = owner if isinstance(owner, str) else owner.run_id
        where = Claim.run_id == run_id
        if keys is not None:
            where = and_(where, Claim.trial_key.in_(sorted(set(keys))))

        def write(conn: Connection) -> int:
            return int(conn.execute(delete(Claim).where(where)).rowcount or 0)

        return self._write(write)

    def release_campaign(self, campaign: str) -> int:
        """Delete every claim held for ``campaign`` (``h2ot campaign stop``); returns how many."""
        def write(conn: Connection) -> int:
            conn.execute(update(CampaignRun).where(CampaignRun.campaign == campaign, CampaignRun.ended_at.is_(None))
                         .values(ended_at=now(), outcome="stopped"))
            return int(conn.execute(delete(Claim).where(Claim.campaign == campaign)).rowcount or 0)

        return self._write(write)

    def holder_of(self, key: str) -> Holder | None:
        """The current claim on ``key`` (live or expired), ``None`` when unclaimed."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Claim.__table__).where(Claim.trial_key == key)).one_or_none()
        return None if row is None else _holder(row)

    def holders(self, keys: Iterable[str]) -> dict[str, Holder]:
        """The claims on ``keys`` (live or expired)."""
        ordered = sorted(set(keys))
        found: dict[str, Holder] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ordered), 500):
                found.update({r.trial_key: _holder(r) for r in conn.execute(
                    select(Claim.__table__).where(Claim.trial_key.in_(ordered[i:i + 500])))})
        return found

    @staticmethod
    def holds(conn: Connection, key: str, run_id: str) -> bool:
        """Whether ``run_id`` still holds ``key``'s claim, read inside a write's transaction (the row is locked
        on PostgreSQL; SQLite's write transaction holds the whole file), so no takeover slips in between."""
        owner = conn.execute(select(Claim.run_id).where(Claim.trial_key == key).with_for_update()).scalar()
        return owner == run_id

    def interrupted(self, campaign: str) -> dict[str, datetime]:
        """The trials of ``campaign`` recorded ``running`` that no live claim covers (their driver is gone: killed,
        or its node lost), each with when its driver was last heard of (its lease's end, else the trial's
        start). Shown as ``interrupted``; the next run of their grid takes them over."""
        at = now()
        query = (select(Trial.trial_key, Trial.started_at, Claim.lease_until)
                 .join(CampaignTrial, CampaignTrial.trial_id == Trial.id)
                 .join(Campaign, Campaign.id == CampaignTrial.campaign_id)
                 .outerjoin(Claim, Claim.trial_key == Trial.trial_key)
                 .where(Campaign.name == campaign, Trial.status == TrialStatus.RUNNING,
                        or_(Claim.lease_until.is_(None), Claim.lease_until <= at)))
        with self.engine.connect() as conn:
            return {key: lease or started or at for key, started, lease in conn.execute(query)}

    def live_claims(self) -> int:
        """How many claims hold a live lease now (for tests and benchmarks)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Claim).where(Claim.lease_until > now()))
                       .scalar_one())
