"""Fixes to local-time sending (issue 20): the planner's count of what is still queued, local
send times re-checked at the start, quiet hours that leave no time in a send window, bounds
on the input. Through the API and the real database (no worker runs here: the test reads
what the start wrote)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from pagecast.db import Database
from pagecast.errors import InvalidState
from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, utcnow
from pagecast.permissions import Actor
from pagecast.services import deliveries, due_plan, due_times, inbound, sending, snapshot_insert
from test_experiments import EXPERIMENT, TWO
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


async def test_a_local_time_past_everywhere_is_refused_at_the_start(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    # Saved for 10:00 local an hour ahead, started 14 h later: it has passed in every zone,
    # and would go to everyone at once.
    page_id = await setup_page(admin, sim)
    await people(sim, manager, page_id, [("7101", "Asia/Tokyo", 1)])
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=1))
    campaign_id = await new_campaign(manager, page_id, local_send_at=wall.isoformat())
    late = utcnow() + timedelta(hours=14)
    async with db.transaction() as session:
        with pytest.raises(InvalidState) as refused:
            await sending.start(session, Actor.system(), campaign_id, now=late)
    assert refused.value.field == "local_send_at"
    assert "passed in every time zone" in refused.value.message
    assert "clear it" in refused.value.message
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status is CampaignStatus.DRAFT
    # In time, it starts.
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202


async def test_a_scheduled_start_after_the_local_time_everywhere_is_refused(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    page_id = await setup_page(admin, sim)
    await people(sim, manager, page_id, [("7201", "Asia/Tokyo", 1)])
    now = utcnow()
    wall = minute(now.replace(tzinfo=None) + timedelta(hours=2))
    # Saved: scheduled to start after the local time has passed everywhere.
    response = await manager.post(
        "/api/campaigns",
        json={
            "name": "x",
            "page_id": page_id,
            "content": {"text": "hi"},
            "local_send_at": wall.isoformat(),
            "scheduled_at": (now + timedelta(hours=20)).isoformat(),
        },
    )
    assert response.status_code == 422, response.text
    assert "local_send_at" in response.text and "by scheduled_at" in response.text
    # Scheduled in time, but the scheduler fires late (a worker down for a day).
    campaign_id = await new_campaign(
        manager,
        page_id,
        local_send_at=wall.isoformat(),
        scheduled_at=(now + timedelta(hours=1)).isoformat(),
    )
    assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
    async with db.transaction() as session:
        started = await sending.start_scheduled(
            session, campaign_id, now=now + timedelta(hours=15), max_lateness_s=10**6
        )
        assert started is None
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status is CampaignStatus.SCHEDULED
        assert campaign.status_reason is not None
        assert "local_send_at" in campaign.status_reason
        assert "passed in every time zone" in campaign.status_reason


async def test_a_send_window_inside_the_quiet_hours_is_refused_at_save_and_start(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    page_id = await setup_page(admin, sim)
    await people(sim, manager, page_id, [("7301", "Asia/Tokyo", 1)])
    quiet = {"start": "21:00", "end": "08:00"}
    assert (await admin.patch(f"/api/pages/{page_id}", json={"quiet_hours": quiet})).is_success
    body = {"name": "x", "page_id": page_id, "content": {"text": "hi"}}
    window = {"days": ["mon", "tue"], "start": "22:00", "end": "23:30"}
    refused = await manager.post("/api/campaigns", json=body | {"send_window": window})
    assert refused.status_code == 422, refused.text
    assert "send_window" in refused.text and "wholly inside" in refused.text
    # Saved with a window that fits; the Page's quiet hours then grow over all of it.
    window = {"days": ["mon", "tue"], "start": "07:00", "end": "09:00"}
    campaign_id = await new_campaign(manager, page_id, send_window=window)
    quiet = {"start": "06:00", "end": "10:00"}
    assert (await admin.patch(f"/api/pages/{page_id}", json={"quiet_hours": quiet})).is_success
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 409, started.text
    assert "send_window" in started.text and "quiet_hours" in started.text


@pytest.mark.parametrize("wall", ["9999-12-31T23:00", "2100-01-01T10:00"])
async def test_a_local_time_years_ahead_is_refused_naming_the_field(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient, wall: str
) -> None:
    page_id = await setup_page(admin, sim)
    body = {"name": "x", "page_id": page_id, "content": {"text": "hi"}, "local_send_at": wall}
    response = await manager.post("/api/campaigns", json=body)
    assert response.status_code == 422, response.text
    assert "local_send_at" in response.text and "two years" in response.text


async def test_a_zone_not_read_before_the_insert_takes_the_page_default(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    # The zones are read before the INSERT … SELECT; on PostgreSQL a contact may change zone
    # in between. Its zone is then not in the lists: the Page default's due time, not NULL.
    page_id = await setup_page(admin, sim)
    await people(
        sim,
        manager,
        page_id,
        [("7401", "Asia/Tokyo", 1), ("7402", "Asia/Manila", 1), ("7403", "", 1)],
    )
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=20))
    campaign_id = await new_campaign(manager, page_id, local_send_at=wall.isoformat())
    utc_wall = wall.replace(tzinfo=UTC)
    tokyo = utc_wall - timedelta(hours=9)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        for default in (utc_wall, None):
            plan = due_plan.DuePlan(
                {"Asia/Tokyo": tokyo},
                {480: None},
                default,
                session.get_bind().dialect.name == "postgresql",
            )
            await session.execute(snapshot_insert.snapshot_insert(campaign, utcnow(), due=plan))
            found = await session.execute(
                select(Contact.psid, Delivery.due_at)
                .join(Contact, Contact.id == Delivery.contact_id)
                .where(Delivery.campaign_id == campaign_id)
            )
            rows = {psid: due_at for psid, due_at in found}
            # Manila was not read: the default; no zone at all: the default.
            assert rows == {"7401": tokyo, "7402": default, "7403": default}, default
            await session.execute(delete(Delivery).where(Delivery.campaign_id == campaign_id))


@pytest.mark.parametrize(
    ("hours", "stored"),
    [(8, 480), (5.5, 330), (30, 840), (-48, -720), (float("nan"), None)],
)
async def test_a_profile_offset_is_kept_within_the_offsets_there_are(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    hours: float,
    stored: int | None,
) -> None:
    page_id = await setup_page(admin, sim)
    created = await manager.post(f"/api/pages/{page_id}/contacts", json={"psid": "7501"})
    assert created.status_code == 201, created.text
    contact_id = int(created.json()["id"])
    async with db.transaction() as session:
        await inbound.set_profile(
            session, contact_id, first_name="Ana", last_name=None, timezone=hours
        )
    async with db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.utc_offset_minutes == stored
    # A snapshot reads it as a zone (|offset| of 24 hours or more would fail it).
    if stored is not None:
        due_times.offset_zone(stored)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"local_send_at": "LATER"}, "local_send_at"),
        ({"send_window": {"days": ["mon"], "start": "09:00", "end": "18:00"}}, "send_window"),
    ],
)
async def test_an_experiment_with_local_times_is_refused_naming_the_field(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    extra: dict[str, Any],
    named: str,
) -> None:
    if extra.get("local_send_at") == "LATER":
        extra = {"local_send_at": minute(utcnow() + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M")}
    page_id = await setup_page(admin, sim)
    body = {"name": "AB", "page_id": page_id, "variants": TWO, "experiment": EXPERIMENT}
    refused = await manager.post("/api/campaigns", json=body | extra)
    assert refused.status_code == 422, refused.text
    assert "experiment" in refused.text and named in refused.text, refused.text
    assert "winner" in refused.text
    # Added to a saved experiment by a PATCH: refused the same way.
    created = await manager.post("/api/campaigns", json=body)
    assert created.status_code == 201, created.text
    patched = await manager.patch(f"/api/campaigns/{created.json()['id']}", json=extra)
    assert patched.status_code == 422 and "experiment" in patched.text, patched.text
