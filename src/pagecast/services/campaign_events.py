"""The outbound events of a campaign's life (issue 22): created, awaiting approval, started,
paused (with who or what paused it), resumed, completed (with its final counts), cancelled,
and its progress while sending.

Each is emitted by the service function that owns the change (`campaigns.create` and
`duplicate`, `approval_requests.request`, `sending.start`, `pause`, `resume`, `cancel`, `finish_if_done`, `retry_failed`,
`series_runs.make_run`), after the change, in its transaction, so an event exists exactly
when its change does; a call that changes nothing (a second pause) emits nothing. The data
is built here, once per type (docs/webhooks.md, "Outbound events").
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, CampaignStatus, OutboundEvent, Page
from pagecast.services import outbound_events

__all__ = [
    "PROGRESS_EVERY",
    "CancelCause",
    "PauseCause",
    "awaiting_approval",
    "cancelled",
    "completed",
    "created",
    "paused",
    "progress",
    "resumed",
    "started",
]

# `campaign.progress` comes at most this often per campaign, whichever worker sends it.
PROGRESS_EVERY = timedelta(seconds=10)


class PauseCause(enum.StrEnum):
    """Who or what paused a campaign: `data.reason` of `campaign.paused`."""

    PERSON = "person"  # a user, in the dashboard, the API or the command line
    BREAKER = "breaker"  # the circuit breaker or Facebook's spam warning (services/breaker.py)
    PAGE = "page"  # its Page stopped (token invalid, restricted: sending.stop_page)


class CancelCause(enum.StrEnum):
    """Why a campaign was cancelled: `data.reason` of `campaign.cancelled`."""

    PERSON = "person"
    RUN_NOT_SENT = "run_not_sent"  # a series' run that could not start (services/series_runs.py)


async def _summary(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """What every campaign event says: the campaign, its Page and its status."""
    page = await session.get(Page, campaign.page_id)
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "page_id": campaign.page_id,
        "page_name": page.name if page is not None else None,
        "status": campaign.status.value,
    }


def _counts(campaign: Campaign) -> dict[str, int]:
    """The campaign's deliveries by status (its counters, no scan)."""
    return {
        "total": campaign.n_total,
        "pending": campaign.n_pending,
        "sending": campaign.n_sending,
        "sent": campaign.n_sent,
        "delivered": campaign.n_delivered,
        "read": campaign.n_read,
        "failed": campaign.n_failed,
        "skipped": campaign.n_skipped,
        "unknown": campaign.n_unknown,
        "cancelled": campaign.n_cancelled,
        "expired": campaign.n_expired,
    }


def _percent(campaign: Campaign) -> float:
    """The share of deliveries with an outcome (neither waiting, in flight nor unknown)."""
    if not campaign.n_total:
        return 100.0
    open_ = campaign.n_pending + campaign.n_sending + campaign.n_unknown
    return round(100 * (campaign.n_total - open_) / campaign.n_total, 1)


async def _emit(
    session: AsyncSession,
    event_type: str,
    campaign: Campaign,
    extra: dict[str, Any],
    now: datetime | None = None,
) -> OutboundEvent:
    data = await _summary(session, campaign) | extra
    return await outbound_events.emit(session, event_type, data, campaign_id=campaign.id, now=now)


async def created(
    session: AsyncSession, campaign: Campaign, *, copied_from: int | None = None
) -> OutboundEvent:
    """A campaign row was made: through the API, the dashboard, the command line, a
    duplicate (`copied_from`) or a series' run (`series_id`, `run_at`)."""
    extra: dict[str, Any] = {"created_by_id": campaign.created_by_id}
    if copied_from is not None:
        extra["copied_from"] = copied_from
    if campaign.series_id is not None:
        extra["series_id"] = campaign.series_id
        extra["run_at"] = campaign.run_at.isoformat() if campaign.run_at else None
    return await _emit(session, "campaign.created", campaign, extra)


async def awaiting_approval(
    session: AsyncSession,
    campaign: Campaign,
    *,
    ask: str,
    people: int,
    requested_by: str,
    requested_by_id: int | None,
    requested_at: datetime,
) -> OutboundEvent:
    """A person asked to start (`ask` "start") or schedule ("schedule", at `scheduled_at`)
    a campaign its Page's threshold holds for a second person's approval
    (services/approval_requests.py); `people`: the audience counted when asked."""
    scheduled_at = campaign.scheduled_at if ask == "schedule" else None
    return await _emit(
        session,
        "campaign.awaiting_approval",
        campaign,
        {
            "ask": ask,
            "scheduled_at": scheduled_at.isoformat() if scheduled_at else None,
            "people": people,
            "requested_by": requested_by,
            "requested_by_id": requested_by_id,
            "requested_at": requested_at.isoformat(),
        },
    )


async def started(session: AsyncSession, campaign: Campaign, *, scheduled: bool) -> OutboundEvent:
    """The campaign began sending: started now by someone, or by its schedule (a series' run
    starts by its schedule)."""
    return await _emit(
        session,
        "campaign.started",
        campaign,
        {"trigger": "schedule" if scheduled else "person"},
    )


async def paused(
    session: AsyncSession, campaign: Campaign, cause: PauseCause, message: str
) -> OutboundEvent:
    return await _emit(
        session, "campaign.paused", campaign, {"reason": cause.value, "message": message}
    )


async def resumed(session: AsyncSession, campaign: Campaign, *, after: str) -> OutboundEvent:
    """Sending again: `after` is `pause` (a resume, or the Page's block lifted) or
    `retry_failed` (a completed campaign's failed deliveries sent again)."""
    return await _emit(session, "campaign.resumed", campaign, {"after": after})


async def completed(session: AsyncSession, campaign_id: int) -> OutboundEvent:
    """Nothing is left to send: the final counts (reached: sent, delivered or read)."""
    await session.flush()  # a re-read must not drop a change not written yet
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    assert campaign is not None
    counts = _counts(campaign)
    return await _emit(
        session,
        "campaign.completed",
        campaign,
        {"counts": counts, "reached": counts["sent"] + counts["delivered"] + counts["read"]},
    )


async def cancelled(
    session: AsyncSession, campaign: Campaign, cause: CancelCause, message: str
) -> OutboundEvent:
    return await _emit(
        session,
        "campaign.cancelled",
        campaign,
        {"reason": cause.value, "message": message, "counts": _counts(campaign)},
    )


async def progress(
    session: AsyncSession, campaign_id: int, *, now: datetime
) -> OutboundEvent | None:
    """`campaign.progress` with the counts and percent done, unless the campaign is not
    sending or its last progress event (any worker's) is less than `PROGRESS_EVERY` old.

    Called in the transaction that wrote a chunk's results, which has updated (so locked)
    the campaign row: two workers' calls for one campaign take turns, and the second sees
    the first's event."""
    last = await session.scalar(
        select(func.max(OutboundEvent.created_at)).where(
            OutboundEvent.campaign_id == campaign_id, OutboundEvent.type == "campaign.progress"
        )
    )
    if last is not None and now - last < PROGRESS_EVERY:
        return None
    await session.flush()
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None or campaign.status is not CampaignStatus.SENDING:
        return None
    return await _emit(
        session,
        "campaign.progress",
        campaign,
        {"counts": _counts(campaign), "percent": _percent(campaign)},
        now,
    )
