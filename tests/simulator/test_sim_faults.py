"""Timeouts before and after commit, seeded determinism, bulk people, reset, the server edge."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sim_support import PAGE_ID, PSID, Receiver, add_page, add_user, send, text_body

from pagecast.errors import ConfigError
from pagecast.simulator import ConnectionDropped, ManualClock, create_app
from pagecast.simulator.server import SimulatorServer, run


@pytest.fixture
async def page(http: httpx.AsyncClient, hook: Receiver) -> httpx.AsyncClient:
    await add_page(http)
    await add_user(http)
    return http


async def test_timeout_before_commit_records_nothing(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post(
        "/__sim/script", json={"match": {"psid": PSID}, "responses": [{"timeout": "before"}]}
    )
    with pytest.raises(httpx.RemoteProtocolError):
        await send(page, text_body())
    assert (await page.get("/__sim/outbox")).json() == {"messages": []}
    await page.post("/__sim/webhook/flush")
    assert hook.events() == []
    calls = (await page.get("/__sim/calls")).json()["calls"]
    assert calls[-1]["dropped"] == "before"


async def test_timeout_after_commit_records_and_echoes(
    page: httpx.AsyncClient, hook: Receiver
) -> None:
    await page.post(
        "/__sim/script", json={"match": {"psid": PSID}, "responses": [{"timeout": "after"}]}
    )
    body = text_body()
    body["message"]["metadata"] = "delivery=99"
    with pytest.raises(httpx.RemoteProtocolError):
        await send(page, body)
    [entry] = (await page.get("/__sim/outbox")).json()["messages"]
    assert entry["dropped_after_commit"] is True
    assert entry["metadata"] == "delivery=99"
    [echo] = await hook.wait_for(1, "message")
    assert (echo["message"]["mid"], echo["message"]["metadata"]) == (entry["mid"], "delivery=99")
    await hook.wait_for(1, "delivery")
    stats = (await page.get("/__sim/stats")).json()
    assert stats["accepted"] == 1 and stats["errors_by_code"] == {"timeout_after": 1}


async def test_in_process_drop_raises(local: Any) -> None:
    app, client = local
    await add_page(client)
    await add_user(client)
    await client.post(
        "/__sim/script", json={"match": {"psid": PSID}, "responses": [{"timeout": "after"}]}
    )
    with pytest.raises(ConnectionDropped):
        await send(client, text_body())
    assert [e.dropped_after_commit for e in app.state.outbox] == [True]


async def _run_scenario(seed: int) -> tuple[list[str], list[int]]:
    app = create_app(seed=seed, clock=ManualClock(start=1_790_000_000))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        await add_page(client)
        await add_user(client)
        await client.post("/__sim/limits", json={"page_id": PAGE_ID, "per_second_text": 10**6})
        await client.post(
            "/__sim/faults", json={"p_transient": 0.2, "p_5xx": 0.1, "p_throttle": 0.1}
        )
        statuses = []
        for _ in range(60):
            statuses.append((await send(client, text_body())).status_code)
    await app.aclose()
    return [e.mid for e in app.state.outbox], statuses


async def test_same_seed_same_mids_and_fault_decisions() -> None:
    first, second, other = await _run_scenario(5), await _run_scenario(5), await _run_scenario(6)
    assert first == second
    assert first != other
    assert len(set(first[1])) > 2  # faults of several kinds actually happened
    assert 0 < len(first[0]) < 60


async def test_seed_control_call_restarts_the_streams(page: httpx.AsyncClient) -> None:
    await page.post("/__sim/seed", json={"seed": 11})
    one = (await send(page, text_body())).json()["message_id"]
    await page.post("/__sim/seed", json={"seed": 11})
    assert (await send(page, text_body())).json()["message_id"] == one


async def test_probabilistic_faults_validate_input(http: httpx.AsyncClient) -> None:
    bad = await http.post("/__sim/faults", json={"p_meteor": 0.5})
    assert bad.status_code == 400 and "p_meteor" in bad.json()["error"]
    too_much = await http.post("/__sim/faults", json={"p_5xx": 0.7, "p_transient": 0.7})
    assert too_much.status_code == 400


async def test_bulk_creation_of_100000_people(http: httpx.AsyncClient) -> None:
    await add_page(http)
    users = [
        {
            "page_id": PAGE_ID,
            "psid": str(10**15 + i),
            "first_name": "F",
            "last_name": "L",
            "last_user_action": "now" if i % 2 else None,
        }
        for i in range(100_000)
    ]
    started = time.monotonic()
    response = await http.post("/__sim/users", json=users, timeout=60)
    elapsed = time.monotonic() - started
    assert response.json() == {"created": 100_000}
    assert elapsed < 10, elapsed
    assert (await send(http, text_body(psid=str(10**15 + 1)))).status_code == 200
    assert (await send(http, text_body(psid=str(10**15 + 2)))).json()["error"][
        "error_subcode"
    ] == 2018278


async def test_reset_forgets_everything(http: httpx.AsyncClient) -> None:
    await add_page(http)
    await add_user(http)
    await send(http, text_body())
    await http.post("/__sim/knobs", json={"p_read": 0.5})
    assert (await http.post("/__sim/reset")).json() == {"reset": True}
    stats = (await http.get("/__sim/stats")).json()
    assert stats["calls"] == 0 and stats["accepted"] == 0 and stats["max_calls_per_second"] == {}
    assert (await http.get("/__sim/outbox")).json() == {"messages": []}
    assert (await http.get("/__sim/knobs")).json()["p_read"] == 0.6
    assert (await send(http, text_body())).json()["error"]["code"] == 190


async def test_unknown_control_call_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/__sim/teleport")
    assert response.status_code == 404
    assert "POST /__sim/pages" in response.json()["error"]


def test_run_refuses_a_public_host() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        run(
            host="0.0.0.0",
            port=8900,
            seed=0,
            latency_ms="0",
            webhook_url=None,
            app_secret=None,
            verify_token=None,
        )
    with pytest.raises(ConfigError, match="Latency"):
        run(
            host="127.0.0.1",
            port=8900,
            seed=0,
            latency_ms="fast",
            webhook_url=None,
            app_secret=None,
            verify_token=None,
        )


def test_webhook_url_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        create_app(webhook_url="https://example.com/hook")


async def test_latency_is_added_per_call() -> None:
    with SimulatorServer(latency_ms=(80, 80)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await add_page(client)
            started = time.monotonic()
            await client.get("/v25.0/me", params={"access_token": "EAAG-page-token"})
            assert time.monotonic() - started >= 0.08
            started = time.monotonic()
            await client.get("/__sim/stats")  # the control plane has no latency
            assert time.monotonic() - started < 0.08


async def test_a_call_is_counted_when_it_arrives_and_answered_after_the_latency() -> None:
    # Graph's limiter is at its front door: with 300 ms of latency the call log (which the
    # per-second limits count) holds the call at its arrival, not at its answer.
    with SimulatorServer(latency_ms=(300, 300)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await add_page(client)
            sent = time.time()
            await client.get("/v25.0/me", params={"access_token": "EAAG-page-token"})
            answered = time.time()
            calls = (await client.get("/__sim/calls")).json()["calls"]
    assert answered - sent >= 0.3
    assert calls[-1]["time"] - sent < 0.15


async def test_a_reset_forgets_a_latency_set_at_run_time() -> None:
    with SimulatorServer(latency_ms=(0, 0)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await add_page(client)
            await client.post("/__sim/latency", json={"ms": "400"})
            assert (await client.post("/__sim/reset")).status_code == 200
            await add_page(client)
            started = time.monotonic()
            await client.get("/v25.0/me", params={"access_token": "EAAG-page-token"})
            assert time.monotonic() - started < 0.3
