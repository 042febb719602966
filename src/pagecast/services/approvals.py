"""Two-person approval (issue 22): holding a start or schedule for approval, and deciding.

`hold` is the gate every start and schedule a person asks for goes through
(`actions.start`, `actions.schedule`): a campaign that could go as asked and that its
Page's threshold catches is put to approval instead (services/approval_requests.py). `approve`
then starts or schedules it as asked, in the same transaction: the audience is snapshotted
only then, when sending starts; a schedule whose time passed while it waited is left to
the lateness rule of `sending.start_scheduled` (the schedule job runs at once). `reject`
returns it to draft with the comment shown to its author. The author of a request never
decides it (403 naming the rule), through the API, the dashboard or the CLI alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import Forbidden
from pagecast.models import Campaign, CampaignStatus
from pagecast.permissions import Actor, Permission
from pagecast.services import approval_requests, audit, campaigns, send_checks, sending, snapshots

__all__ = ["approve", "hold", "reject"]


async def hold(
    session: AsyncSession, actor: Actor, campaign_id: int, ask: str, now: datetime
) -> Campaign | None:
    """Put the campaign to approval instead of `ask` ("start" or "schedule") when its Page
    asks for it, and return it; None when it goes as asked without approval. A campaign the
    start or schedule would refuse is refused here the same way, changing nothing."""
    campaign = await send_checks.check(session, campaign_id, ask, now)
    needed, people = await approval_requests.needs_approval(session, campaign, now)
    if not needed or (ask == "start" and people == 0):
        return None  # a start to nobody is refused by the start, with who is excluded and why
    return await approval_requests.request(
        session, actor, campaign, ask=ask, people=people, now=now
    )


async def _deciding(session: AsyncSession, actor: Actor, campaign_id: int, verb: str) -> Campaign:
    actor.require(Permission.CAMPAIGNS_APPROVE)
    # Locked and read fresh: of two approvers deciding at once, the second waits and then
    # finds it decided (409), never a second start.
    campaign = await campaigns.get(session, campaign_id, lock=True)
    campaigns.require_status(campaign, (CampaignStatus.AWAITING_APPROVAL,), verb)
    if approval_requests.is_author(actor, campaign):
        asked = "started" if campaign.approval_ask == "start" else "scheduled"
        raise Forbidden(
            f"You asked for campaign {campaign.id} to be {asked}, and the person who asks for "
            "a send can never approve or reject it (two-person approval). Ask another user "
            "with the campaigns:approve permission."
        )
    return campaign


def _decide(
    campaign: Campaign, actor: Actor, state: str, comment: str | None, now: datetime
) -> None:
    campaign.approval_state = state
    campaign.approval_decided_by_id = actor.user_id
    campaign.approval_decided_by = actor.name
    campaign.approval_decided_at = now
    campaign.approval_comment = comment


async def approve(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    comment: str | None,
    now: datetime,
) -> tuple[Campaign, snapshots.Rest | None]:
    """Approve and start or schedule the campaign as asked. Returns the campaign and, for a
    start, the rest of its audience a snapshot job must insert (as `sending.start_sliced`).
    A start refused now (nobody eligible any more, the Page's token invalid...) raises, and
    the caller's transaction leaves the campaign awaiting approval."""
    campaign = await _deciding(session, actor, campaign_id, "approving")
    _decide(campaign, actor, "approved", comment, now)
    await audit.record(
        session,
        actor,
        "campaign.approved",
        object_type="campaign",
        object_id=campaign.id,
        details={"ask": campaign.approval_ask, "comment": comment},
    )
    if campaign.approval_ask == "start":
        return await sending.start_sliced(session, actor, campaign_id, now=now, approved=True)
    return await sending.schedule(session, actor, campaign_id, now=now, approved=True), None


async def reject(
    session: AsyncSession, actor: Actor, campaign_id: int, comment: str, now: datetime
) -> Campaign:
    """Reject the request: the campaign is a draft again, with the comment for its author."""
    campaign = await _deciding(session, actor, campaign_id, "rejecting")
    _decide(campaign, actor, "rejected", comment, now)
    campaign.status = CampaignStatus.DRAFT
    campaign.status_reason = f"Rejected by {actor.name}: {comment}"
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.rejected",
        object_type="campaign",
        object_id=campaign.id,
        details={"ask": campaign.approval_ask, "comment": comment},
    )
    return campaign
