"""Issue 22, the outbound events of a campaign's life: each is written by the change it
reports, exactly once, in order, with its data (docs/webhooks.md, "Outbound events").

Driven through the API, the worker (in-process, real Redis, the Graph simulator through the
real client), the sweep on an injected clock and a series' run, on SQLite and PostgreSQL.
The endpoint rows are inserted directly; what the delivery worker does with them is not
tested here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

import test_sending
from factories import create_user, session_cookie
from pagecast.db import Database
from pagecast.models import (
    OutboundDelivery,
    OutboundEvent,
    Page,
    PageStatus,
    Role,
    WebhookEndpoint,
    utcnow,
)
from pagecast.settings import Settings
from pagecast.web.deps import SESSION_COOKIE
from test_sending import (
    AheadClock,
    add_people,
    drain,
    new_campaign,
    setup_page,
)

sending_settings = test_sending.sending_settings
engine_app = test_sending.engine_app
admin = test_sending.admin
manager = test_sending.manager

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here

Event = tuple[str, int | None, dict[str, Any]]


async def events(db: Database, *, progress: bool = False, prefix: str = "campaign.") -> list[Event]:
    """The outbound events whose type starts with `prefix`, in the order written: (type,
    campaign_id, data); without `campaign.progress` unless asked."""
    async with db.transaction() as session:
        rows = await session.scalars(select(OutboundEvent).order_by(OutboundEvent.id))
        return [
            (e.type, e.campaign_id, e.data)
            for e in rows
            if e.type.startswith(prefix) and (progress or e.type != "campaign.progress")
        ]


def kinds(found: list[Event]) -> list[tuple[str, int | None]]:
    return [(t, c) for t, c, _ in found]


async def add_endpoint(db: Database, events_: list[str], *, enabled: bool = True) -> int:
    async with db.transaction() as session:
        endpoint = WebhookEndpoint(
            url="https://receiver.example.com/hook",
            events=events_,
            secret_encrypted="not-a-real-secret",
            enabled=enabled,
            created_by="test",
        )
        session.add(endpoint)
        await session.flush()
        return endpoint.id


async def owed(db: Database) -> list[tuple[int, str]]:
    """The pending deliveries: (endpoint id, event type), in event order."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(OutboundDelivery.endpoint_id, OutboundEvent.type)
            .join(OutboundEvent, OutboundEvent.id == OutboundDelivery.event_id)
            .where(OutboundDelivery.status == "pending")
            .order_by(OutboundDelivery.event_id, OutboundDelivery.endpoint_id)
        )
        return [(endpoint_id, t) for endpoint_id, t in rows]


