"""Two-person approval (issue 22): an edit of the template that gives a campaign its message
is an edit of the campaign, and withdraws its approval as a PATCH of the campaign does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from pagecast.db import Database
from pagecast.models import utcnow
from pagecast.services import sending
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
