"""The Graph transport under real socket failures: what may have reached Graph is never sent twice.

Each test runs the real `GraphClient` and its aiohttp transport against a scripted HTTP/1.1
server on a loopback port that answers, hangs, drops or resets per request, and counts the
connections and requests it saw.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from graph_support import TOKEN

from pagecast.graph import (
    BatchMessage,
    ErrorKind,
    GraphClient,
    GraphError,
    PageCredentials,
    make_http_client,
)
from pagecast.graph.transport import may_have_left

CREDS = PageCredentials(TOKEN)
OK = b'{"recipient_id":"1","message_id":"m_1","id":"PAGE","name":"Acme"}'


@dataclass
class Seen:
    method: str
    path: str
    connection: int


@dataclass
class ScriptedServer:
    """Answers request N with `script[N]` (the last entry repeats): `ok`, `hang`, `drop` (read
    the request, close without an answer), `reset` (read it, then a TCP reset) or `ok_close`
    (answer, then close the connection as a server's keep-alive timeout does)."""

    script: list[str]
    requests: list[Seen] = field(default_factory=list)
    opened: int = 0
    closed_by_client: list[int] = field(default_factory=list)
    closed_by_server: list[int] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:  # the hanging ones never end by themselves
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        number = self.opened
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client.append(number)  # the client closed an idle connection
                    return
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for k, _, v in (x.partition(":") for x in lines[1:])
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                await reader.readexactly(length)
                method, path, _ = lines[0].split(" ", 2)
                self.requests.append(Seen(method, path, number))
                action = self.script[min(len(self.requests), len(self.script)) - 1]
                if action == "hang":
                    await asyncio.Event().wait()
                if action == "drop":
                    return
                if action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(OK), OK)
                )
                await writer.drain()
                if action == "ok_close":
                    writer.close()
                    await writer.wait_closed()
                    self.closed_by_server.append(number)
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[Callable[..., GraphClient]]:
    made = []

    def make(url: str, **settings: float) -> GraphClient:
        http = make_http_client(url, **{"connect_timeout": 2, "read_timeout": 5, **settings})  # type: ignore[arg-type]
        made.append(http)
        return GraphClient(http, version="v25.0")

    yield make
    for http in made:
        await http.aclose()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def sends(server: ScriptedServer) -> list[Seen]:
    return [r for r in server.requests if r.method == "POST"]


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("action", ["drop", "reset"])
async def test_a_connection_lost_after_the_request_is_ambiguous_and_not_sent_again(
    client: Callable[..., GraphClient], action: str
) -> None:
    async with ScriptedServer([action]) as server:
        graph = client(server.url)
        with pytest.raises(GraphError) as info:
            await graph.send_message(CREDS, psid="1", message={"text": "hi"})
        assert info.value.kind is ErrorKind.AMBIGUOUS and info.value.status is None
        with pytest.raises(GraphError) as info:
            await graph.send_batch(CREDS, [BatchMessage(psid="1", message={"text": "hi"})])
        assert info.value.kind is ErrorKind.AMBIGUOUS
        assert len(sends(server)) == 2  # each request reached the server once, never twice
        with pytest.raises(GraphError) as info:
            await graph.get_me(CREDS)
        assert info.value.kind is ErrorKind.RETRY  # nothing is delivered by a read


async def test_no_answer_in_time_is_ambiguous(client: Callable[..., GraphClient]) -> None:
    async with ScriptedServer(["hang"]) as server:
        graph = client(server.url, read_timeout=0.2)
        with pytest.raises(GraphError) as info:
            await graph.send_message(CREDS, psid="1", message={"text": "hi"})
        assert info.value.kind is ErrorKind.AMBIGUOUS
        assert "SocketTimeoutError" in str(info.value)
        assert len(sends(server)) == 1


