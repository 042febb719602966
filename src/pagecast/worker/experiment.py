"""The sweep's part in A/B experiments: decide those whose test time is over (by the
worker's clock) and plan the rest of each that got a winner (services/experiments.py)."""

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
        decided = [
            (c.id, c.priority.value, c.winner, c.status)
            for c in await experiments.decide_due(session, now)
        ]
    for campaign_id, priority, winner, status in decided:
        logger.info("campaign %d: experiment decided, %s goes to the rest", campaign_id, winner)
        if status is CampaignStatus.SENDING:
            await env.queue.enqueue_plan(
                campaign_id, priority=priority, round_=int(env.clock.time())
            )
