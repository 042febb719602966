"""The circuit breaker: a campaign whose requests Facebook keeps refusing pauses itself.

Only answers about the campaign's requests count: a refused request (`bad_request`: an
invalid parameter, content or attachment Facebook will not take) is a failure and a sent
message a success. What says something about a person and not about the requests (they
blocked the Page or cannot be reached, are outside their window, opted out; a send
whose answer was never seen) counts neither way, wherever it falls in the campaign
(docs/sending.md, "Circuit breaker").

The worker calls `check` in the transaction that writes a chunk's outcomes, and `stop`
for a spam warning; both pause through `sending.pause`, with its audit entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from pagecast.permissions import Actor
from pagecast.services import sending
from pagecast.services.deliveries import Outcome

__all__ = ["REFUSED", "check", "stop"]

# The error kind of a request Facebook refused (graph.ErrorKind.BAD_REQUEST).
REFUSED = "bad_request"


async def check(
    session: AsyncSession,
    campaign_id: int,
    outcomes: Sequence[Outcome],
    *,
    consecutive: int,
    ratio: float,
    window: int,
) -> str | None:
    """Count a chunk's refused requests and pause the campaign when `consecutive` come in a
    row, or when more than `ratio` of the last `window` answers about its requests were
    refusals. Returns the reason when this call paused it."""
    was = await session.scalar(select(Campaign.bad_streak).where(Campaign.id == campaign_id)) or 0
    streak = was
    for outcome in outcomes:
        if outcome.error_kind == REFUSED:
            streak += 1
        elif outcome.status is DeliveryStatus.SENT:
            streak = 0
    if streak != was:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(bad_streak=streak)
        )
    if streak >= consecutive:
        return await stop(
            session,
            campaign_id,
            f"Circuit breaker: {streak} consecutive sends rejected by Facebook (bad request)",
        )
    if not any(o.error_kind == REFUSED for o in outcomes):
        # Only a chunk with refusals can raise their share (a scan of the campaign's
        # deliveries, so not for every chunk).
        return None
    recent = list(
        await session.execute(
            select(Delivery.status, Delivery.error_kind)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.sent_at.is_not(None) | (Delivery.error_kind == REFUSED),
            )
            .order_by(Delivery.updated_at.desc())
            .limit(window)
        )
    )
    refused = sum(
        1 for status, kind in recent if status is DeliveryStatus.FAILED and kind == REFUSED
    )
    if len(recent) >= window and refused / len(recent) > ratio:
        return await stop(
            session,
            campaign_id,
            f"Circuit breaker: {refused} of the last {len(recent)} sends failed "
            "(rejected by Facebook: bad request)",
        )
    return None


async def stop(session: AsyncSession, campaign_id: int, reason: str) -> str | None:
    """Pause a sending campaign for the system with `reason` (audited by `sending.pause`).
    Returns the reason, or None when the campaign was no longer sending."""
    status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if status is not CampaignStatus.SENDING:
        return None
    await sending.pause(session, Actor.system(), campaign_id, reason=reason, by_breaker=True)
    return reason
