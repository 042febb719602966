"""The runs of a series (issue 20): at each run time the worker makes a campaign of the
series' fields (`campaigns.series_id`, `run_at`) and starts it like a scheduled campaign
(`sending.start_scheduled`), so the stale-schedule guard applies to it as it is: a run found
more than `max_schedule_lateness` late (Pagecast was down) is created scheduled and flagged
`missed`, never sent by surprise, and the series goes on to its next time.

Exactly one campaign per run: the series row is locked while its run is made (a second
worker waits, then finds the next time moved on), and `campaigns (series_id, run_at)` is
unique (on SQLite, or if the lock is ever lost, the second insert fails and is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import timezones
from pagecast.errors import PagecastError
from pagecast.models import Campaign, CampaignStatus, Series, SeriesStatus
from pagecast.permissions import Actor
from pagecast.services import audit, campaign_events, campaigns, sending, series, series_schedule

__all__ = ["Run", "due", "make_run", "run_name"]


@dataclass(frozen=True)
class Run:
    """What `make_run` did: the run's campaign (None when it could not be made) and
    whether it started sending (else it is missed, or was not sent and says why)."""

    series_id: int
    run_at: datetime
    campaign: Campaign | None
    started: bool


async def due(session: AsyncSession, now: datetime) -> list[int]:
    """Active series whose next run has come."""
    return list(
        await session.scalars(
            select(Series.id)
            .where(Series.status == SeriesStatus.ACTIVE, Series.next_run_at <= now)
            .order_by(Series.id)
        )
    )


def run_name(row: Series, run_at: datetime) -> str:
    """A run's campaign name: the series' and the run's local time."""
    local = timezones.to_local(run_at, row.timezone)
    return f"{row.name} · {local:%Y-%m-%d %H:%M}"


def _not_sent(reason: str | None) -> str:
    """Why a run was not sent, from the refusal of its start (which speaks of a campaign
    that stays as it is: a run instead ends cancelled and the series goes on)."""
    why = (reason or "").removeprefix("Scheduled start failed: ")
    why = why.split(" Nothing was sent and it stays")[0]
    return f"Run not sent: {why} The run ended here; the series goes on to its next time."


async def make_run(
    session: AsyncSession, series_id: int, *, now: datetime, max_lateness_s: float
) -> Run | None:
    """Make the series' due run a campaign and start it (or flag it missed), and move the
    series to its next time after `now`. None when no run is due (another worker made it,
    or the series was paused or ended meanwhile)."""
    row = await session.scalar(
        select(Series)
        .where(Series.id == series_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if (
        row is None
        or row.status is not SeriesStatus.ACTIVE
        or row.next_run_at is None
        or row.next_run_at > now
    ):
        return None
    run_at = row.next_run_at
    # Runs that passed while Pagecast was down are not made one by one: the due one is
    # (started or missed), then the series goes on from now.
    row.next_run_at = series_schedule.next_run(row.schedule, row.timezone, max(run_at, now))
    try:
        data = series.run_campaign_data(row, run_name(row, run_at))
        campaign = await campaigns.create(
            session, Actor.system(), data, now=now, series_run=(row.id, run_at)
        )
    except (PagecastError, ValueError) as exc:
        message = exc.message if isinstance(exc, PagecastError) else str(exc)
        row.status_reason = f"The run of {run_at.isoformat()} could not be made: {message}"
        await session.flush()
        return Run(series_id, run_at, None, False)
    # The unique (series_id, run_at): a second maker failed in `create`.
    campaign.scheduled_at, campaign.status = run_at, CampaignStatus.SCHEDULED
    await session.flush()
    row.status_reason = None
    try:
        started = await sending.start_scheduled(
            session, campaign.id, now=now, max_lateness_s=max_lateness_s
        )
    except PagecastError as exc:
        # start_scheduled turns a refused start (InvalidState) into its reason; any other
        # refusal of the run's fields (a message too long for a name, …) ends it the same way.
        started, campaign.status_reason = None, f"Scheduled start failed: {exc.message}"
    if started is None and not campaign.missed:
        # Not sent (the Page is not active, nobody can be messaged …): the run ends with its
        # reason rather than staying scheduled for the sweep to try again.
        campaign.status, campaign.completed_at = CampaignStatus.CANCELLED, now
        campaign.status_reason = _not_sent(campaign.status_reason)
        await session.flush()
        await campaign_events.cancelled(
            session, campaign, campaign_events.CancelCause.RUN_NOT_SENT, campaign.status_reason
        )
    await session.flush()
    await audit.record(
        session,
        Actor.system(),
        "series.run",
        object_type="series",
        object_id=row.id,
        details={
            "campaign_id": campaign.id,
            "run_at": run_at.isoformat(),
            "outcome": "started" if started else ("missed" if campaign.missed else "not_sent"),
        },
    )
    return Run(series_id, run_at, campaign, started is not None)
