"""Two-person approval on the dashboard (issue 22): the campaign page's approval panel, its
Approve and Reject buttons, and the nav badge of campaigns awaiting the viewer's approval.

The buttons post to the campaign's action route (`/campaigns/{id}/approve` and `/reject`,
web/dashboard/campaigns.py), which calls `decide` here: the same `actions.approve` and
`actions.reject` as the API and the CLI, so the rules (the permission, never the author)
hold the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from pagecast import actions
from pagecast.context import AppContext
from pagecast.errors import InvalidInput, field_path, in_words
from pagecast.models import Campaign, CampaignStatus
from pagecast.permissions import Actor, Permission
from pagecast.schemas import ApproveBody, RejectBody
from pagecast.services import approval_requests
from pagecast.web import render

__all__ = ["DECISIONS", "asking", "decide", "panel", "waiting_for"]

DECISIONS = ("approve", "reject")


def panel(actor: Actor, campaign: Campaign) -> dict[str, Any] | None:
    """What the campaign page shows about its approval, or None if it was never asked:
    the request and decision, and whether this viewer may decide (an approver, not its
    author) or why not."""
    shown = render.approval(campaign)
    if shown is None:
        return None
    awaiting = campaign.status is CampaignStatus.AWAITING_APPROVAL
    author = awaiting and approval_requests.is_author(actor, campaign)
    return shown | {
        "awaiting": awaiting,
        "can_decide": awaiting and not author and actor.can(Permission.CAMPAIGNS_APPROVE),
        "author": author,
    }


def asking(
    shown: list[tuple[str, str, str]], threshold: int | None, eligible: int
) -> list[tuple[str, str, str]]:
    """The campaign page's buttons, Start and Schedule saying that they ask for approval
    when the Page's threshold catches the audience eligible now (the count the request
    will take)."""
    if not approval_requests.threshold_applies(threshold, eligible):
        return shown
    asks = {"start": "start", "schedule": "schedule"}
    return [
        (
            action,
            f"Ask approval to {label[0].lower()}{label[1:]}",
            f"{question.removesuffix('?')}: another person must approve it first. Ask now?",
        )
        if action in asks
        else (action, label, question)
        for action, label, question in shown
    ]


async def decide(
    ctx: AppContext, actor: Actor, campaign_id: int, decision: str, form: FormData
) -> None:
    """Approve or reject from the panel's form (`comment`: required to reject)."""
    actor.require(Permission.CAMPAIGNS_APPROVE)
    raw = form.get("comment")
    comment = raw.strip() if isinstance(raw, str) and raw.strip() else None
    model = ApproveBody if decision == "approve" else RejectBody
    try:
        body = model.model_validate({"comment": comment} if comment else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = field_path(error["loc"])
        raise InvalidInput(
            f"{name}: {in_words(error)}. Write why you reject it: the author reads it.",
            field=name,
        ) from exc
    if isinstance(body, RejectBody):
        await actions.reject(ctx, actor, campaign_id, body.comment)
    else:
        await actions.approve(ctx, actor, campaign_id, body.comment)


async def waiting_for(ctx: AppContext, actor: Actor) -> int:
    """The nav badge: campaigns awaiting approval that `actor` may approve."""
    if not actor.can(Permission.CAMPAIGNS_APPROVE):
        return 0
    async with ctx.db.reading() as session:
        return await approval_requests.awaiting_count(session, actor)
