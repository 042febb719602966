"""Issue 19: a carousel campaign and an uploaded attachment sent end to end (API start → real
Redis → worker → the simulator through the real Graph client): the outbox holds the cards."""

from __future__ import annotations

import httpx

from pagecast.db import Database
from pagecast.settings import Settings
from test_sending import (  # the sending engine's fixtures and helpers
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

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here

SHOP = "https://shop.example.com/sale"
IMAGE = "https://cdn.example.com/sale.jpg"


async def test_a_carousel_campaign_reaches_each_person_with_their_cards(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 3)
    cards = [
        {
            "title": "Hi {{first_name|there}}",
            "subtitle": f"Deal {i}",
            "image_url": IMAGE,
            "default_action": {"type": "web_url", "url": SHOP},
            "buttons": [
                {"type": "web_url", "title": "Shop now", "url": SHOP},
                {"type": "postback", "title": "Not now", "payload": "NO"},
            ],
        }
        for i in range(3)
    ]
    campaign_id = await new_campaign(manager, page_id, content={"cards": cards})
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 3
    sent = {m["psid"]: m["message"] for m in await outbox(sim)}
    assert sorted(sent) == sorted(psids)
    for psid, message in sent.items():
        payload = message["attachment"]["payload"]
        assert message["attachment"]["type"] == "template"
        assert payload["template_type"] == "generic"
        assert [e["subtitle"] for e in payload["elements"]] == ["Deal 0", "Deal 1", "Deal 2"]
        assert {e["title"] for e in payload["elements"]} == {f"Hi P{psid}"}
        assert payload["elements"][0]["buttons"][1] == {
            "type": "postback",
            "title": "Not now",
            "payload": "NO",
        }


async def test_an_uploaded_image_is_sent_by_its_id(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    uploaded = await manager.post(
        f"/api/pages/{page_id}/attachments", json={"type": "image", "url": IMAGE}
    )
    attachment_id = uploaded.json()["attachment_id"]
    content = {"attachment": {"type": "image", "attachment_id": attachment_id}}
    campaign_id = await new_campaign(manager, page_id, content=content)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 2
    payloads = [m["message"]["attachment"]["payload"] for m in await outbox(sim)]
    assert payloads == [{"attachment_id": attachment_id}] * 2
