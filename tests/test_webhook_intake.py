"""The webhook endpoint under pressure: oversized bodies are refused before anything is read
fully or stored, and 1,000 signed events posted at once are all acknowledged within Meta's
5 s, each stored once.

The app is served by uvicorn on a loopback port (`LoopbackApp`) with real Redis; the load
comes from a separate process (`webhook_load.py`) so it does not share the server's loop.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from factories import app_client, connected_page
from pagecast.db import Database
from pagecast.errors import Forbidden, InvalidInput, PayloadTooLarge
from pagecast.models import WebhookEvent
from pagecast.security import Vault
from pagecast.settings import Settings
from pagecast.web.api.webhooks import _intake
from pagecast.web.app import create_app
from test_webhooks import (
    APP_SECRET,
    PAGE,
    VERIFY_TOKEN,
    LoopbackApp,
    count_events,
    envelope,
    inbound,
    signed,
    wire,
)

LOAD = Path(__file__).parent / "webhook_load.py"
MIB = 1_048_576


@pytest.fixture
def intake_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={
            "app_secret": SecretStr(APP_SECRET),
            "webhook_verify_token": SecretStr(VERIFY_TOKEN),
            "redis_url": redis_url,
        }
    )


@pytest.fixture
async def intake(intake_settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(intake_settings, database=db)
    yield application
    await application.state.context.close()


def padded(size: int) -> bytes:
    """A signed-able webhook body of exactly `size` bytes (one message with a long text)."""
    body = wire(envelope(inbound("601", "", "m_big")))
    filler = size - len(body)
    assert filler >= 0
    return wire(envelope(inbound("601", "x" * filler, "m_big")))


async def raw_request(url: str, head: str, body_parts: list[bytes]) -> tuple[bytes, float]:
    """Send a request by hand (to control Content-Length and chunks); the answer and its delay."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.monotonic()
    writer.write(head.encode())
    for part in body_parts:
        writer.write(part)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65_536), timeout=10)
    elapsed = time.monotonic() - started
    writer.close()
    return answer, elapsed


async def test_a_body_over_the_limit_gets_413_unread_and_unstored(
    intake: Any, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    async with app_client(intake) as client:
        at_limit = padded(MIB)
        ok = await client.post("/webhooks/messenger", content=at_limit, headers=signed(at_limit))
        assert ok.status_code == 200 and ok.json()["stored"] == 1
        big = padded(MIB + 1)
        refused = await client.post("/webhooks/messenger", content=big, headers=signed(big))
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["field"] == "body" and "PAGECAST_WEBHOOK_MAX_BODY_BYTES" in error["message"]
    assert await count_events(db) == 1

    async with LoopbackApp(intake) as url:
        path = urlsplit(url).path
        # Content-Length says 5 MiB and only 10 bytes follow: answered at once, not awaited.
        head = (
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {5 * MIB}\r\nX-Hub-Signature-256: sha256=00\r\n\r\n"
        )
        answer, elapsed = await raw_request(url, head, [b"{" * 10])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert elapsed < 2
        # Chunked, with no length: read only until it passes the limit.
        chunk = b"x" * 65_536
        head = (
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nX-Hub-Signature-256: sha256=00\r\n\r\n"
        )
        frames = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 17  # 1.06 MiB, no end
        answer, _ = await raw_request(url, head, frames)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert await count_events(db) == 1


async def test_1000_events_posted_at_once_are_acknowledged_within_5_s_and_stored_once(
    intake: Any, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    now = int(time.time() * 1000)
    bodies = [
        wire(envelope(inbound(str(70_000 + i % 200), f"message {i}", f"m_load_{i}", now + i)))
        for i in range(1_000)
    ]
    requests = [
        {"body": body.decode(), "signature": signed(body)["X-Hub-Signature-256"]} for body in bodies
    ]
    async with LoopbackApp(intake) as url:
        parts = urlsplit(url)
        job = {"host": parts.hostname, "port": parts.port, "path": parts.path, "requests": requests}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LOAD),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(json.dumps(job).encode()), 120)
        assert process.returncode == 0, err.decode()[-2000:]
    results = json.loads(out)
    statuses = sorted({status for status, _ in results})
    slowest = max(seconds for _, seconds in results)
    assert statuses == [200], f"statuses {statuses}"
    assert slowest < 5, f"slowest acknowledgement took {slowest:.2f} s"
    async with db.transaction() as session:
        stored = await session.scalar(select(func.count(WebhookEvent.id)))
        keys = await session.scalar(select(func.count(func.distinct(WebhookEvent.event_key))))
    assert stored == keys == 1_000
    # Meta redelivers: the same 1,000 again are acknowledged and not stored a second time.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake), base_url="http://t"
    ) as c:
        again = [
            (await c.post("/webhooks/messenger", content=b, headers=signed(b))).json()["stored"]
            for b in bodies[:50]
        ]
    assert again == [0] * 50
    assert await count_events(db) == 1_000


