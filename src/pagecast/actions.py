"""Campaign actions that change state and then enqueue work, shared by the API and the CLI.

Each checks Redis first (so a 503 changes nothing), runs the service in one transaction, and
enqueues only after the commit, so a worker always sees the state the job was made for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pagecast.context import AppContext
from pagecast.models import Campaign, CampaignStatus, utcnow
from pagecast.permissions import Actor
from pagecast.services import approvals, experiments, pacing, sending, snapshots

__all__ = [
    "approve",
    "cancel",
    "pause",
    "pick_winner",
    "reject",
    "resume",
    "retry_failed",
    "schedule",
    "start",
]

logger = logging.getLogger(__name__)


async def start(ctx: AppContext, actor: Actor, campaign_id: int) -> Campaign:
    """Start now, or put to approval when the campaign's Page asks for it (issue 22)."""
    await ctx.queue.redis()
    async with ctx.db.transaction() as session:
        held = await approvals.hold(session, actor, campaign_id, "start", utcnow())
        if held is not None:
            return held  # nothing snapshotted, nothing enqueued before the approval
        # A large audience gets its first slice now and the rest from a snapshot job, so
        # the answer and the first send do not wait for a million-row INSERT (P4).
        campaign, rest = await sending.start_sliced(session, actor, campaign_id)
        first = await pacing.first_chunks(session, campaign, chunk_size=ctx.settings.chunk_size)
    await _enqueue_started(ctx, campaign, first, rest)
    return campaign


async def _enqueue_started(
    ctx: AppContext,
    campaign: Campaign,
    first: list[tuple[int, int]],
    rest: snapshots.Rest | None,
) -> None:
    priority = campaign.priority.value
    # The first chunks go straight to the queue; the plan job goes on after them.
    await ctx.queue.enqueue_chunks(campaign.id, first, priority=priority)
    if rest is not None:
        await ctx.queue.enqueue_snapshot(
            campaign.id, after=rest.after, upto=rest.upto, priority=priority
        )
    # The plan job goes on once the first chunks are under way (`since`: what they cover).
    await ctx.queue.enqueue_plan(
        campaign.id,
        after_id=first[-1][1] if first else 0,
        since=0 if first else None,
        priority=priority,
    )
    logger.info("campaign %d started (%d deliveries)", campaign.id, campaign.n_pending)


async def schedule(ctx: AppContext, actor: Actor, campaign_id: int) -> Campaign:
    """Schedule, or put to approval when the campaign's Page asks for it (issue 22)."""
    await ctx.queue.redis()
    async with ctx.db.transaction() as session:
        held = await approvals.hold(session, actor, campaign_id, "schedule", utcnow())
        if held is not None:
            return held
        campaign = await sending.schedule(session, actor, campaign_id)
    await _enqueue_scheduled(ctx, campaign)
    return campaign


async def _enqueue_scheduled(ctx: AppContext, campaign: Campaign) -> None:
    assert campaign.scheduled_at is not None
    await ctx.queue.enqueue_schedule(
        campaign.id, at_epoch=campaign.scheduled_at.timestamp(), priority=campaign.priority.value
    )


async def approve(ctx: AppContext, actor: Actor, campaign_id: int, comment: str | None) -> Campaign:
    """Approve a campaign awaiting approval: it starts or is scheduled as asked (issue 22)."""
    await ctx.queue.redis()
    async with ctx.db.transaction() as session:
        campaign, rest = await approvals.approve(session, actor, campaign_id, comment, utcnow())
        first = []
        if campaign.status is CampaignStatus.SENDING:
            first = await pacing.first_chunks(session, campaign, chunk_size=ctx.settings.chunk_size)
    if campaign.status is CampaignStatus.SENDING:
        await _enqueue_started(ctx, campaign, first, rest)
    else:
        # A schedule whose time passed meanwhile runs its job at once: the lateness rule
        # (`sending.start_scheduled`) starts it or flags it missed.
        await _enqueue_scheduled(ctx, campaign)
    return campaign


async def reject(ctx: AppContext, actor: Actor, campaign_id: int, comment: str) -> Campaign:
    """Reject a campaign awaiting approval: a draft again, with the comment (issue 22)."""
    async with ctx.db.transaction() as session:
        return await approvals.reject(session, actor, campaign_id, comment, utcnow())


async def resume(ctx: AppContext, actor: Actor, campaign_id: int) -> Campaign:
    await ctx.queue.redis()
    async with ctx.db.transaction() as session:
        campaign = await sending.resume(session, actor, campaign_id)
    await ctx.queue.enqueue_plan(campaign.id, priority=campaign.priority.value)
    return campaign


async def retry_failed(
    ctx: AppContext,
    actor: Actor,
    campaign_id: int,
    *,
    kinds: Sequence[str] | None = None,
    codes: Sequence[int] | None = None,
) -> tuple[Campaign, int]:
    await ctx.queue.redis()
    async with ctx.db.transaction() as session:
        campaign, moved = await sending.retry_failed(
            session, actor, campaign_id, kinds=kinds, codes=codes
        )
    if moved:
        await ctx.queue.enqueue_plan(campaign.id, priority=campaign.priority.value)
    return campaign, moved


async def pause(ctx: AppContext, actor: Actor, campaign_id: int) -> Campaign:
    async with ctx.db.transaction() as session:
        return await sending.pause(session, actor, campaign_id)


async def cancel(ctx: AppContext, actor: Actor, campaign_id: int) -> Campaign:
    async with ctx.db.transaction() as session:
        return await sending.cancel(session, actor, campaign_id)


async def pick_winner(ctx: AppContext, actor: Actor, campaign_id: int, key: str) -> Campaign:
    """An A/B experiment's winner picked by hand; the rest waiting for it is planned."""
    await ctx.queue.redis()
    now = utcnow()
    async with ctx.db.transaction() as session:
        campaign = await experiments.pick_winner(session, actor, campaign_id, key, now)
    await ctx.queue.enqueue_plan(
        campaign.id, priority=campaign.priority.value, round_=int(now.timestamp())
    )
    return campaign
