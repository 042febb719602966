"""Archiving: a finished campaign (completed or cancelled) leaves the default campaign list
and stays readable, reportable and restorable (issue 21). Archiving changes nothing else:
no delivery, no counter, no report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidState
from pagecast.models import Campaign, CampaignStatus, utcnow
from pagecast.permissions import Actor
from pagecast.services import audit, campaigns

__all__ = ["ARCHIVABLE", "archive", "unarchive"]

ARCHIVABLE = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)


async def archive(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: datetime | None = None
) -> Campaign:
    """Archive a finished campaign; archiving an archived one changes nothing."""
    campaign = await campaigns.get(session, campaign_id)
    if campaign.status not in ARCHIVABLE:
        raise InvalidState(
            f"Campaign {campaign_id} is {campaign.status.value}; only completed or cancelled "
            "campaigns can be archived. Cancel it first, or wait until it completes."
        )
    if campaign.archived_at is None:
        campaign.archived_at = now or utcnow()
        await session.flush()
        await audit.record(
            session, actor, "campaign.archived", object_type="campaign", object_id=campaign.id
        )
    return campaign


async def unarchive(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    """Put an archived campaign back in the default list."""
    campaign = await campaigns.get(session, campaign_id)
    if campaign.archived_at is not None:
        campaign.archived_at = None
        await session.flush()
        await audit.record(
            session, actor, "campaign.unarchived", object_type="campaign", object_id=campaign.id
        )
    return campaign
