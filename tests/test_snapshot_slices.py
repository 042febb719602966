"""A large audience is snapshotted in slices after the start answers (docs/performance.md, P4).

The slice sizes are shrunk so that 135 contacts take the sliced path: the first slice in the
start transaction, the rest from the `snapshot` job in the worker, while chunks already send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

import test_sending
from factories import postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery
from pagecast.services import snapshots
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
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 20)
    monkeypatch.setattr(snapshots, "SNAPSHOT_SLICE", 30)
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


async def test_deleting_a_campaign_waits_for_a_slice_in_flight_and_leaves_no_deliveries(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deliveries have no foreign key to cascade from their campaign: the slice's lock on the
    # campaign row is what keeps its rows from outliving a delete.
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 20)
    monkeypatch.setattr(snapshots, "SNAPSHOT_SLICE", 30)
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 60)
    campaign_id = await new_campaign(manager, page_id)
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    async with db.transaction() as session:
        after = await snapshots.resume_point(session, campaign_id)
        upto = await session.scalar(select(func.max(Contact.id)).where(Contact.page_id == page_id))
    assert upto is not None
    # No worker runs: this is the snapshot job's next slice, by hand, not yet committed.
    async with db.transaction() as session:
        assert after < await snapshots.insert_slice(session, campaign_id, after=after, upto=upto)
        cancelled = await manager.post(f"/api/campaigns/{campaign_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        deleting = asyncio.create_task(manager.delete(f"/api/campaigns/{campaign_id}"))
        await asyncio.sleep(0.5)
        assert not deleting.done()  # it waits for the slice's commit
    deleted = await deleting
    assert deleted.status_code == 204, deleted.text
    async with db.transaction() as session:
        left = await session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id))
        # The job goes on after a commit of its own: it finds no campaign, and stops.
        assert await snapshots.insert_slice(session, campaign_id, after=after, upto=upto) == upto
        assert await snapshots.finish(session, campaign_id) == 0
    assert left == 0


@contextlib.contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on `db` inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_start_reads_no_names_when_the_widest_names_would_fit(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 20)
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 30)
    campaign_id = await new_campaign(manager, page_id)  # "Hi {{first_name|there}}"
    with statements(db) as seen:
        started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    # 255-character names (the column width, which PostgreSQL enforces) would still fit, so
    # the start does not scan every contact for the longest one.
    assert not [s for s in seen if "length(contacts.first_name)" in s]


# Both audiences reach people (one that reaches nobody is refused before the names are read).
@pytest.mark.parametrize("audience", [{"type": "all"}, {"type": "tags", "exclude": ["vip"]}])
async def test_start_refuses_text_that_a_name_added_since_makes_too_long(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    audience: dict[str, Any],
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 20)
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 30)
    text = "x" * 1960 + "{{first_name|there}}"  # fits the names the Page has now (8 characters)
    campaign_id = await new_campaign(manager, page_id, content={"text": text}, audience=audience)
    created = await manager.post(
        f"/api/pages/{page_id}/contacts", json={"psid": "99", "first_name": "N" * 50}
    )
    assert created.status_code == 201, created.text
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 422, started.text
    assert "2,010" in started.json()["error"]["message"]
    async with db.transaction() as session:
        written = await session.scalar(
            select(func.count()).where(Delivery.campaign_id == campaign_id)
        )
        campaign = await session.get(Campaign, campaign_id)
    assert written == 0 and campaign is not None and campaign.status.value == "draft"
