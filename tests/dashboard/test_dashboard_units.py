"""The dashboard's pieces that need no browser: form parsing, explanations, the login limiter,
the one-time setup token, CSV cells, and the HTML answers over ASGI."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.datastructures import FormData

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns
from pagecast.web.dashboard import explain, setup_token
from pagecast.web.dashboard.composer import fields_from
from pagecast.web.deps import SESSION_COOKIE


def test_composer_form_becomes_the_api_body() -> None:
    form = FormData(
        [
            ("name", " Spring sale "),
            ("page_id", "3"),
            ("audience_type", "tags"),
            ("include", "vip, newsletter"),
            ("exclude", "churned"),
            ("text", "Hi {{first_name|there}}"),
            ("button0_title", "Shop"),
            ("button0_target", "https://example.com"),
            ("button1_title", "Stop"),
            ("button1_target", "STOP"),
            ("quick_replies", "Yes, No"),
            ("messaging_type", "MESSAGE_TAG"),
            ("tag", "HUMAN_AGENT"),
            ("priority", "high"),
            ("scheduled_at", "2031-01-02T09:30"),
            ("send_rate", "5"),
        ]
    )
    body = CampaignCreate.model_validate(fields_from(form))
    assert body.audience.model_dump() == {
        "type": "tags",
        "include": ["vip", "newsletter"],
        "exclude": ["churned"],
        "match": "any",  # any one of the included tags (issue 21: or all of them)
    }
    assert [b.type for b in body.content.buttons] == ["web_url", "postback"]
    assert [q.title for q in body.content.quick_replies] == ["Yes", "No"]
    assert body.scheduled_at is not None and body.scheduled_at.isoformat().endswith("+00:00")
    assert body.tag == "HUMAN_AGENT" and body.send_rate == 5


def test_explanations_follow_code_then_kind_then_reason() -> None:
    assert "token expired" in explain.delivery_error(190, 460, "stop_page", None)[0]
    assert "window" in explain.delivery_error(10, 2018278, "outside_window", None)[0]
    assert "Retry failed" in explain.delivery_error(1200, None, "retry", "retries_exhausted")[1]
    assert "opted out" in explain.delivery_error(None, None, None, "opted_out")[0]
    assert explain.delivery_error(None, None, None, None)[0].startswith("An error")
    assert "Reconnect" in explain.page_status("token_invalid")[1]


def test_setup_token_is_stored_hashed_private_and_used_once(tmp_path: Path) -> None:
    token = setup_token.issue(tmp_path)
    stored = (tmp_path / "setup-token").read_text()
    assert token not in stored
    assert stat.S_IMODE((tmp_path / "setup-token").stat().st_mode) == 0o600
    assert setup_token.check(tmp_path, token) and not setup_token.check(tmp_path, token + "x")
    setup_token.consume(tmp_path)
    assert not setup_token.check(tmp_path, token)


async def test_pages_are_html_escaped_and_csrf_protected(app: Any, db: Database) -> None:
    user, _ = await create_user(db, Role.MANAGER, email="m@example.com")
    vault = app.state.context.vault
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        page = await client.get("/campaigns?q=<b>x</b>")
        assert page.status_code == 200
        assert "&lt;b&gt;x&lt;/b&gt;" in page.text and "<b>x</b>" not in page.text
        assert f'"X-CSRF-Token": "{vault.csrf_token(cookie)}"' in page.text
        refused = await client.post("/campaigns/new", data={"name": "x"})
        assert refused.status_code == 403 and "security token" in refused.text
        form = {"csrf_token": vault.csrf_token(cookie), "name": "", "page_id": ""}
        invalid = await client.post("/campaigns/new", data=form)
        assert invalid.status_code == 422
        assert 'class="field-error"' in invalid.text


async def test_a_draft_with_a_time_can_be_scheduled_from_its_page(
    app: Any, db: Database, vault: Any, redis_url: str
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
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
    user, _ = await create_user(db, Role.MANAGER, email="s@example.com")
    cookie = await session_cookie(db, user)
    csrf = app.state.context.vault.csrf_token(cookie)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        detail = await client.get(f"/campaigns/{draft.id}")
        assert "Schedule for" in detail.text
        answer = await client.post(f"/campaigns/{draft.id}/schedule", data={"csrf_token": csrf})
        assert answer.status_code == 303
        after = await client.get(f"/campaigns/{draft.id}")
        assert 'data-status="scheduled"' in after.text


async def test_a_csv_of_several_megabytes_imports_through_the_form(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    user, _ = await create_user(db, Role.MANAGER, email="i@example.com")
    cookie = await session_cookie(db, user)
    csrf = app.state.context.vault.csrf_token(cookie)
    rows = "".join(f"{10_000_000 + i},Person{i},{'x' * 40}\n" for i in range(40_000))
    data = ("psid,first_name,last_name\n" + rows).encode()
    assert len(data) > 2_000_000
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
        timeout=60,
    ) as client:
        answer = await client.post(
            "/contacts/import",
            data={"csrf_token": csrf, "page_id": str(page.id)},
            files={"file": ("big.csv", data, "text/csv")},
        )
        assert answer.status_code == 303, answer.text[:300]  # to the import's own page
        location = answer.headers["location"]
        import_id = int(location.rsplit("/", 1)[1])
        await app.state.context.imports.wait(import_id)
        done = await client.get(location)
        card = await client.get(location, headers={"HX-Request": "true"})
    assert done.status_code == 200 and "<h1>Contact import</h1>" in done.text
    assert "<strong>40000</strong> rows read: 40000 created, 0 updated, 0 refused" in done.text
    assert 'data-state="completed"' in card.text and "hx-trigger" not in card.text
    assert "<h1>" not in card.text  # the card alone, for HTMX


async def test_a_malformed_link_is_a_not_found_page(app: Any, db: Database) -> None:
    user, _ = await create_user(db, Role.VIEWER, email="v@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        answer = await client.get("/campaigns/abc")
    assert answer.status_code == 404 and "no such page" in answer.text


async def test_a_campaign_waiting_for_reconciliation_says_how_many_and_until_when(
    app: Any, db: Database, vault: Any
) -> None:
    from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, DeliveryStatus

    page = await connected_page(db, vault)
    async with db.transaction() as session:
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name="Waiting", page_id=page.id, content={"text": "Hi"}),
        )
        person = Contact(page_id=page.id, psid="77001", first_name="Ada")
        session.add(person)
        await session.flush()
        since = utcnow()
        session.add(
            Delivery(
                campaign_id=draft.id,
                contact_id=person.id,
                status=DeliveryStatus.UNKNOWN,
                reason="ambiguous",
                unknown_since=since,
            )
        )
        row = await session.get(Campaign, draft.id)
        assert row is not None
        row.status, row.n_total, row.n_unknown = CampaignStatus.SENDING, 1, 1
    user, _ = await create_user(db, Role.VIEWER, email="r@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        detail = await client.get(f"/campaigns/{draft.id}")
    assert detail.status_code == 200
    notice = detail.text[detail.text.index('id="reconciling"') :].split("</p>")[0]
    assert "hidden" not in notice.split(">")[0]
    assert "<span data-reconciling-count>1</span>" in notice and "ambiguous" in notice
    grace = timedelta(seconds=app.state.context.settings.unknown_grace)
    assert (since + grace).isoformat().replace("+00:00", "Z") in notice


@pytest.mark.parametrize("page_id", ["²", "99999999999999999999", "0", ""])
async def test_an_import_form_with_an_impossible_page_is_a_422_naming_it(
    app: Any, db: Database, page_id: str
) -> None:
    user, _ = await create_user(db, Role.MANAGER, email="i@example.com")
    cookie = await session_cookie(db, user)
    csrf = app.state.context.vault.csrf_token(cookie)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        answer = await client.post(
            "/contacts/import",
            data={"csrf_token": csrf, "page_id": page_id},
            files={"file": ("a.csv", b"psid\n1\n", "text/csv")},
        )
    assert answer.status_code == 422 and "Choose the Page" in answer.text


async def test_error_codes_are_written_as_everywhere_else(
    app: Any, db: Database, vault: Any
) -> None:
    from pagecast.models import Campaign, CampaignStatus, Contact, Delivery, DeliveryStatus

    page = await connected_page(db, vault)
    async with db.transaction() as session:
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name="Refused", page_id=page.id, content={"text": "Hi"}),
        )
        people = [Contact(page_id=page.id, psid=f"7710{i}") for i in range(2)]
        session.add_all(people)
        await session.flush()
        for person, (code, subcode) in zip(people, [(613, 2018338), (551, None)], strict=True):
            session.add(
                Delivery(
                    campaign_id=draft.id,
                    contact_id=person.id,
                    status=DeliveryStatus.FAILED,
                    reason="bad_request",
                    error_kind="bad_request",
                    error_code=code,
                    error_subcode=subcode,
                    error_message="refused",
                )
            )
        row = await session.get(Campaign, draft.id)
        assert row is not None
        row.status, row.n_total, row.n_failed = CampaignStatus.COMPLETED, 2, 2
    user, _ = await create_user(db, Role.VIEWER, email="c@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        detail = await client.get(f"/campaigns/{draft.id}")
        listed = await client.get(f"/campaigns/{draft.id}/deliveries", params={"code": 613})
    assert detail.status_code == 200 and listed.status_code == 200, listed.text
    assert ">613/2018338</a>" in detail.text and ">551</a>" in detail.text
    assert "613/2018338 <small" in listed.text and "551 <small" not in listed.text
