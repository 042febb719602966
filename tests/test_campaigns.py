"""Campaigns: validation against Messenger's rules, the state machine, preview and templates."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from factories import connected_page, table_counts
from pagecast.db import Database
from pagecast.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Role, utcnow
from pagecast.security import Vault
from pagecast.web import deps

COUNT_KEYS = {
    "total",
    "pending",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",
    "unknown",
    "cancelled",
    "expired",
}


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


def draft(page: int, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Black Friday",
        "page_id": page,
        "content": {"text": "Hi {{first_name|there}}!"},
    } | overrides


async def test_create_returns_a_draft_with_every_count(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    response = await manager.post("/api/campaigns", json=draft(page_id))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (
        body["status"] == "draft"
        and body["messaging_type"] == "UPDATE"
        and body["priority"] == "normal"
    )
    assert set(body["counts"]) == COUNT_KEYS and not any(body["counts"].values())
    fetched = (await manager.get(f"/api/campaigns/{body['id']}")).json()
    assert fetched["content"] == {"text": "Hi {{first_name|there}}!"}


@pytest.mark.parametrize(
    ("overrides", "field", "phrase"),
    [
        ({"content": {"text": "x" * 1990 + "{{first_name|abcdefghijk}}"}}, "content.text", "2,001"),
        (
            {"messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE"},
            "tag",
            "retired by Meta on 2026-04-27",
        ),
        ({"messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE"}, "tag", "retired"),
        ({"messaging_type": "MESSAGE_TAG"}, "tag", "needs a tag"),
        ({"tag": "HUMAN_AGENT"}, "tag", "only sent with messaging_type MESSAGE_TAG"),
        (
            {
                "content": {
                    "text": "hi",
                    "buttons": [{"type": "postback", "title": "t", "payload": "p"}] * 4,
                }
            },
            "content.buttons",
            "at most 3",
        ),
        (
            {
                "content": {
                    "text": "x" * 641,
                    "buttons": [{"type": "web_url", "title": "Shop", "url": "https://a.b"}],
                }
            },
            "content.text",
            "640",
        ),
        (
            {"content": {"text": "hi", "quick_replies": [{"title": "a", "payload": "b"}] * 14}},
            "content.quick_replies",
            "at most 13",
        ),
        (
            {
                "content": {
                    "text": "hi",
                    "buttons": [{"type": "web_url", "title": "x" * 21, "url": "https://a.b"}],
                }
            },
            "content.buttons[0].title",
            "at most 20",
        ),
        ({"content": {"text": "hi {{nickname}}"}}, "content.text", "Unknown personalisation"),
        (
            {"content": {"attachment": {"type": "gif", "url": "https://a.b/c.gif"}}},
            "content.attachment.type",
            "",
        ),
        (
            {"content": {"attachment": {"type": "image", "url": "ftp://a.b/c.png"}}},
            "content.attachment.url",
            "http",
        ),
        ({"name": ""}, "name", ""),
        ({"name": 42}, "name", "string"),
        ({"unknown_field": 1}, "unknown_field", "not a known field"),
        ({"send_rate": 500}, "send_rate", "300"),
        ({"send_rate": 50}, "send_rate", "above Page"),
        ({"page_id": 987654}, "page_id", "does not exist"),
        (
            {"audience": {"type": "contacts", "ids": [987654]}},
            "audience.ids",
            "987654 is not a contact of Page",
        ),
        ({"audience": {"type": "everyone"}}, "audience", ""),
        ({"scheduled_at": "2026-12-01T09:00:00"}, "scheduled_at", "timezone"),
        ({"content": None}, "content", "no message given; give content or template_id"),
    ],
)
async def test_bad_campaign_input_names_the_field_and_writes_nothing(
    manager: httpx.AsyncClient,
    page_id: int,
    db: Database,
    overrides: dict[str, Any],
    field: str,
    phrase: str,
) -> None:
    before = await table_counts(db)
    response = await manager.post("/api/campaigns", json=draft(page_id, **overrides))
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert phrase in error["message"], error
    assert await table_counts(db) == before


async def test_text_of_exactly_2000_rendered_characters_is_accepted(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    text = "x" * 1990 + "{{first_name|abcdefghij}}"  # 1,990 + the 10-character fallback
    assert (
        await manager.post("/api/campaigns", json=draft(page_id, content={"text": text}))
    ).status_code == 201


async def test_rendered_length_counts_the_longest_real_name(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    long_name = "N" * 50
    created = await manager.post(
        f"/api/pages/{page_id}/contacts", json={"psid": "1", "first_name": long_name}
    )
    assert created.status_code == 201
    text = "x" * 1960 + "{{first_name|there}}"  # fits with "there", not with a 50-character name
    response = await manager.post("/api/campaigns", json=draft(page_id, content={"text": text}))
    assert response.status_code == 422
    assert "2,010" in response.json()["error"]["message"]


async def test_invalid_json_is_a_400(manager: httpx.AsyncClient) -> None:
    response = await manager.post(
        "/api/campaigns", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def _set_status(db: Database, campaign_id: int, status: CampaignStatus) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(status=status)
        )


async def test_patch_edits_a_draft(manager: httpx.AsyncClient, page_id: int) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    response = await manager.patch(
        f"/api/campaigns/{campaign['id']}", json={"name": "Cyber Monday", "priority": "high"}
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["priority"]) == ("Cyber Monday", "high")


async def test_patch_on_a_completed_campaign_is_refused_with_the_state(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    await _set_status(db, campaign["id"], CampaignStatus.COMPLETED)
    response = await manager.patch(f"/api/campaigns/{campaign['id']}", json={"name": "again"})
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "is completed" in message and "draft, awaiting_approval, scheduled, paused" in message
    assert (await manager.get(f"/api/campaigns/{campaign['id']}")).json()["name"] == "Black Friday"


async def test_patch_on_a_paused_campaign_cannot_change_its_audience(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    await _set_status(db, campaign["id"], CampaignStatus.PAUSED)
    response = await manager.patch(
        f"/api/campaigns/{campaign['id']}", json={"audience": {"type": "tags", "include": ["vip"]}}
    )
    assert response.status_code == 409 and response.json()["error"]["field"] == "audience"
    ok = await manager.patch(
        f"/api/campaigns/{campaign['id']}", json={"content": {"text": "Updated"}}
    )
    assert ok.status_code == 200


async def test_patch_with_bad_merged_fields_changes_nothing(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    response = await manager.patch(
        f"/api/campaigns/{campaign['id']}", json={"messaging_type": "MESSAGE_TAG"}
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "tag"
    assert (await manager.get(f"/api/campaigns/{campaign['id']}")).json()[
        "messaging_type"
    ] == "UPDATE"


async def test_delete_is_refused_while_sending(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    await _set_status(db, campaign["id"], CampaignStatus.SENDING)
    assert (await manager.delete(f"/api/campaigns/{campaign['id']}")).status_code == 409
    await _set_status(db, campaign["id"], CampaignStatus.CANCELLED)
    assert (await manager.delete(f"/api/campaigns/{campaign['id']}")).status_code == 204


async def test_deleting_a_campaign_deletes_its_deliveries_and_no_others(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    kept = (await manager.post("/api/campaigns", json=draft(page_id))).json()["id"]
    gone = (await manager.post("/api/campaigns", json=draft(page_id))).json()["id"]
    async with db.transaction() as session:
        session.add_all(
            Delivery(campaign_id=campaign, contact_id=contact, status=DeliveryStatus.SENT)
            for campaign in (kept, gone)
            for contact in (1, 2, 3)
        )
    await _set_status(db, gone, CampaignStatus.COMPLETED)
    assert (await manager.delete(f"/api/campaigns/{gone}")).status_code == 204
    async with db.transaction() as session:
        left = Counter(await session.scalars(select(Delivery.campaign_id)))
    assert left == {kept: 3}


async def test_duplicate_makes_a_new_draft(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id, priority="low"))).json()
    await _set_status(db, campaign["id"], CampaignStatus.COMPLETED)
    copy = await manager.post(f"/api/campaigns/{campaign['id']}/duplicate")
    assert copy.status_code == 201
    body = copy.json()
    assert body["id"] != campaign["id"] and body["status"] == "draft"
    assert body["name"] == "Black Friday (copy)" and body["priority"] == "low"


async def test_list_filters_by_status_and_search(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    first = (await manager.post("/api/campaigns", json=draft(page_id, name="Spring sale"))).json()
    await manager.post("/api/campaigns", json=draft(page_id, name="Autumn news"))
    await _set_status(db, first["id"], CampaignStatus.COMPLETED)
    completed = (await manager.get("/api/campaigns", params={"status": "completed"})).json()[
        "items"
    ]
    assert [c["name"] for c in completed] == ["Spring sale"]
    found = (await manager.get("/api/campaigns", params={"q": "autumn"})).json()["items"]
    assert [c["name"] for c in found] == ["Autumn news"]


def test_a_campaign_never_ends_failed() -> None:
    """What failed is counted on the deliveries; no campaign state says `failed`."""
    assert [s.value for s in CampaignStatus] == [
        "draft",
        "awaiting_approval",  # issue 22: two-person approval
        "scheduled",
        "sending",
        "paused",
        "completed",
        "cancelled",
    ]


async def test_listing_by_a_state_that_does_not_exist_is_refused_naming_the_field(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await manager.post("/api/campaigns", json=draft(page_id))
    response = await manager.get("/api/campaigns", params={"status": "failed"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "status"
    assert "'completed' or 'cancelled'" in error["message"], error["message"]
    schema = (await manager.get("/openapi.json")).json()["components"]["schemas"]
    assert "failed" not in schema["CampaignStatus"]["enum"]


async def test_audience_preview_counts_eligible_and_excluded_by_reason(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    now = utcnow()
    people = [
        {
            "psid": "1",
            "first_name": "Ana",
            "last_inbound_at": (now - timedelta(hours=1)).isoformat(),
            "tags": ["vip"],
        },
        {
            "psid": "2",
            "first_name": "Ben",
            "last_inbound_at": (now - timedelta(hours=2)).isoformat(),
        },
        {"psid": "3", "last_inbound_at": (now - timedelta(hours=30)).isoformat(), "tags": ["vip"]},
        {"psid": "4"},
        {"psid": "5", "last_inbound_at": now.isoformat(), "opted_out": True},
        {"psid": "6", "last_inbound_at": now.isoformat(), "unreachable": True, "tags": ["vip"]},
    ]
    for person in people:
        assert (
            await manager.post(f"/api/pages/{page_id}/contacts", json=person)
        ).status_code == 201
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    preview = (await manager.get(f"/api/campaigns/{campaign['id']}/audience")).json()
    assert preview["total"] == 6 and preview["eligible"] == 2
    assert preview["excluded"] == {
        "opted_out": 1,
        "unreachable": 1,
        "window_unknown": 1,
        "outside_window": 1,
        "frequency_cap": 0,
    }
    assert preview["sample"]["message"] == {
        "text": f"Hi {preview['sample']['contact']['first_name']}!"
    }

    vip = (
        await manager.post(
            "/api/campaigns", json=draft(page_id, audience={"type": "tags", "include": ["vip"]})
        )
    ).json()
    vip_preview = (await manager.get(f"/api/campaigns/{vip['id']}/audience")).json()
    assert (vip_preview["total"], vip_preview["eligible"]) == (3, 1)

    tagged = draft(page_id, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    human = (await manager.post("/api/campaigns", json=tagged)).json()
    human_preview = (await manager.get(f"/api/campaigns/{human['id']}/audience")).json()
    assert human_preview["eligible"] == 3  # the 30-hour-old contact is inside HUMAN_AGENT's 7 days


async def test_templates_are_reusable_content(manager: httpx.AsyncClient, page_id: int) -> None:
    template = await manager.post(
        "/api/templates",
        json={"name": "Welcome", "content": {"text": "Welcome {{full_name|friend}}"}},
    )
    assert template.status_code == 201
    duplicate = await manager.post(
        "/api/templates", json={"name": "Welcome", "content": {"text": "x"}}
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "name"
    campaign = await manager.post(
        "/api/campaigns",
        json={"name": "T", "page_id": page_id, "template_id": template.json()["id"]},
    )
    assert campaign.status_code == 201
    assert (await manager.delete(f"/api/templates/{template.json()['id']}")).status_code == 409
    both = await manager.post(
        "/api/campaigns", json=draft(page_id, template_id=template.json()["id"])
    )
    assert both.status_code == 422 and both.json()["error"]["field"] == "content"


async def test_campaign_actions_are_in_its_audit_trail(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    await manager.patch(f"/api/campaigns/{campaign['id']}", json={"name": "Renamed"})
    trail = (await manager.get(f"/api/campaigns/{campaign['id']}/audit")).json()["items"]
    assert [entry["action"] for entry in trail] == ["campaign.updated", "campaign.created"]
    assert trail[0]["actor"] == "manager0@example.com"


async def test_a_progress_read_answers_while_a_writer_holds_the_database(
    manager: httpx.AsyncClient, page_id: int, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard polling a campaign during a large send: its token check and the read
    itself only read, so on SQLite they never queue behind the writer of the moment (a
    webhook batch, a chunk's results), which under a Page's load was seconds."""
    campaign_id = (await manager.post("/api/campaigns", json=draft(page_id))).json()["id"]
    poller = (await manager.post("/api/tokens", json={"name": "dashboard"})).json()["token"]
    headers = {"Authorization": f"Bearer {poller}"}
    # Its first use records it (a write, after the answer); every request checks it again.
    assert (await manager.get(f"/api/campaigns/{campaign_id}", headers=headers)).status_code == 200
    monkeypatch.setattr(deps, "TOKEN_CACHE_S", 0.0)
    held, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == campaign_id).values(description="busy")
            )
            held.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await held.wait()
    try:
        async with asyncio.timeout(3):  # the writer holds on until this read answers
            response = await manager.get(f"/api/campaigns/{campaign_id}", headers=headers)
    finally:
        release.set()
        await task
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "draft"
