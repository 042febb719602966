"""`standby` (handover), `messaging_optins` and webhook replay (docs/simulator.md, "Webhooks" and
"Control plane")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sim_support import PAGE_ID, PSID, Receiver, add_page, add_user, error_of, send, text_body


@pytest.fixture
async def page(http: httpx.AsyncClient, hook: Receiver) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


def entries(hook: Receiver) -> list[dict[str, Any]]:
    return [e for _, body in hook.requests for e in json.loads(body)["entry"]]


async def flushed(http: httpx.AsyncClient) -> None:
    response = await http.post("/__sim/webhook/flush")
    assert response.status_code == 200 and response.json()["pending"] == 0


async def owned_by_other_app(
    http: httpx.AsyncClient, owner: str | None = "263902037430900"
) -> None:
    body = {"page_id": PAGE_ID, "psid": PSID, "status": "active", "thread_owner_app_id": owner}
    assert (await http.post("/__sim/users/status", json=body)).status_code == 200


async def test_inbound_goes_to_standby_while_another_app_owns_the_thread(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await owned_by_other_app(page)
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    await page.post(
        "/__sim/postback",
        json={"page_id": PAGE_ID, "psid": PSID, "payload": "SECRET", "title": "Go"},
    )
    await flushed(page)
    found = entries(hook)
    assert found and all("messaging" not in e and len(e["standby"]) == 1 for e in found)
    message, postback = (e["standby"][0] for e in found)
    assert message["message"]["text"] == "hi" and message["sender"] == {"id": PSID}
    assert postback["postback"] == {"mid": postback["postback"]["mid"], "title": "Go"}
    assert (await send(page, text_body())).status_code == 400  # 2018300 for our app
    await owned_by_other_app(page, None)  # control back to our app
    hook.requests.clear()
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "back"})
    [event] = await hook.wait_for(1, "message")
    assert event["message"]["text"] == "back"


async def test_standby_needs_the_standby_field(http: httpx.AsyncClient, hook: Receiver) -> None:
    await add_page(http, subscribed_fields=["messages"])
    await add_user(http)
    await owned_by_other_app(http)
    await http.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    await flushed(http)
    assert hook.requests == []


async def test_checkbox_optin_with_a_user_ref(page: httpx.AsyncClient, hook: Receiver) -> None:
    response = await page.post(
        "/__sim/optin", json={"page_id": PAGE_ID, "user_ref": "ur-42", "ref": "summer"}
    )
    assert response.status_code == 200, response.text
    [event] = await hook.wait_for(1, "optin")
    assert event["sender"] == {"user_ref": "ur-42"}
    assert event["recipient"] == {"id": PAGE_ID}
    assert event["optin"] == {"ref": "summer", "user_ref": "ur-42"}
    assert isinstance(event["timestamp"], int)


async def test_notification_messages_optin_hands_out_its_token(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    response = await page.post(
        "/__sim/optin",
        json={
            "page_id": PAGE_ID,
            "psid": PSID,
            "type": "notification_messages",
            "payload": "3456",
            "title": "Bird Facts",
            "status": "STOP_NOTIFICATIONS",
        },
    )
    token = response.json()["notification_messages_token"]
    [event] = await hook.wait_for(1, "optin")
    optin = event["optin"]
    assert event["sender"] == {"id": PSID}
    assert optin["type"] == "notification_messages" and optin["payload"] == "3456"
    assert optin["notification_messages_token"] == token and len(token) == 20
    assert optin["notification_messages_status"] == "STOP_NOTIFICATIONS"
    assert optin["title"] == "Bird Facts" and optin["user_token_status"] == "NOT_REFRESHED"


async def test_optin_by_a_person_opens_the_window(page: httpx.AsyncClient) -> None:
    await add_user(page, psid="777", last=None)
    outside = await send(page, text_body(psid="777"))
    assert error_of(outside)["error_subcode"] == 2018278
    await page.post("/__sim/optin", json={"page_id": PAGE_ID, "psid": "777", "ref": "x"})
    assert (await send(page, text_body(psid="777"))).status_code == 200


async def test_optin_mistakes_are_400(page: httpx.AsyncClient) -> None:
    both = {"page_id": PAGE_ID, "psid": PSID, "user_ref": "u"}
    assert (await page.post("/__sim/optin", json=both)).status_code == 400
    odd = {"page_id": PAGE_ID, "psid": PSID, "type": "one_time"}
    assert (await page.post("/__sim/optin", json=odd)).status_code == 400


async def test_replay_resends_the_events_of_the_last_n_seconds(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    for text in ("one", "two"):
        await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": text})
    await flushed(page)
    await page.post("/__sim/clock/advance", json={"seconds": 100})
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "three"})
    await flushed(page)
    original = hook.events("message")
    assert [e["message"]["text"] for e in original] == ["one", "two", "three"]

    answer = (await page.post("/__sim/webhook/replay", json={"seconds": 50})).json()
    assert answer["replayed"] == 1
    await flushed(page)
    replayed = hook.events("message")[3:]
    assert replayed == [original[2]]  # the same event, byte for byte once decoded

    answer = (await page.post("/__sim/webhook/replay", json={})).json()
    assert answer["replayed"] == 3  # all kept events, not the replays themselves
    await flushed(page)
    assert hook.events("message")[4:] == original


async def test_replay_skips_fields_no_longer_subscribed(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "one"})
    await flushed(page)
    posts = len(hook.requests)
    await add_page(page, subscribed_fields=["message_reads"])
    assert (await page.post("/__sim/webhook/replay", json={})).json()["replayed"] == 1
    await flushed(page)
    assert len(hook.requests) == posts


async def test_replay_rejects_negative_seconds(page: httpx.AsyncClient) -> None:
    response = await page.post("/__sim/webhook/replay", json={"seconds": -1})
    assert response.status_code == 400 and "seconds" in response.json()["error"]