# ---------------------------------------------------------------- one bad POST fails alone


def forged_page_ids(count: int) -> bytes:
    """A body naming `count` distinct Pages (issue 17: 32,768 made a 418 KB body)."""
    entries = [{"id": str(i)} for i in range(count)]
    return wire({"object": "page", "entry": entries})


async def test_a_body_with_32768_page_ids_fails_alone_and_the_genuine_posts_of_its_batch_succeed(
    intake: Any, db: Database, vault: Vault
) -> None:
    """Page ids of every waiting POST were looked up in one IN (...) before any signature was
    checked: 32,768 ids passed the PostgreSQL driver's argument limit and the batch's 46
    genuine POSTs got 500. Now signatures come first and entries are bounded."""
    await connected_page(db, vault, fb_page_id=PAGE)
    forged = forged_page_ids(32_768)
    assert 400_000 < len(forged) < MIB
    genuine = [wire(envelope(inbound(str(80_000 + i), "hi", f"m_iso_{i}"))) for i in range(46)]
    submit = _intake(intake.state.context, intake).submit

    def posts(first: bytes, signature: str | None) -> list[Any]:
        # All submitted before the writer runs: one batch, as in the burst that failed.
        calls = [submit(first, signature, json.loads(first))]
        calls += [submit(b, signed(b)["X-Hub-Signature-256"], json.loads(b)) for b in genuine]
        return calls

    unsigned = await asyncio.gather(*posts(forged, "sha256=00"), return_exceptions=True)
    assert isinstance(unsigned[0], Forbidden), unsigned[0]
    assert [type(r).__name__ for r in unsigned[1:]] == ["Stored"] * 46, unsigned[1:3]
    assert await count_events(db) == 46

    # Correctly signed, it is refused for its entries (a 413 naming the setting), alone.
    genuine = [wire(envelope(inbound(str(81_000 + i), "hi", f"m_iso2_{i}"))) for i in range(46)]
    signed_forged = await asyncio.gather(
        *posts(forged, signed(forged)["X-Hub-Signature-256"]), return_exceptions=True
    )
    refused = signed_forged[0]
    assert isinstance(refused, PayloadTooLarge), refused
    assert refused.field == "entry" and "PAGECAST_WEBHOOK_MAX_ENTRIES" in refused.message
    assert [type(r).__name__ for r in signed_forged[1:]] == ["Stored"] * 46
    assert await count_events(db) == 92
    async with app_client(intake) as client:
        answer = await client.post("/webhooks/messenger", content=forged, headers=signed(forged))
    assert answer.status_code == 413 and answer.json()["error"]["field"] == "entry"


async def test_a_signed_body_the_database_cannot_store_fails_alone(
    intake: Any, db: Database, vault: Vault
) -> None:
    """A PSID longer than its column (PostgreSQL refuses it) or a NUL in a message id: a 422
    for that POST, the others of its batch stored."""
    await connected_page(db, vault, fb_page_id=PAGE)
    long_psid = wire(envelope(inbound("9" * 65, "hi", "m_long")))
    nul_mid = wire(envelope(inbound("82001", "hi", "m_\x00nul")))
    genuine = [wire(envelope(inbound(str(82_100 + i), "hi", f"m_ok_{i}"))) for i in range(10)]
    submit = _intake(intake.state.context, intake).submit
    results = await asyncio.gather(
        *(
            submit(b, signed(b)["X-Hub-Signature-256"], json.loads(b))
            for b in [long_psid, nul_mid, *genuine]
        ),
        return_exceptions=True,
    )
    assert isinstance(results[0], InvalidInput) and "sender.id" in results[0].message
    assert isinstance(results[1], InvalidInput) and "NUL" in results[1].message
    assert [type(r).__name__ for r in results[2:]] == ["Stored"] * 10
    assert await count_events(db) == 10


async def test_a_signed_body_nested_100000_deep_gets_a_4xx_and_no_traceback(
    intake: Any, db: Database, vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    deep = b"[" * 100_000 + b"]" * 100_000
    async with app_client(intake) as client:
        response = await client.post("/webhooks/messenger", content=deep, headers=signed(deep))
        unsigned = await client.post(
            "/webhooks/messenger", content=deep, headers={"X-Hub-Signature-256": "sha256=00"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "body"
    assert unsigned.status_code == 403
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert await count_events(db) == 0
