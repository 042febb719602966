"""Fixes to local-time sending (issue 20): the planner's count of what is still queued, local
send times re-checked at the start, quiet hours that leave no time in a send window, bounds
on the input. Through the API and the real database (no worker runs here: the test reads
what the start wrote)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from pagecast.db import Database
from pagecast.models import Delivery, utcnow
from pagecast.services import deliveries, due_plan
from test_local_time_sending import minute, people
from test_sending import admin, engine_app, manager, new_campaign, sending_settings, setup_page

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here


async def test_the_planner_counts_only_its_own_window_as_still_queued(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    # Tokyo's 10:00 comes 1 h from now, Kolkata's 4.5 h from now. A planner pass that queued
    # Tokyo's (its window ends at Tokyo's due time) looks again after Kolkata's fell due: those
    # were not queued by it, and must not read as "still queued" (the pass would repeat that
    # for ever, and the sweep start a second chain).
    page_id = await setup_page(admin, sim)
    await people(sim, manager, page_id, [("7001", "Asia/Tokyo", 1), ("7002", "Asia/Kolkata", 1)])
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=10))
    campaign_id = await new_campaign(manager, page_id, local_send_at=wall.isoformat())
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    tokyo = wall.replace(tzinfo=UTC) - timedelta(hours=9)
    later = wall.replace(tzinfo=UTC) - timedelta(hours=5) + timedelta(minutes=1)
    async with db.transaction() as session:
        last = await session.scalar(
            select(func.max(Delivery.id)).where(Delivery.campaign_id == campaign_id)
        )
        assert last is not None
        pass_window = due_plan.in_window(None, tokyo)

        async def queued(**kw: Any) -> int:
            return await deliveries.count_queued(
                session, campaign_id, after_id=0, upto=last, now=later, **kw
            )

        assert await queued() == 2  # due now: both
        assert await queued(due=pass_window) == 1  # this pass's: Tokyo's only
        assert await queued(due=due_plan.in_window(tokyo, later)) == 1  # the next pass's
