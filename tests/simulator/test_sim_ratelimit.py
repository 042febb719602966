"""Rate limits and usage headers (docs/simulator.md, "Rate limits and usage headers"): 613 per second, 80006 per 24 h, exact header shape."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sim_support import PAGE_ID, PSID, add_page, add_user, error_of, send, text_body

HEADER = re.compile(
    r'^\{"(?P<page>\d+)":\[\{"type":"messenger","call_count":(?P<calls>\d+),'
    r'"total_cputime":(?P<cpu>\d+),"total_time":(?P<time>\d+),'
    r'"estimated_time_to_regain_access":(?P<regain>\d+)\}\]\}$'
)
VIDEO = {
    "recipient": {"id": PSID},
    "messaging_type": "UPDATE",
    "message": {"attachment": {"type": "video", "payload": {"url": "https://cdn.example/v.mp4"}}},
}


def usage(response: httpx.Response) -> dict[str, int]:
    match = HEADER.match(response.headers["x-business-use-case-usage"])
    assert match is not None, response.headers["x-business-use-case-usage"]
    assert match["page"] == PAGE_ID
    return {k: int(v) for k, v in match.groupdict().items() if k != "page"}


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http, engaged_users=1)
    await add_user(http)
    return http


async def test_video_class_allows_10_per_second(page: httpx.AsyncClient) -> None:
    statuses = [(await send(page, VIDEO)).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [400]
    assert (await send(page, text_body())).status_code == 200  # text has its own window
    await page.post("/__sim/clock/advance", json={"seconds": 1})
    assert (await send(page, VIDEO)).status_code == 200


async def test_613_shape(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 2})
    for _ in range(2):
        assert (await send(page, text_body())).status_code == 200
    response = await send(page, text_body())
    assert response.status_code == 400
    error = error_of(response)
    assert error == {
        "message": "(#613) Calls to this api have exceeded the rate limit.",
        "type": "OAuthException",
        "code": 613,
        "fbtrace_id": error["fbtrace_id"],
    }


async def test_no_usage_header_below_threshold(http: httpx.AsyncClient) -> None:
    await add_page(http, engaged_users=1000)
    await add_user(http)
    response = await send(http, text_body())
    assert response.status_code == 200
    assert "x-business-use-case-usage" not in response.headers


async def test_usage_header_grows_with_calls(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 1000})
    responses = [await send(page, text_body()) for _ in range(20)]
    assert "x-business-use-case-usage" not in responses[0].headers  # 0.5 % rounds to 0
    assert usage(responses[2]) == {"calls": 2, "cpu": 1, "time": 1, "regain": 0}
    assert usage(responses[-1]) == {"calls": 10, "cpu": 3, "time": 4, "regain": 0}


async def test_80006_after_the_daily_budget_with_penalty(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 1000})
    for _ in range(200):
        last = await send(page, text_body())
        assert last.status_code == 200
    assert usage(last)["calls"] == 100
    throttled = await send(page, text_body())
    assert throttled.status_code == 400
    error = error_of(throttled)
    assert error["code"] == 80006
    assert error["message"].startswith("(#80006) There have been too many messenger api calls")
    first = usage(throttled)
    assert first["regain"] == 1441  # 24 h until the oldest calls leave, plus this call's penalty
    assert first["calls"] >= 100
    again = usage(await send(page, text_body()))
    assert again["regain"] == 1442  # calling while throttled pushes the regain time out
    await page.post("/__sim/clock/advance", json={"seconds": 86400})
    assert error_of(await send(page, text_body()))["code"] == 80006  # penalty minutes remain
    await page.post("/__sim/clock/advance", json={"seconds": 3 * 60})
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})
    assert (await send(page, text_body())).status_code == 200


async def _spend_the_daily_budget(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 1000})
    for _ in range(200):
        assert (await send(page, text_body())).status_code == 200


async def _advance_and_reopen_window(page: httpx.AsyncClient, seconds: float) -> None:
    """Move the sim clock, then let the user write again so the 24 h window is open."""
    await page.post("/__sim/clock/advance", json={"seconds": seconds})
    await page.post("/__sim/inbound", json={"page_id": PAGE_ID, "psid": PSID, "text": "hi"})


async def test_waiting_the_reported_regain_time_is_enough(page: httpx.AsyncClient) -> None:
    await _spend_the_daily_budget(page)
    await _advance_and_reopen_window(page, 86400 - 30)
    rejected = await send(page, text_body())  # natural regain in 30 s, then its own penalty
    assert error_of(rejected)["code"] == 80006
    regain = usage(rejected)["regain"]
    assert regain == 2  # ceil((30 s + 60 s penalty) / 60)
    await _advance_and_reopen_window(page, regain * 60)
    assert (await send(page, text_body())).status_code == 200


async def test_every_rejection_reports_its_own_penalty(page: httpx.AsyncClient) -> None:
    await _spend_the_daily_budget(page)
    reported = []
    for _ in range(3):  # each rejection adds one penalty minute, included in its own header
        response = await send(page, text_body())
        assert error_of(response)["code"] == 80006
        reported.append(usage(response)["regain"])
    assert reported == [1441, 1442, 1443]
    await _advance_and_reopen_window(page, reported[-1] * 60 - 1)
    early = await send(page, text_body())  # one second early: rejected, one more penalty
    assert error_of(early)["code"] == 80006
    regain = usage(early)["regain"]
    assert regain == 2  # 1 s left + the 60 s this call added, rounded up
    await _advance_and_reopen_window(page, regain * 60)
    assert (await send(page, text_body())).status_code == 200


async def test_regain_time_without_the_penalty_knob(page: httpx.AsyncClient) -> None:
    response = await page.post("/__sim/knobs", json={"extend_penalty": False})
    assert response.status_code == 200, response.text
    await _spend_the_daily_budget(page)
    first = usage(await send(page, text_body()))
    again = usage(await send(page, text_body()))
    assert first["regain"] == again["regain"] == 1440  # the 24 h window only
    await _advance_and_reopen_window(page, again["regain"] * 60)
    assert (await send(page, text_body())).status_code == 200


async def test_throttled_calls_are_logged_with_usage(page: httpx.AsyncClient) -> None:
    await page.post(
        "/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 1000, "engaged_users": 0}
    )
    error_of(await send(page, text_body()))
    calls = (await page.get("/__sim/calls")).json()["calls"]
    assert calls[-1]["code"] == 80006
    assert calls[-1]["usage"]["estimated_time_to_regain_access"] >= 1
    stats = (await page.get("/__sim/stats")).json()
    assert stats["errors_by_code"] == {"80006": 1}


async def test_max_calls_per_second_is_a_sliding_window(page: httpx.AsyncClient) -> None:
    for _ in range(3):
        await send(page, text_body())
    await page.post("/__sim/clock/advance", json={"seconds": 0.5})
    for _ in range(2):
        await send(page, text_body())
    await page.post("/__sim/clock/advance", json={"seconds": 0.6})
    await send(page, text_body())
    stats = (await page.get("/__sim/stats")).json()
    assert stats["max_calls_per_second"] == {PAGE_ID: 5}
    assert stats["calls"] == 6


async def test_app_level_limit_is_code_4(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"app_throttle_seconds": 60})
    assert error_of(await send(page, text_body()))["code"] == 4
    await page.post("/__sim/clock/advance", json={"seconds": 61})
    assert (await send(page, text_body())).status_code == 200


async def test_page_usage_knob_adds_legacy_header(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"emit_page_usage": True})
    response = await send(page, text_body())
    for _ in range(3):
        response = await send(page, text_body())
    assert json.loads(response.headers["x-page-usage"]) == {
        "call_count": 2,
        "total_cputime": 1,
        "total_time": 1,
    }
