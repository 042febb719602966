"""What a start or a schedule refuses before it changes anything (services/sending.py).

`check` runs them for a start or schedule asked for, so the approval gate
(services/approvals.py) puts a campaign to approval only when it could go as asked, and
refuses it, changing nothing, with the same errors otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidState, reconnect_hint
from pagecast.message_schema import Content
from pagecast.models import Campaign, CampaignStatus, Page, PageStatus
from pagecast.schemas import check_policy
from pagecast.services import campaigns, due_times, pages

__all__ = ["STARTABLE", "check", "check_schedule", "check_start", "require_active"]

# The states a start (or a schedule) accepts: what the review before sending is shown for.
STARTABLE: tuple[CampaignStatus, ...] = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


def require_active(page: Page) -> None:
    """Refuse (409, naming `page_id`) to send through a Page that is not active."""
    if page.status is not PageStatus.ACTIVE:
        raise InvalidState(
            f"Page {page.name} is {page.status.value}"
            f"{': ' + page.status_reason if page.status_reason else ''}. Reconnect it with a new "
            "token ({hint}) before sending.",
            field="page_id",
            hint=reconnect_hint(page.id, page.fb_page_id),
        )


async def check_start(
    session: AsyncSession, campaign: Campaign, page: Page, now: datetime
) -> list[Content]:
    """What a start refuses before it changes anything; returns the campaign's messages."""
    require_active(page)
    messages = await campaigns.effective_messages(session, campaign)
    check_policy(campaign.messaging_type, campaign.tag)
    if campaigns.expired(campaign, now):
        assert campaign.expires_at is not None
        raise InvalidState(
            f"Campaign {campaign.id} expired at {campaign.expires_at.isoformat()}; change expires_at "
            "or clear it to send.",
            field="expires_at",
        )
    due_times.check_at_start(
        campaign.local_send_at, *due_times.stored(page.quiet_hours, campaign.send_window), now
    )
    return messages


def check_schedule(campaign: Campaign, page: Page, now: datetime, *, in_future: bool) -> None:
    """What a schedule refuses (`in_future`: a time already come too)."""
    if campaign.scheduled_at is None:
        raise InvalidState(
            f"Campaign {campaign.id} has no scheduled_at; set it (PATCH) before scheduling.",
            field="scheduled_at",
        )
    if in_future and campaign.scheduled_at <= now:
        raise InvalidState(
            f"scheduled_at {campaign.scheduled_at.isoformat()} is in the past; choose a later time "
            "or start the campaign now.",
            field="scheduled_at",
        )
    require_active(page)
    due_times.check_at_start(  # as the start will (its local time must not pass by then)
        campaign.local_send_at,
        *due_times.stored(page.quiet_hours, campaign.send_window),
        max(campaign.scheduled_at, now),
    )


async def check(session: AsyncSession, campaign_id: int, ask: str, now: datetime) -> Campaign:
    """Refuse, as a start (`ask` "start") or a schedule ("schedule") would, a campaign that
    could not be started or scheduled now, changing nothing. The campaign is read locked:
    of two starts at once, the second waits and finds it awaiting approval (409), so the
    approvers are asked once."""
    campaign = await campaigns.get(session, campaign_id, lock=True)
    action = "starting" if ask == "start" else "scheduling"
    campaigns.require_status(campaign, STARTABLE, action)
    page = await pages.get(session, campaign.page_id)
    if ask == "start":
        await check_start(session, campaign, page, now)
    else:
        check_schedule(campaign, page, now, in_future=True)
    return campaign
