"""The `plan` job: queue a campaign's next chunks a few at a time, and plan again about
when half of them should be under way (a chain of plan jobs per campaign)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pagecast.jobs import PlanJob
from pagecast.models import Campaign, CampaignStatus
from pagecast.services import deliveries, due_plan, pacing, sending
from pagecast.worker.state import Env

__all__ = ["plan"]

logger = logging.getLogger(__name__)

# A plan job waits at most this long before it looks again.
_PLAN_MAX_DELAY = 5.0
# A campaign whose next deliveries are due later (each person's local time) looks again at
# that time, but at least every `Clock.longest_wait` seconds (5; the wait is a job delay on
# the queue's clock, and the worker's clock, stepped by NTP or injected in tests, decides
# what is due).


def _at(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


async def plan(env: Env, job: Any, token: str, payload: PlanJob) -> str:
    """Queue the next `plan_ahead` chunks of pending deliveries after `after_id`, once
    the chunks planned before them (deliveries in (since, after_id]) are mostly under
    way, and plan again about when half of these should be."""
    campaign_id, after_id, since = payload.campaign_id, payload.after_id, payload.since
    round_, step = payload.round, payload.step
    queue = env.queue
    now = env.clock.now()
    # One pass (this job and the ones it chains) plans the deliveries due in
    # (due_after, due_upto]; the next pass, when more fall due, those after it.
    due_upto = payload.due_upto if payload.due_upto is not None else int(now.timestamp() * 1000)
    window = due_plan.in_window(_at(payload.due_after), _at(due_upto) or now)
    next_due: datetime | None = None
    async with env.db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.status is not CampaignStatus.SENDING:
            return "not sending"
        rate = await env.limiter.capped(
            campaign.page_id, await pacing.effective_rate(session, campaign)
        )
        chunk_size = pacing.chunk_for(rate, env.config.chunk_size)
        ahead = pacing.plan_ahead(rate, chunk_size)
        priority = campaign.priority.value
        queued = 0
        if since is not None:
            queued = await deliveries.count_queued(
                session, campaign_id, after_id=since, upto=after_id, now=now, due=window
            )
        ranges: list[tuple[int, int]] = []
        if 2 * queued <= ahead * chunk_size:
            ranges = await deliveries.pending_ranges(
                session,
                campaign_id,
                after_id=after_id,
                chunk_size=chunk_size,
                max_chunks=ahead,
                due=window,
            )
            if not ranges:
                await sending.finish_if_done(session, campaign_id)
            if len(ranges) < ahead:
                next_due = await due_plan.next_due(session, campaign_id, _at(due_upto) or now)
    if 2 * queued > ahead * chunk_size:
        # The Page (or the workers) has not caught up with what was queued: look again
        # when about half of it should be under way.
        await queue.mark_plan_alive(campaign_id)
        await queue.enqueue_plan(
            campaign_id,
            after_id=after_id,
            since=since,
            priority=priority,
            delay_s=min(_PLAN_MAX_DELAY, max(0.1, queued / rate / 2)),
            round_=round_,
            step=step + 1,
            due_after=payload.due_after,
            due_upto=due_upto,
        )
        return f"{queued} deliveries still queued"
    await queue.enqueue_chunks(campaign_id, ranges, priority=priority, round_=round_)
    last = ranges[-1][1] if ranges else after_id
    if len(ranges) < ahead and await queue.snapshotting(campaign_id):
        # More of the audience is still being inserted: look again shortly (a new job id,
        # since this one is still active).
        await queue.mark_plan_alive(campaign_id)
        await queue.enqueue_plan(
            campaign_id,
            after_id=last,
            since=after_id if ranges else since,
            priority=priority,
            delay_s=0.5,
            round_=round_ + 1,
            due_after=payload.due_after,
            due_upto=due_upto,
        )
    elif len(ranges) == ahead:
        await queue.mark_plan_alive(campaign_id)
        await queue.enqueue_plan(
            campaign_id,
            after_id=last,
            since=after_id,
            priority=priority,
            delay_s=min(_PLAN_MAX_DELAY, ahead * chunk_size / rate / 2),
            round_=round_,
            due_after=payload.due_after,
            due_upto=due_upto,
        )
    elif next_due is not None:
        # Everything due is queued, and more falls due later: the next pass plans those
        # due after this one's time, from the first delivery (new job ids: a new round).
        wait = min(env.clock.longest_wait, max(0.1, (next_due - now).total_seconds()))
        await queue.mark_plan_alive(campaign_id, waits_s=wait)  # no second chain meanwhile
        await queue.enqueue_plan(
            campaign_id,
            priority=priority,
            delay_s=wait,
            round_=max(due_upto, round_ + 1),
            due_after=due_upto,
        )
    else:  # everything pending is queued: the sweep plans again if work comes back
        await queue.plan_ended(campaign_id)
    logger.info(
        "campaign %d: planned %d chunks after delivery %d", campaign_id, len(ranges), after_id
    )
    return f"{len(ranges)} chunks"
