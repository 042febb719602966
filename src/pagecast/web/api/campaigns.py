"""Campaigns: drafts, edits under the state machine, duplicate, audience preview."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import actions, tester_sends
from pagecast.models import Campaign, CampaignStatus
from pagecast.permissions import Actor, Permission
from pagecast.schemas import (
    ApproveBody,
    CampaignCreate,
    CampaignUpdate,
    Id,
    Int32,
    Line,
    RejectBody,
    SendTestBody,
    WinnerBody,
)
from pagecast.services import audience, audit, campaigns, content, review
from pagecast.web import openapi, progress, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["campaigns"], responses=errors(*API_ERRORS))
_FINAL = ("completed", "cancelled")
_EVENT_INTERVAL = 1.0
Reader = Annotated[Actor, require(Permission.CAMPAIGNS_READ)]
Writer = Annotated[Actor, require(Permission.CAMPAIGNS_WRITE)]
Sender = Annotated[Actor, require(Permission.CAMPAIGNS_SEND)]
Approver = Annotated[Actor, require(Permission.CAMPAIGNS_APPROVE)]
_ACTION = documented(openapi.CampaignOut, 409, 503)  # actions need Redis (503 without)


@router.get("/campaigns", **documented(openapi.CampaignList))
async def list_campaigns(
    actor: Reader,
    ctx: ContextDep,
    status: CampaignStatus | None = None,
    page_id: Id | None = None,
    q: Annotated[Line | None, Query(max_length=200)] = None,
    archived: bool = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Newest first; `archived=true` lists the archived campaigns instead of the others."""
    async with ctx.db.transaction() as session:
        rows = await campaigns.list_page(
            session,
            status=status,
            page_id=page_id,
            search=q,
            archived=archived,
            limit=limit,
            after_id=render.parse_cursor(cursor),
        )
        items = [render.campaign(c, campaigns.counts(c)) for c in rows]
        return {
            "items": items,
            "next_cursor": render.cursor(rows[-1].id) if len(rows) == limit else None,
        }


