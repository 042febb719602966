"""The periodic sweep, the backstop of every job: every sending campaign has a plan chain
(one that stalled is planned again), due schedules start, the claims of dead workers become
`unknown`, `unknown` deliveries past their grace are reconciled, webhook events left
unprocessed are processed, abandoned "Connect with Facebook" runs lose their user token, and
the due runs of series (issue 20) are made."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from pagecast.models import Campaign, CampaignStatus
from pagecast.services import deliveries, facebook_connect, reconcile, sending
from pagecast.webhook_runner import run_pending as run_pending_webhook_events
from pagecast.worker.experiment import decide_experiments
from pagecast.worker.schedule import start_due
from pagecast.worker.series import run_due_series
from pagecast.worker.state import Env

__all__ = ["sweep", "sweep_forever"]

logger = logging.getLogger(__name__)


async def sweep_forever(env: Env) -> None:
    """Sweep every `sweep_seconds` until cancelled; a failed sweep is tried again."""
    while True:
        try:
            await sweep(env)
        except Exception:
            logger.warning(
                "sweep failed; trying again in %.0f s", env.config.sweep_seconds, exc_info=True
            )
        await env.clock.sleep(env.config.sweep_seconds)


async def sweep(env: Env) -> None:
    """Backstop: every sending campaign has a plan job (deduplicated by its id), and due
    scheduled campaigns start even if their delayed job was lost."""
    clock, queue, last_progress = env.clock, env.queue, env.state.last_progress
    async with env.db.transaction() as session:
        rows = list(
            await session.execute(
                select(
                    Campaign.id,
                    Campaign.priority,
                    Campaign.page_id,
                    Campaign.n_pending,
                    Campaign.n_sending,
                    Campaign.n_sent,
                ).where(Campaign.status == CampaignStatus.SENDING)
            )
        )
        due = await sending.due_schedules(session, clock.now())
        await facebook_connect.forget_expired(session, clock.now())
        # No progress is expected while the queue is paused or the Page throttled.
        watching = not await (await queue.bull()).isPaused()
        stalled = {
            campaign_id
            for campaign_id, _, page_id, *progress in rows
            if watching
            and last_progress.get(campaign_id) == tuple(progress)
            and progress[0] > 0
            and await env.limiter.throttled_for(page_id) <= 0
            and await deliveries.has_due_pending(session, campaign_id, clock.now())
        }
    for campaign_id, priority, _page_id, *progress in rows:
        last_progress[campaign_id] = tuple(progress)
        # A campaign with due work that did not move since the last sweep has lost
        # its jobs (or they are stuck): plan it again under new job ids. One
        # whose plan jobs go on needs nothing (a second chain would queue twice
        # its share of chunks).
        round_ = int(clock.time()) if campaign_id in stalled else 0
        if round_:
            logger.warning("campaign %d made no progress; planning it again", campaign_id)
        elif await queue.plan_alive(campaign_id):
            continue
        await queue.enqueue_plan(campaign_id, priority=priority.value, round_=round_)
    if due:
        await start_due(env, due)
    await recover_lost_claims(env)
    await reconcile_unknown(env)
    await run_pending_webhook_events(
        env.db, older_than=env.config.webhook_retry_after, reactions=env.reactions
    )
    await run_due_series(env)  # issue 20: the due runs of recurring series
    await decide_experiments(env)  # A/B tests whose test time is over (last: issue 20)


async def recover_lost_claims(env: Env) -> None:
    """Deliveries claimed by a worker whose heartbeat expired (it died) become `unknown`."""
    live = await env.queue.live_worker_ids()
    live.add(env.state.id)
    async with env.db.transaction() as session:
        moved = await deliveries.lost_claims(session, live, env.clock.now())
        for campaign_id in moved:
            await sending.finish_if_done(session, campaign_id)
    for campaign_id, count in moved.items():
        if not count:
            continue  # their echoes had arrived: they are sent
        logger.warning(
            "campaign %d: %d deliveries claimed by a dead worker are now unknown",
            campaign_id,
            count,
        )


async def reconcile_unknown(env: Env) -> None:
    """Decide `unknown` deliveries past their grace period (services/reconcile.py) and
    complete or re-plan their campaigns."""
    async with env.db.transaction() as session:
        done = await reconcile.reconcile(
            session, env.clock.now(), timedelta(seconds=env.config.unknown_grace)
        )
        for campaign_id in done.campaigns:
            await sending.finish_if_done(session, campaign_id)
        resend = {
            campaign_id: priority
            for campaign_id, priority in await session.execute(
                select(Campaign.id, Campaign.priority).where(
                    Campaign.id.in_(list(done.resent)),
                    Campaign.status == CampaignStatus.SENDING,
                )
            )
        }
    for campaign_id, count in done.failed.items():
        logger.warning(
            "campaign %d: %d unknown deliveries could not be proven and failed (ambiguous)",
            campaign_id,
            count,
        )
    for campaign_id, priority in resend.items():
        logger.info(
            "campaign %d: %d unknown deliveries proven never sent; sending them once more",
            campaign_id,
            done.resent[campaign_id],
        )
        await env.queue.enqueue_plan(
            campaign_id, priority=priority.value, round_=int(env.clock.time())
        )
