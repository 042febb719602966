"""The review's and test sends' dashboard answers over ASGI (no browser): Start and Schedule
ask with the number, "Send test" without a tick says so, the tester toggle's values."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import httpx
import pytest

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Contact, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns, sending
from pagecast.web.dashboard.base import same_site_path
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
        assert answer.status_code == 422  # dashboard.js shows the fragment of an error too
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


@pytest.mark.parametrize("htmx", [False, True])
async def test_a_refused_test_answers_the_refusals_own_status(
    app: Any, db: Database, vault: Any, htmx: bool
) -> None:
    campaign_id, first, cookie, csrf = await _setup(app, db, vault, eligible=1)
    async with db.transaction() as session:
        await sending.cancel(session, ADMIN_ACTOR, campaign_id)
    async with _client(app, cookie) as client:
        answer = await client.post(
            f"/campaigns/{campaign_id}/test",
            data={"csrf_token": csrf, "contact_id": str(first)},
            headers={"HX-Request": "true"} if htmx else {},
        )
    assert answer.status_code == 409, answer.status_code  # the campaign's state, not a 422
    assert "a test send is only allowed when it is draft" in html.unescape(answer.text)


async def test_the_send_test_form_lives_in_the_panel_and_leaves_with_the_state(
    app: Any, db: Database, vault: Any
) -> None:
    campaign_id, first, cookie, _ = await _setup(app, db, vault, eligible=1)
    async with db.transaction() as session:
        contact = await session.get(Contact, first)
        assert contact is not None
        contact.is_tester = True
    async with _client(app, cookie) as client:
        panel = (await client.get(f"/campaigns/{campaign_id}/panel")).text
        assert 'id="send-test"' in panel and 'id="testers-cut"' not in panel
        assert 'hx-disabled-elt="find button[type=submit]"' in panel  # no double send
        async with db.transaction() as session:
            await sending.cancel(session, ADMIN_ACTOR, campaign_id)
        # The live updates reload the panel on a state change: the form goes with it.
        assert 'id="send-test"' not in (await client.get(f"/campaigns/{campaign_id}/panel")).text


async def test_the_send_test_form_says_when_the_testers_are_cut_at_100(
    app: Any, db: Database, vault: Any
) -> None:
    campaign_id, first, cookie, _ = await _setup(app, db, vault, eligible=1)
    async with db.transaction() as session:
        contact = await session.get(Contact, first)
        assert contact is not None
        session.add_all(
            Contact(page_id=contact.page_id, psid=f"t{i}", is_tester=True) for i in range(101)
        )
    async with _client(app, cookie) as client:
        panel = (await client.get(f"/campaigns/{campaign_id}/panel")).text
    assert panel.count('name="contact_id"') == 100
    assert "Only the Page's first 100 testers are listed here" in html.unescape(panel)


@pytest.mark.parametrize(
    "target",
    ["/\\evil.example", "//evil.example", "https://evil.example/", "/\tevil", "", "contacts"],
)
def test_a_back_or_next_link_off_this_site_is_refused(target: str) -> None:
    assert same_site_path(target, "/fallback") == "/fallback"


async def test_the_tester_toggle_and_the_login_refuse_a_backslashed_link(
    app: Any, db: Database, vault: Any
) -> None:
    _, contact_id, cookie, csrf = await _setup(app, db, vault, eligible=1)
    async with _client(app, cookie) as client:
        toggled = await client.post(
            f"/contacts/{contact_id}/tester",
            data={"csrf_token": csrf, "is_tester": "on", "back": "/\\evil.example/"},
        )
        assert toggled.status_code == 303 and toggled.headers["location"] == "/contacts?page_id=1"
        kept = await client.post(
            f"/contacts/{contact_id}/tester",
            data={"csrf_token": csrf, "is_tester": "off", "back": "/contacts?page_id=1&q=a"},
        )
        assert kept.headers["location"] == "/contacts?page_id=1&q=a"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        login = await c.get("/login", params={"next": "/\\evil.example"})
    assert "evil.example" not in login.text and 'value="/campaigns"' in login.text