async def test_a_campaigns_life_through_the_api_emits_each_change_once_in_order(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    campaign_id = await new_campaign(manager, page_id)
    for action in ("start", "pause", "pause", "resume", "resume"):  # the 2nd of each: no change
        answer = await manager.post(f"/api/campaigns/{campaign_id}/{action}")
        assert answer.status_code in (200, 202), answer.text
    await drain(sending_settings, db)
    copied = await manager.post(f"/api/campaigns/{campaign_id}/duplicate")
    copy_id = copied.json()["id"]
    assert (await manager.post(f"/api/campaigns/{copy_id}/cancel")).status_code == 200
    assert (await manager.post(f"/api/campaigns/{copy_id}/cancel")).status_code == 200

    found = await events(db, progress=True)
    assert kinds(found) == [
        ("campaign.created", campaign_id),
        ("campaign.started", campaign_id),
        ("campaign.paused", campaign_id),
        ("campaign.resumed", campaign_id),
        ("campaign.completed", campaign_id),
        ("campaign.created", copy_id),
        ("campaign.cancelled", copy_id),
    ]
    created, started, paused, resumed, completed, copy, cancelled = (d for _, _, d in found)
    summary = {"campaign_id": campaign_id, "name": "Sale", "page_id": page_id}
    assert created == summary | {
        "page_name": "Acme Store",
        "status": "draft",
        "created_by_id": created["created_by_id"],
    }
    assert created["created_by_id"] is not None
    assert started == summary | {
        "page_name": "Acme Store",
        "status": "sending",
        "trigger": "person",
    }
    assert paused["status"] == "paused" and paused["reason"] == "person"
    assert paused["message"] == "Paused by sender@example.com"
    assert resumed["status"] == "sending" and resumed["after"] == "pause"
    assert completed["status"] == "completed" and completed["reached"] == 3
    assert completed["counts"]["total"] == completed["counts"]["sent"] == 3
    assert completed["counts"]["pending"] == completed["counts"]["failed"] == 0
    assert copy["copied_from"] == campaign_id and copy["name"] == "Sale (copy)"
    assert cancelled["reason"] == "person" and cancelled["status"] == "cancelled"
    assert cancelled["message"] == "Cancelled by sender@example.com"


async def test_events_are_owed_only_to_enabled_endpoints_that_chose_them(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    chose = await add_endpoint(db, ["campaign.created", "campaign.started"])
    everything = await add_endpoint(db, ["campaign.created", "campaign.cancelled"])
    await add_endpoint(db, ["campaign.created", "campaign.started"], enabled=False)
    await add_endpoint(db, ["page.restricted"])
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    assert await owed(db) == [
        (chose, "campaign.created"),
        (everything, "campaign.created"),
        (chose, "campaign.started"),
    ]


async def test_without_a_subscribed_endpoint_events_are_kept_but_owed_to_nobody(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    await add_endpoint(db, ["campaign.started"], enabled=False)
    page_id = await setup_page(admin, sim)
    campaign_id = await new_campaign(manager, page_id)
    assert kinds(await events(db)) == [("campaign.created", campaign_id)]
    assert await owed(db) == []


async def test_the_dashboard_creates_through_the_same_rule(
    admin: httpx.AsyncClient,
    engine_app: Any,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    """The composer saves through `campaigns.create`, as the API and the command line do."""
    page_id = await setup_page(admin, sim)
    user, _ = await create_user(db, Role.MANAGER, email="web@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        saved = await browser.post(
            "/campaigns/new",
            data={
                "csrf_token": engine_app.state.context.vault.csrf_token(cookie),
                "name": "From the dashboard",
                "page_id": str(page_id),
                "message_kind": "text",
                "text": "Hello",
            },
        )
    assert saved.status_code in (200, 303), saved.text[:500]
    found = await events(db)
    assert [(t, d["name"], d["created_by_id"]) for t, _, d in found] == [
        ("campaign.created", "From the dashboard", user.id)
    ]


async def test_a_scheduled_start_by_the_sweep_says_its_schedule_started_it(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    from pagecast.context import AppContext
    from pagecast.worker import build
    from pagecast.worker.sweep import sweep

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    at = utcnow() + timedelta(hours=1)
    campaign_id = await new_campaign(manager, page_id, scheduled_at=at.isoformat())
    assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
    ctx = AppContext(sending_settings, database=db)
    try:
        await sweep(build(ctx, clock=AheadClock(timedelta(hours=1, seconds=5))).env)
        await sweep(build(ctx, clock=AheadClock(timedelta(hours=1, seconds=6))).env)
    finally:
        await ctx.close()
    found = await events(db)
    assert kinds(found) == [("campaign.created", campaign_id), ("campaign.started", campaign_id)]
    assert found[1][2]["trigger"] == "schedule"


async def test_a_series_run_is_created_and_started_or_cancelled_with_its_reason(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    from datetime import datetime

    from test_series_runs import new_series, sweep_at

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    series = await new_series(manager, page_id)
    first = datetime.fromisoformat(series["next_run_at"])
    await sweep_at(sending_settings, db, first + timedelta(seconds=5))
    await drain(sending_settings, db)
    # The next run finds its Page unable to send (set here as a revoked token leaves it):
    # its campaign ends cancelled, saying why.
    async with db.transaction() as session:
        await session.execute(
            update(Page).where(Page.id == page_id).values(status=PageStatus.TOKEN_INVALID)
        )
    second = datetime.fromisoformat(
        (await manager.get(f"/api/series/{series['id']}")).json()["next_run_at"]
    )
    await sweep_at(sending_settings, db, second + timedelta(seconds=5))
    found = await events(db)
    runs = sorted({c for _, c, _ in found if c is not None})
    assert len(runs) == 2
    assert kinds(found) == [
        ("campaign.created", runs[0]),
        ("campaign.started", runs[0]),
        ("campaign.completed", runs[0]),
        ("campaign.created", runs[1]),
        ("campaign.cancelled", runs[1]),
    ]
    created = found[0][2]
    assert created["series_id"] == series["id"] and created["created_by_id"] is None
    assert created["run_at"] == first.isoformat()
    assert found[1][2]["trigger"] == "schedule"
    assert found[4][2]["reason"] == "run_not_sent" and "Run not sent" in found[4][2]["message"]


async def test_sending_failed_deliveries_again_reopens_and_completes_once_more(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 3)
    # A transient error on every attempt it is given: it ends failed, curable.
    attempts = sending_settings.max_attempts
    await sim.post(
        "/__sim/script",
        json={
            "match": {"psid": psids[0]},
            "responses": [{"code": 2, "http": 500, "times": attempts}],
        },
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    await drain(sending_settings, db)
    retried = await manager.post(f"/api/campaigns/{campaign_id}/retry-failed")
    assert retried.status_code == 200, retried.text
    await drain(sending_settings, db)
    found = await events(db)
    assert [t for t, _, _ in found] == [
        "campaign.created",
        "campaign.started",
        "campaign.completed",
        "campaign.resumed",
        "campaign.completed",
    ]
    first, again = found[2][2], found[4][2]
    assert (first["counts"]["failed"], first["reached"]) == (1, 2)
    assert (again["counts"]["failed"], again["reached"]) == (0, 3)
    assert found[3][2]["after"] == "retry_failed"
