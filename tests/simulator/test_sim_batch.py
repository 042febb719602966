"""Graph batch requests (docs/simulator.md, "Batch requests"): mixed outcomes, null for op timeouts, whole-request errors."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sim_support import PAGE_ID, TOKEN, add_page, add_user, error_of


def op(psid: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    body = urlencode(
        {
            "messaging_type": "UPDATE",
            "recipient": json.dumps({"id": psid}),
            "message": json.dumps({"text": text}),
        }
    )
    return {"method": "POST", "relative_url": "me/messages", "body": body, **extra}


async def post_batch(
    http: httpx.AsyncClient, ops: list[dict[str, Any]], **form: str
) -> httpx.Response:
    data = {"access_token": TOKEN, "batch": json.dumps(ops), **form}
    return await http.post("/v25.0/", data=data)


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    for psid in ("1", "2", "3", "4"):
        await add_user(http, psid=psid)
    await add_user(http, psid="blocked", status="blocked")
    return http


async def test_mixed_outcomes_in_request_order(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/script", json={"match": {"psid": "3"}, "responses": [{"timeout": "before"}]}
    )
    ops = [op("1"), op("blocked"), op("3"), op("nobody"), op("4")]
    response = await post_batch(page, ops)
    assert response.status_code == 200
    items = response.json()
    assert len(items) == 5
    assert items[2] is None  # the injected op timeout
    assert [item["code"] for i, item in enumerate(items) if i != 2] == [200, 400, 400, 200]
    first = json.loads(items[0]["body"])
    assert first["recipient_id"] == "1" and first["message_id"].startswith("m_")
    assert {"name": "Content-Type", "value": "text/javascript; charset=UTF-8"} in items[0][
        "headers"
    ]
    blocked = json.loads(items[1]["body"])["error"]
    assert (blocked["code"], blocked["error_subcode"]) == (551, 1545041)
    assert any(h["name"] == "WWW-Authenticate" for h in items[1]["headers"])
    assert json.loads(items[3]["body"])["error"]["error_subcode"] == 2018001
    outbox = (await page.get("/__sim/outbox")).json()["messages"]
    assert sorted(m["psid"] for m in outbox) == ["1", "4"]
    stats = (await page.get("/__sim/stats")).json()
    assert stats["calls"] == 5  # every operation counts as a call


async def test_timeout_after_commit_is_null_but_recorded(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/script", json={"match": {"psid": "2"}, "responses": [{"timeout": "after"}]}
    )
    items = (await post_batch(page, [op("1"), op("2")])).json()
    assert items[1] is None
    outbox = (await page.get("/__sim/outbox", params={"psid": "2"})).json()["messages"]
    assert [m["dropped_after_commit"] for m in outbox] == [True]


async def test_more_than_50_operations_is_a_whole_request_error(page: httpx.AsyncClient) -> None:
    response = await post_batch(page, [op("1")] * 51)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 100
    assert "Maximum batch size is 50" in error["message"]
    assert (await page.get("/__sim/outbox")).json() == {"messages": []}
    assert (await post_batch(page, [op("1")] * 50)).status_code == 200


@pytest.mark.parametrize(
    ("form", "code"),
    [({"access_token": ""}, 104), ({"access_token": "nope"}, 190), ({"batch": "not json"}, 100)],
)
async def test_whole_request_errors(
    page: httpx.AsyncClient, form: dict[str, str], code: int
) -> None:
    response = await post_batch(page, [op("1")], **form)
    assert response.status_code == 400
    assert error_of(response)["code"] == code


async def test_operation_token_overrides_the_top_level_one(page: httpx.AsyncClient) -> None:
    await add_page(page, page_id="999", token="OTHER")
    await add_user(page, psid="9", page_id="999")
    ops = [op("9", relative_url="me/messages?access_token=OTHER"), op("1")]
    items = (await post_batch(page, ops)).json()
    assert [i["code"] for i in items] == [200, 200]
    outbox = (await page.get("/__sim/outbox")).json()["messages"]
    assert sorted((m["page_id"], m["psid"]) for m in outbox) == [(PAGE_ID, "1"), ("999", "9")]


async def test_include_headers_false_and_json_batch(page: httpx.AsyncClient) -> None:
    items = (await post_batch(page, [op("1")], include_headers="false")).json()
    assert set(items[0]) == {"code", "body"}
    response = await page.post("/v25.0/", params={"access_token": TOKEN}, json={"batch": [op("2")]})
    assert response.json()[0]["code"] == 200


async def test_dependent_operation_fails_with_its_parent(page: httpx.AsyncClient) -> None:
    ops = [
        op("blocked", name="first"),
        op("1", depends_on="first"),
        op("2", name="second"),
        op("3", depends_on="second"),
    ]
    items = (await post_batch(page, ops)).json()
    assert items[0]["code"] == 400
    assert items[1]["code"] == 400
    assert "depends on operation" in json.loads(items[1]["body"])["error"]["message"]
    assert items[2] is None  # named, depended on and successful: omitted
    assert items[3]["code"] == 200


async def test_operations_run_in_seeded_shuffled_order(page: httpx.AsyncClient) -> None:
    ops = [op(psid, text=psid) for psid in ("1", "2", "3", "4")]
    await post_batch(page, ops)
    order = [m["psid"] for m in (await page.get("/__sim/outbox")).json()["messages"]]
    assert sorted(order) == ["1", "2", "3", "4"]
    await page.post("/__sim/reset")
    await page.post("/__sim/knobs", json={"batch_shuffle": False})
    await add_page(page)
    for psid in ("1", "2", "3", "4"):
        await add_user(page, psid=psid)
    await post_batch(page, ops)
    in_order = [m["psid"] for m in (await page.get("/__sim/outbox")).json()["messages"]]
    assert in_order == ["1", "2", "3", "4"]
