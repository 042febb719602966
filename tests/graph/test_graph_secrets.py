"""Tokens and app secrets never show up in errors, results, credentials or log output."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from graph_support import APP_SECRET, TOKEN

from pagecast.graph import (
    BatchMessage,
    GraphClient,
    GraphError,
    PageCredentials,
    make_http_client,
)

# An error whose Graph message echoes the token, as some Graph messages echo parameters.
_ECHOING_ERROR = {
    "error": {
        "message": f"Invalid OAuth access token {TOKEN} (app secret {APP_SECRET})",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "Zz9",
    }
}


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 server: /v25.0/me answers 200, everything else the echoing error."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            path = head.split(b" ", 2)[1]
            if path.startswith(b"/v25.0/me?") or path == b"/v25.0/me":
                status, body = b"200 OK", {"id": "1", "name": "Acme"}
            elif path.startswith(b"/v25.0/?") or path == b"/v25.0/":
                status, body = b"200 OK", [None, {"code": 400, "body": json.dumps(_ECHOING_ERROR)}]
            else:
                status, body = b"400 Bad Request", _ECHOING_ERROR
            payload = json.dumps(body).encode()
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def local_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


def test_credentials_repr_hides_token_and_secret() -> None:
    creds = PageCredentials(TOKEN, APP_SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert TOKEN not in text and APP_SECRET not in text
    assert creds.access_token == TOKEN and creds.app_secret == APP_SECRET
    assert "None" in repr(PageCredentials(TOKEN))


async def test_no_secret_in_errors_results_or_logs(
    local_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "pagecast"):
        caplog.set_level(logging.DEBUG, logger=name)
    creds = PageCredentials(TOKEN, APP_SECRET)
    texts: list[str] = []
    async with make_http_client(
        local_server, connect_timeout=2, read_timeout=5, max_connections=10
    ) as http:
        graph = GraphClient(http, version="v25.0")
        me = await graph.get_me(creds)
        texts += [repr(me), str(me)]
        with pytest.raises(GraphError) as info:
            await graph.send_message(creds, psid="1", message={"text": "hi"})
        texts += [
            str(info.value),
            repr(info.value),
            str(info.value.args),
            info.value.graph_message or "",
        ]
        results = await graph.send_batch(
            creds,
            [
                BatchMessage(psid="1", message={"text": "a"}),
                BatchMessage(psid="2", message={"text": "b"}),
            ],
        )
        texts += [repr(results), *(str(r) for r in results)]
        with pytest.raises(GraphError) as info:
            await graph.get_profile(creds, "1")
        texts += [str(info.value), repr(info.value)]
    assert "[redacted]" in str(info.value)
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    # The transport logged each request (so the logs checked below are not empty).
    assert sum("HTTP Request" in record.getMessage() for record in caplog.records) == 4
    for text in texts:
        assert TOKEN not in text and APP_SECRET not in text
