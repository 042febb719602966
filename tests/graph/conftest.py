"""Fixtures for the Graph client tests: a client on `httpx.MockTransport`, and one on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graph_support import APP_SECRET, TOKEN, VERSION, Handler, Sim

from pagecast.graph import GraphClient, PageCredentials, make_http_client


@pytest.fixture
def creds() -> PageCredentials:
    return PageCredentials(TOKEN)


@pytest.fixture
def creds_with_secret() -> PageCredentials:
    return PageCredentials(TOKEN, APP_SECRET)


@pytest_asyncio.fixture
async def mock_graph() -> AsyncIterator[Callable[[Handler], GraphClient]]:
    """`mock_graph(handler)` -> a GraphClient whose every request goes to `handler`."""
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler) -> GraphClient:
        http = httpx.AsyncClient(
            transport=httpx.MockTransport(handler), base_url="https://graph.facebook.com"
        )
        clients.append(http)
        return GraphClient(http, version=VERSION)

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture(scope="session")
def sim_server() -> Iterator[Any]:
    """One simulator under uvicorn on a loopback port for the whole session (reset per test)."""
    server_module = pytest.importorskip("pagecast.simulator.server")
    with server_module.SimulatorServer(seed=42) as server:
        yield server


@pytest_asyncio.fixture
async def sim(sim_server: Any) -> AsyncIterator[Sim]:
    url = str(sim_server.url).rstrip("/")
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as control,
        make_http_client(url, connect_timeout=2, read_timeout=3, max_connections=100) as http,
    ):
        response = await control.post("/__sim/reset", json={})
        assert response.status_code < 300, response.text
        yield Sim(url, control, GraphClient(http, version=VERSION))
