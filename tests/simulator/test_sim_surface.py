"""The smaller Graph endpoints (docs/simulator.md, "Endpoints") and webhook coalescing under a backlog."""

from __future__ import annotations

import json

import httpx
from sim_support import (
    PAGE_ID,
    PSID,
    TOKEN,
    Receiver,
    add_page,
    add_user,
    error_of,
    send,
    text_body,
)

from pagecast.simulator import serialize, sign


async def test_accounts_and_debug_token(http: httpx.AsyncClient) -> None:
    await add_page(http, user_token="USER")
    accounts = (await http.get("/v25.0/me/accounts", params={"access_token": "USER"})).json()
    assert accounts["data"][0]["id"] == PAGE_ID
    assert accounts["data"][0]["access_token"] == TOKEN
    assert "MESSAGING" in accounts["data"][0]["tasks"]
    assert (
        error_of(await http.get("/v25.0/me/accounts", params={"access_token": TOKEN}))["code"]
        == 100
    )
    info = (
        await http.get("/v25.0/debug_token", params={"access_token": TOKEN, "input_token": TOKEN})
    ).json()["data"]
    assert (info["type"], info["is_valid"], info["profile_id"]) == ("PAGE", True, PAGE_ID)
    assert "pages_messaging" in info["scopes"]
    await http.post("/__sim/tokens/revoke", json={"access_token": "USER", "subcode": 460})
    revoked = (
        await http.get("/v25.0/debug_token", params={"access_token": TOKEN, "input_token": "USER"})
    ).json()["data"]
    assert revoked["is_valid"] is False


async def test_personas_lifecycle_and_use(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http)
    created = await http.post(
        f"/v25.0/{PAGE_ID}/personas",
        params={"access_token": TOKEN},
        json={"name": "Alex", "profile_picture_url": "https://x.y/a.png"},
    )
    persona_id = created.json()["id"]
    listed = (await http.get("/v25.0/me/personas", params={"access_token": TOKEN})).json()
    assert listed["data"][0]["name"] == "Alex"
    assert (await send(http, {**text_body(), "persona_id": persona_id})).status_code == 200
    deleted = await http.delete(f"/v25.0/{persona_id}", params={"access_token": TOKEN})
    assert deleted.json() == {"success": True}
    assert error_of(await send(http, {**text_body(), "persona_id": persona_id}))["code"] == 100
    too_long = await http.post(
        "/v25.0/me/personas", params={"access_token": TOKEN}, json={"name": "x" * 51}
    )
    assert error_of(too_long)["code"] == 100


async def test_attachment_upload_then_send_by_id(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http)
    uploaded = await http.post(
        "/v25.0/me/message_attachments",
        params={"access_token": TOKEN},
        json={
            "message": {
                "attachment": {
                    "type": "image",
                    "payload": {"url": "https://cdn.example/a.jpg", "is_reusable": True},
                }
            }
        },
    )
    attachment_id = uploaded.json()["attachment_id"]
    assert attachment_id.isdigit()
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "UPDATE",
        "message": {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}},
    }
    assert (await send(http, body)).status_code == 200


async def test_subscribed_apps_round_trip(http: httpx.AsyncClient) -> None:
    await add_page(http, subscribe=False)
    params = {"access_token": TOKEN}
    assert (await http.get(f"/v25.0/{PAGE_ID}/subscribed_apps", params=params)).json() == {
        "data": []
    }
    added = await http.post(
        f"/v25.0/{PAGE_ID}/subscribed_apps",
        params={**params, "subscribed_fields": "messages,message_echoes"},
    )
    assert added.json() == {"success": True}
    [app] = (await http.get(f"/v25.0/{PAGE_ID}/subscribed_apps", params=params)).json()["data"]
    assert app["subscribed_fields"] == ["messages", "message_echoes"]
    bad = await http.post(
        f"/v25.0/{PAGE_ID}/subscribed_apps", params={**params, "subscribed_fields": "gossip"}
    )
    assert error_of(bad)["code"] == 100
    await http.delete(f"/v25.0/{PAGE_ID}/subscribed_apps", params=params)
    assert (await http.get(f"/v25.0/{PAGE_ID}/subscribed_apps", params=params)).json() == {
        "data": []
    }


async def test_backlog_is_coalesced_into_multi_entry_posts(
    http: httpx.AsyncClient, hook: Receiver
) -> None:
    await add_page(http)
    await add_user(http)
    await http.post("/__sim/knobs", json={"p_delivered": 0.0})
    await http.post("/__sim/webhook", json={"paused": True})
    for _ in range(30):
        await send(http, text_body())
    await http.post("/__sim/webhook/flush")
    assert len(hook.events("message")) == 30
    assert len(hook.requests) < 30
    entries = [len(json.loads(body)["entry"]) for _, body in hook.requests]
    assert max(entries) > 1 and sum(entries) == 30


def test_serialize_and_sign_helpers() -> None:
    body = serialize({"text": "Grüße https://x.y/z"})
    assert body == b'{"text":"Gr\\u00fc\\u00dfe https:\\/\\/x.y\\/z"}'
    headers = sign(body, "secret")
    assert headers["X-Hub-Signature-256"].startswith("sha256=")
    assert len(headers["X-Hub-Signature-256"]) == 71
    assert sign(body, "secret", "missing") == {}
