"""The sweep's part in A/B experiments: decide those whose test time is over (by the
worker's clock) and plan the rest of each that got a winner (services/experiments.py).
Each campaign is decided in its own transaction: one that fails is logged and tried again
by the next sweep, and does not stop the others."""

from __future__ import annotations

import logging

from pagecast.models import CampaignStatus
from pagecast.services import experiments
from pagecast.worker.state import Env

__all__ = ["decide_experiments"]

logger = logging.getLogger(__name__)


async def decide_experiments(env: Env) -> None:
    now = env.clock.now()
    async with env.db.transaction() as session:
        due = await experiments.due(session, now)
    for campaign_id in due:
        try:
            async with env.db.transaction() as session:
                campaign = await experiments.decide_one(session, campaign_id, now)
                decided = (
                    None
                    if campaign is None
                    else (campaign.priority.value, campaign.winner, campaign.status)
                )
        except Exception:
            logger.warning(
                "campaign %d: deciding its experiment failed; the next sweep tries again",
                campaign_id,
                exc_info=True,
            )
            continue
        if decided is None:
            continue
        priority, winner, status = decided
        logger.info("campaign %d: experiment decided, %s goes to the rest", campaign_id, winner)
        if status is CampaignStatus.SENDING:
            await env.queue.enqueue_plan(
                campaign_id, priority=priority, round_=int(env.clock.time())
            )
