"""Issue 22's parts together: a campaign's outbound events, emitted by the sending and the
approval code, reach an endpoint registered through the API, through a running worker's
real sender, signed and in order (docs/webhooks.md, "Outbound events"); and the audit log
finds the webhook and approval actions."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from factories import app_client, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import OutboundEvent, Role
from pagecast.settings import Settings
from pagecast.web.deps import SESSION_COOKIE
from test_outbound_delivery import Receiver, _verify
from test_sending import (  # noqa: F401  (fixtures)
    RunningWorker,
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    sending_settings,
    setup_page,
    wait_for,
)

CAMPAIGN_EVENTS = [
    "campaign.created",
    "campaign.awaiting_approval",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.cancelled",
    "campaign.progress",
]
BASE = {"campaign_id", "name", "page_id", "page_name", "status"}


class SlowReceiver(Receiver):
    """A receiver that takes a moment to answer and notes when each request came and was
    answered: an event sent before the previous one of its campaign was answered shows."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[int | None, float, float]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        came = time.monotonic()
        await asyncio.sleep(0.2)  # the receiver's own work, not the test waiting
        answer = await super()._handle(request)
        campaign_id = json.loads(self.got[-1][1])["data"].get("campaign_id")
        self.spans.append((campaign_id, came, time.monotonic()))
        return answer

    def one_at_a_time(self, campaign_id: int) -> bool:
        """Whether each of the campaign's requests came after the one before was answered."""
        spans = sorted((c, d) for k, c, d in self.spans if k == campaign_id)
        return len(spans) > 1 and all(
            later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)
        )


@pytest.fixture
async def receiver() -> Any:
    server = SlowReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def hooked_settings(sending_settings: Settings) -> Settings:  # noqa: F811
    """The worker's settings: loopback receivers allowed, and a quick look for deliveries."""
    return sending_settings.model_copy(
        update={"webhooks_allow_private_targets": True, "webhooks_poll_seconds": 0.1}
    )


@pytest.fixture
async def approver(engine_app: Any, db: Database) -> Any:  # noqa: F811
    """A second manager: may approve what `manager` (sender@example.com) asks for."""
    _, raw = await create_user(db, Role.MANAGER, email="checker@example.com")
    async with app_client(engine_app, raw) as client:
        yield client


async def _endpoint(admin: httpx.AsyncClient, url: str) -> dict[str, Any]:  # noqa: F811
    made = await admin.post("/api/webhooks", json={"url": url, "events": CAMPAIGN_EVENTS})
    assert made.status_code == 201, made.text
    return dict(made.json())


