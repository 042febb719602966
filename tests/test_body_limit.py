"""One body limit for every route (`web.body_limit`), checked before the body is read.

Issue 17, item 3: an anonymous 150 MB POST to /api/auth/login was buffered and a 50 MB JSON
login parsed. Now a declared Content-Length over the limit is answered 413 at once, and a
chunked body as soon as it passes the limit; the CSV import routes take bodies up to
`import_max_bytes`, the webhook up to its own `webhook_max_body_bytes`.

Through a real uvicorn on a loopback port (`LoopbackApp`) with hand-written requests, and
in-process with httpx streaming a body from a generator (no Content-Length: chunked).
"""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from factories import app_client, connected_page
from pagecast.db import Database
from pagecast.models import Role
from pagecast.security import Vault
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.openapi import ErrorOut
from pagecast.web.uploads import FORM_OVERHEAD
from test_webhook_intake import raw_request
from test_webhooks import LoopbackApp

KIB = 1024
MIB = 1024 * KIB


@pytest.fixture
async def small(settings: Settings, db: Database) -> AsyncIterator[Any]:
    """The app with small limits: 4 KiB for every route, 64 KiB for uploads."""
    application = create_app(
        settings.model_copy(update={"max_body_bytes": 4 * KIB, "import_max_bytes": 64 * KIB}),
        database=db,
    )
    yield application
    await application.state.context.close()


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["field"] == "body"
    return error


async def test_a_declared_length_over_the_limit_is_answered_413_without_reading(
    app: Any,
) -> None:
    async with LoopbackApp(app) as url:
        parts = urlsplit(url)
        # 150 MB announced, 10 bytes sent: the answer comes at once, nothing is awaited.
        head = (
            "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {150 * 1000 * 1000}\r\n\r\n"
        )
        answer, elapsed = await raw_request(f"http://{parts.netloc}/", head, [b'{"email":'])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert elapsed < 2
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    ErrorOut.model_validate(body)  # the shape the OpenAPI document gives every 413
    error = body["error"]
    assert error["code"] == "payload_too_large" and error["limit"] == MIB
    assert "PAGECAST_MAX_BODY_BYTES" in error["message"]
    assert "Content-Length 150,000,000" in error["message"]


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(app: Any) -> None:
    async with LoopbackApp(app) as url:
        parts = urlsplit(url)
        head = (
            "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * (64 * KIB)
        frames = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 17  # 1.06 MiB, no end
        answer, _ = await raw_request(f"http://{parts.netloc}/", head, frames)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"PAGECAST_MAX_BODY_BYTES" in answer


async def test_a_streamed_body_stops_being_read_at_the_limit(small: Any) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 10 * MIB:  # far more than the limit: the app must stop reading early
            sent += KIB
            yield b" " * KIB

    async with app_client(small) as client:
        response = await client.post(
            "/api/auth/login", content=endless(), headers={"content-type": "application/json"}
        )
    error = _error(response)
    assert error["limit"] == 4 * KIB and "(more than 5,120 bytes)" in error["message"]
    assert sent <= 6 * KIB, f"{sent} bytes were read"


async def test_a_json_body_within_the_limit_is_read_as_before(small: Any) -> None:
    async with app_client(small) as client:
        response = await client.post(
            "/api/auth/login", json={"email": "nobody@example.com", "password": "x" * 100}
        )
        over = await client.post(
            "/api/auth/login", json={"email": "nobody@example.com", "password": "x" * 5000}
        )
    assert response.status_code in (401, 422), response.text
    assert "PAGECAST_MAX_BODY_BYTES" in _error(over)["message"]


async def test_the_upload_routes_take_bodies_up_to_the_upload_limit(
    small: Any, db: Database, vault: Vault
) -> None:
    from factories import create_user

    page = await connected_page(db, vault)
    _, token = await create_user(db, Role.ADMIN, email="importer@example.com")
    rows = b"psid,first_name\n" + b"".join(b"%d,Person\n" % (900_000 + i) for i in range(3_000))
    assert 4 * KIB < len(rows) < 64 * KIB
    too_big = rows + b"".join(b"%d,Person\n" % (800_000 + i) for i in range(12_000))
    assert len(too_big) > 64 * KIB + FORM_OVERHEAD  # past the room for a multipart form too
    path = f"/api/pages/{page.id}/contacts/import"
    async with app_client(small, token) as client:
        accepted = await client.post(path, content=rows, headers={"content-type": "text/csv"})
        refused = await client.post(path, content=too_big, headers={"content-type": "text/csv"})
        # Any other route keeps the small limit.
        other = await client.post(
            f"/api/pages/{page.id}/contacts", content=rows, headers={"content-type": "text/csv"}
        )
    assert accepted.status_code < 300, accepted.text
    error = _error(refused)
    assert error["limit"] == 64 * KIB + FORM_OVERHEAD
    assert "PAGECAST_IMPORT_MAX_BYTES" in error["message"]
    assert "split the file" in error["message"]
    assert _error(other)["limit"] == 4 * KIB

    # The dashboard's upload form: past the small limit it reaches the app (which wants a
    # login); past the upload limit it is refused unread, as HTML for the browser.
    async with app_client(small) as browser:
        form = {"content-type": "multipart/form-data; boundary=x", "accept": "text/html"}
        within = await browser.post("/contacts/import", content=rows, headers=form)
        beyond = await browser.post("/contacts/import", content=too_big, headers=form)
    assert within.status_code != 413
    assert beyond.status_code == 413 and beyond.headers["content-type"].startswith("text/html")
    assert "PAGECAST_IMPORT_MAX_BYTES" in beyond.text


async def test_refused_bodies_do_not_grow_the_process(app: Any) -> None:
    """Ten 20 MB chunked logins: the server's peak memory grows by far less than one of them."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    async with LoopbackApp(app) as url:
        parts = urlsplit(url)
        head = (
            "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * MIB
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

        async def one() -> bytes:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                writer.write(head.encode())
                for _ in range(20):
                    writer.write(frame)
                    await writer.drain()
                return await asyncio.wait_for(reader.read(4096), timeout=10)
            except (ConnectionError, OSError):
                return b"reset"  # the server answered 413 and closed on the unread rest
            finally:
                writer.close()

        answers = await asyncio.gather(*(one() for _ in range(10)))
    assert all(a.startswith((b"HTTP/1.1 413", b"reset")) for a in answers), [
        a[:40] for a in answers
    ]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 20, f"peak memory grew by {grown_mib:.0f} MiB"