async def _saved(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """A created or updated campaign with its `warnings` (tags no contact of the Page has)."""
    warnings = await audience.tag_warnings(session, campaign.page_id, campaign.audience)
    return render.campaign(campaign, campaigns.counts(campaign)) | {
        "warnings": [render.warning(w) for w in warnings]
    }


@router.post("/campaigns", **documented(openapi.CampaignSavedOut, 409, status=201))
async def create_campaign(body: CampaignCreate, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    """A new draft; `warnings` names audience tags that no contact of the Page has (the
    campaign is saved all the same)."""
    async with ctx.db.transaction() as session:
        campaign = await campaigns.create(session, actor, body)
        return await _saved(session, campaign)


@router.get("/campaigns/{campaign_id}", **documented(openapi.CampaignProgressOut))
async def get_campaign(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """The campaign with its counts (O(1)), the send rate over the last minute (counted at
    most once a second per process) and an ETA."""
    return await progress.read(ctx, campaign_id)


@router.get("/campaigns/{campaign_id}/events")
async def campaign_events(campaign_id: Id, actor: Reader, ctx: ContextDep) -> StreamingResponse:
    """Server-Sent Events: the same body as GET /api/campaigns/{id} whenever it changes,
    until the campaign is completed, cancelled or failed."""
    async with ctx.db.transaction() as session:
        await campaigns.get(session, campaign_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        idle = 0.0
        while True:
            body = await progress.read(ctx, campaign_id)
            snapshot = json.dumps(body, sort_keys=True)
            if snapshot != last:
                last, idle = snapshot, 0.0
                yield f"event: progress\ndata: {snapshot}\n\n"
            elif idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            if body["status"] in _FINAL:
                return
            await asyncio.sleep(_EVENT_INTERVAL)
            idle += _EVENT_INTERVAL

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.patch("/campaigns/{campaign_id}", **documented(openapi.CampaignSavedOut, 409))
async def update_campaign(
    campaign_id: Id, body: CampaignUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Change a draft, scheduled or paused campaign; `warnings` as for a new one."""
    async with ctx.db.transaction() as session:
        campaign = await campaigns.update(session, actor, campaign_id, body)
        return await _saved(session, campaign)


@router.delete("/campaigns/{campaign_id}", **documented(None, 409, status=204))
async def delete_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await campaigns.delete(session, actor, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/duplicate", **documented(openapi.CampaignOut, 409, status=201)
)
async def duplicate_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        campaign = await campaigns.duplicate(session, actor, campaign_id)
        return render.campaign(campaign, campaigns.counts(campaign))


@router.get("/campaigns/{campaign_id}/audience", **documented(openapi.PreviewOut))
async def campaign_audience(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """Before sending: how many match, how many are eligible now, why the rest are not."""
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
        result = await audience.preview(session, campaign)
        message = None
        if result.sample is not None:
            sample = {"first_name": result.sample.first_name, "last_name": result.sample.last_name}
            message = content.to_message(
                await campaigns.effective_content(session, campaign), sample
            )
        return render.preview(result, message)


@router.get("/campaigns/{campaign_id}/review", **documented(openapi.ReviewOut))
async def campaign_review(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """Before sending: the audience in words, eligible now and the excluded by reason, the
    Page, the send rate and the expected duration, and the message for one real contact."""
    async with ctx.db.transaction() as session:
        return render.review(await review.get(session, campaign_id))


@router.post("/campaigns/{campaign_id}/test", **documented(openapi.SendTestOut, 409, 503))
async def send_test(
    campaign_id: Id, body: SendTestBody, actor: Sender, ctx: ContextDep
) -> dict[str, Any]:
    """Send the campaign's message now, rendered for each, to testers of its Page (drafts,
    scheduled and paused campaigns): one result per contact, `sent` or why not. Recorded in
    the audit trail; no delivery, no count."""
    results = await tester_sends.send_tests(ctx, actor, campaign_id, body.contact_ids)
    return {"results": [r.as_dict() for r in results]}


@router.get("/campaigns/{campaign_id}/audit", **documented(openapi.AuditList))
async def campaign_audit(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        await campaigns.get(session, campaign_id)
        rows = await audit.list_for(session, object_type="campaign", object_id=campaign_id)
        return {"items": [render.audit(r) for r in rows]}


@router.post(
    "/campaigns/{campaign_id}/start", **documented(openapi.CampaignOut, 409, 503, status=202)
)
async def start_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """Snapshot the audience and start sending; 503 (and nothing changed) when Redis is down.
    When the Page's `approval_threshold` applies, the campaign is `awaiting_approval`
    instead, with nothing snapshotted (issue 22)."""
    campaign = await actions.start(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/schedule", **_ACTION)
async def schedule_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """Start the campaign by itself at its `scheduled_at` (set it with PATCH first); or
    `awaiting_approval` when the Page's `approval_threshold` applies (issue 22)."""
    campaign = await actions.schedule(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/approve", **_ACTION)
async def approve_campaign(
    campaign_id: Id, body: ApproveBody, actor: Approver, ctx: ContextDep
) -> dict[str, Any]:
    """Approve a campaign awaiting approval (issue 22): it starts, or is scheduled, as its
    author asked. 403 for its author (two-person approval); 409 when not awaiting approval."""
    campaign = await actions.approve(ctx, actor, campaign_id, body.comment)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/reject", **documented(openapi.CampaignOut, 409))
async def reject_campaign(
    campaign_id: Id, body: RejectBody, actor: Approver, ctx: ContextDep
) -> dict[str, Any]:
    """Reject a campaign awaiting approval (issue 22): a draft again, with the `comment` shown
    to its author. 403 for its author; 409 when not awaiting approval."""
    campaign = await actions.reject(ctx, actor, campaign_id, body.comment)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/pause", **_ACTION)
async def pause_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.pause(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/resume", **_ACTION)
async def resume_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.resume(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/cancel", **_ACTION)
async def cancel_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.cancel(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/retry-failed", **documented(openapi.RetriedOut, 409, 503))
async def retry_failed(
    campaign_id: Id,
    actor: Sender,
    ctx: ContextDep,
    kind: Annotated[list[Line] | None, Query(max_length=20)] = None,
    code: Annotated[list[Int32] | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Send failed deliveries again; `?kind=retry&code=2` narrows which."""
    campaign, moved = await actions.retry_failed(ctx, actor, campaign_id, kinds=kind, codes=code)
    return render.campaign(campaign, campaigns.counts(campaign)) | {"retried": moved}


@router.post("/campaigns/{campaign_id}/winner", **_ACTION)
async def pick_winner(
    campaign_id: Id, body: WinnerBody, actor: Sender, ctx: ContextDep
) -> dict[str, Any]:
    """An A/B experiment's winner picked by hand (while it tests or waits for a decision):
    the rest of the audience gets that variant (docs/experiments.md)."""
    campaign = await actions.pick_winner(ctx, actor, campaign_id, body.key)
    return render.campaign(campaign, campaigns.counts(campaign))
