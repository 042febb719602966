"""The display-ordering knob `reorder_concurrent_ms` (docs/simulator.md, "Display ordering"): two sends to one person
accepted less than N ms apart swap `created_time` and display order; the outbox keeps
acceptance order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import PSID, TOKEN, Receiver, add_page, add_user, send, text_body


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def send_texts(http: httpx.AsyncClient, texts: list[str], gap: float) -> list[str]:
    mids = []
    for i, text in enumerate(texts):
        if i:
            await http.post("/__sim/clock/advance", json={"seconds": gap})
        response = await send(http, text_body(text=text))
        assert response.status_code == 200
        mids.append(response.json()["message_id"])
    return mids


async def outbox(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await http.get("/__sim/outbox", params={"psid": PSID})).json()["messages"]


async def displayed(http: httpx.AsyncClient) -> list[str]:
    """The thread's Page messages, oldest first, as the Conversations API shows them."""
    response = await http.get(
        "/v25.0/me/conversations",
        params={
            "access_token": TOKEN,
            "user_id": PSID,
            "fields": "messages.limit(20){id,message,from,created_time}",
        },
    )
    [thread] = response.json()["data"]
    texts = [m["message"] for m in thread["messages"]["data"] if m["from"]["id"] != PSID]
    return texts[::-1]


async def test_default_zero_keeps_acceptance_order(page: httpx.AsyncClient) -> None:
    await send_texts(page, ["a", "b"], gap=0.01)
    entries = await outbox(page)
    assert [e["message"]["text"] for e in entries] == ["a", "b"]
    assert entries[0]["timestamp_ms"] < entries[1]["timestamp_ms"]
    assert await displayed(page) == ["a", "b"]


async def test_concurrent_sends_swap_created_time_and_display(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"reorder_concurrent_ms": 50})
    await send_texts(page, ["a", "b"], gap=0.01)
    entries = await outbox(page)
    assert [e["message"]["text"] for e in entries] == ["a", "b"]  # acceptance order
    assert entries[0]["timestamp_ms"] - entries[1]["timestamp_ms"] == 10  # times swapped
    assert await displayed(page) == ["b", "a"]


async def test_sends_further_apart_than_the_knob_keep_their_order(
    page: httpx.AsyncClient,
) -> None:
    await page.post("/__sim/knobs", json={"reorder_concurrent_ms": 50})
    await send_texts(page, ["a", "b"], gap=0.06)
    entries = await outbox(page)
    assert entries[0]["timestamp_ms"] < entries[1]["timestamp_ms"]
    assert await displayed(page) == ["a", "b"]


async def test_each_message_swaps_at_most_once(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"reorder_concurrent_ms": 50})
    await send_texts(page, ["a", "b", "c", "d"], gap=0.01)
    assert await displayed(page) == ["b", "a", "d", "c"]


async def test_delivery_watermark_follows_the_swapped_times(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post("/__sim/knobs", json={"reorder_concurrent_ms": 50, "p_read": 0.0})
    await page.post("/__sim/webhook", json={"paused": True})  # both sends before any receipt
    first, second = await send_texts(page, ["a", "b"], gap=0.01)
    await page.post("/__sim/webhook/flush")
    entries = {e["mid"]: e["timestamp_ms"] for e in await outbox(page)}
    deliveries = [e["delivery"] for e in await hook.wait_for(1, "delivery")]
    assert entries[first] > entries[second]
    # the first-accepted message now carries the later time: its receipt covers both
    assert deliveries[0]["watermark"] == entries[first]
    assert all(d["watermark"] == entries[first] for d in deliveries)
