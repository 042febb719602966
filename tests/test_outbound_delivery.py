"""Outbound webhook delivery by the worker (issue 22), against a real receiver: an aiohttp
server on 127.0.0.1 that answers what each test scripts. The worker's clock is injected and
moved by hand, so retries, the 24-hour window and the 3-day rule run without sleeping."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select, text

from factories import app_client, create_user, session_cookie
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import (
    AuditLog,
    OutboundAttempt,
    OutboundDelivery,
    Role,
    WebhookEndpoint,
    utcnow,
)
from pagecast.outbound_http import refusal
from pagecast.services import outbound_deliveries, outbound_events
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.deps import SESSION_COOKIE
from pagecast.worker import build
from pagecast.worker.outbound import OutboundSender
from pagecast.worker.state import Clock


class Moving(Clock):
    """The worker's clock, moved by the test. It starts a minute ahead of the real clock, so
    that the events a test emits (at the real time) are due at once."""

    def __init__(self) -> None:
        self.at = utcnow() + timedelta(minutes=1)

    def now(self) -> datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class Receiver:
    """A webhook receiver on a loopback port: answers the scripted statuses in turn (then
    200) and keeps every request it got."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.hang = False  # answer nothing until the client gives up
        self.released = asyncio.Event()
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        if self.hang:
            await self.released.wait()
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text=f"answer {status}")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]


class Harness:
    """The app (for the API), a worker's outbound sender on the moving clock, the receiver."""

    def __init__(self, settings: Settings, db: Database, receiver: Receiver) -> None:
        self.settings, self.db, self.receiver = settings, db, receiver
        self.clock = Moving()
        self.app = create_app(settings, database=db)
        self.ctx = AppContext(settings, database=db)
        self.sender = OutboundSender(build(self.ctx, clock=self.clock).env)
        self.admin: httpx.AsyncClient | None = None

    async def api(self) -> httpx.AsyncClient:
        if self.admin is None:
            _, raw = await create_user(self.db, Role.ADMIN, email="hooks@example.com")
            self.admin = app_client(self.app, raw)
        return self.admin

    async def endpoint(self, url: str | None = None, **body: Any) -> dict[str, Any]:
        admin = await self.api()
        payload = {"url": url or self.receiver.url, "events": ["campaign.started"]} | body
        made = await admin.post("/api/webhooks", json=payload)
        assert made.status_code == 201, made.text
        return dict(made.json())

    async def emit(self, event_type: str, campaign_id: int | None = None, **data: Any) -> str:
        async with self.db.transaction() as session:
            event = await outbound_events.emit(session, event_type, data, campaign_id=campaign_id)
            return event.uid

    async def log(self, endpoint_id: int) -> list[dict[str, Any]]:
        admin = await self.api()
        answer = await admin.get(f"/api/webhooks/{endpoint_id}/deliveries")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    async def close(self) -> None:
        await self.sender.close()
        if self.admin is not None:
            await self.admin.aclose()
        await self.ctx.close()
        await self.app.state.context.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(settings: Settings, db: Database, receiver: Receiver) -> AsyncIterator[Harness]:
    allowed = settings.model_copy(update={"webhooks_allow_private_targets": True})
    made = Harness(allowed, db, receiver)
    yield made
    await made.close()


