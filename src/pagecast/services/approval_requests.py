"""Two-person approval (issue 22): when a campaign needs it, the request, and what withdraws it.

A Page's `approval_threshold` N makes every campaign to more than N people (0: every
campaign; None: none) wait in `awaiting_approval` when it is started or scheduled. "People"
is the audience eligible at the time of the request: the count the audience preview and
the start use (`audience.count`). The request remembers what was asked (`start` now, or
`schedule` at the campaign's `scheduled_at`), for how many people, and who asked: the
campaign's author for this approval, who may never approve it (services/approvals.py).

Any edit after approval withdraws it (`withdraw_on_edit`, called by `campaigns.update`):
an approved campaign scheduled for later asks again at once (its schedule stays, but it
cannot fire before a new approval); a campaign still awaiting approval goes back to draft.
An edit of a template's content is an edit of the campaigns whose message it gives
(`withdraw_for_template`, called by `templates.update`): they are sent as the template is
when they start, so what was approved would otherwise not be what is sent.

The history of requests and decisions is the audit log (`campaign.approval_requested`,
`campaign.approved`, `campaign.rejected`, `campaign.approval_withdrawn`). This module imports
no other campaign service, so `campaigns.update` can call it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, CampaignStatus, Page
from pagecast.permissions import Actor, Permission
from pagecast.services import audience, audit, campaign_events

__all__ = [
    "ASKS",
    "STATES",
    "awaiting_count",
    "is_author",
    "needs_approval",
    "request",
    "threshold_applies",
    "withdraw_for_template",
    "withdraw_on_edit",
]

# What a request asks for: start now, or schedule at the campaign's scheduled_at.
ASKS = ("start", "schedule")
# Where a campaign's approval stands (`Campaign.approval_state`; NULL: never asked).
STATES = ("pending", "approved", "rejected", "withdrawn")


def threshold_applies(threshold: int | None, people: int) -> bool:
    """The rule: None needs no approval; 0 needs it for every campaign; N for more than N."""
    return threshold is not None and (threshold == 0 or people > threshold)


async def needs_approval(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> tuple[bool, int]:
    """Whether starting or scheduling `campaign` now needs approval, and its people now."""
    page = await session.get(Page, campaign.page_id)
    assert page is not None  # a campaign's Page cannot be deleted (RESTRICT)
    if page.approval_threshold is None:
        return False, 0
    people, _ = await audience.count(session, campaign, now)
    return threshold_applies(page.approval_threshold, people), people


async def request(
    session: AsyncSession,
    actor: Actor,
    campaign: Campaign,
    *,
    ask: str,
    people: int,
    now: datetime,
) -> Campaign:
    """Put `campaign` in `awaiting_approval` for `ask`, asked by `actor` (its author for this
    approval); audited, and the outbound event `campaign.awaiting_approval` is written in
    the same transaction (its data built with the other campaign events')."""
    assert ask in ASKS
    campaign.status, campaign.status_reason, campaign.missed = (
        CampaignStatus.AWAITING_APPROVAL,
        None,
        False,
    )
    campaign.approval_state, campaign.approval_ask, campaign.approval_people = (
        "pending",
        ask,
        people,
    )
    campaign.approval_requested_by_id = actor.user_id
    campaign.approval_requested_by = actor.name
    campaign.approval_requested_at = now
    campaign.approval_decided_by_id = None
    campaign.approval_decided_by = None
    campaign.approval_decided_at = None
    campaign.approval_comment = None
    await session.flush()
    details = {
        "ask": ask,
        "scheduled_at": campaign.scheduled_at.isoformat()
        if ask == "schedule" and campaign.scheduled_at
        else None,
        "people": people,
    }
    await audit.record(
        session,
        actor,
        "campaign.approval_requested",
        object_type="campaign",
        object_id=campaign.id,
        details=details,
    )
    await campaign_events.awaiting_approval(
        session,
        campaign,
        ask=ask,
        people=people,
        requested_by=actor.name,
        requested_by_id=actor.user_id,
        requested_at=now,
    )
    return campaign


def is_author(actor: Actor, campaign: Campaign) -> bool:
    """Whether `actor` asked for the approval pending on `campaign` (the CLI on this machine,
    which has no user, is one author: itself)."""
    if actor.user_id is not None:
        return actor.user_id == campaign.approval_requested_by_id
    return (
        campaign.approval_requested_by_id is None and actor.name == campaign.approval_requested_by
    )


async def withdraw_on_edit(
    session: AsyncSession, actor: Actor, campaign: Campaign, now: datetime, *, why: str = "edited"
) -> None:
    """An edit (already applied) withdraws a pending or granted approval of a campaign that
    has not started: awaiting → draft; approved and scheduled → awaiting again, asked by
    the editor, for its schedule (a schedule the edit removed leaves a draft)."""
    pending = campaign.status is CampaignStatus.AWAITING_APPROVAL
    approved = campaign.status is CampaignStatus.SCHEDULED and campaign.approval_state == "approved"
    if not (pending or approved):
        return
    before = campaign.approval_state
    campaign.approval_state = "withdrawn"
    await audit.record(
        session,
        actor,
        "campaign.approval_withdrawn",
        object_type="campaign",
        object_id=campaign.id,
        details={"was": before, "why": why},
    )
    if approved and campaign.scheduled_at is not None:
        people, _ = await audience.count(session, campaign, now)
        await request(session, actor, campaign, ask="schedule", people=people, now=now)
    else:
        campaign.status = CampaignStatus.DRAFT
        campaign.status_reason = (
            f"The approval request was withdrawn by an edit ({actor.name}"
            f"{'' if why == 'edited' else ': ' + why}); start or schedule "
            "it again to ask for approval."
        )
        await session.flush()


async def withdraw_for_template(
    session: AsyncSession, actor: Actor, template_id: int, now: datetime
) -> None:
    """A template's content was edited: withdraw the pending or granted approval of every
    campaign that has not started and whose message the template gives (as `withdraw_on_edit`)."""
    held = await session.scalars(
        select(Campaign)
        .where(
            Campaign.template_id == template_id,
            Campaign.status.in_((CampaignStatus.AWAITING_APPROVAL, CampaignStatus.SCHEDULED)),
            Campaign.approval_state.in_(("pending", "approved")),
        )
        .order_by(Campaign.id)
        .with_for_update()
    )
    for campaign in list(held):
        await withdraw_on_edit(session, actor, campaign, now, why=f"template {template_id} edited")


async def awaiting_count(session: AsyncSession, actor: Actor | None = None) -> int:
    """Campaigns awaiting approval; with `actor`, only those it may approve (none without
    the permission, never its own requests): the dashboard's badge."""
    query = select(func.count(Campaign.id)).where(
        Campaign.status == CampaignStatus.AWAITING_APPROVAL
    )
    if actor is not None:
        if not actor.can(Permission.CAMPAIGNS_APPROVE):
            return 0
        if actor.user_id is not None:
            mine = func.coalesce(Campaign.approval_requested_by_id, 0) == actor.user_id
        else:
            mine = and_(
                Campaign.approval_requested_by_id.is_(None),
                Campaign.approval_requested_by == actor.name,
            )
        query = query.where(not_(mine))
    return int(await session.scalar(query) or 0)
