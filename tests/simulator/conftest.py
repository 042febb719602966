"""Fixtures for the simulator tests: one server on a real socket with a manual clock (reset
before every test), an in-process app, and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sim_support import APP_SECRET, VERIFY_TOKEN, Receiver, ThreadedApp

from pagecast.simulator import ManualClock, SimulatorApp, create_app
from pagecast.simulator.server import SimulatorServer

START = 1_790_000_000.0  # 2026-09-21, after the retirement of the old message tags


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture(scope="session")
def server(clock: ManualClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(
        seed=7, clock=clock, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN
    ) as running:
        yield running


@pytest.fixture
async def http(server: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the shared simulator, freshly reset."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/__sim/reset")
        assert response.status_code == 200, response.text
        yield client


@pytest.fixture(scope="session")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with ThreadedApp(endpoint) as running:
        yield endpoint, running.url + "/webhook"


@pytest.fixture
async def hook(http: httpx.AsyncClient, receiver: tuple[Receiver, str]) -> Receiver:
    """The receiver, cleared, answering 200, set as the webhook with instant receipts."""
    endpoint, url = receiver
    endpoint.requests.clear()
    endpoint.status = 200
    response = await http.post("/__sim/webhook", json={"url": url})
    assert response.status_code == 200, response.text
    response = await http.post(
        "/__sim/knobs",
        json={
            "delivery_delay": [0, 0],
            "read_delay": [0, 0],
            "p_delivered": 1.0,
            "p_read": 0.0,
            "p_omit_mids": 0.0,
        },
    )
    assert response.status_code == 200, response.text
    return endpoint


@pytest.fixture
async def local() -> AsyncIterator[tuple[SimulatorApp, httpx.AsyncClient]]:
    """An in-process simulator (no socket) with its own manual clock."""
    app = create_app(seed=3, clock=ManualClock(start=START), app_secret=APP_SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        yield app, client
    await app.aclose()