@pytest.fixture
async def guarded(settings: Settings, db: Database, receiver: Receiver) -> AsyncIterator[Harness]:
    """The default: private targets refused."""
    assert settings.webhooks_allow_private_targets is False
    made = Harness(settings, db, receiver)
    yield made
    await made.close()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> int:
    """Check Pagecast-Signature as a receiver would (docs/webhooks.md); its timestamp."""
    parts = dict(item.split("=", 1) for item in headers["Pagecast-Signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "signature does not verify"
    return int(parts["t"])


async def test_a_failing_endpoint_is_retried_then_delivered_with_a_valid_signature(
    harness: Harness, receiver: Receiver
) -> None:
    made = await harness.endpoint()
    receiver.answers = [500]
    uid = await harness.emit("campaign.started", campaign_id=7, name="Spring")
    assert await harness.sender.run_once() == 1
    [first] = await harness.log(made["id"])
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["last_status_code"] == 500 and first["excerpt"] == "answer 500"
    assert "HTTP 500" in first["last_error"]
    retry_at = datetime.fromisoformat(first["next_attempt_at"])
    assert harness.clock.now() + timedelta(seconds=20) <= retry_at  # backoff, with jitter
    assert await harness.sender.run_once() == 0  # not due yet
    harness.clock.at = retry_at + timedelta(seconds=1)
    assert await harness.sender.run_once() == 1
    [done] = await harness.log(made["id"])
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert done["last_status_code"] == 200 and done["last_response_ms"] is not None
    assert done["next_attempt_at"] is None and done["delivered_at"] is not None
    assert len(receiver.got) == 2
    headers, body = receiver.got[1]
    assert _verify(made["secret"], headers, body) == int(harness.clock.time())
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("Pagecast-Webhooks/")
    sent = json.loads(body)
    assert sent["id"] == uid and sent["type"] == "campaign.started"
    assert sent["data"] == {"name": "Spring"} and sent["created_at"].endswith("Z")
    assert set(sent) == {"id", "type", "created_at", "data"}
    # A wrong secret does not verify: the test's check is real.
    with pytest.raises(AssertionError):
        _verify("whsec_wrong", headers, body)


async def test_an_endpoint_that_does_not_answer_in_time_is_a_failed_attempt(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    quick = settings.model_copy(
        update={"webhooks_allow_private_targets": True, "webhooks_timeout_seconds": 0.3}
    )
    harness = Harness(quick, db, receiver)
    try:
        made = await harness.endpoint()
        receiver.hang = True
        await harness.emit("campaign.started")
        assert await harness.sender.run_once() == 1
        [item] = await harness.log(made["id"])
        assert item["status"] == "pending" and item["last_status_code"] is None
        assert item["last_error"].startswith("timed out")
        assert len(receiver.got) == 1
    finally:
        receiver.released.set()
        await harness.close()


async def test_retries_stop_24_hours_after_the_event_and_the_delivery_fails(
    harness: Harness, receiver: Receiver
) -> None:
    made = await harness.endpoint()
    receiver.answers = [503] * 100
    await harness.emit("campaign.started", campaign_id=1)
    await harness.sender.run_once()
    for _ in range(60):
        [item] = await harness.log(made["id"])
        if item["status"] != "pending":
            break
        harness.clock.at = datetime.fromisoformat(item["next_attempt_at"])
        await harness.sender.run_once()
    assert item["status"] == "failed" and item["next_attempt_at"] is None
    assert 10 < item["attempts"] < 60  # backoff: about 30 s doubling, at most an hour apart
    # The last attempt is the one at the event's time + 24 h, not later.
    created = datetime.fromisoformat(item["event"]["created_at"])
    assert datetime.fromisoformat(item["last_attempt_at"]) == created + timedelta(hours=24)
    # Failed is final: nothing more is sent.
    harness.clock.advance(hours=5)
    assert await harness.sender.run_once() == 0


async def test_a_private_target_is_refused_unless_the_setting_allows_it(
    guarded: Harness, receiver: Receiver
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    literal = await guarded.endpoint()
    by_name = await guarded.endpoint(url=f"http://localhost:{port}/hook")
    await guarded.emit("campaign.started")
    assert await guarded.sender.run_once() == 2
    assert receiver.got == []
    for made, where in ((literal, "127.0.0.1"), (by_name, "localhost")):
        [item] = await guarded.log(made["id"])
        assert item["status"] == "pending" and item["last_status_code"] is None
        error = item["last_error"]
        assert error.startswith(f"refused: {where} ") and "loopback" in error
        assert "PAGECAST_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true" in error


async def test_with_the_setting_on_a_private_target_is_delivered(
    harness: Harness, receiver: Receiver
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    made = await harness.endpoint(url=f"http://localhost:{port}/hook")
    await harness.emit("campaign.started")
    assert await harness.sender.run_once() == 1
    assert [i["status"] for i in await harness.log(made["id"])] == ["delivered"]
    assert len(receiver.got) == 1


async def test_a_campaigns_events_arrive_in_order_per_endpoint(
    harness: Harness, receiver: Receiver
) -> None:
    made = await harness.endpoint(
        events=["campaign.started", "campaign.completed", "contact.opted_out"]
    )
    receiver.answers = [500]  # the campaign's first event fails once
    await harness.emit("campaign.started", campaign_id=3, campaign=3)
    await harness.emit("campaign.completed", campaign_id=3, campaign=3)
    await harness.emit("contact.opted_out", psid="1")  # no campaign: not held back
    await harness.emit("campaign.started", campaign_id=4, campaign=4)  # another campaign
    # First pass: campaign 3's "completed" waits behind its pending "started".
    assert await harness.sender.run_once() == 3
    assert "campaign.completed" not in [e["type"] for e in receiver.events()]
    for _ in range(3):
        harness.clock.advance(hours=1)
        await harness.sender.run_once()
    of_3 = [e["type"] for e in receiver.events() if e["data"].get("campaign") == 3]
    assert of_3 == ["campaign.started", "campaign.started", "campaign.completed"]
    assert len(receiver.got) == 5
    assert all(i["status"] == "delivered" for i in await harness.log(made["id"]))


async def test_send_again_and_the_test_ping_reach_the_receiver(
    harness: Harness, receiver: Receiver
) -> None:
    made = await harness.endpoint()
    other = await harness.endpoint()
    admin = await harness.api()
    uid = await harness.emit("campaign.started", campaign_id=2)
    await harness.sender.run_once()
    assert len(receiver.got) == 2  # one per endpoint
    [item] = await harness.log(made["id"])
    again = await admin.post(f"/api/webhooks/{made['id']}/deliveries/{item['id']}/redeliver")
    assert again.status_code == 202, again.text
    ping = await admin.post(f"/api/webhooks/{made['id']}/ping")
    assert ping.status_code == 202, ping.text
    assert await harness.sender.run_once() == 2
    sent = receiver.events()[2:]
    assert sorted(e["type"] for e in sent) == ["campaign.started", "webhook.ping"]
    assert next(e for e in sent if e["type"] == "campaign.started")["id"] == uid
    for headers, body in receiver.got[2:]:
        _verify(made["secret"], headers, body)
    [redone] = [i for i in await harness.log(made["id"]) if i["id"] == item["id"]]
    assert redone["status"] == "delivered" and redone["attempts"] == 2
    assert len(await harness.log(other["id"])) == 1  # the ping went to one endpoint only


async def test_an_endpoint_failing_for_3_days_is_turned_off_and_recorded(
    harness: Harness, receiver: Receiver, db: Database
) -> None:
    made = await harness.endpoint()
    receiver.answers = [500] * 100
    await harness.emit("campaign.started")
    await harness.sender.run_once()
    started_failing = harness.clock.now()
    shown = (await (await harness.api()).get(f"/api/webhooks/{made['id']}")).json()
    assert datetime.fromisoformat(shown["failing_since"]) == started_failing
    harness.clock.at = started_failing + timedelta(days=2, hours=23)
    await harness.sender.run_once()
    assert (await (await harness.api()).get(f"/api/webhooks/{made['id']}")).json()["enabled"]
    harness.clock.at = started_failing + timedelta(days=3)
    await harness.emit("campaign.started")  # owed now, but the endpoint is turned off first
    await harness.sender.run_once()
    after = (await (await harness.api()).get(f"/api/webhooks/{made['id']}")).json()
    assert after["enabled"] is False and after["disabled_by"] == "system"
    assert "3 days" in after["disabled_reason"]
    async with db.transaction() as session:
        entry = await session.scalar(select(AuditLog).where(AuditLog.action == "webhook.disabled"))
    assert entry is not None and entry.actor == "system" and entry.object_id == made["id"]
    # The admins are told on every dashboard page; a manager is not.
    assert 'id="webhooks-off"' in await _dashboard(harness, db, Role.ADMIN)
    assert 'id="webhooks-off"' not in await _dashboard(harness, db, Role.MANAGER)
    sent = len(receiver.got)
    harness.clock.advance(hours=1)
    assert await harness.sender.run_once() == 0 and len(receiver.got) == sent
    # Turned on again: the failing state is cleared and the waiting delivery goes out.
    receiver.answers = []
    on = await (await harness.api()).patch(f"/api/webhooks/{made['id']}", json={"enabled": True})
    assert on.json()["failing_since"] is None
    assert await harness.sender.run_once() >= 1


async def _dashboard(harness: Harness, db: Database, role: Role) -> str:
    user, _ = await create_user(db, role, email=f"{role.value}-seen@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        answer = await browser.get("/campaigns")
    assert answer.status_code == 200
    return answer.text


async def test_a_success_clears_the_failing_state(harness: Harness, receiver: Receiver) -> None:
    made = await harness.endpoint()
    receiver.answers = [500]
    await harness.emit("campaign.started")
    await harness.sender.run_once()
    harness.clock.advance(hours=1)
    await harness.sender.run_once()
    shown = (await (await harness.api()).get(f"/api/webhooks/{made['id']}")).json()
    assert shown["failing_since"] is None and shown["enabled"] is True


async def test_two_workers_never_send_the_same_delivery_at_once(
    harness: Harness, receiver: Receiver, settings: Settings, db: Database
) -> None:
    made = await harness.endpoint()
    for n in range(6):
        await harness.emit("campaign.started", n=n)
    allowed = settings.model_copy(update={"webhooks_allow_private_targets": True})
    second_ctx = AppContext(allowed, database=db)
    second = OutboundSender(build(second_ctx, clock=harness.clock).env)
    try:
        counts = await asyncio.gather(harness.sender.run_once(), second.run_once())
    finally:
        await second.close()
        await second_ctx.close()
    assert sum(counts) == 6
    assert sorted(e["data"]["n"] for e in receiver.events()) == list(range(6))
    async with db.transaction() as session:
        attempts = list(await session.scalars(select(OutboundAttempt)))
        deliveries = list(await session.scalars(select(OutboundDelivery)))
    assert len(attempts) == 6 and {d.status for d in deliveries} == {"delivered"}
    assert len(await harness.log(made["id"])) == 6


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_which_addresses_the_guard_refuses(address: str, kind: str | None) -> None:
    why = refusal(address)
    if kind is None:
        assert why is None
    else:
        article = "an" if kind == "unspecified" else "a"
        assert why is not None and why.endswith(f" is {article} {kind} address"), why


async def test_the_ping_event_cannot_be_emitted_to_subscribers(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValueError, match="unknown outbound event type"):
            await outbound_events.emit(session, outbound_events.PING, {})


async def _someone_waits_for_a_row_lock(db: Database) -> bool:
    async with db.transaction() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_turn_a_long_failing_endpoint_off_once(
    harness: Harness, db: Database
) -> None:
    # Row locks decide this race, so it runs where there are row locks (PostgreSQL): the
    # second worker read the endpoint as on before the first committed turning it off.
    made = await harness.endpoint()
    now = harness.clock.now()
    async with db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, made["id"])
        assert endpoint is not None
        endpoint.failing_since = now - timedelta(days=3, minutes=1)
    turned, release = asyncio.Event(), asyncio.Event()

    async def first() -> list[int]:
        async with db.transaction() as session:
            found = await outbound_deliveries.disable_long_failing(session, now)
            turned.set()
            await release.wait()
            return found

    async def second() -> list[int]:
        async with db.transaction() as session:
            return await outbound_deliveries.disable_long_failing(session, now)

    one = asyncio.create_task(first())
    await asyncio.wait_for(turned.wait(), 10)
    two = asyncio.create_task(second())
    deadline = asyncio.get_running_loop().time() + 10
    while not await _someone_waits_for_a_row_lock(db):
        assert asyncio.get_running_loop().time() < deadline, "the second never waited"
        await asyncio.sleep(0.01)
    release.set()
    assert await one == [made["id"]]
    assert await asyncio.wait_for(two, 10) == []
    async with db.transaction() as session:
        entries = list(
            await session.scalars(select(AuditLog).where(AuditLog.action == "webhook.disabled"))
        )
    assert len(entries) == 1


async def test_send_again_during_an_attempt_waits_for_it_then_sends_once_more(
    harness: Harness, receiver: Receiver, settings: Settings, db: Database
) -> None:
    made = await harness.endpoint()
    admin = await harness.api()
    await harness.emit("campaign.started")
    receiver.hang = True  # the first attempt is under way until released
    first = asyncio.create_task(harness.sender.run_once())
    deadline = asyncio.get_running_loop().time() + 10
    while not receiver.got:
        assert asyncio.get_running_loop().time() < deadline, "the attempt never arrived"
        await asyncio.sleep(0.01)
    [item] = await harness.log(made["id"])
    again = await admin.post(f"/api/webhooks/{made['id']}/deliveries/{item['id']}/redeliver")
    assert again.status_code == 202, again.text
    # Another worker does not send it while the first attempt is under way.
    allowed = settings.model_copy(update={"webhooks_allow_private_targets": True})
    second_ctx = AppContext(allowed, database=db)
    second = OutboundSender(build(second_ctx, clock=harness.clock).env)
    try:
        assert await second.run_once() == 0
        assert len(receiver.got) == 1
        receiver.released.set()
        assert await asyncio.wait_for(first, 10) == 1
        # The attempt was delivered, and the "send again" asked during it is still owed.
        [item] = await harness.log(made["id"])
        assert item["status"] == "pending" and item["attempts"] == 1
        assert await second.run_once() == 1
    finally:
        receiver.released.set()
        await second.close()
        await second_ctx.close()
    assert len(receiver.got) == 2
    [item] = await harness.log(made["id"])
    assert item["status"] == "delivered" and item["attempts"] == 2


async def test_a_secret_the_key_cannot_decrypt_is_a_failed_attempt_that_says_what_to_do(
    harness: Harness, receiver: Receiver, db: Database
) -> None:
    made = await harness.endpoint()
    async with db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, made["id"])
        assert endpoint is not None
        endpoint.secret_encrypted = "encrypted-with-another-key"
    await harness.emit("campaign.started")
    assert await harness.sender.run_once() == 1
    [item] = await harness.log(made["id"])
    assert item["status"] == "pending" and item["attempts"] == 1
    assert "cannot be decrypted" in item["last_error"] and "rotate-secret" in item["last_error"]
    assert receiver.got == []
