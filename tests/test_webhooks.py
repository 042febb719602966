"""The Messenger webhook: verification, signatures over raw bytes, idempotent storage,
inbound messages and opt-outs, receipts (watermarks, never backwards) and echoes.

The simulator's emitter posts real signed bytes to the app served by uvicorn on a loopback
port inside the test's own event loop, so the app shares the test's database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select, update

from factories import app_client, connected_page, engine_settings
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Page, WebhookEvent
from pagecast.security import Vault
from pagecast.services import webhooks
from pagecast.services.inbound import OPT_OUT_REPLY
from pagecast.settings import Settings
from pagecast.web.app import create_app
from test_sending import (
    PAGE,
    RunningWorker,
    add_people,
    deliveries_by_psid,
    new_campaign,
    outbox,
    setup_page,
    wait_for,
)

APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-me-please"
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens: events are processed inline


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "app_secret": SecretStr(APP_SECRET),
            "webhook_verify_token": SecretStr(VERIFY_TOKEN),
        }
    )


@pytest.fixture
async def inline_app(hook_settings: Settings, db: Database) -> AsyncIterator[Any]:
    """The app without a reachable Redis: webhook events are processed in the web process."""
    application = create_app(hook_settings.model_copy(update={"redis_url": NO_REDIS}), database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def hook(inline_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(inline_app) as client:
        yield client


def wire(payload: dict[str, Any]) -> bytes:
    """Meta's serialisation: ASCII-only with \\uXXXX escapes, `/` written as `\\/`."""
    return (
        json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    )


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def envelope(*events: dict[str, Any], page: str = PAGE) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page, "time": 1, "messaging": list(events)}]}


def inbound(psid: str, text: str, mid: str, ts: int | None = None) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": ts or int(time.time() * 1000),
        "message": {"mid": mid, "text": text},
    }


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    body = wire(payload)
    return await client.post("/webhooks/messenger", content=body, headers=signed(body))


async def count_events(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count(WebhookEvent.id))) or 0)


async def contact(db: Database, psid: str) -> Contact | None:
    async with db.transaction() as session:
        return await session.scalar(select(Contact).where(Contact.psid == psid))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- verification and signatures


async def test_verification_echoes_the_challenge_only_for_the_right_token(
    hook: httpx.AsyncClient,
) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    ok = await hook.get("/webhooks/messenger", params=params)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = await hook.get("/webhooks/messenger", params=params | {"hub.verify_token": "nope"})
    assert wrong.status_code == 403
    bad_mode = await hook.get("/webhooks/messenger", params=params | {"hub.mode": "unsubscribe"})
    assert bad_mode.status_code == 403
    assert (await hook.get("/webhooks/messenger")).status_code == 403