async def test_a_refused_connection_is_retry(client: Callable[..., GraphClient]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    graph = client(f"http://127.0.0.1:{port}")
    with pytest.raises(GraphError) as info:
        await graph.send_message(CREDS, psid="1", message={"text": "hi"})
    assert info.value.kind is ErrorKind.RETRY and "before the request was sent" in str(info.value)


async def test_waiting_too_long_for_a_free_connection_is_retry(
    client: Callable[..., GraphClient],
) -> None:
    async with ScriptedServer(["hang", "ok"]) as server:
        graph = client(
            server.url, max_connections=1, pool_timeout=0.2, connect_timeout=0.1, read_timeout=30
        )
        stuck = asyncio.create_task(graph.send_message(CREDS, psid="1", message={"text": "a"}))
        await until(lambda: len(server.requests) == 1)
        with_proof = PageCredentials(TOKEN, "app-secret-for-the-proof")
        with pytest.raises(GraphError) as info:
            await graph.send_message(with_proof, psid="2", message={"text": "b"})
        assert info.value.kind is ErrorKind.RETRY
        assert "ConnectionTimeoutError" in str(info.value)
        # aiohttp names the URL in this error: its query (the proof) is cut from the text.
        assert with_proof.appsecret_proof is not None
        assert with_proof.appsecret_proof not in str(info.value)
        assert len(server.requests) == 1  # the second message never left
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck


@pytest.mark.parametrize(
    ("exc", "left"),
    [
        (aiohttp.ClientConnectorError(None, OSError(111, "refused")), False),  # type: ignore[arg-type]
        (aiohttp.ConnectionTimeoutError("pool"), False),
        (aiohttp.InvalidURL("x"), False),
        (aiohttp.SocketTimeoutError("read"), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientOSError(104, "reset"), True),
        (aiohttp.ClientPayloadError("short body"), True),
        (RuntimeError("transport bug"), True),
    ],
)
def test_which_failures_may_have_reached_graph(exc: BaseException, left: bool) -> None:
    assert may_have_left(exc) is left


# ----------------------------------------------------------------------------- keep-alive


async def test_an_idle_connection_expires_on_our_side_and_the_next_send_opens_a_new_one(
    client: Callable[..., GraphClient],
) -> None:
    async with ScriptedServer(["ok"]) as server:
        graph = client(server.url, keepalive_expiry=0.2)
        await graph.send_message(CREDS, psid="1", message={"text": "a"})
        await graph.send_message(CREDS, psid="2", message={"text": "b"})
        assert [r.connection for r in server.requests] == [1, 1]  # kept alive while in use
        await until(lambda: server.closed_by_client == [1])  # we closed it, not the server
        result = await graph.send_message(CREDS, psid="3", message={"text": "c"})
        assert result.message_id == "m_1"
        assert [r.connection for r in server.requests] == [1, 1, 2]


async def test_a_send_on_a_connection_the_server_is_closing_is_ambiguous_never_resent(
    client: Callable[..., GraphClient],
) -> None:
    # The server's keep-alive timeout fires as the request arrives: it read the message, then
    # closed without an answer. The message may have been delivered: `ambiguous`, sent once.
    async with ScriptedServer(["ok", "drop", "ok"]) as server:
        graph = client(server.url)
        await graph.send_message(CREDS, psid="1", message={"text": "a"})
        with pytest.raises(GraphError) as info:
            await graph.send_message(CREDS, psid="2", message={"text": "b"})
        assert info.value.kind is ErrorKind.AMBIGUOUS
        assert [(r.method, r.connection) for r in server.requests] == [("POST", 1), ("POST", 1)]
        result = await graph.send_message(CREDS, psid="3", message={"text": "c"})
        assert result.message_id == "m_1" and server.requests[-1].connection == 2


async def test_a_read_on_a_connection_the_server_closed_is_sent_again_on_a_new_one(
    client: Callable[..., GraphClient],
) -> None:
    async with ScriptedServer(["ok", "drop", "ok"]) as server:
        graph = client(server.url)
        await graph.send_message(CREDS, psid="1", message={"text": "a"})
        me = await graph.get_me(CREDS)  # dropped once, then answered on a new connection
        assert me.id == "PAGE"
        assert [(r.method, r.connection) for r in server.requests] == [
            ("POST", 1),
            ("GET", 1),
            ("GET", 2),
        ]


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: Callable[..., GraphClient],
) -> None:
    async with ScriptedServer(["ok_close", "ok"]) as server:
        graph = client(server.url)
        await graph.send_message(CREDS, psid="1", message={"text": "a"})
        await until(lambda: server.closed_by_server == [1])
        # The server's socket is closed, so the FIN is already in the client's receive queue
        # (loopback): the loop's next poll hands it to aiohttp. A few turns, not a time.
        for _ in range(5):
            await asyncio.sleep(0)
        result = await graph.send_message(CREDS, psid="2", message={"text": "b"})
        assert result.message_id == "m_1"
        assert [r.connection for r in server.requests] == [1, 2]
