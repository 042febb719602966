"""Inbox high-volume degradation (docs/simulator.md, "Rate limits and usage headers"): above 40 sends/s over 10 s, the conversations list
fails with code 2 (500) for a cool-down, while single threads and Send calls still work."""

from __future__ import annotations

import httpx
import pytest
from sim_support import PAGE_ID, PSID, TOKEN, add_page, add_user, error_of, send, text_body


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http, engaged_users=10**6)
    await add_user(http)
    return http


async def listing(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    await http.post("/__sim/clock/advance", json={"seconds": 1})  # clear the 2/s window
    return await http.get("/v25.0/me/conversations", params={"access_token": TOKEN, **params})


async def send_for(http: httpx.AsyncClient, per_second: int, seconds: int) -> None:
    for _ in range(seconds):
        for _ in range(per_second):
            assert (await send(http, text_body())).status_code == 200
        await http.post("/__sim/clock/advance", json={"seconds": 1})


async def test_41_sends_a_second_for_10_seconds_degrade_the_inbox(
    page: httpx.AsyncClient,
) -> None:
    await send_for(page, 41, 10)
    response = await listing(page)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == 2 and error["is_transient"] is True
    limits = (await page.post("/__sim/limits", json={"page_id": PAGE_ID})).json()
    assert limits["inbox_degraded"] is True


async def test_40_sends_a_second_do_not(page: httpx.AsyncClient) -> None:
    await send_for(page, 40, 12)
    assert (await listing(page)).status_code == 200


async def test_degraded_inbox_still_serves_one_thread_and_sends(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"inbox_degrade_per_second": 2, "inbox_degrade_window": 2})
    await send_for(page, 3, 2)
    assert (await listing(page)).status_code == 500
    one = await listing(page, user_id=PSID)
    assert one.status_code == 200
    [thread] = one.json()["data"]
    response = await page.get(f"/v25.0/{thread['id']}", params={"access_token": TOKEN})
    assert response.status_code == 200 and response.json()["id"] == thread["id"]
    assert (await send(page, text_body())).status_code == 200


async def test_cool_down_follows_the_sim_clock_and_its_knob(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/knobs",
        json={
            "inbox_degrade_per_second": 2,
            "inbox_degrade_window": 2,
            "inbox_degrade_cooldown": 120,
        },
    )
    await send_for(page, 3, 2)  # last send at t0+1; degraded until t0+121
    assert (await listing(page)).status_code == 500  # t0+3
    await page.post("/__sim/clock/advance", json={"seconds": 110})
    assert (await listing(page)).status_code == 500  # t0+114
    await page.post("/__sim/clock/advance", json={"seconds": 10})
    assert (await listing(page)).status_code == 200  # t0+125


async def test_control_plane_can_set_and_clear_the_degradation(page: httpx.AsyncClient) -> None:
    answer = await page.post("/__sim/limits", json={"page_id": PAGE_ID, "inbox_degraded": True})
    assert answer.json()["inbox_degraded"] is True
    assert (await listing(page)).status_code == 500
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "inbox_degraded": False})
    assert (await listing(page)).status_code == 200