async def test_only_correctly_signed_bodies_are_stored(
    hook: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    # Non-ASCII text arrives as \u escapes and `/` as `\/`: the HMAC is over these bytes.
    payload = envelope(inbound("501", "Grüße / ünïcödé ✓ https://example.com/a", "m_valid"))
    body = wire(payload)
    assert b"\\u00fc" in body and b"\\/" in body
    assert (
        await hook.post("/webhooks/messenger", content=body, headers=signed(body))
    ).status_code == 200
    # Re-serialised JSON (unescaped) is different bytes: the original signature must fail.
    plain = json.dumps(payload, ensure_ascii=False).encode()
    assert (
        await hook.post("/webhooks/messenger", content=plain, headers=signed(body))
    ).status_code == 403

    def other(mid: str) -> bytes:
        return wire(envelope(inbound("501", "hello", mid)))

    missing = other("m_missing")
    response = await hook.post(
        "/webhooks/messenger", content=missing, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 403
    wrong = other("m_wrong")
    response = await hook.post("/webhooks/messenger", content=wrong, headers=signed(wrong, "x"))
    assert response.status_code == 403
    # Legacy SHA-1 alone is not enough.
    sha1_only = other("m_sha1")
    digest = hmac.new(APP_SECRET.encode(), sha1_only, hashlib.sha1).hexdigest()
    response = await hook.post(
        "/webhooks/messenger", content=sha1_only, headers={"X-Hub-Signature": f"sha1={digest}"}
    )
    assert response.status_code == 403
    # Nor is a correct SHA-1 put into X-Hub-Signature-256: only HMAC-SHA256 authenticates.
    response = await hook.post(
        "/webhooks/messenger",
        content=sha1_only,
        headers={"X-Hub-Signature-256": f"sha1={digest}", "Content-Type": "application/json"},
    )
    assert response.status_code == 403
    # Hex case carries no information: uppercase hex is accepted (Meta sends lowercase).
    upper = other("m_upper")
    headers = signed(upper)
    headers["X-Hub-Signature-256"] = "sha256=" + headers["X-Hub-Signature-256"][7:].upper()
    assert (
        await hook.post("/webhooks/messenger", content=upper, headers=headers)
    ).status_code == 200
    async with db.transaction() as session:
        keys = set(await session.scalars(select(WebhookEvent.event_key)))
        text = await session.scalar(
            select(WebhookEvent.payload).where(WebhookEvent.event_key == "mid:m_valid")
        )
    assert keys == {"mid:m_valid", "mid:m_upper"}
    assert text is not None and text["message"]["text"] == "Grüße / ünïcödé ✓ https://example.com/a"


async def test_a_page_with_its_own_app_secret_is_checked_with_that_secret(
    hook: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    async with db.transaction() as session:
        await session.execute(
            update(Page).where(Page.id == page.id).values(app_secret_encrypted=vault.encrypt("own"))
        )
    body = wire(envelope(inbound("502", "hi", "m_own")))
    assert (
        await hook.post("/webhooks/messenger", content=body, headers=signed(body))
    ).status_code == 403
    response = await hook.post("/webhooks/messenger", content=body, headers=signed(body, "own"))
    assert response.status_code == 200
    assert await count_events(db) == 1


async def test_the_same_event_delivered_three_times_is_stored_and_processed_once(
    hook: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    event = inbound("503", "hello", "m_dup")
    stored = [(await post(hook, envelope(event))) for _ in range(2)]
    # The third time the same event comes twice in one POST (two entries), as Meta does.
    twice = {"object": "page", "entry": [envelope(event)["entry"][0]] * 2}
    stored.append(await post(hook, twice))
    assert [r.json()["stored"] for r in stored] == [1, 0, 0]
    assert await count_events(db) == 1
    async with db.transaction() as session:
        rows = list(await session.scalars(select(Contact).where(Contact.psid == "503")))
        event_row = await session.scalar(select(WebhookEvent))
    assert len(rows) == 1 and rows[0].last_inbound_at is not None
    assert event_row is not None and event_row.processed_at is not None and event_row.error is None


# ---------------------------------------------------------------- the simulator's emitter


class LoopbackApp:
    """The app served by uvicorn on a free loopback port, in the test's event loop."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: _started(self.server), timeout=10)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/webhooks/messenger"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=10)


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


async def point_simulator(sim: httpx.AsyncClient, url: str, **knobs: Any) -> None:
    response = await sim.post(
        "/__sim/webhook",
        json={"url": url, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "enabled": True},
    )
    assert response.status_code == 200, response.text
    if knobs:
        assert (await sim.post("/__sim/knobs", json=knobs)).status_code == 200


async def test_inbound_messages_open_the_window_and_keywords_opt_out_and_in(
    inline_app: Any, hook_settings: Settings, sim: httpx.AsyncClient, db: Database, api: Any
) -> None:
    from pagecast.models import Role

    admin = await api(Role.ADMIN)
    page_id = await setup_page(admin, sim)
    async with LoopbackApp(inline_app) as url:
        await point_simulator(sim, url)
        verified = (await sim.post("/__sim/webhook/verify")).json()
        assert verified["ok"], verified
        person = {"page_id": PAGE, "psid": "7001", "first_name": "Ada", "last_name": "Lovelace"}
        assert (await sim.post("/__sim/users", json=person)).status_code in (200, 201)
        await sim.post("/__sim/inbound", json={"page_id": PAGE, "psid": "7001", "text": "Hi there"})
        await sim.post("/__sim/inbound", json={"page_id": PAGE, "psid": "7002", "text": "Hello"})
        await sim.post("/__sim/webhook/flush")

        async def both_known() -> bool:
            return all([await contact(db, "7001"), await contact(db, "7002")])

        await until(both_known)
        first = await contact(db, "7001")
        assert first is not None and first.last_inbound_at is not None
        assert first.opted_out_at is None
        await sim.post("/__sim/inbound", json={"page_id": PAGE, "psid": "7001", "text": " stop "})
        await sim.post("/__sim/webhook/flush")

        async def opted_out() -> bool:
            row = await contact(db, "7001")
            return row is not None and row.opted_out_at is not None

        await until(opted_out)

        async def replies() -> list[dict[str, Any]]:
            sent = await sim.get("/__sim/outbox", params={"page_id": PAGE, "psid": "7001"})
            return sent.json()["messages"]  # type: ignore[no-any-return]

        async def confirmed() -> bool:
            return len(await replies()) == 1

        await until(confirmed)
        reply = (await replies())[0]
        assert reply["message"]["text"] == OPT_OUT_REPLY
        assert reply["messaging_type"] == "RESPONSE"

        # The profile lookup is paced per Page (5 a second), so it may come after the
        # confirmation: wait for the names rather than assume the order.
        async def named() -> bool:
            row = await contact(db, "7001")
            return row is not None and (row.first_name, row.last_name) == ("Ada", "Lovelace")

        await until(named)
        # A second STOP while opted out changes nothing and is not confirmed again.
        await sim.post("/__sim/inbound", json={"page_id": PAGE, "psid": "7001", "text": "STOP"})
        campaign_id = await new_campaign(admin, page_id)
        preview = (await admin.get(f"/api/campaigns/{campaign_id}/audience")).json()
        assert (preview["eligible"], preview["excluded"]["opted_out"]) == (1, 1)
        # Other text (even containing the keyword) does not opt back in or out.
        await sim.post(
            "/__sim/inbound", json={"page_id": PAGE, "psid": "7001", "text": "please stop it"}
        )
        await sim.post("/__sim/inbound", json={"page_id": PAGE, "psid": "7001", "text": "START"})
        await sim.post("/__sim/webhook/flush")

        async def opted_in() -> bool:
            row = await contact(db, "7001")
            return row is not None and row.opted_out_at is None

        await until(opted_in)
        assert len(await replies()) == 1
        preview = (await admin.get(f"/api/campaigns/{campaign_id}/audience")).json()
        assert (preview["eligible"], preview["excluded"]["opted_out"]) == (2, 0)
        await sim.post(
            "/__sim/postback",
            json={"page_id": PAGE, "psid": "7003", "payload": "GET_STARTED", "title": "Start"},
        )
        await sim.post("/__sim/webhook/flush")

        async def postback_contact() -> bool:
            row = await contact(db, "7003")
            return row is not None and row.last_inbound_at is not None

        await until(postback_contact)


# ---------------------------------------------------------------- receipts and echoes


@pytest.fixture(name="engine_settings")
def _engine_settings(hook_settings: Settings, redis_url: str) -> Settings:
    return engine_settings(hook_settings, redis_url, worker_concurrency=20)


@pytest.fixture
async def engine(engine_settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(engine_settings, database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def people_admin(engine: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    from factories import create_user
    from pagecast.models import Role

    _, raw = await create_user(db, Role.ADMIN, email="hooks@example.com")
    async with app_client(engine, raw) as client:
        yield client


def receipt(kind: str, psid: str, watermark: int) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": watermark + 10,
        kind: {"watermark": watermark},
    }


async def counts(client: httpx.AsyncClient, campaign_id: int) -> dict[str, int]:
    return (await client.get(f"/api/campaigns/{campaign_id}")).json()["counts"]  # type: ignore[no-any-return]


async def test_receipts_out_of_order_never_move_a_status_backwards(
    people_admin: httpx.AsyncClient,
    hook: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(people_admin, sim)
    psids = await add_people(sim, people_admin, page_id, 3)
    campaign_id = await new_campaign(people_admin, page_id)
    assert (await people_admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with RunningWorker(engine_settings, db):
        await wait_for(people_admin, campaign_id, {"completed"})
    sent = {m["psid"]: m for m in await outbox(sim)}
    a, b, c = psids
    # a: its echo (Facebook's time for the send) comes first; then read, then an older delivery.
    echo_a = {
        "sender": {"id": PAGE},
        "recipient": {"id": a},
        "timestamp": sent[a]["timestamp_ms"],
        "message": {"is_echo": True, "mid": sent[a]["mid"], "metadata": sent[a]["metadata"]},
    }
    assert (await post(hook, envelope(echo_a))).status_code == 200
    await post(hook, envelope(receipt("read", a, sent[a]["timestamp_ms"])))
    await post(hook, envelope(receipt("delivery", a, sent[a]["timestamp_ms"])))
    # b: the Send call answered late (our sent_at is seconds after Facebook's time), and the
    # read receipt arrives before the echo: it covers nothing until the echo applies it.
    rows = await deliveries_by_psid(db, campaign_id)
    # Five seconds after Facebook's own time for the send (the session's simulator clock may
    # run ahead of ours: another test moved it forward, and it only moves forward).
    facebook_time = datetime.fromtimestamp(sent[b]["timestamp_ms"] / 1000, UTC)
    if rows[b].sent_at.tzinfo is None:
        facebook_time = facebook_time.replace(tzinfo=None)
    async with db.transaction() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == rows[b].id)
            .values(sent_at=facebook_time + timedelta(seconds=5))
        )
    await post(hook, envelope(receipt("read", b, sent[b]["timestamp_ms"])))
    rows = await deliveries_by_psid(db, campaign_id)
    assert rows[b].status is DeliveryStatus.SENT
    echo_b = echo_a | {
        "recipient": {"id": b},
        "timestamp": sent[b]["timestamp_ms"],
        "message": {"is_echo": True, "mid": sent[b]["mid"], "metadata": sent[b]["metadata"]},
    }
    await post(hook, envelope(echo_b))
    # c: a delivery receipt naming its mid, with a watermark before the send, then the same
    # receipt again.
    early = {
        "sender": {"id": c},
        "recipient": {"id": PAGE},
        "timestamp": sent[c]["timestamp_ms"] + 5,
        "delivery": {"mids": [sent[c]["mid"]], "watermark": sent[c]["timestamp_ms"] - 1000},
    }
    await post(hook, envelope(early))
    await post(hook, envelope(early))
    rows = await deliveries_by_psid(db, campaign_id)
    assert rows[a].status is DeliveryStatus.READ and rows[a].delivered_at is not None
    assert rows[b].status is DeliveryStatus.READ
    assert rows[c].status is DeliveryStatus.DELIVERED
    assert rows[a].message_id == sent[a]["mid"]
    got = await counts(people_admin, campaign_id)
    assert (got["sent"], got["delivered"], got["read"]) == (0, 1, 2)


async def test_an_echo_turns_an_unknown_delivery_into_sent_and_receipts_flow_in(
    people_admin: httpx.AsyncClient,
    engine: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(people_admin, sim)
    psids = await add_people(sim, people_admin, page_id, 6)
    ambiguous = psids[0]
    await sim.post(
        "/__sim/script", json={"match": {"psid": ambiguous}, "responses": [{"timeout": "after"}]}
    )
    campaign_id = await new_campaign(people_admin, page_id)
    async with LoopbackApp(engine) as url:
        await point_simulator(
            sim,
            url,
            delivery_delay=[0, 0],
            read_delay=[0, 0],
            p_delivered=1.0,
            p_read=1.0,
            p_duplicate=0.3,
        )
        assert (await people_admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
        running = RunningWorker(engine_settings, db)
        running.worker.config = dataclasses.replace(
            running.worker.config, sweep_seconds=0.3, webhook_retry_after=0.0
        )
        async with running:
            await wait_for(people_admin, campaign_id, {"completed"})
            await sim.post("/__sim/webhook/flush")

            async def all_read_and_taken_in() -> bool:
                # A duplicate event (p_duplicate) can still be waiting for the worker after
                # the last read counted: wait for it too.
                got = await counts(people_admin, campaign_id)
                async with db.transaction() as session:
                    waiting = await session.scalar(
                        select(func.count(WebhookEvent.id)).where(
                            WebhookEvent.processed_at.is_(None)
                        )
                    )
                return got["read"] == 6 and waiting == 0

            await until(all_read_and_taken_in, timeout=30)
    rows = await deliveries_by_psid(db, campaign_id)
    sent = {m["psid"]: m for m in await outbox(sim)}
    assert sorted(sent) == sorted(psids)  # one message each, the ambiguous one included
    assert rows[ambiguous].reason is None and rows[ambiguous].message_id == sent[ambiguous]["mid"]
    assert all(rows[p].status is DeliveryStatus.READ for p in psids)
    got = await counts(people_admin, campaign_id)
    assert (got["unknown"], got["sent"], got["delivered"], got["read"]) == (0, 0, 0, 6)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        pending = await session.scalar(
            select(func.count(WebhookEvent.id)).where(WebhookEvent.processed_at.is_(None))
        )
        total = await session.scalar(select(func.count(Delivery.id)))
    assert campaign is not None and campaign.n_read == 6 and total == 6
    assert pending == 0


async def test_an_echo_that_arrives_while_the_delivery_is_sending_settles_its_outcome(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """Echoes often arrive before the worker writes the Send API's answer. The echo is noted
    at once (not left for the sweep); if the answer then turns out lost — a timeout (a), or
    the worker died (b), or even an error answer that would be retried (d) — the noted echo
    makes it `sent` and it is never sent again; without one it stays unknown (c)."""
    from pagecast.models import utcnow
    from pagecast.services import deliveries as deliveries_service

    page_id = await setup_page(people_admin, sim)
    a, b, c, d = await add_people(sim, people_admin, page_id, 4)
    campaign_id = await new_campaign(people_admin, page_id)
    assert (await people_admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    ids = sorted(r.id for r in rows.values())
    async with db.transaction() as session:
        claimed = await deliveries_service.claim(
            session, campaign_id, ids[0], ids[-1], worker_id="w:1:alive", now=utcnow()
        )
    assert len(claimed) == 4
    for psid in (a, b, d):
        echo = {
            "sender": {"id": PAGE},
            "recipient": {"id": psid},
            "timestamp": int(time.time() * 1000),
            "message": {"is_echo": True, "mid": f"m_{psid}", "metadata": str(rows[psid].id)},
        }
        assert (await post(hook, envelope(echo))).status_code == 200
    async with db.transaction() as session:
        waiting = await session.scalar(
            select(func.count(WebhookEvent.id)).where(WebhookEvent.processed_at.is_(None))
        )
    assert waiting == 0
    rows = await deliveries_by_psid(db, campaign_id)
    assert [(rows[p].status, rows[p].message_id) for p in (a, b, c, d)] == [
        (DeliveryStatus.SENDING, f"m_{a}"),
        (DeliveryStatus.SENDING, f"m_{b}"),
        (DeliveryStatus.SENDING, None),
        (DeliveryStatus.SENDING, f"m_{d}"),
    ]
    async with db.transaction() as session:
        moved = await deliveries_service.record(
            session,
            campaign_id,
            [
                *(
                    deliveries_service.Outcome(
                        rows[p].id, DeliveryStatus.UNKNOWN, reason="ambiguous"
                    )
                    for p in (a, c)
                ),
                deliveries_service.Outcome(
                    rows[d].id, DeliveryStatus.PENDING, reason="retrying", error_code=2
                ),
            ],
            worker_id="w:1:alive",
            now=utcnow(),
        )
        assert (
            moved[DeliveryStatus.SENT],
            moved[DeliveryStatus.UNKNOWN],
            moved[DeliveryStatus.PENDING],
        ) == (2, 1, 0)
        lost = await deliveries_service.lost_claims(session, {"w:1:other"}, utcnow())
        assert lost == {campaign_id: 0}  # b was claimed by the dead worker, and is settled
    rows = await deliveries_by_psid(db, campaign_id)
    assert [(rows[p].status, rows[p].message_id) for p in (a, b, c, d)] == [
        (DeliveryStatus.SENT, f"m_{a}"),
        (DeliveryStatus.SENT, f"m_{b}"),
        (DeliveryStatus.UNKNOWN, None),
        (DeliveryStatus.SENT, f"m_{d}"),
    ]
    assert rows[a].unknown_since is None and rows[c].unknown_since is not None
    assert rows[d].next_attempt_at is None  # no retry will send it again
    got = await counts(people_admin, campaign_id)
    assert (got["sent"], got["unknown"], got["sending"], got["pending"]) == (3, 1, 0, 0)


async def test_a_lost_send_is_resent_once_when_later_echoes_prove_it_never_arrived(
    people_admin: httpx.AsyncClient,
    engine: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    """A worker died holding five claims it never sent. Once they are `unknown`, a later
    campaign of the same Page gets its echoes: the echo stream is live past those attempts, so
    their missing echoes prove they never arrived, and each is sent once more after the grace
    period. One of them times out again (before reaching Facebook) on that resend: it is never
    resent a second time, and fails `ambiguous`."""
    from pagecast.models import utcnow
    from pagecast.services import deliveries as deliveries_service

    page_id = await setup_page(people_admin, sim)
    lost = await add_people(sim, people_admin, page_id, 5)
    first = await new_campaign(people_admin, page_id)
    assert (await people_admin.post(f"/api/campaigns/{first}/start")).status_code == 202
    by_psid = await deliveries_by_psid(db, first)
    ids = sorted(by_psid[p].id for p in lost)
    async with db.transaction() as session:
        claimed = await deliveries_service.claim(
            session, first, ids[0], ids[-1], worker_id="gone:1:dead", now=utcnow()
        )
    assert len(claimed) == 5
    twice_unlucky = lost[0]
    await sim.post(
        "/__sim/script",
        json={"match": {"psid": twice_unlucky}, "responses": [{"timeout": "before"}]},
    )

    def worker(grace: float) -> RunningWorker:
        running = RunningWorker(engine_settings, db)
        running.worker.config = dataclasses.replace(
            running.worker.config, sweep_seconds=0.3, webhook_retry_after=0.5, unknown_grace=grace
        )
        return running

    async with LoopbackApp(engine) as url:
        await point_simulator(sim, url, delivery_delay=[0, 0], read_delay=[0, 0])
        async with worker(grace=3600):  # the dead worker's claims become unknown

            async def all_unknown() -> bool:
                return (await counts(people_admin, first))["unknown"] == 5

            await until(all_unknown)
            # Nothing of this Page has echoed since: the grace period alone proves nothing.
            # Then another campaign of the Page sends, and its echoes arrive.
            later = await add_people(sim, people_admin, page_id, 3, start=100)
            async with db.transaction() as session:
                later_ids = list(
                    await session.scalars(select(Contact.id).where(Contact.psid.in_(later)))
                )
            unknown = await deliveries_by_psid(db, first)
            since = max(unknown[p].unknown_since for p in lost)
            second = await new_campaign(
                people_admin, page_id, audience={"type": "contacts", "ids": later_ids}
            )
            assert (await people_admin.post(f"/api/campaigns/{second}/start")).status_code == 202
            await wait_for(people_admin, second, {"completed"})

            async def echo_stream_live() -> bool:
                async with db.transaction() as session:
                    page = await session.get(Page, page_id, populate_existing=True)
                    return (
                        page is not None
                        and page.echo_seen_at is not None
                        and (page.echo_seen_at > since)
                    )

            await until(echo_stream_live)
        async with worker(grace=0.5):  # now the grace period is over
            done = await wait_for(people_admin, first, {"completed"}, timeout=30)
    rows = await deliveries_by_psid(db, first)
    resent = [p for p in lost if p != twice_unlucky]
    assert all(
        (rows[p].status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ))
        and rows[p].resent_at is not None
        for p in resent
    ), {p: (rows[p].status, rows[p].reason) for p in lost}
    unlucky = rows[twice_unlucky]
    assert (unlucky.status, unlucky.reason, unlucky.error_kind) == (
        DeliveryStatus.FAILED,
        "ambiguous",
        "ambiguous",
    )
    assert unlucky.resent_at is not None
    psids = [m["psid"] for m in await outbox(sim)]
    assert sorted(psids) == sorted(resent + later)  # each exactly once; the unlucky one never
    assert (done["counts"]["unknown"], done["counts"]["failed"]) == (0, 1)


async def test_an_older_stop_arriving_after_a_newer_start_does_not_opt_out(
    hook: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    now = int(time.time() * 1000)
    await post(hook, envelope(inbound("504", "STOP", "m_stop1", now - 3000)))
    await post(hook, envelope(inbound("504", "start", "m_start", now - 1000)))
    await post(hook, envelope(inbound("504", "Stop", "m_stop2", now - 2000)))  # late, older
    row = await contact(db, "504")
    assert row is not None and row.opted_out_at is None
    assert row.last_inbound_at is not None
    assert abs(row.last_inbound_at.timestamp() * 1000 - (now - 1000)) < 2


async def test_the_worker_sweep_processes_events_left_unprocessed(
    engine_settings: Settings, db: Database, vault: Vault
) -> None:
    await connected_page(db, vault, fb_page_id=PAGE)
    async with db.transaction() as session:  # stored, but no job was ever enqueued
        stored = await webhooks.store(session, envelope(inbound("505", "hello", "m_lost")))
    assert len(stored) == 1
    running = RunningWorker(engine_settings, db)
    running.worker.config = dataclasses.replace(
        running.worker.config, sweep_seconds=0.2, webhook_retry_after=0.0
    )
    async with running:

        async def processed() -> bool:
            async with db.transaction() as session:
                row = await session.get(WebhookEvent, stored[0].id)
                return row is not None and row.processed_at is not None

        await until(processed)
    row = await contact(db, "505")
    assert row is not None and row.last_inbound_at is not None
