"""The review's and test sends' dashboard answers over ASGI (no browser): Start and Schedule
ask with the number, "Send test" without a tick says so, the tester toggle's values."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import httpx

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Contact, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns
from pagecast.web.deps import SESSION_COOKIE


async def _setup(app: Any, db: Database, vault: Any, eligible: int) -> tuple[int, int, str, str]:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        people = [
            Contact(page_id=page.id, psid=str(10 + i), last_inbound_at=utcnow())
            for i in range(eligible)
        ]
        session.add_all([*people, Contact(page_id=page.id, psid="99")])  # no known message
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(
                name="Later",
                page_id=page.id,
                content={"text": "Hi"},
                scheduled_at=utcnow() + timedelta(hours=2),
            ),
        )
        await session.flush()
        first = people[0].id
    user, _ = await create_user(db, Role.MANAGER, email="s@example.com")
    cookie = await session_cookie(db, user)
    return draft.id, first, cookie, app.state.context.vault.csrf_token(cookie)


def _client(app: Any, cookie: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    )


async def test_start_and_schedule_ask_with_the_number_of_people(
    app: Any, db: Database, vault: Any
) -> None:
    campaign_id, _, cookie, _ = await _setup(app, db, vault, eligible=2)
    async with _client(app, cookie) as client:
        text = html.unescape((await client.get(f"/campaigns/{campaign_id}")).text)
    assert 'data-confirm="Send to 2 people now?"' in text
    assert 'data-confirm="Schedule for 2 people at ' in text
    assert '<span id="review-excluded">1 with no known message to the Page</span>' in text


async def test_one_person_is_one_person(app: Any, db: Database, vault: Any) -> None:
    campaign_id, _, cookie, _ = await _setup(app, db, vault, eligible=1)
    async with _client(app, cookie) as client:
        text = html.unescape((await client.get(f"/campaigns/{campaign_id}")).text)
    assert 'data-confirm="Send to 1 person now?"' in text


async def test_send_test_without_a_tick_says_so_and_sends_nothing(
    app: Any, db: Database, vault: Any
) -> None:
    campaign_id, _, cookie, csrf = await _setup(app, db, vault, eligible=1)
    async with _client(app, cookie) as client:
        answer = await client.post(
            f"/campaigns/{campaign_id}/test",
            data={"csrf_token": csrf},
            headers={"HX-Request": "true"},
        )
        assert answer.status_code == 200
        assert "Tick at least one tester to send the test to." in answer.text
        trail = await client.get(f"/campaigns/{campaign_id}")
    assert "campaign.test_sent" not in trail.text


async def test_the_tester_toggle_takes_on_and_off_only(app: Any, db: Database, vault: Any) -> None:
    _, contact_id, cookie, csrf = await _setup(app, db, vault, eligible=1)
    async with _client(app, cookie) as client:
        on = await client.post(
            f"/contacts/{contact_id}/tester",
            data={"csrf_token": csrf, "is_tester": "on", "back": "https://evil.example/"},
        )
        assert on.status_code == 303 and on.headers["location"] == "/contacts?page_id=1"
        bad = await client.post(
            f"/contacts/{contact_id}/tester", data={"csrf_token": csrf, "is_tester": "maybe"}
        )
        assert bad.status_code == 422 and "is_tester" in bad.text
    async with db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.is_tester is True
