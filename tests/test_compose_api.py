"""Issue 19, Compose: rich messages (cards, attachment ids) and one set of rules for Save,
Start, templates and the preview, through the API on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from factories import SIM_TOKEN, connected_page, sim_page, table_counts
from pagecast.db import Database
from pagecast.models import (
    Campaign,
    CampaignStatus,
    MessageAttachment,
    Role,
    Template,
    utcnow,
)
from pagecast.security import Vault

SHOP = "https://shop.example.com/sale"
IMAGE = "https://cdn.example.com/sale.jpg"


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


def card(**overrides: Any) -> dict[str, Any]:
    return {
        "title": "Hi {{first_name|there}}",
        "subtitle": "Up to 50% off",
        "image_url": IMAGE,
        "default_action": {"type": "web_url", "url": SHOP},
        "buttons": [{"type": "web_url", "title": "Shop now", "url": SHOP}],
    } | overrides


def draft(page: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Summer", "page_id": page, "content": message}


BUTTON = {"type": "postback", "title": "More", "payload": "MORE"}


@pytest.mark.parametrize(
    ("message", "field", "phrase"),
    [
        ({"cards": [card(title="x" * 81)]}, "content.cards[0].title", "at most 80"),
        ({"cards": [card(), card(), card(subtitle="s" * 81)]}, "content.cards[2].subtitle", "80"),
        (
            {"cards": [card(), card(), card(buttons=[{**BUTTON, "title": "t" * 21}])]},
            "content.cards[2].buttons[0].title",
            "at most 20",
        ),
        ({"cards": [card(buttons=[BUTTON] * 4)]}, "content.cards[0].buttons", "at most 3"),
        ({"cards": [card()] * 11}, "content.cards", "at most 10"),
        ({"cards": []}, "content.cards", "at least 1"),
        ({"cards": [card(title="")]}, "content.cards[0].title", "empty"),
        ({"cards": [card(image_url="ftp://x/y.png")]}, "content.cards[0].image_url", "http"),
        (
            {"cards": [card(title="Hi {{city}}")]},
            "content.cards[0].title",
            "Unknown personalisation {{city}}",
        ),
        (
            {"cards": [card(subtitle="{{nickname|you}}")]},
            "content.cards[0].subtitle",
            "Unknown personalisation",
        ),
        (
            {"cards": [card(title="y" * 70 + "{{first_name|abcdefghijklmnop}}")]},
            "content.cards[0].title",
            "once personalised",
        ),
        ({"text": "Hi", "attachment": {"type": "image", "url": IMAGE}}, "content", "one of text"),
        ({"text": "Hi", "cards": [card()]}, "content", "separate messages"),
        (
            {"attachment": {"type": "image", "url": IMAGE, "attachment_id": "123"}},
            "content.attachment",
            "either url or attachment_id",
        ),
        ({"attachment": {"type": "video"}}, "content.attachment", "either url or attachment_id"),
        (
            {"attachment": {"type": "file", "attachment_id": "abc"}},
            "content.attachment.attachment_id",
            "must be digits only (0-9), 1 to 32 of them",
        ),
        # A card needs more than a title (Facebook: "At least one property must be set in
        # addition to title").
        ({"cards": [{"title": "Only a title"}]}, "content.cards[0]", "more than a title"),
        # Messenger fetches and opens these itself: public HTTPS only.
        (
            {"cards": [card(image_url="http://cdn.example.com/a.jpg")]},
            "content.cards[0].image_url",
            "must be an https:// URL",
        ),
        (
            {"cards": [card(default_action={"url": "http://shop.example.com"})]},
            "content.cards[0].default_action.url",
            "must be an https:// URL",
        ),
        (
            {"attachment": {"type": "image", "url": "http://cdn.example.com/a.jpg"}},
            "content.attachment.url",
            "must be an https:// URL",
        ),
        (
            {"attachment": {"type": "image", "url": "https://"}},
            "content.attachment.url",
            "is not a web address: after https:// comes the site's name",
        ),
        # Titles Messenger sends as written.
        (
            {"text": "Hi", "buttons": [{**BUTTON, "title": "For {{first_name}}"}]},
            "content.buttons[0].title",
            "without personalising",
        ),
        (
            {"cards": [card(buttons=[{**BUTTON, "title": "{{first_name|you}}"}])]},
            "content.cards[0].buttons[0].title",
            "write the title without {{ }}",
        ),
        (
            {"text": "Hi", "quick_replies": [{"title": "{{first_name}}", "payload": "P"}]},
            "content.quick_replies[0].title",
            "without personalising",
        ),
        # Empty for a contact without a name.
        ({"text": "{{first_name}}"}, "content.text", "add a fallback: {{first_name|there}}"),
        (
            {"cards": [card(title=" {{full_name|}} ")]},
            "content.cards[0].title",
            "add a fallback: {{full_name|there}}",
        ),
        ({"cards": [card()], "buttons": [BUTTON]}, "content", "buttons go under a text"),
        ({"text": "x" * 2001}, "content.text", "at most 2,000"),
    ],
)
async def test_every_message_rule_names_the_field_path_in_words_and_writes_nothing(
    manager: httpx.AsyncClient,
    page_id: int,
    db: Database,
    message: dict[str, Any],
    field: str,
    phrase: str,
) -> None:
    before = await table_counts(db)
    response = await manager.post("/api/campaigns", json=draft(page_id, message))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert phrase in error["message"], error
    assert "pydantic" not in response.text and "validation error for" not in response.text
    assert await table_counts(db) == before


async def test_what_messenger_allows_still_saves(manager: httpx.AsyncClient, page_id: int) -> None:
    # A web_url button may open http:// (Messenger opens it in a browser); a placeholder with
    # other text around it, or with a fallback, is never empty; a card with a title and a
    # subtitle is enough.
    message = {
        "text": "Hi {{first_name}}",
        "buttons": [{"type": "web_url", "title": "Old site", "url": "http://shop.example.com"}],
    }
    for body in (message, {"cards": [{"title": "{{first_name|Hi}}", "subtitle": "Sale"}]}):
        response = await manager.post("/api/campaigns", json=draft(page_id, body))
        assert response.status_code == 201, response.text


async def test_a_carousel_and_an_attachment_id_save_and_preview_for_a_contact(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await manager.post(
        f"/api/pages/{page_id}/contacts",
        json={"psid": "7", "first_name": "Ana", "last_inbound_at": "2099-01-01T00:00:00Z"},
    )
    message = {
        "cards": [card(), card(title="Card two", buttons=[])],
        "quick_replies": [{"title": "Yes", "payload": "YES"}],
    }
    created = await manager.post("/api/campaigns", json=draft(page_id, message))
    assert created.status_code == 201, created.text
    assert created.json()["content"]["cards"][1]["title"] == "Card two"
    preview = (await manager.get(f"/api/campaigns/{created.json()['id']}/audience")).json()
    payload = preview["sample"]["message"]["attachment"]["payload"]
    assert payload["template_type"] == "generic"
    assert [e["title"] for e in payload["elements"]] == ["Hi Ana", "Card two"]
    assert payload["elements"][0]["default_action"] == {"type": "web_url", "url": SHOP}
    assert preview["sample"]["message"]["quick_replies"][0]["title"] == "Yes"
    by_id = {"attachment": {"type": "video", "attachment_id": "1857777774821032"}}
    created = await manager.post("/api/campaigns", json=draft(page_id, by_id))
    assert created.status_code == 201, created.text


async def test_start_rechecks_content_edited_elsewhere_with_the_same_rules(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await manager.post(
        f"/api/pages/{page_id}/contacts",
        json={"psid": "7", "first_name": "Ana", "last_inbound_at": "2099-01-01T00:00:00Z"},
    )
    campaign = await manager.post("/api/campaigns", json=draft(page_id, {"cards": [card()]}))
    campaign_id = campaign.json()["id"]
    broken = {"cards": [card(), card(buttons=[{**BUTTON, "title": "t" * 25}])]}
    async with db.transaction() as session:  # written by something that skipped the API
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(content=broken)
        )
    response = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "content.cards[1].buttons[0].title"
    assert "pydantic" not in response.text
    async with db.transaction() as session:
        assert (await session.get(Campaign, campaign_id)).status is CampaignStatus.DRAFT  # type: ignore[union-attr]


async def test_start_rechecks_a_template_edited_elsewhere(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    await manager.post(
        f"/api/pages/{page_id}/contacts",
        json={"psid": "7", "first_name": "Ana", "last_inbound_at": "2099-01-01T00:00:00Z"},
    )
    template = await manager.post(
        "/api/templates", json={"name": "Sale cards", "content": {"cards": [card()]}}
    )
    assert template.status_code == 201, template.text
    body = {"name": "From template", "page_id": page_id, "template_id": template.json()["id"]}
    campaign_id = (await manager.post("/api/campaigns", json=body)).json()["id"]
    async with db.transaction() as session:
        await session.execute(
            update(Template)
            .where(Template.id == template.json()["id"])
            .values(content={"cards": [card(title="Hello {{city}}")]})
        )
    response = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "content.cards[0].title"
    assert "{{city}}" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"cards": [card(title="z" * 81)]}, "content.cards[0].title"),
        ({"cards": [card(subtitle="{{city}}")]}, "content.cards[0].subtitle"),
        ({"text": "Hi {{city}}"}, "content.text"),
    ],
)
async def test_templates_follow_the_same_rules(
    manager: httpx.AsyncClient, db: Database, message: dict[str, Any], field: str
) -> None:
    before = await table_counts(db)
    response = await manager.post("/api/templates", json={"name": "T", "content": message})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await table_counts(db) == before


# ----------------------------------------------------------------------------- uploads


@pytest.fixture
async def sim_page_id(api: Any, sim: httpx.AsyncClient) -> int:
    await sim_page(sim)
    admin = await api(Role.ADMIN, email="owner@example.com")
    response = await admin.post("/api/pages", json={"access_token": SIM_TOKEN})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_upload_once_then_reuse_for_the_same_page_and_url(
    manager: httpx.AsyncClient, sim_page_id: int, sim: httpx.AsyncClient, db: Database
) -> None:
    path = f"/api/pages/{sim_page_id}/attachments"
    first = await manager.post(path, json={"type": "image", "url": IMAGE})
    assert first.status_code == 200, first.text
    assert first.json()["uploaded"] is True and first.json()["attachment_id"].isdigit()
    # Were Pagecast to upload again, this URL would now fail: the kept id is answered.
    await sim.post("/__sim/knobs", json={"attachment_fail_urls": ["cdn.example.com"]})
    again = await manager.post(path, json={"type": "image", "url": IMAGE})
    assert again.json() == {"attachment_id": first.json()["attachment_id"], "uploaded": False}
    async with db.transaction() as session:
        rows = list(await session.scalars(select(MessageAttachment)))
    assert [(r.page_id, r.type, r.url) for r in rows] == [(sim_page_id, "image", IMAGE)]
    # Another type of the same URL is another upload (and fails now, naming the url).
    other = await manager.post(path, json={"type": "file", "url": IMAGE})
    assert other.status_code == 422, other.text
    assert other.json()["error"]["field"] == "url"
    assert "2018008" in other.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "gif", "url": IMAGE}, "type"),
        ({"type": "image", "url": "ftp://cdn.example.com/a.jpg"}, "url"),
        ({"type": "image", "url": "http://cdn.example.com/a.jpg"}, "url"),
        ({"type": "image"}, "url"),
    ],
)
async def test_bad_uploads_are_refused_before_facebook(
    manager: httpx.AsyncClient, sim_page_id: int, db: Database, body: dict[str, Any], field: str
) -> None:
    response = await manager.post(f"/api/pages/{sim_page_id}/attachments", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    async with db.transaction() as session:
        assert list(await session.scalars(select(MessageAttachment))) == []


async def test_uploads_need_a_known_page_and_the_right_role(api: Any, sim_page_id: int) -> None:
    manager = await api(Role.MANAGER)
    missing = await manager.post("/api/pages/999/attachments", json={"type": "image", "url": IMAGE})
    assert missing.status_code == 404
    viewer = await api(Role.VIEWER)
    refused = await viewer.post(
        f"/api/pages/{sim_page_id}/attachments", json={"type": "image", "url": IMAGE}
    )
    assert refused.status_code == 403


async def test_a_kept_id_too_old_to_reuse_is_uploaded_again(
    manager: httpx.AsyncClient, sim_page_id: int, db: Database
) -> None:
    path = f"/api/pages/{sim_page_id}/attachments"
    first = (await manager.post(path, json={"type": "video", "url": IMAGE})).json()
    async with db.transaction() as session:  # uploaded 81 days ago
        await session.execute(
            update(MessageAttachment).values(created_at=utcnow() - timedelta(days=81))
        )
    again = (await manager.post(path, json={"type": "video", "url": IMAGE})).json()
    assert again["uploaded"] is True and again["attachment_id"] != first["attachment_id"]
    async with db.transaction() as session:
        rows = list(await session.scalars(select(MessageAttachment)))
    assert [r.attachment_id for r in rows] == [again["attachment_id"]]


async def test_the_composer_edits_a_template_campaign_with_the_templates_message(
    app: Any, db: Database, manager: httpx.AsyncClient, page_id: int
) -> None:
    from factories import create_user, session_cookie
    from pagecast.web.deps import SESSION_COOKIE

    template = await manager.post(
        "/api/templates", json={"name": "Sale cards", "content": {"cards": [card(title="Deal")]}}
    )
    body = {"name": "Uses it", "page_id": page_id, "template_id": template.json()["id"]}
    campaign_id = (await manager.post("/api/campaigns", json=body)).json()["id"]
    user, _ = await create_user(db, Role.MANAGER, email="composer@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        page = await browser.get(f"/campaigns/{campaign_id}/edit")
    assert page.status_code == 200, page.text
    assert 'id="uses-template"' in page.text and "Sale cards" in page.text
    assert 'name="card0_title" value="Deal"' in page.text
