"""A large audience is snapshotted in slices after the start answers (docs/performance.md, P4).

The slice sizes are shrunk so that 135 contacts take the sliced path: the first slice in the
start transaction, the rest from the `snapshot` job in the worker, while chunks already send.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

import test_sending
from factories import postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Delivery
from pagecast.services import sending
from pagecast.settings import Settings
from test_sending import (
    RunningWorker,
    add_people,
    new_campaign,
    outbox,
    setup_page,
    wait_for,
)

pytestmark = [postgresql_only]

# The fixtures of test_sending (an app with a worker's settings, an admin and a manager).
sending_settings = test_sending.sending_settings
engine_app = test_sending.engine_app
admin = test_sending.admin
manager = test_sending.manager


async def test_sliced_snapshot_sends_everyone_once_and_counts_agree(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sending, "SNAPSHOT_FIRST", 20)
    monkeypatch.setattr(sending, "SNAPSHOT_SLICE", 30)
    page_id = await setup_page(admin, sim, send_rate=300)
    eligible = await add_people(sim, manager, page_id, 130)
    outside = await add_people(sim, manager, page_id, 5, start=500, hours_ago=30)
    campaign_id = await new_campaign(manager, page_id)
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    async with db.transaction() as session:
        written = await session.scalar(
            select(func.count()).where(Delivery.campaign_id == campaign_id)
        )
    assert written == 20  # only the first slice: the rest is the job's
    assert started.json()["counts"]["total"] == 135
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(eligible)
    assert not {m["psid"] for m in sent} & set(outside)
    assert done["counts"]["sent"] == 130 and done["counts"]["skipped"] == 5
    assert done["counts"]["pending"] == 0
    async with db.transaction() as session:
        rows = Counter(
            status.value
            for status in await session.scalars(
                select(Delivery.status).where(Delivery.campaign_id == campaign_id)
            )
        )
        campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    assert rows == {"sent": 130, "skipped": 5}
    assert campaign.n_total == 135 and campaign.n_sent == 130 and campaign.n_skipped == 5
