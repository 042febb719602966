"""Property: no payload sent to the Send endpoint makes the simulator answer 5xx unasked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagecast.simulator import ManualClock, create_app

PAGE_ID, TOKEN, PSID = "100", "tok", "200"

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
known = st.sampled_from(
    [
        "text",
        "attachment",
        "quick_replies",
        "metadata",
        "type",
        "payload",
        "template_type",
        "buttons",
        "elements",
        "title",
        "url",
        "id",
        "attachment_id",
        "content_type",
        "is_reusable",
        "user_ref",
    ]
)
shaped_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(known, inner, max_size=4),
    max_leaves=16,
)
send_like = st.fixed_dictionaries(
    {},
    optional={
        "recipient": st.one_of(st.just({"id": PSID}), shaped_values),
        "messaging_type": st.sampled_from(["UPDATE", "RESPONSE", "MESSAGE_TAG", "x"]) | scalars,
        "tag": st.sampled_from(["HUMAN_AGENT", "CUSTOMER_FEEDBACK", "ACCOUNT_UPDATE"]) | scalars,
        "message": shaped_values,
        "sender_action": st.sampled_from(["typing_on", "react"]) | scalars,
        "notification_type": st.sampled_from(["REGULAR", "NOPE"]) | scalars,
        "persona_id": scalars,
    },
)


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    loop = asyncio.new_event_loop()
    app = create_app(seed=1, clock=ManualClock(start=1_790_000_000))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")

    async def setup() -> None:
        await client.post(
            "/__sim/pages", json={"page_id": PAGE_ID, "name": "P", "access_token": TOKEN}
        )
        await client.post(
            "/__sim/users", json={"page_id": PAGE_ID, "psid": PSID, "last_user_action": "now"}
        )
        await client.post(
            "/__sim/limits",
            json={
                "page_id": PAGE_ID,
                "per_second_text": 10**9,
                "per_second_av": 10**9,
                "engaged_users": 10**6,
            },
        )

    loop.run_until_complete(setup())
    yield loop, client
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(app.aclose())
    loop.close()


def _post(sim: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient], **kwargs: Any) -> int:
    loop, client = sim
    response = loop.run_until_complete(
        client.post("/v25.0/me/messages", params={"access_token": TOKEN}, **kwargs)
    )
    if response.status_code != 200:
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"]["code"], int)
    return response.status_code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values | send_like)
def test_random_json_never_5xx(sim: Any, payload: Any) -> None:
    assert (
        _post(sim, content=json.dumps(payload), headers={"content-type": "application/json"}) < 500
    )


@settings(max_examples=150, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["recipient", "message", "messaging_type", "sender_action", "tag"]),
        json_values,
    ),
    raw=st.binary(max_size=64),
)
def test_random_form_and_bytes_never_5xx(sim: Any, payload: dict[str, Any], raw: bytes) -> None:
    form = {k: json.dumps(v) for k, v in payload.items()}
    assert _post(sim, data=form) < 500
    assert _post(sim, content=raw, headers={"content-type": "application/json"}) < 500
