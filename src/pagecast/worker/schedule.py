"""The `schedule` job: start a scheduled campaign at its time (or flag it missed); the sweep
starts the due ones whose delayed job was lost."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pagecast.jobs import ScheduleJob
from pagecast.services import sending
from pagecast.worker.state import Env

__all__ = ["schedule", "start_due"]

logger = logging.getLogger(__name__)


async def schedule(env: Env, job: Any, token: str, payload: ScheduleJob) -> str:
    return await start_due(env, [payload.campaign_id])


async def start_due(env: Env, campaign_ids: Sequence[int]) -> str:
    """Start the given scheduled campaigns whose time has come (or flag them missed)."""
    started = []
    for campaign_id in campaign_ids:
        async with env.db.transaction() as session:
            campaign = await sending.start_scheduled(
                session,
                campaign_id,
                now=env.clock.now(),
                max_lateness_s=env.config.max_schedule_lateness,
            )
        if campaign is not None:
            await env.queue.enqueue_plan(campaign.id, priority=campaign.priority.value)
            logger.info(
                "campaign %d started on schedule (%d deliveries)",
                campaign.id,
                campaign.n_pending,
            )
            started.append(campaign.id)
    return f"started {started}"
