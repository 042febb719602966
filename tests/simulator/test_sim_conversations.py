"""Conversations with cursor paging, single threads, and the User Profile API (docs/simulator.md,
"Conversations and profiles")."""

from __future__ import annotations

import httpx
import pytest
from sim_support import PAGE_ID, PSID, TOKEN, add_page, add_user, error_of, send, text_body


async def _many_threads(http: httpx.AsyncClient, count: int) -> None:
    users = [
        {
            "page_id": PAGE_ID,
            "psid": str(10_000 + i),
            "first_name": f"U{i}",
            "last_name": "X",
            "last_user_action": 1_789_000_000 + i,
        }
        for i in range(count)
    ]
    response = await http.post("/__sim/users", json=users)
    assert response.json() == {"created": count}


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http)
    await http.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_conversations": 100})
    return http


async def test_250_threads_in_3_pages_of_100(page: httpx.AsyncClient) -> None:
    await _many_threads(page, 250)
    url: str | None = "/v25.0/me/conversations"
    params: dict[str, str] | None = {
        "access_token": TOKEN,
        "platform": "messenger",
        "fields": "participants,updated_time",
        "limit": "100",
    }
    pages, ids = [], []
    while url is not None:
        response = await page.get(url, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        ids += [t["id"] for t in body["data"]]
        url, params = body["paging"].get("next"), None
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    assert "next" not in pages[-1]["paging"]
    assert set(pages[-1]["paging"]["cursors"]) == {"before", "after"}
    assert "previous" in pages[1]["paging"]
    assert len(set(ids)) == 250
    times = [t["updated_time"] for p in pages for t in p["data"]]
    assert times == sorted(times, reverse=True)
    participants = pages[0]["data"][0]["participants"]["data"]
    assert participants[0] == {"name": "U249 X", "email": "10249@facebook.com", "id": "10249"}
    assert participants[1]["id"] == PAGE_ID
    assert pages[0]["paging"]["next"].startswith("http://127.0.0.1:")


async def test_limit_is_clamped_and_defaults_to_25(page: httpx.AsyncClient) -> None:
    await _many_threads(page, 130)
    default = await page.get("/v25.0/me/conversations", params={"access_token": TOKEN})
    assert len(default.json()["data"]) == 25
    big = await page.get("/v25.0/me/conversations", params={"access_token": TOKEN, "limit": "500"})
    assert len(big.json()["data"]) == 100


async def test_page_send_moves_thread_to_the_top(page: httpx.AsyncClient) -> None:
    await _many_threads(page, 3)
    await page.post("/__sim/clock/advance", json={"seconds": 1})
    await page.post(
        "/__sim/users", json={"page_id": PAGE_ID, "psid": "10000", "last_user_action": "now"}
    )
    assert (await send(page, text_body(psid="10000"))).status_code == 200
    body = (
        await page.get(
            "/v25.0/me/conversations",
            params={
                "access_token": TOKEN,
                "fields": "id,message_count,messages.limit(5){message,from}",
            },
        )
    ).json()
    top = body["data"][0]
    assert top["message_count"] == 2
    assert top["messages"]["data"][0]["message"] == "Hi Jane"
    assert top["messages"]["data"][0]["from"]["id"] == PAGE_ID
    thread = await page.get(
        f"/v25.0/{top['id']}", params={"access_token": TOKEN, "fields": "id,message_count"}
    )
    assert thread.json() == {"id": top["id"], "message_count": 2}


async def test_user_id_filter_and_instagram(page: httpx.AsyncClient) -> None:
    await _many_threads(page, 5)
    one = await page.get(
        "/v25.0/me/conversations", params={"access_token": TOKEN, "user_id": "10002"}
    )
    assert len(one.json()["data"]) == 1
    assert "next" not in one.json()["paging"]
    insta = await page.get(
        "/v25.0/me/conversations", params={"access_token": TOKEN, "platform": "INSTAGRAM"}
    )
    assert insta.json() == {"data": []}


async def test_conversations_limit_two_per_second(http: httpx.AsyncClient) -> None:
    await add_page(http)
    statuses = [
        (await http.get("/v25.0/me/conversations", params={"access_token": TOKEN})).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 400]


async def test_profile_fields(page: httpx.AsyncClient) -> None:
    await add_user(page)
    response = await page.get(
        f"/v25.0/{PSID}",
        params={"access_token": TOKEN, "fields": "first_name,last_name,profile_pic,id"},
    )
    body = response.json()
    assert (body["first_name"], body["last_name"], body["id"]) == ("Jane", "Doe", PSID)
    assert "ext=" in body["profile_pic"] and "hash=" in body["profile_pic"]
    usage = response.headers.get("x-business-use-case-usage")
    assert usage is None or '"type":"pages"' in usage


@pytest.mark.parametrize(
    ("setup", "fields", "code", "subcode"),
    [
        ({}, "locale", 2018247, None),
        ({"profile_available": False}, "first_name", 2018218, None),
    ],
)
async def test_profile_errors(
    page: httpx.AsyncClient, setup: dict[str, bool], fields: str, code: int, subcode: int | None
) -> None:
    await add_user(page, **setup)
    error = error_of(
        await page.get(f"/v25.0/{PSID}", params={"access_token": TOKEN, "fields": fields})
    )
    assert (error["code"], error.get("error_subcode")) == (code, subcode)


async def test_profile_of_another_pages_psid_is_100_33(page: httpx.AsyncClient) -> None:
    await add_page(page, page_id="999", token="OTHER")
    await add_user(page, psid="other-psid", page_id="999")
    response = await page.get("/v25.0/other-psid", params={"access_token": TOKEN})
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("(#100) Unsupported get request.")
