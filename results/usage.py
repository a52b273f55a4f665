"""What a campaign cost: device-hours by trial status, the share lost to failed and stopped trials, the budget
left, dollars at the campaign's price, and an ETA while it runs.

A trial's device-hours are its :class:`~h2ot_core.contracts.Usage` (training and evaluation time on its
device); trials recorded before revision 0006, and trials still running, have none and are counted apart
(``unmeasured``), never guessed. The ETA is the mean device-hours of the campaign's complete trials times the
trials still owed (pending and running), spread over the trials running now (at least one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from h2ot_core.contracts import TrialStatus
from results.queries import check_campaign
from results.schema import Campaign, CampaignTrial, Trial

#: the statuses whose device time bought no finished result
LOST_STATUSES = (TrialStatus.FAILED, TrialStatus.STOPPED)


@dataclass(frozen=True)
class CampaignUsage:
    """Attributes:
    hours: status -> device-hours of its trials that measured them.
    trials: status -> trials of the campaign. measured: status -> of those, the ones with device time.
    max_device_hours / price_per_device_hour: the campaign's budget (``None``: none given).
    """

    hours: Mapping[str, float] = field(default_factory=dict)
    trials: Mapping[str, int] = field(default_factory=dict)
    measured: Mapping[str, int] = field(default_factory=dict)
    max_device_hours: float | None = None
    price_per_device_hour: float | None = None

    @property
    def total(self) -> float:
        """Device-hours spent by every trial of the campaign that measured them."""
        return float(sum(self.hours.values()))

    @property
    def lost(self) -> float:
        """Device-hours of failed and stopped trials."""
        return float(sum(self.hours.get(s, 0.0) for s in LOST_STATUSES))

    @property
    def unmeasured(self) -> int:
        """Trials without device time (running, or recorded before it was measured)."""
        return sum(self.trials.values()) - sum(self.measured.values())

    @property
    def left(self) -> float | None:
        """Device-hours of the budget not spent yet (``None``: no budget; never below 0)."""
        return None if self.max_device_hours is None else max(self.max_device_hours - self.total, 0.0)

    def spent_budget(self) -> bool:
        """Whether the campaign's ``max_device_hours`` is reached."""
        return self.max_device_hours is not None and self.total >= self.max_device_hours

    def dollars(self, hours: float) -> float | None:
        return None if self.price_per_device_hour is None else hours * self.price_per_device_hour

    def eta_hours(self, pending: int, running: int) -> float | None:
        """Hours until the trials still owed (``pending`` + ``running``) are done, from the complete trials'
        mean; ``None`` when nothing is owed or no trial has completed with its device time measured."""
        done = self.measured.get(TrialStatus.COMPLETE, 0)
        owed = pending + running
        if not owed or not done:
            return None
        mean = self.hours.get(TrialStatus.COMPLETE, 0.0) / done
        return mean * owed / max(running, 1)

    def lines(self, pending: int = 0) -> list[str]:
        """The campaign's cost in a few lines, as ``h2ot campaign status`` and the report print them."""
        total = f"device-hours: {hours_text(self.total)} spent"
        if (cost := self.dollars(self.total)) is not None:
            total += f" ({dollars_text(cost)} at ${self.price_per_device_hour:g}/device-hour)"
        total += f"; {hours_text(self.lost)} of it on failed or stopped trials"
        if self.unmeasured:
            total += f"; {self.unmeasured} trial(s) without device time (running, or recorded before it was measured)"
        lines = [total]
        if self.max_device_hours is not None:
            left = f"budget: {hours_text(self.max_device_hours)} device-hours, {hours_text(self.left or 0.0)} left"
            lines.append(left + (" (spent: no new trials start)" if self.spent_budget() else ""))
        running = self.trials.get(TrialStatus.RUNNING, 0)
        pending = 0 if self.spent_budget() else pending  # a spent budget starts no pending trial
        eta = self.eta_hours(pending, running)
        if eta is not None:
            lines.append(f"ETA: about {duration_text(eta)} for {pending + running} trial(s) still owed "
                         f"({running} running), from the complete trials' mean device time")
        return lines


def hours_text(hours: float) -> str:
    """Device-hours to three significant figures (``0.0123``, ``1.25``, ``42.0``)."""
    from results.numbers import significant

    return significant(hours)


def dollars_text(amount: float) -> str:
    """``$1,234.50``; under a cent to two significant figures (``$0.0042``)."""
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.2g}"


def duration_text(hours: float) -> str:
    """``40 s``, ``45 min``, ``3.2 h``."""
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def campaign_usage(engine: Engine, campaign: str) -> CampaignUsage:
    """The device time campaign ``campaign`` spent, by status, and its budget (a did-you-mean error when
    unknown)."""
    check_campaign(engine, campaign)
    with engine.connect() as conn:
        budget = conn.execute(select(Campaign.id, Campaign.max_device_hours, Campaign.price_per_device_hour)
                              .where(Campaign.name == campaign)).one()
        rows = conn.execute(
            select(Trial.status, func.count(), func.count(Trial.device_hours), func.sum(Trial.device_hours))
            .join(CampaignTrial, CampaignTrial.trial_id == Trial.id).where(CampaignTrial.campaign_id == budget.id)
            .group_by(Trial.status)).all()
    return CampaignUsage(hours={s: float(h or 0.0) for s, _, _, h in rows}, trials={s: int(n) for s, n, _, _ in rows},
                         measured={s: int(m) for s, _, m, _ in rows}, max_device_hours=budget.max_device_hours,
                         price_per_device_hour=budget.price_per_device_hour)
