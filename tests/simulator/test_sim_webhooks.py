"""The webhook emitter (docs/simulator.md, "Webhooks"): signatures over raw bytes, echoes, receipts, retries, disabling."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx
import pytest
from sim_support import (
    APP_SECRET,
    PAGE_ID,
    PSID,
    TOKEN,
    Receiver,
    add_page,
    add_user,
    send,
    text_body,
)

GREETING = "Grüße 👋 https://x.y/z"


@pytest.fixture
async def page(http: httpx.AsyncClient, hook: Receiver) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def test_signature_is_over_the_raw_escaped_bytes(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": GREETING})
    [event] = await hook.wait_for(1, "message")
    assert event["message"]["text"] == GREETING
    headers, body = hook.requests[0]
    assert b"Gr\\u00fc\\u00dfe \\ud83d\\udc4b https:\\/\\/x.y\\/z" in body
    assert body.isascii() and b" " not in body.replace(b"e \\ud83d", b"").replace(b"b https", b"")
    signature = headers["x-hub-signature-256"]
    assert len(signature) == 71
    assert signature == expected_signature(body)
    assert (
        headers["x-hub-signature"]
        == "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    )
    reserialised = json.dumps(json.loads(body)).encode()
    assert expected_signature(reserialised) != signature
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["object"] == "page" and payload["entry"][0]["id"] == PAGE_ID


@pytest.mark.parametrize("mode", ["uppercase", "missing", "wrong"])
async def test_signature_knobs(page: httpx.AsyncClient, hook: Receiver, mode: str) -> None:
    await page.post("/__sim/knobs", json={"signature": mode})
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    await hook.wait_for(1, "message")
    headers, body = hook.requests[0]
    good = expected_signature(body)
    if mode == "uppercase":
        assert headers["x-hub-signature-256"] == "sha256=" + good[7:].upper()
    elif mode == "missing":
        assert "x-hub-signature-256" not in headers and "x-hub-signature" not in headers
    else:
        assert headers["x-hub-signature-256"] != good
        assert len(headers["x-hub-signature-256"]) == 71


async def test_echo_carries_metadata_and_delivery_follows(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    body = text_body(text=GREETING)
    body["message"]["metadata"] = "campaign=42;delivery=7"
    mid = (await send(page, body)).json()["message_id"]
    [echo] = await hook.wait_for(1, "message")
    assert echo["sender"] == {"id": PAGE_ID} and echo["recipient"] == {"id": PSID}
    assert echo["message"] == {
        "is_echo": True,
        "app_id": 1517776481860111,
        "metadata": "campaign=42;delivery=7",
        "mid": mid,
        "text": GREETING,
    }
    [delivery] = await hook.wait_for(1, "delivery")
    created = (await page.get("/__sim/outbox")).json()["messages"][0]["timestamp_ms"]
    assert delivery["delivery"] == {"mids": [mid], "watermark": created}
    assert delivery["sender"] == {"id": PSID}


async def test_one_watermark_covers_earlier_messages(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post(
        "/__sim/knobs", json={"delivery_delay": [10, 10], "p_read": 1.0, "read_delay": [20, 20]}
    )
    first = (await send(page, text_body(text="one"))).json()["message_id"]
    await page.post("/__sim/knobs", json={"delivery_delay": [0, 0], "read_delay": [0, 0]})
    await page.post("/__sim/clock/advance", json={"seconds": 1})
    second = (await send(page, text_body(text="two"))).json()["message_id"]
    await page.post("/__sim/clock/advance", json={"seconds": 30})
    await page.post("/__sim/webhook/flush")
    outbox = (await page.get("/__sim/outbox")).json()["messages"]
    newest = outbox[1]["timestamp_ms"]
    deliveries = hook.events("delivery")
    assert [d["delivery"] for d in deliveries] == [{"mids": [second], "watermark": newest}]
    assert [r["read"] for r in hook.events("read")] == [{"watermark": newest}]
    assert outbox[0]["mid"] == first and outbox[0]["timestamp_ms"] < newest


async def test_failing_endpoint_is_disabled_after_an_hour(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    hook.status = 500
    await page.post("/__sim/knobs", json={"p_delivered": 0.0})
    assert (await send(page, text_body())).status_code == 200
    await _until(page, lambda s: len(s["log"]) >= 2)  # first try and the immediate retry
    await page.post("/__sim/clock/advance", json={"seconds": 600})
    await _until(page, lambda s: len(s["log"]) >= 3)
    apps = await page.get(f"/v25.0/{PAGE_ID}/subscribed_apps", params={"access_token": TOKEN})
    assert len(apps.json()["data"]) == 1
    await page.post("/__sim/clock/advance", json={"seconds": 3100})
    state = await _until(page, lambda s: not s["enabled"])
    assert state["pending"] == 0
    assert all(not entry["ok"] for entry in state["log"])
    apps = await page.get(f"/v25.0/{PAGE_ID}/subscribed_apps", params={"access_token": TOKEN})
    assert apps.json() == {"data": []}
    hook.status = 200
    hook.requests.clear()
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "lost"})
    resubscribe = await page.post(
        f"/v25.0/{PAGE_ID}/subscribed_apps",
        params={"access_token": TOKEN, "subscribed_fields": "messages,message_echoes"},
    )
    assert resubscribe.json() == {"success": True}
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "back"})
    [event] = await hook.wait_for(1, "message")
    assert event["message"]["text"] == "back"


async def test_retry_succeeds_after_a_failure(page: httpx.AsyncClient, hook: Receiver) -> None:
    hook.status = 503
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "again"})
    await _until(page, lambda s: len(s["log"]) >= 2)
    hook.status = 200
    await page.post("/__sim/clock/advance", json={"seconds": 5})
    state = await _until(page, lambda s: s["posted"] == 1)
    assert [e["ok"] for e in state["log"]] == [False, False, True]
    assert state["failing_since"] is None


async def test_verification_handshake(page: httpx.AsyncClient, hook: Receiver) -> None:
    result = (await page.post("/__sim/webhook/verify")).json()
    assert result["ok"] is True and result["body"] == result["challenge"]
    await page.post("/__sim/webhook", json={"verify_token": "wrong"})
    assert (await page.post("/__sim/webhook/verify")).json()["ok"] is False


async def test_postback_policy_and_duplicates(page: httpx.AsyncClient, hook: Receiver) -> None:
    await page.post("/__sim/knobs", json={"p_duplicate": 1.0})
    await page.post(
        "/__sim/postback",
        json={"page_id": PAGE_ID, "psid": PSID, "payload": "C42_STOP", "title": "Stop"},
    )
    events = await hook.wait_for(2, "postback")
    assert events[0] == events[1]  # the same event twice in one POST
    assert events[0]["postback"]["payload"] == "C42_STOP"
    await page.post("/__sim/knobs", json={"p_duplicate": 0.0})
    await page.post(
        "/__sim/pages/restrict",
        json={"page_id": PAGE_ID, "restriction": "1893063", "policy": "block"},
    )
    [policy] = await hook.wait_for(1, "policy_enforcement")
    assert policy["policy_enforcement"]["action"] == "block"


async def test_unsubscribed_fields_are_not_sent(http: httpx.AsyncClient, hook: Receiver) -> None:
    await add_page(http, subscribed_fields=["messages"])
    await add_user(http)
    await send(http, text_body())
    await http.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "x"})
    await hook.wait_for(1, "message")
    await http.post("/__sim/webhook/flush")
    assert [e["message"].get("is_echo", False) for e in hook.events()] == [False]


async def test_send_path_does_not_wait_for_a_slow_receiver(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post("/__sim/webhook", json={"paused": True})
    started = time.monotonic()
    for _ in range(20):
        assert (await send(page, text_body())).status_code == 200
    assert time.monotonic() - started < 2
    state = (await page.get("/__sim/webhook")).json()
    assert state["pending"] == 40  # 20 echoes and 20 deliveries wait
    await page.post("/__sim/webhook/flush")
    assert len(hook.events("message")) == 20
    # all 20 were accepted in the same millisecond: the first receipt's watermark covers them
    assert len(hook.events("delivery")) == 1


async def _until(http: httpx.AsyncClient, check, timeout: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        state = (await http.get("/__sim/webhook")).json()
        if check(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook state never matched: {state}")
        await asyncio.sleep(0.02)
