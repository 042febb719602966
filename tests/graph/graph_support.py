"""Shared constants and response builders for the Graph client tests (imported by test modules)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from aiohttp import web

from pagecast.graph import GraphClient, PageCredentials

TOKEN = "EAAG-test-token-3f9c1d2e"
APP_SECRET = "app-secret-7b1e44"
VERSION = "v25.0"
PAGE_ID = "1234567890123456"

Handler = Callable[[httpx.Request], httpx.Response]


def graph_error(
    code: int,
    subcode: int | None = None,
    *,
    message: str = "(#0) test error",
    status: int = 400,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    """A Graph error envelope response (docs/graph-errors.md)."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEf12345"
    error.update(extra)
    return httpx.Response(status, json={"error": error}, headers=headers)


class Sim:
    """The simulator's control plane (`/__sim/...`) and a real `GraphClient` pointed at it."""

    def __init__(self, url: str, control: httpx.AsyncClient, graph: GraphClient) -> None:
        self.url = url
        self.control = control
        self.graph = graph

    async def post(self, path: str, body: Any) -> Any:
        response = await self.control.post(f"/__sim/{path}", json=body)
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def get(self, path: str, **params: str) -> Any:
        response = await self.control.get(f"/__sim/{path}", params=params)
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def page(
        self,
        page_id: str = PAGE_ID,
        *,
        token: str = TOKEN,
        app_secret: str | None = None,
        engaged_users: int = 1000,
        name: str = "Acme Store",
    ) -> PageCredentials:
        body: dict[str, Any] = {
            "page_id": page_id,
            "name": name,
            "access_token": token,
            "engaged_users": engaged_users,
        }
        if app_secret is not None:
            body["app_secret"] = app_secret
        await self.post("pages", body)
        return PageCredentials(token, app_secret)

    async def users(self, *users: dict[str, Any]) -> None:
        await self.post(
            "users",
            [
                {
                    "page_id": PAGE_ID,
                    "first_name": "Jane",
                    "last_name": "Doe",
                    "last_user_action": "now",
                    **user,
                }
                for user in users
            ],
        )

    async def script(self, match: dict[str, str], *responses: dict[str, Any]) -> None:
        await self.post("script", {"match": match, "responses": list(responses)})

    async def outbox(self, psid: str | None = None) -> list[dict[str, Any]]:
        params = {"page_id": PAGE_ID}
        if psid is not None:
            params["psid"] = psid
        data = await self.get("outbox", **params)
        return data["messages"] if isinstance(data, dict) and "messages" in data else data


class WebhookReceiver:
    """A tiny HTTP/1.1 server on a loopback port that keeps each POST's raw bytes and headers."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/webhooks/messenger"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("POST"):
                    self.posts.append((headers, body))
                reason = b"OK" if self.status < 400 else b"Error"
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (self.status, reason))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


class LoopbackGraph:
    """A real HTTP server on a loopback port that answers with a test's httpx-style handler.

    The Graph client under test goes through its real transport to a real socket; the handler
    sees each request as an `httpx.Request` on `https://graph.facebook.com` and returns an
    `httpx.Response`. A handler that raises makes the server drop the connection after reading
    the request, without an answer (what a server that went away does).
    """

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.url = ""
        self.connections = 0
        self._runner: web.ServerRunner | None = None

    async def start(self) -> None:
        server = web.Server(self._serve)
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        (address, *_) = self._runner.addresses
        self.url = f"http://127.0.0.1:{address[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self.handler is not None, "no handler set"
        incoming = httpx.Request(
            request.method,
            "https://graph.facebook.com" + request.raw_path,
            headers=[(k, v) for k, v in request.headers.items() if k.lower() != "host"],
            content=await request.read(),
        )
        try:
            answer = self.handler(incoming)
        except Exception:
            assert request.transport is not None
            request.transport.close()  # read the request, then went away without answering
            raise web.HTTPInternalServerError() from None
        headers = [
            (k, v)
            for k, v in answer.headers.multi_items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        body = b"" if answer.status_code in (204, 304) else answer.read()
        return web.Response(status=answer.status_code, headers=headers, body=body)
