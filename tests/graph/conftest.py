"""Fixtures for the Graph client tests: a client on a loopback stand-in answering with a test's
handler, and one on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graph_support import APP_SECRET, TOKEN, VERSION, Handler, LoopbackGraph, Sim

from pagecast.graph import GraphClient, PageCredentials, make_http_client
from pagecast.graph.transport import GraphHttp


@pytest.fixture
def creds() -> PageCredentials:
    return PageCredentials(TOKEN)


@pytest.fixture
def creds_with_secret() -> PageCredentials:
    return PageCredentials(TOKEN, APP_SECRET)


@pytest_asyncio.fixture(scope="session")
async def loopback_graph() -> AsyncIterator[LoopbackGraph]:
    """One loopback stand-in server for the session; each test sets its handler."""
    server = LoopbackGraph()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def mock_graph(
    loopback_graph: LoopbackGraph,
) -> AsyncIterator[Callable[[Handler], GraphClient]]:
    """`mock_graph(handler)` -> a GraphClient whose every request the stand-in answers with
    `handler`, through the real transport and a real socket."""
    clients: list[GraphHttp] = []

    def make(handler: Handler) -> GraphClient:
        loopback_graph.handler = handler
        http = make_http_client(loopback_graph.url, connect_timeout=2, read_timeout=5)
        clients.append(http)
        return GraphClient(http, version=VERSION)

    yield make
    loopback_graph.handler = None
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
