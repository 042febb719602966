"""Two-person approval through the API (issue 22), end to end on both databases: the Page's
threshold, start and schedule held in `awaiting_approval` with nothing snapshotted or
enqueued, the author refused, another approver's approval sending through the simulator,
rejection, an edit withdrawing an approval, the withdrawn permission, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from factories import app_client, create_user, postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Delivery, OutboundEvent, Role, utcnow
from pagecast.services import sending
from pagecast.settings import Settings
from test_sending import (  # noqa: F401  (fixtures)
    PAGE,
    RunningWorker,
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    outbox,
    sending_settings,
    setup_page,
    wait_for,
)


@pytest.fixture
async def approver(engine_app: Any, db: Database) -> Any:  # noqa: F811
    """A second manager: may approve what `manager` (sender@example.com) asks for."""
    _, raw = await create_user(db, Role.MANAGER, email="checker@example.com")
    async with app_client(engine_app, raw) as client:
        yield client


async def _threshold(admin: httpx.AsyncClient, page_id: int, value: Any) -> httpx.Response:  # noqa: F811
    return await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": value})


async def _deliveries(db: Database, campaign_id: int) -> int:
    async with db.transaction() as session:
        return int(
            await session.scalar(
                select(func.count(Delivery.id)).where(Delivery.campaign_id == campaign_id)
            )
            or 0
        )


async def _jobs(engine_app: Any) -> int:  # noqa: F811
    counts = await engine_app.state.context.queue.counts()
    return sum(counts.values())


async def _to(manager: httpx.AsyncClient, page_id: int, psids: list[str], **more: Any) -> int:  # noqa: F811
    return await new_campaign(
        manager, page_id, audience={"type": "contacts", "psids": psids}, **more
    )


async def test_the_threshold_null_zero_and_n_people_exactly_or_one_more(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 4)
    assert (await admin.get(f"/api/pages/{page_id}")).json()["approval_threshold"] is None
    free = await _to(manager, page_id, psids)
    assert (await manager.post(f"/api/campaigns/{free}/start")).json()["status"] == "sending"

    assert (await _threshold(admin, page_id, 3)).json()["approval_threshold"] == 3
    exactly = await _to(manager, page_id, psids[:3])
    one_more = await _to(manager, page_id, psids)
    at_n = await manager.post(f"/api/campaigns/{exactly}/start")
    assert at_n.status_code == 202 and at_n.json()["status"] == "sending"
    assert at_n.json()["approval"] is None
    over = await manager.post(f"/api/campaigns/{one_more}/start")
    assert over.status_code == 202 and over.json()["status"] == "awaiting_approval"
    assert over.json()["approval"]["people"] == 4

    assert (await _threshold(admin, page_id, 0)).status_code == 200
    single = await _to(manager, page_id, psids[:1])
    held = (await manager.post(f"/api/campaigns/{single}/start")).json()
    assert held["status"] == "awaiting_approval" and held["approval"]["people"] == 1


async def test_a_held_start_snapshots_and_enqueues_nothing_and_its_author_cannot_approve(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 5)
    await _threshold(admin, page_id, 2)
    campaign_id = await new_campaign(manager, page_id)
    held = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert held.status_code == 202, held.text
    body = held.json()
    assert body["status"] == "awaiting_approval" and body["started_at"] is None
    approval = body["approval"]
    assert approval["state"] == "pending" and approval["ask"] == "start"
    assert approval["requested_by"] == "sender@example.com" and approval["people"] == 5
    assert await _deliveries(db, campaign_id) == 0 and await _jobs(engine_app) == 0
    async with db.transaction() as session:
        events = list(
            await session.scalars(
                select(OutboundEvent).where(OutboundEvent.type == "campaign.awaiting_approval")
            )
        )
    assert [(e.type, e.campaign_id, e.data["people"]) for e in events] == [
        ("campaign.awaiting_approval", campaign_id, 5)
    ]
    metrics = (await admin.get("/metrics")).text
    assert f'pagecast_campaigns_awaiting_approval{{page="{PAGE}"}} 1.0' in metrics

    own = await manager.post(f"/api/campaigns/{campaign_id}/approve", json={"comment": "mine"})
    assert own.status_code == 403
    assert "two-person approval" in own.json()["error"]["message"]
    assert "never approve" in own.json()["error"]["message"]
    unchanged = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert unchanged["status"] == "awaiting_approval" and unchanged["approval"] == approval
    assert await _deliveries(db, campaign_id) == 0 and await _jobs(engine_app) == 0

    approved = await approver.post(
        f"/api/campaigns/{campaign_id}/approve", json={"comment": "Looks right"}
    )
    assert approved.status_code == 200, approved.text
    decided = approved.json()
    assert decided["status"] == "sending" and decided["counts"]["pending"] == 5
    assert decided["approval"]["state"] == "approved"
    assert decided["approval"]["decided_by"] == "checker@example.com"
    assert decided["approval"]["comment"] == "Looks right"
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)
    trail = (await manager.get(f"/api/campaigns/{campaign_id}/audit")).json()["items"]
    actions = [entry["action"] for entry in trail]
    assert "campaign.approval_requested" in actions and "campaign.approved" in actions
    again = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    assert again.status_code == 409 and again.json()["error"]["field"] == "status"


async def test_a_held_schedule_is_scheduled_at_its_time_once_approved(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    await _threshold(admin, page_id, 0)
    at = utcnow() + timedelta(hours=1)
    campaign_id = await new_campaign(manager, page_id, scheduled_at=at.isoformat())
    held = (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).json()
    assert held["status"] == "awaiting_approval" and held["approval"]["ask"] == "schedule"
    assert held["approval"]["scheduled_at"] == held["scheduled_at"]
    assert await _jobs(engine_app) == 0
    # Not due while it awaits approval: the scheduler leaves it alone at its time.
    async with db.transaction() as session:
        assert await sending.due_schedules(session, at + timedelta(seconds=1)) == []
    approved = (await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})).json()
    assert approved["status"] == "scheduled" and approved["scheduled_at"] == held["scheduled_at"]
    counts = await engine_app.state.context.queue.counts()
    assert counts.get("delayed") == 1, counts
    assert await _deliveries(db, campaign_id) == 0
    async with db.transaction() as session:
        assert await sending.due_schedules(session, at + timedelta(seconds=1)) == [campaign_id]


async def test_a_schedule_that_passed_while_awaiting_follows_the_lateness_rule(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 3)
    await _threshold(admin, page_id, 0)
    soon, late = [
        await new_campaign(
            manager, page_id, name=name, scheduled_at=(utcnow() + timedelta(hours=1)).isoformat()
        )
        for name in ("A little late", "Long past")
    ]
    for campaign_id, ago in ((soon, timedelta(seconds=5)), (late, timedelta(hours=2))):
        assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
        async with db.transaction() as session:  # the approver came back after its time
            row = await session.get(Campaign, campaign_id)
            assert row is not None
            row.scheduled_at = utcnow() - ago
        approved = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
        assert approved.status_code == 200 and approved.json()["status"] == "scheduled"
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, soon, {"completed"})
        body = (await manager.get(f"/api/campaigns/{late}")).json()
    assert body["status"] == "scheduled" and body["missed"] and "Missed" in body["status_reason"]
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)  # the first one only


async def test_rejection_needs_a_comment_and_returns_the_campaign_to_draft(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await _threshold(admin, page_id, 1)
    campaign_id = await new_campaign(manager, page_id)
    asked = (await manager.post(f"/api/campaigns/{campaign_id}/start")).json()
    for body in ({}, {"comment": "   "}, {"comment": "x" * 2001}, {"comment": 5}):
        refused = await approver.post(f"/api/campaigns/{campaign_id}/reject", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"]["field"] == "comment"
    own = await manager.post(f"/api/campaigns/{campaign_id}/reject", json={"comment": "no"})
    assert own.status_code == 403 and "two-person approval" in own.json()["error"]["message"]
    still = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert still["status"] == "awaiting_approval" and still["approval"] == asked["approval"]

    rejected = await approver.post(
        f"/api/campaigns/{campaign_id}/reject", json={"comment": "Wrong price in the text"}
    )
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["status"] == "draft"
    assert body["status_reason"] == "Rejected by checker@example.com: Wrong price in the text"
    assert body["approval"]["state"] == "rejected"
    assert body["approval"]["comment"] == "Wrong price in the text"
    assert await _deliveries(db, campaign_id) == 0
    late = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    assert late.status_code == 409 and "awaiting_approval" in late.json()["error"]["message"]
    # Asking again after a fix: awaiting once more, the old decision gone.
    again = (await manager.post(f"/api/campaigns/{campaign_id}/start")).json()
    assert again["status"] == "awaiting_approval" and again["approval"]["comment"] is None


async def test_an_edit_withdraws_an_approval_and_a_request(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    await _threshold(admin, page_id, 0)
    at = utcnow() + timedelta(hours=1)
    campaign_id = await new_campaign(manager, page_id, scheduled_at=at.isoformat())
    await manager.post(f"/api/campaigns/{campaign_id}/schedule")
    approved = (await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})).json()
    assert approved["status"] == "scheduled" and approved["approval"]["state"] == "approved"

    edited = await approver.patch(
        f"/api/campaigns/{campaign_id}", json={"content": {"text": "A new text"}}
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["status"] == "awaiting_approval" and body["approval"]["state"] == "pending"
    assert body["approval"]["ask"] == "schedule"
    assert body["approval"]["requested_by"] == "checker@example.com"  # the editor asks now
    # It cannot fire at its time without a new approval.
    async with db.transaction() as session:
        assert await sending.due_schedules(session, at + timedelta(seconds=1)) == []
        fired = await sending.start_scheduled(
            session, campaign_id, now=at + timedelta(seconds=1), max_lateness_s=600
        )
        assert fired is None
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["status"] == (
        "awaiting_approval"
    )
    # The editor is the author of this request; the first author may approve it now.
    own = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    assert own.status_code == 403
    again = await manager.post(f"/api/campaigns/{campaign_id}/approve", json={"comment": "ok"})
    assert again.status_code == 200 and again.json()["status"] == "scheduled"

    # An edit while it awaits approval withdraws the request: a draft again.
    await approver.patch(f"/api/campaigns/{campaign_id}", json={"name": "Renamed"})
    await manager.post(f"/api/campaigns/{campaign_id}/schedule")
    pending = await manager.patch(f"/api/campaigns/{campaign_id}", json={"name": "Renamed again"})
    body = pending.json()
    assert body["status"] == "draft" and body["approval"]["state"] == "withdrawn"
    assert "withdrawn by an edit" in body["status_reason"]
    trail = (await manager.get(f"/api/campaigns/{campaign_id}/audit")).json()["items"]
    assert sum(e["action"] == "campaign.approval_withdrawn" for e in trail) == 3


async def test_cancel_works_while_awaiting_approval(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await _threshold(admin, page_id, 0)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    cancelled = (await manager.post(f"/api/campaigns/{campaign_id}/cancel")).json()
    assert cancelled["status"] == "cancelled" and cancelled["approval"]["state"] == "withdrawn"
    listed = (await manager.get("/api/campaigns", params={"status": "awaiting_approval"})).json()
    assert listed["items"] == []


async def test_a_withdrawn_approve_permission_and_a_viewer_are_refused(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    engine_app: Any,  # noqa: F811
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await _threshold(admin, page_id, 0)
    campaign_id = await new_campaign(manager, page_id)
    asked = (await manager.post(f"/api/campaigns/{campaign_id}/start")).json()
    listed = (await manager.get("/api/campaigns", params={"status": "awaiting_approval"})).json()
    assert [c["id"] for c in listed["items"]] == [campaign_id]

    me = (await approver.get("/api/me")).json()
    assert "campaigns:approve" in me["permissions"]
    changed = await admin.patch(f"/api/users/{me['id']}", json={"can_approve": False})
    assert changed.status_code == 200 and changed.json()["can_approve"] is False
    assert "campaigns:approve" not in (await approver.get("/api/me")).json()["permissions"]
    refused = await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    assert refused.status_code == 403 and "campaigns:approve" in refused.json()["error"]["message"]
    assert (await approver.patch(f"/api/users/{me['id']}", json={})).status_code == 403

    _, raw = await create_user(db, Role.VIEWER, email="watcher@example.com")
    async with app_client(engine_app, raw) as viewer:
        assert "campaigns:approve" not in (await viewer.get("/api/me")).json()["permissions"]
        for decision in ("approve", "reject"):
            answer = await viewer.post(
                f"/api/campaigns/{campaign_id}/{decision}", json={"comment": "x"}
            )
            assert answer.status_code == 403 and "campaigns:approve" in answer.text
    unchanged = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert unchanged["status"] == "awaiting_approval" and unchanged["approval"] == asked["approval"]
    back = await admin.patch(f"/api/users/{me['id']}", json={"can_approve": True})
    assert back.json()["can_approve"] is True
    assert (
        await approver.post(f"/api/campaigns/{campaign_id}/approve", json={})
    ).status_code == 200


async def test_a_bad_threshold_is_refused_naming_the_field(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
) -> None:
    page_id = await setup_page(admin, sim)
    for bad in (-1, "many", 1.5, 3_000_000_000):
        refused = await _threshold(admin, page_id, bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["field"] == "approval_threshold", refused.text
    assert (await admin.get(f"/api/pages/{page_id}")).json()["approval_threshold"] is None
    assert (await _threshold(manager, page_id, 5)).status_code == 403
    assert (await _threshold(admin, page_id, 10)).json()["approval_threshold"] == 10
    assert (await _threshold(admin, page_id, None)).json()["approval_threshold"] is None


async def test_the_dashboards_forms_hold_the_same_rules(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    from factories import session_cookie
    from pagecast.models import User
    from pagecast.web.deps import SESSION_COOKIE

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await _threshold(admin, page_id, 0)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with db.transaction() as session:
        author = await session.scalar(select(User).where(User.email == "sender@example.com"))
    assert author is not None
    checker, _ = await create_user(db, Role.MANAGER, email="form@example.com")
    vault = engine_app.state.context.vault
    for user, decision, comment, status, said in (
        (author, "approve", "", 403, "two-person approval"),
        (checker, "reject", "", 422, "comment"),
        (checker, "reject", " " * 3, 422, "comment"),
    ):
        cookie = await session_cookie(db, user)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=engine_app),
            base_url="http://pagecast.test",
            cookies={SESSION_COOKIE: cookie},
        ) as browser:
            answer = await browser.post(
                f"/campaigns/{campaign_id}/{decision}",
                data={"csrf_token": vault.csrf_token(cookie), "comment": comment},
            )
        assert answer.status_code == status and said in answer.text, answer.text[:300]
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "awaiting_approval" and body["approval"]["state"] == "pending"


@postgresql_only
async def test_two_approvers_at_once_start_it_once(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,
    engine_app: Any,  # noqa: F811
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    import asyncio

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 40)
    await _threshold(admin, page_id, 0)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    _, raw = await create_user(db, Role.ADMIN, email="second@example.com")
    async with app_client(engine_app, raw) as second:
        answers = await asyncio.gather(
            approver.post(f"/api/campaigns/{campaign_id}/approve", json={}),
            second.post(f"/api/campaigns/{campaign_id}/approve", json={}),
        )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert await _deliveries(db, campaign_id) == 40
