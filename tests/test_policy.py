"""Facebook's messaging policy enforcement: `block` restricts the Page and pauses its
sending, `unblock` brings it back (the campaigns the block paused resume), `warning` is
shown. Events are at-least-once and unordered: an older event never undoes a newer one.

End to end: the simulator's control plane makes Facebook act, its emitter posts the signed
webhook to the real app served on a loopback port, and the real worker applies it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from factories import app_client, connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import (
    AuditLog,
    Campaign,
    CampaignStatus,
    Page,
    PageStatus,
    Role,
    WebhookEvent,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import policy, sending
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.deps import SESSION_COOKIE
from test_sending import PAGE, RunningWorker, add_people, new_campaign, outbox, setup_page
from test_webhooks import (  # noqa: F401 (fixtures)
    LoopbackApp,
    _engine_settings,
    hook_settings,
    point_simulator,
    until,
)

BLOCK_REASON = "Your Page sent excessive spammy messages."


@pytest.fixture
async def policy_app(engine_settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(engine_settings, database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def admin(policy_app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    _, raw = await create_user(db, Role.ADMIN, email="policy@example.com")
    async with app_client(policy_app, raw) as client:
        yield client


@pytest.fixture
async def browser(policy_app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard as a signed-in admin sees it (server-rendered HTML)."""
    user, _ = await create_user(db, Role.ADMIN, email="policy-viewer@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=policy_app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        yield client


async def facebook(sim: httpx.AsyncClient, action: str, **extra: Any) -> int:
    """Facebook enforces its policy on the Page; returns the event's timestamp (ms)."""
    body = {"page_id": PAGE, "action": action, "restrict": False} | extra
    response = await sim.post("/__sim/pages/policy", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["emitted"] is True
    await sim.post("/__sim/webhook/flush")
    return int(response.json()["timestamp"])


async def policy_events_done(db: Database, count: int) -> None:
    """Wait until `count` policy events are stored and processed."""

    async def done() -> bool:
        async with db.transaction() as session:
            processed = await session.scalar(
                select(func.count(WebhookEvent.id)).where(
                    WebhookEvent.kind == "policy", WebhookEvent.processed_at.is_not(None)
                )
            )
        return processed == count

    await until(done)


async def status_of(client: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    return (await client.get(f"/api/campaigns/{campaign_id}")).json()  # type: ignore[no-any-return]


async def test_a_block_pauses_the_page_an_unblock_resumes_it_and_late_events_change_nothing(
    admin: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    policy_app: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=10)
    psids = await add_people(sim, admin, page_id, 60)
    campaign_id = await new_campaign(admin, page_id)
    async with LoopbackApp(policy_app) as url:
        await point_simulator(sim, url, p_delivered=0.0, p_read=0.0)
        async with RunningWorker(engine_settings, db):
            assert (await admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202

            async def some_sent() -> bool:
                return (await status_of(admin, campaign_id))["counts"]["sent"] >= 5

            await until(some_sent)
            # A warning first: shown, sending goes on.
            warned_at = await facebook(sim, "warning", reason="Too many people block you.")
            await policy_events_done(db, 1)
            page = (await admin.get(f"/api/pages/{page_id}")).json()
            assert page["status"] == "active"
            assert page["policy"]["warning"] == "Too many people block you."
            assert page["policy"]["warning_at"] is not None
            assert (await status_of(admin, campaign_id))["status"] == "sending"

            blocked_at = await facebook(sim, "block", reason=BLOCK_REASON)
            await policy_events_done(db, 2)

            async def paused() -> bool:
                body = await status_of(admin, campaign_id)
                return body["status"] == "paused" and body["counts"]["sending"] == 0

            await until(paused)
            page = (await admin.get(f"/api/pages/{page_id}")).json()
            assert page["status"] == "restricted" and BLOCK_REASON in page["status_reason"]
            assert page["policy"]["blocked"] is True
            assert page["policy"]["block_reason"] == BLOCK_REASON
            campaign = await status_of(admin, campaign_id)
            assert BLOCK_REASON in campaign["status_reason"]
            assert campaign["counts"]["pending"] > 0  # stopped mid-way
            health = (await admin.get("/api/admin/health")).json()
            assert health["pages"][0]["policy"]["block_reason"] == BLOCK_REASON
            # Shown in the dashboard: the Pages page and the campaign page.
            pages_html = (await browser.get("/pages")).text
            assert f'id="page-{page_id}-policy-block"' in pages_html
            assert BLOCK_REASON in pages_html and "Too many people block you." in pages_html
            assert BLOCK_REASON in (await browser.get(f"/campaigns/{campaign_id}")).text
            # A person cannot resume it while the Page is blocked.
            refused = await admin.post(f"/api/campaigns/{campaign_id}/resume")
            assert refused.status_code == 409, refused.text
            sent_while_blocked = len(await outbox(sim))

            # An unblock Facebook made before the block, delivered late: nothing changes.
            await facebook(sim, "unblock", timestamp=blocked_at - 1000)
            await policy_events_done(db, 3)
            assert (await admin.get(f"/api/pages/{page_id}")).json()["status"] == "restricted"
            assert (await status_of(admin, campaign_id))["status"] == "paused"
            assert len(await outbox(sim)) == sent_while_blocked

            unblocked_at = await facebook(sim, "unblock")
            await policy_events_done(db, 4)
            page = (await admin.get(f"/api/pages/{page_id}")).json()
            assert (page["status"], page["status_reason"]) == ("active", None)
            assert page["policy"]["blocked"] is False
            assert page["policy"]["warning"] is None  # the unblock is newer than the warning
            assert warned_at < blocked_at < unblocked_at

            async def sending_again() -> bool:
                return len(await outbox(sim)) > sent_while_blocked

            # The resumed campaign is planned at once, not when a sweep finds it.
            await until(sending_again, timeout=10)
            # A block made between the two, delivered after the unblock: nothing changes.
            await facebook(sim, "block", reason="stale", timestamp=unblocked_at - 500)
            await policy_events_done(db, 5)
            done = await until_status(admin, campaign_id, "completed")
    assert done["counts"]["sent"] == 60 and done["status_reason"] is None
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)  # once each
    assert (await admin.get(f"/api/pages/{page_id}")).json()["status"] == "active"
    async with db.transaction() as session:
        actions = list(
            await session.scalars(
                select(AuditLog.action)
                .where(
                    AuditLog.action.in_(
                        [
                            "page.stopped",
                            "page.policy_unblocked",
                            "page.policy_warning",
                            "campaign.resumed",
                        ]
                    )
                )
                .order_by(AuditLog.id)
            )
        )
    assert actions == [
        "page.policy_warning",
        "page.stopped",
        "page.policy_unblocked",
        "campaign.resumed",
    ]


async def until_status(
    client: httpx.AsyncClient, campaign_id: int, status: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = await status_of(client, campaign_id)
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, f"campaign stayed {body['status']}"
        await _sleep()


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


# ---------------------------------------------------------------- the service, event by event


def _at(seconds: float) -> datetime:
    return datetime(2026, 11, 24, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)


async def _sending_campaign(db: Database, page_id: int, name: str) -> int:
    async with db.transaction() as session:
        campaign = Campaign(
            name=name,
            page_id=page_id,
            content={"text": "hi"},
            audience={"type": "all"},
            status=CampaignStatus.SENDING,
            started_at=utcnow(),
        )
        session.add(campaign)
        await session.flush()
        return campaign.id


async def _apply(db: Database, page_id: int, action: str, at: datetime, reason: str = "r") -> Any:
    async with db.transaction() as session:
        return await policy.apply(session, page_id, {"action": action, "reason": reason}, at)


async def _state(db: Database, page_id: int, *campaign_ids: int) -> tuple[Any, ...]:
    async with db.transaction() as session:
        page = await session.get(Page, page_id)
        assert page is not None
        statuses = [
            (await session.get(Campaign, cid)).status  # type: ignore[union-attr]
            for cid in campaign_ids
        ]
        return (page.status, page.policy_block, *statuses)


async def test_events_apply_in_facebooks_order_whatever_order_they_arrive(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _sending_campaign(db, page.id, "a")
    await _apply(db, page.id, "unblock", _at(30))  # the newest arrives first
    await _apply(db, page.id, "block", _at(10))  # older: ignored
    assert await _state(db, page.id, campaign_id) == (
        PageStatus.ACTIVE,
        None,
        CampaignStatus.SENDING,
    )
    await _apply(db, page.id, "block", _at(40), "spam")
    late = await _apply(db, page.id, "unblock", _at(35))
    assert late.note is not None and "older" in late.note
    assert await _state(db, page.id, campaign_id) == (
        PageStatus.RESTRICTED,
        "spam",
        CampaignStatus.PAUSED,
    )
    # Warnings: the newest one is shown.
    await _apply(db, page.id, "warning", _at(50), "second")
    await _apply(db, page.id, "warning", _at(45), "first, late")
    async with db.transaction() as session:
        row = await session.get(Page, page.id)
        assert row is not None and row.policy_warning == "second"
    bad = await _apply(db, page.id, "suspend", _at(60))
    assert bad.note is not None and "suspend" in bad.note


async def test_an_unblock_resumes_what_the_block_paused_not_what_a_person_paused(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    by_block = await _sending_campaign(db, page.id, "paused by the block")
    by_person = await _sending_campaign(db, page.id, "paused by a person before")
    then_person = await _sending_campaign(db, page.id, "paused by a person during the block")
    person, _ = await create_user(db, Role.ADMIN, email="keeper@example.com")
    actor = Actor.user(person.id, person.email, person.role, can_send=True)
    async with db.transaction() as session:
        await sending.pause(session, actor, by_person)
    await _apply(db, page.id, "block", _at(10))
    async with db.transaction() as session:
        await sending.pause(session, actor, then_person)
    applied = await _apply(db, page.id, "unblock", _at(20))
    assert [cid for cid, _ in applied.resumed] == [by_block]
    assert await _state(db, page.id, by_block, by_person, then_person) == (
        PageStatus.ACTIVE,
        None,
        CampaignStatus.SENDING,
        CampaignStatus.PAUSED,
        CampaignStatus.PAUSED,
    )


async def test_a_new_token_does_not_lift_a_block_and_a_token_problem_outlives_an_unblock(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    await _apply(db, page.id, "block", _at(10), "spam")
    async with db.transaction() as session:
        await sending.stop_page(session, page.id, PageStatus.TOKEN_INVALID, "token revoked")
    await _apply(db, page.id, "unblock", _at(20))
    # Facebook lifted its block, but the Page still needs a new token.
    assert await _state(db, page.id) == (PageStatus.TOKEN_INVALID, None)
    await _apply(db, page.id, "block", _at(30), "spam again")
    assert await _state(db, page.id) == (PageStatus.TOKEN_INVALID, "spam again")
