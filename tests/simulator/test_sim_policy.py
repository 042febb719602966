"""`POST /__sim/pages/policy`: Facebook enforces its messaging policy on a Page, as a signed
`messaging_policy_enforcement` webhook and (unless told not to) a restriction of its sends."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from sim_support import APP_SECRET, PAGE_ID, Receiver, add_page, add_user, error_of, send, text_body


@pytest.fixture
async def page(http: httpx.AsyncClient, hook: Receiver) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def test_block_and_unblock_are_signed_webhooks_and_restrict_sends_between(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    blocked = await page.post(
        "/__sim/pages/policy", json={"page_id": PAGE_ID, "action": "block", "reason": "Spam."}
    )
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["restriction"] == "1893063" and blocked.json()["emitted"] is True
    refused = await send(page, text_body())
    assert (error_of(refused)["code"], error_of(refused)["error_subcode"]) == (10, 1893063)
    late = await page.post(
        "/__sim/pages/policy",
        json={"page_id": PAGE_ID, "action": "unblock", "timestamp": 1_750_000_000_000},
    )
    assert late.json()["restriction"] is None and late.json()["timestamp"] == 1_750_000_000_000
    assert (await send(page, text_body())).status_code == 200
    await page.post("/__sim/webhook/flush")
    events = []
    for headers, body in hook.requests:
        digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-hub-signature-256"] == f"sha256={digest}"
        for entry in json.loads(body)["entry"]:
            events += [e for e in entry["messaging"] if "policy_enforcement" in e]
    assert [e["policy_enforcement"] for e in events] == [
        {"action": "block", "reason": "Spam."},
        {"action": "unblock", "reason": "The bot violated our Platform Policies."},
    ]
    assert all(set(e) == {"recipient", "timestamp", "policy_enforcement"} for e in events)
    assert events[0]["recipient"] == {"id": PAGE_ID} and events[1]["timestamp"] == 1_750_000_000_000


async def test_a_warning_without_restriction_leaves_sends_alone(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    for action in ("warning", "block"):
        body = {"page_id": PAGE_ID, "action": action, "restrict": False}
        assert (await page.post("/__sim/pages/policy", json=body)).json()["restriction"] is None
    assert (await send(page, text_body())).status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"page_id": PAGE_ID, "action": "ban"}, '"action"'),
        ({"page_id": PAGE_ID, "action": "block", "reason": 3}, '"reason"'),
        ({"page_id": PAGE_ID, "action": "block", "timestamp": "soon"}, '"timestamp"'),
        ({"page_id": PAGE_ID, "action": "block", "restrict": "yes"}, '"restrict"'),
        ({"page_id": "404", "action": "block"}, "No Page"),
    ],
)
async def test_bad_calls_answer_an_error_naming_the_field(
    page: httpx.AsyncClient, body: dict[str, object], named: str
) -> None:
    response = await page.post("/__sim/pages/policy", json=body)
    assert response.status_code in (400, 404) and named in response.json()["error"]
