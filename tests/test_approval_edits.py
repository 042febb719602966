"""Two-person approval (issue 22) and edits: an edit of the template that gives a campaign
its message is an edit of the campaign, and withdraws its approval as a PATCH of the
campaign does; an edit that meets an approval under way waits for it and finds the campaign
started (PostgreSQL, two transactions)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text

from factories import create_user, postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, CampaignStatus, Delivery, OutboundEvent, Role, utcnow
from pagecast.services import approvals, sending, users
from test_approval_api import approver  # noqa: F401  (fixture)
from test_sending import (  # noqa: F401  (fixtures)
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    sending_settings,
    setup_page,
)


async def _until_waiting_for_a_lock(db: Database, request: asyncio.Task[httpx.Response]) -> None:
    """Wait until a query of this database waits for a lock (the request, on the row this
    test's transaction holds); each look in a new transaction (pg_stat_activity is read once
    per transaction)."""
    deadline = time.monotonic() + 30
    while True:
        async with db.transaction() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        assert not request.done(), (await request).text
        assert time.monotonic() < deadline, "the request never waited for the row's lock"
        await asyncio.sleep(0.05)


async def test_a_template_edit_withdraws_the_approval_of_the_campaigns_it_gives_a_message(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    assert (
        await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    ).status_code == 200
    made = await manager.post(
        "/api/templates", json={"name": "Offer", "content": {"text": "Seen by the approver"}}
    )
    assert made.status_code == 201, made.text
    template_id = made.json()["id"]
    at = utcnow() + timedelta(hours=1)
    base: dict[str, Any] = {"content": None, "template_id": template_id}
    scheduled = await new_campaign(manager, page_id, scheduled_at=at.isoformat(), **base)
    waiting = await new_campaign(manager, page_id, name="Waiting", **base)
    other = await new_campaign(manager, page_id, name="Own text", scheduled_at=at.isoformat())
    for campaign_id in (scheduled, other):
        assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
        ok = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
        assert ok.json()["status"] == "scheduled", ok.text
    assert (await manager.post(f"/api/campaigns/{waiting}/start")).json()["status"] == (
        "awaiting_approval"
    )

    renamed = await approver.patch(f"/api/templates/{template_id}", json={"name": "Offer 2"})
    assert renamed.status_code == 200, renamed.text
    assert (await manager.get(f"/api/campaigns/{scheduled}")).json()["status"] == "scheduled"

    edited = await approver.patch(
        f"/api/templates/{template_id}", json={"content": {"text": "Never approved"}}
    )
    assert edited.status_code == 200, edited.text
    body = (await manager.get(f"/api/campaigns/{scheduled}")).json()
    assert body["status"] == "awaiting_approval" and body["approval"]["state"] == "pending"
    assert body["approval"]["requested_by"] == "checker@example.com"  # the template's editor
    async with db.transaction() as session:  # it cannot fire at its time any more
        assert await sending.due_schedules(session, at + timedelta(seconds=1)) == [other]
    body = (await manager.get(f"/api/campaigns/{waiting}")).json()
    assert body["status"] == "draft" and body["approval"]["state"] == "withdrawn"
    assert f"template {template_id} edited" in body["status_reason"]
    # A campaign with its own message is not touched by the template.
    assert (await manager.get(f"/api/campaigns/{other}")).json()["approval"]["state"] == "approved"
    trail = (await manager.get(f"/api/campaigns/{scheduled}/audit")).json()["items"]
    withdrawn = [e for e in trail if e["action"] == "campaign.approval_withdrawn"]
    assert withdrawn and withdrawn[0]["details"]["why"] == f"template {template_id} edited"


@postgresql_only
async def test_an_edit_during_an_approvals_start_waits_and_finds_it_started(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    checker, _ = await create_user(db, Role.MANAGER, email="locker@example.com")

    async with db.transaction() as session:  # the approval's transaction, not yet committed
        started, _ = await approvals.approve(
            session, users.actor_for(checker), campaign_id, None, utcnow()
        )
        assert started.status.value == "sending"
        edit = asyncio.create_task(
            manager.patch(f"/api/campaigns/{campaign_id}", json={"name": "Too late"})
        )
        await _until_waiting_for_a_lock(db, edit)
    answer = await edit
    assert answer.status_code == 409 and answer.json()["error"]["field"] == "status", answer.text
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "sending" and body["name"] == "Sale"
    assert body["approval"]["state"] == "approved"
    async with db.transaction() as session:
        assert (
            await session.scalar(
                select(func.count(Delivery.id)).where(Delivery.campaign_id == campaign_id)
            )
            == 3
        )


@postgresql_only
async def test_a_start_meeting_another_request_waits_and_asks_the_approvers_once(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    campaign_id = await new_campaign(manager, page_id)

    async with db.transaction() as session:  # another start's request, not yet committed
        first = await session.get(Campaign, campaign_id, with_for_update=True)
        assert first is not None
        first.status, first.approval_state = CampaignStatus.AWAITING_APPROVAL, "pending"
        await session.flush()
        start = asyncio.create_task(manager.post(f"/api/campaigns/{campaign_id}/start"))
        await _until_waiting_for_a_lock(db, start)
    answer = await start
    assert answer.status_code == 409 and answer.json()["error"]["field"] == "status", answer.text
    async with db.transaction() as session:
        asked = await session.scalar(
            select(func.count(OutboundEvent.id)).where(
                OutboundEvent.type == "campaign.awaiting_approval"
            )
        )
        assert asked == 0  # the one request is the other transaction's (written by hand here)
