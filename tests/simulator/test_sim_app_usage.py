"""`x-app-usage` (docs/graph-api.md, "Usage headers";
docs/simulator.md, "Rate limits and usage headers"): calls with a USER or app token, under the BUC threshold rule."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sim_support import APP_SECRET, PAGE_ID, TOKEN, add_page, add_user, error_of, send, text_body

APP_USAGE = re.compile(r'^\{"call_count":(\d+),"total_time":(\d+),"total_cputime":(\d+)\}$')
USER_TOKEN = "EAAG-user-token"
APP_TOKEN = f"1517776481860111|{APP_SECRET}"


def app_usage(response: httpx.Response) -> tuple[int, int, int]:
    match = APP_USAGE.match(response.headers["x-app-usage"])
    assert match is not None, response.headers["x-app-usage"]
    calls, total_time, cputime = (int(v) for v in match.groups())
    return calls, total_time, cputime


@pytest.fixture
async def page(http: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_page(http, user_token=USER_TOKEN, engaged_users=1)
    await add_user(http)
    response = await http.post("/__sim/knobs", json={"app_calls_per_hour": 100})
    assert response.status_code == 200
    return http


async def test_user_token_calls_carry_x_app_usage(page: httpx.AsyncClient) -> None:
    first = await page.get("/v25.0/me/accounts", params={"access_token": USER_TOKEN})
    assert first.status_code == 200
    assert app_usage(first) == (1, 0, 0)
    for _ in range(9):
        last = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert app_usage(last) == (10, 4, 3)  # total_time 0.4x, total_cputime 0.3x
    assert "x-business-use-case-usage" not in last.headers


async def test_app_token_counts_too_and_page_tokens_do_not(page: httpx.AsyncClient) -> None:
    response = await page.get(
        "/v25.0/debug_token", params={"access_token": APP_TOKEN, "input_token": TOKEN}
    )
    assert response.status_code == 200
    assert app_usage(response) == (1, 0, 0)
    for _ in range(2):  # 2 of the Page's 200 = 1 %: the BUC header shows, x-app-usage never
        sent = await send(page, text_body())
        assert sent.status_code == 200
        assert "x-app-usage" not in sent.headers
    assert "x-business-use-case-usage" in sent.headers


async def test_no_header_below_the_threshold(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/knobs", json={"app_calls_per_hour": 1000})
    response = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert response.status_code == 200
    assert "x-app-usage" not in response.headers  # 0.1 % rounds to 0 < 1
    await page.post("/__sim/knobs", json={"header_threshold_pct": 0})
    response = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert app_usage(response) == (0, 0, 0)


async def test_full_budget_answers_code_4_with_the_header_then_recovers(
    page: httpx.AsyncClient,
) -> None:
    for _ in range(100):
        ok = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
        assert ok.status_code == 200
    assert app_usage(ok)[0] == 100
    refused = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert refused.status_code == 400
    assert error_of(refused)["code"] == 4
    assert app_usage(refused)[0] >= 100
    calls = (await page.get("/__sim/calls", params={"limit": 1})).json()["calls"]
    assert calls[0]["code"] == 4 and calls[0]["usage"]["type"] == "app"
    await page.post("/__sim/clock/advance", json={"seconds": 3601})
    again = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert again.status_code == 200
    assert app_usage(again) == (1, 0, 0)


async def test_control_plane_app_throttle_shows_in_x_app_usage(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/limits", json={"app_throttle_seconds": 60})
    response = await page.get("/v25.0/me", params={"access_token": USER_TOKEN})
    assert error_of(response)["code"] == 4
    assert app_usage(response)[0] == 100


async def test_batch_operations_with_a_user_token_carry_the_header(
    page: httpx.AsyncClient,
) -> None:
    ops = [{"method": "GET", "relative_url": "me"}, {"method": "GET", "relative_url": "me"}]
    response = await page.post("/", data={"access_token": USER_TOKEN, "batch": json.dumps(ops)})
    assert response.status_code == 200
    headers = [{h["name"]: h["value"] for h in el["headers"]} for el in response.json()]
    values = sorted(json.loads(h["x-app-usage"])["call_count"] for h in headers)
    assert values == [1, 2]
    assert PAGE_ID  # the Page exists; its BUC is untouched by user-token reads of /me
