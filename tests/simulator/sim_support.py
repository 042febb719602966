"""Helpers for the simulator tests: a Page with people, Send bodies, a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn
import uvloop

__all__ = [
    "APP_SECRET",
    "PAGE_ID",
    "PSID",
    "TOKEN",
    "Receiver",
    "ThreadedApp",
    "add_page",
    "add_user",
    "error_of",
    "send",
    "text_body",
]

PAGE_ID = "1234567890123456"
TOKEN = "EAAG-page-token"
PSID = "6543210987654321"
APP_SECRET = "sim-app-secret"
VERIFY_TOKEN = "sim-verify"


async def add_page(
    http: httpx.AsyncClient, page_id: str = PAGE_ID, token: str = TOKEN, **extra: Any
) -> None:
    body = {"page_id": page_id, "name": "Acme Store", "access_token": token, **extra}
    response = await http.post("/__sim/pages", json=body)
    assert response.status_code == 200, response.text


async def add_user(
    http: httpx.AsyncClient,
    psid: str = PSID,
    page_id: str = PAGE_ID,
    last: Any = "now",
    **extra: Any,
) -> None:
    body = {
        "page_id": page_id,
        "psid": psid,
        "first_name": "Jane",
        "last_name": "Doe",
        "last_user_action": last,
        **extra,
    }
    response = await http.post("/__sim/users", json=body)
    assert response.status_code == 200, response.text


def text_body(psid: str = PSID, text: str = "Hi Jane", **extra: Any) -> dict[str, Any]:
    return {
        "recipient": {"id": psid},
        "messaging_type": "UPDATE",
        "message": {"text": text},
        **extra,
    }


async def send(
    http: httpx.AsyncClient,
    body: Any,
    *,
    token: str | None = TOKEN,
    page: str = "me",
    **params: str,
) -> httpx.Response:
    query = dict(params)
    if token is not None:
        query["access_token"] = token
    return await http.post(f"/v25.0/{page}/messages", params=query, json=body)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a Graph error answer, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["code"], int)
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert isinstance(error["fbtrace_id"], str) and len(error["fbtrace_id"]) == 11
    return error


class Receiver:
    """A webhook endpoint that records raw bodies and headers and answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.verify_token = VERIFY_TOKEN

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            from urllib.parse import parse_qs

            query = parse_qs(scope["query_string"].decode())
            ok = query.get("hub.verify_token") == [self.verify_token]
            answer = query["hub.challenge"][0].encode() if ok else b"forbidden"
            await _answer(send, 200 if ok else 403, answer)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((headers, body))
        await _answer(send, self.status, b"ok")

    def events(self, key: str | None = None) -> list[dict[str, Any]]:
        found = []
        for _, body in self.requests:
            for entry in json.loads(body)["entry"]:
                for event in entry.get("messaging", []):
                    if key is None or key in event:
                        found.append(event)
        return found

    async def wait_for(
        self, count: int, key: str | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(key)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} {key or 'events'}, got {self.events(key)}")


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ThreadedApp:
    """Serve any ASGI app with uvicorn on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedApp:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        server = self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", access_log=False, lifespan="off", loop="none"
            )
        )
        self._thread = threading.Thread(
            target=lambda: uvloop.run(server.serve(sockets=[sock])), daemon=True
        )
        self._thread.start()
        while not server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