async def _received(
    receiver: Receiver,
    secret: str,
    campaign_id: int,
    last: str,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """The campaign's events the receiver got once `last` arrived, each signature checked."""
    deadline = time.monotonic() + timeout
    while True:
        got = [
            (headers, body)
            for headers, body in receiver.got
            if json.loads(body)["data"].get("campaign_id") == campaign_id
        ]
        if any(json.loads(body)["type"] == last for _, body in got):
            break
        assert time.monotonic() < deadline, [json.loads(b)["type"] for _, b in got]
        await asyncio.sleep(0.05)
    for headers, body in got:
        _verify(secret, headers, body)
    return [json.loads(body) for _, body in got]


async def _stored(db: Database, campaign_id: int) -> list[OutboundEvent]:
    async with db.transaction() as session:
        return list(
            await session.scalars(
                select(OutboundEvent)
                .where(OutboundEvent.campaign_id == campaign_id)
                .order_by(OutboundEvent.id)
            )
        )


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    """The types in order, without `campaign.progress` (it may come, or not, while sending)."""
    return [e["type"] for e in events if e["type"] != "campaign.progress"]


async def test_created_started_and_completed_reach_a_receiver_signed_and_in_order(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    receiver: SlowReceiver,
    hooked_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 30)
    endpoint = await _endpoint(admin, receiver.url)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(hooked_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
        events = await _received(receiver, endpoint["secret"], campaign_id, "campaign.completed")
    types = [e["type"] for e in events]
    # In order per campaign: each one sent once the one before it was answered.
    assert receiver.one_at_a_time(campaign_id)
    assert _kinds(events) == ["campaign.created", "campaign.started", "campaign.completed"]
    assert types[0] == "campaign.created" and types[1] == "campaign.started"
    assert types[-1] == "campaign.completed"
    assert set(types[2:-1]) <= {"campaign.progress"}
    # What arrived is what was written, once each, in the order written.
    assert [e["id"] for e in events] == [e.uid for e in await _stored(db, campaign_id)]
    assert all(set(e["data"]) >= BASE for e in events)
    assert events[1]["data"]["status"] == "sending"
    assert events[1]["data"]["trigger"] == "person"
    done = events[-1]["data"]
    assert done["status"] == "completed" and done["counts"]["total"] == len(psids)
    assert done["reached"] == len(psids)


async def test_an_approved_start_sends_awaiting_approval_then_started_to_a_receiver(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    receiver: Receiver,
    approver: httpx.AsyncClient,
    hooked_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    answer = await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    assert answer.status_code == 200, answer.text
    endpoint = await _endpoint(admin, receiver.url)

    approved = await new_campaign(manager, page_id, name="Approved")
    held = await manager.post(f"/api/campaigns/{approved}/start")
    assert held.json()["status"] == "awaiting_approval"
    go = await approver.post(f"/api/campaigns/{approved}/approve", json={"comment": "ok"})
    assert go.status_code == 200 and go.json()["status"] == "sending", go.text
    # A rejected request and one withdrawn by an edit emit nothing more (docs/webhooks.md).
    rejected = await new_campaign(manager, page_id, name="Rejected")
    await manager.post(f"/api/campaigns/{rejected}/start")
    no = await approver.post(f"/api/campaigns/{rejected}/reject", json={"comment": "No"})
    assert no.status_code == 200 and no.json()["status"] == "draft"
    edited = await new_campaign(manager, page_id, name="Edited")
    await manager.post(f"/api/campaigns/{edited}/start")
    changed = await manager.patch(f"/api/campaigns/{edited}", json={"name": "Edited again"})
    assert changed.json()["status"] == "draft"
    # Cancelling a request is a cancellation.
    dropped = await new_campaign(manager, page_id, name="Dropped")
    await manager.post(f"/api/campaigns/{dropped}/start")
    assert (await manager.post(f"/api/campaigns/{dropped}/cancel")).status_code == 200

    async with RunningWorker(hooked_settings, db):
        await wait_for(manager, approved, {"completed"})
        events = await _received(receiver, endpoint["secret"], approved, "campaign.completed")
        gone = await _received(receiver, endpoint["secret"], dropped, "campaign.cancelled")
    # In order per campaign (another campaign's events may come meanwhile).
    assert receiver.one_at_a_time(approved) and receiver.one_at_a_time(dropped)
    assert _kinds(events) == [
        "campaign.created",
        "campaign.awaiting_approval",
        "campaign.started",
        "campaign.completed",
    ]
    [asked] = [e["data"] for e in events if e["type"] == "campaign.awaiting_approval"]
    created = events[0]["data"]
    # The same base fields as every other campaign event, built in one place.
    assert set(asked) >= BASE and {k: asked[k] for k in BASE - {"status"}} == {
        k: created[k] for k in BASE - {"status"}
    }
    assert asked["status"] == "awaiting_approval" and asked["ask"] == "start"
    assert asked["people"] == 3 and asked["scheduled_at"] is None
    assert asked["requested_by"] == "sender@example.com"
    assert asked["requested_by_id"] == created["created_by_id"]
    started = events[2]["data"]
    assert started["status"] == "sending" and started["trigger"] == "person"
    for quiet in (rejected, edited):
        assert [e.type for e in await _stored(db, quiet)] == [
            "campaign.created",
            "campaign.awaiting_approval",
        ]
    assert [e["type"] for e in gone] == [
        "campaign.created",
        "campaign.awaiting_approval",
        "campaign.cancelled",
    ]


async def test_the_audit_log_finds_the_webhook_and_approval_actions(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    endpoint = await _endpoint(admin, "https://crm.example.com/pagecast")
    approved, rejected, edited = [
        await new_campaign(manager, page_id, name=name) for name in ("A", "R", "E")
    ]
    for campaign_id in (approved, rejected, edited):
        await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert (await approver.post(f"/api/campaigns/{approved}/approve", json={})).status_code == 200
    no = await approver.post(f"/api/campaigns/{rejected}/reject", json={"comment": "No"})
    assert no.status_code == 200
    assert (await manager.patch(f"/api/campaigns/{edited}", json={"name": "E2"})).is_success

    # The audit log finds the webhook and the approval actions (API and dashboard).
    hooks = (await admin.get("/api/audit", params={"action": "webhook."})).json()["items"]
    assert [(h["action"], h["object_id"]) for h in hooks] == [("webhook.created", endpoint["id"])]
    asked_for = (await admin.get("/api/audit", params={"action": "campaign.approv*"})).json()
    actions = sorted({item["action"] for item in asked_for["items"]})
    assert actions == [
        "campaign.approval_requested",
        "campaign.approval_withdrawn",
        "campaign.approved",
    ]
    said_no = (await admin.get("/api/audit", params={"action": "campaign.rejected"})).json()
    assert [item["object_id"] for item in said_no["items"]] == [rejected]
    user, _ = await create_user(db, Role.ADMIN, email="reader@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        page = await browser.get("/audit", params={"action": "webhook."})
    assert page.status_code == 200 and "webhook.created" in page.text
    assert f'href="/outbound-webhooks/{endpoint["id"]}"' in page.text
    assert "(deleted)" not in page.text  # the endpoint exists: linked, not named deleted


async def test_an_endpoints_update_is_audited_with_before_and_after(
    admin: httpx.AsyncClient,  # noqa: F811
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    endpoint = await _endpoint(admin, "https://crm.example.com/pagecast")
    changed = await admin.patch(
        f"/api/webhooks/{endpoint['id']}",
        json={"events": ["campaign.completed"], "enabled": False, "description": "CRM"},
    )
    assert changed.status_code == 200, changed.text
    [entry] = (await admin.get("/api/audit", params={"action": "webhook.updated"})).json()["items"]
    assert entry["details"] == {
        "changes": {
            "description": {"from": "", "to": "CRM"},
            "enabled": {"from": True, "to": False},
            "events": {"from": CAMPAIGN_EVENTS, "to": ["campaign.completed"]},
        }
    }
    assert "secret" not in json.dumps(entry)
    user, _ = await create_user(db, Role.ADMIN, email="reader@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        page = await browser.get("/audit", params={"action": "webhook.updated"})
    assert "enabled: true → false" in page.text, page.text[-3000:]


async def test_an_approved_schedule_emits_nothing_until_it_fires_and_an_edit_asks_again(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    campaign_id = await new_campaign(manager, page_id, scheduled_at=at)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
    ok = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    assert ok.json()["status"] == "scheduled"
    edited = await approver.patch(f"/api/campaigns/{campaign_id}", json={"name": "Renamed"})
    assert edited.json()["status"] == "awaiting_approval"
    events = await _stored(db, campaign_id)
    assert [e.type for e in events] == [
        "campaign.created",
        "campaign.awaiting_approval",
        "campaign.awaiting_approval",
    ]
    first, again = events[1].data, events[2].data
    assert first["ask"] == again["ask"] == "schedule" and first["scheduled_at"] is not None
    assert first["requested_by"] == "sender@example.com"
    assert again["requested_by"] == "checker@example.com" and again["name"] == "Renamed"
