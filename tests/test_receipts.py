# ruff: noqa: F811  (the fixtures imported from test_webhooks are parameters here)
"""Receipts and echoes in every order: whatever lands first (the Send API's answer written by
the worker, the echo, a delivery receipt, a read receipt), every delivery ends where
Facebook says it is (services/receipts.py).

The order tests claim deliveries as a worker would and post the webhook events to the app
(processed inline, no Redis) before or after writing the result; the campaign tests run the
whole pipeline with the simulator sending an echo, a delivery and a read receipt for every
message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pagecast.db import Database
from pagecast.models import Delivery, DeliveryStatus, WebhookEvent, utcnow
from pagecast.services import deliveries
from pagecast.settings import Settings
from pagecast.webhook_runner import run as run_webhook_events
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
from test_webhooks import (  # noqa: F401  (fixtures)
    LoopbackApp,
    _engine_settings,
    counts,
    engine,
    envelope,
    hook,
    hook_settings,
    inline_app,
    people_admin,
    point_simulator,
    post,
    until,
)

WORKER = "w:1:alive"


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def echo(psid: str, delivery_id: int, at: datetime, mid: str | None = None) -> dict[str, Any]:
    return {
        "sender": {"id": PAGE},
        "recipient": {"id": psid},
        "timestamp": ms(at),
        "message": {"is_echo": True, "mid": mid or f"m_{psid}", "metadata": str(delivery_id)},
    }


def receipt(
    kind: str, psid: str, watermark: datetime, mids: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"watermark": ms(watermark)}
    if mids is not None:
        body["mids"] = mids
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": ms(watermark) + 10,
        kind: body,
    }


async def claimed_campaign(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database, people: int
) -> tuple[int, list[str], dict[str, Delivery]]:
    """A started campaign whose deliveries a worker (WORKER) has claimed: they are `sending`."""
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, admin, page_id, people)
    campaign_id = await new_campaign(admin, page_id)
    assert (await admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    ids = sorted(r.id for r in rows.values())
    async with db.transaction() as session:
        claimed = await deliveries.claim(
            session, campaign_id, ids[0], ids[-1], worker_id=WORKER, now=utcnow()
        )
    assert len(claimed) == people
    return campaign_id, psids, rows


async def write_results(
    db: Database, campaign_id: int, outcomes: list[deliveries.Outcome], now: datetime
) -> None:
    async with db.transaction() as session:
        await deliveries.record(session, campaign_id, outcomes, worker_id=WORKER, now=now)


async def unprocessed(db: Database) -> int:
    async with db.transaction() as session:
        return int(
            await session.scalar(
                select(func.count(WebhookEvent.id)).where(WebhookEvent.processed_at.is_(None))
            )
            or 0
        )


async def test_receipts_that_arrive_before_the_result_apply_when_it_is_written(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """a: delivery receipt (with its mid) and read receipt, both before the result;
    b: a delivery receipt without mids before the result; c: a read receipt and no delivery
    receipt at all; d: no receipt (stays sent)."""
    campaign_id, (a, b, c, d), rows = await claimed_campaign(people_admin, sim, db, 4)
    accepted = utcnow()  # when Facebook took the messages
    for event in (
        receipt("delivery", a, accepted, mids=[f"m_{a}"]),
        receipt("read", a, accepted + timedelta(seconds=2)),
        receipt("delivery", b, accepted),
        receipt("read", c, accepted + timedelta(seconds=3)),
    ):
        assert (await post(hook, envelope(event))).status_code == 200
    # Taken in at once, not left for the sweep.
    assert await unprocessed(db) == 0
    still = await deliveries_by_psid(db, campaign_id)
    assert {p: still[p].status for p in (a, b, c, d)} == dict.fromkeys(
        (a, b, c, d), DeliveryStatus.SENDING
    )
    # The worker writes its results five seconds later (a slow chunk); the Send answers came
    # at `accepted`.
    await write_results(
        db,
        campaign_id,
        [
            deliveries.Outcome(
                rows[p].id, DeliveryStatus.SENT, message_id=f"m_{p}", sent_at=accepted
            )
            for p in (a, b, c, d)
        ],
        now=accepted + timedelta(seconds=5),
    )
    after = await deliveries_by_psid(db, campaign_id)
    assert {p: after[p].status for p in (a, b, c, d)} == {
        a: DeliveryStatus.READ,
        b: DeliveryStatus.DELIVERED,
        c: DeliveryStatus.READ,
        d: DeliveryStatus.SENT,
    }
    assert abs(after[a].sent_at - accepted) < timedelta(milliseconds=1)  # type: ignore[operator]
    assert after[c].delivered_at is not None and after[c].read_at is not None
    got = await counts(people_admin, campaign_id)
    assert (got["sending"], got["sent"], got["delivered"], got["read"]) == (0, 1, 1, 2)


async def test_an_echo_before_the_result_gives_the_delivery_facebooks_time(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """The echo's timestamp is Facebook's time for the message: it is kept while the delivery
    is sending, so a receipt for that time covers it even though the result is written (and
    the Send answer noted) seconds later."""
    campaign_id, (a, b), rows = await claimed_campaign(people_admin, sim, db, 2)
    accepted = utcnow() - timedelta(seconds=10)
    for psid in (a, b):
        assert (await post(hook, envelope(echo(psid, rows[psid].id, accepted)))).status_code == 200
    await write_results(
        db,
        campaign_id,
        [
            # a: answered late (our time is 4 s after Facebook's); b: the answer was lost.
            deliveries.Outcome(
                rows[a].id,
                DeliveryStatus.SENT,
                message_id=f"m_{a}",
                sent_at=accepted + timedelta(seconds=4),
            ),
            deliveries.Outcome(rows[b].id, DeliveryStatus.UNKNOWN, reason="ambiguous"),
        ],
        now=accepted + timedelta(seconds=6),
    )
    written = await deliveries_by_psid(db, campaign_id)
    assert abs(written[a].sent_at - accepted) < timedelta(milliseconds=1)  # type: ignore[operator]
    assert abs(written[b].sent_at - accepted) < timedelta(milliseconds=1)  # type: ignore[operator]
    for psid in (a, b):
        await post(hook, envelope(receipt("read", psid, accepted)))
    after = await deliveries_by_psid(db, campaign_id)
    assert (after[a].status, after[b].status) == (DeliveryStatus.READ, DeliveryStatus.READ)
    got = await counts(people_admin, campaign_id)
    assert (got["sent"], got["unknown"], got["read"]) == (0, 0, 2)


async def test_an_echo_after_its_receipts_moves_an_unknown_delivery_to_read(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """Receipt, then the result (lost: unknown), then the echo: the echo proves it was sent
    and the kept receipts move it on."""
    campaign_id, (a,), rows = await claimed_campaign(people_admin, sim, db, 1)
    accepted = utcnow()
    await post(hook, envelope(receipt("delivery", a, accepted)))
    await post(hook, envelope(receipt("read", a, accepted + timedelta(seconds=1))))
    await write_results(
        db,
        campaign_id,
        [deliveries.Outcome(rows[a].id, DeliveryStatus.UNKNOWN, reason="ambiguous")],
        now=accepted + timedelta(seconds=2),
    )
    assert (await deliveries_by_psid(db, campaign_id))[a].status is DeliveryStatus.UNKNOWN
    await post(hook, envelope(echo(a, rows[a].id, accepted)))
    after = await deliveries_by_psid(db, campaign_id)
    assert after[a].status is DeliveryStatus.READ
    got = await counts(people_admin, campaign_id)
    assert (got["unknown"], got["sent"], got["delivered"], got["read"]) == (0, 0, 0, 1)


async def test_a_receipt_for_an_earlier_time_leaves_a_later_message_sent(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """A watermark covers messages up to its time: a receipt of an older message (kept from
    before) does not mark a message sent well after it."""
    campaign_id, (a,), rows = await claimed_campaign(people_admin, sim, db, 1)
    accepted = utcnow()
    await post(hook, envelope(receipt("read", a, accepted - timedelta(seconds=30))))
    await write_results(
        db,
        campaign_id,
        [deliveries.Outcome(rows[a].id, DeliveryStatus.SENT, message_id="m1", sent_at=accepted)],
        now=accepted,
    )
    assert (await deliveries_by_psid(db, campaign_id))[a].status is DeliveryStatus.SENT
    # Its own receipt, naming its mid, and an older read receipt again (redelivered).
    await post(hook, envelope(receipt("delivery", a, accepted - timedelta(seconds=5), ["m1"])))
    await post(hook, envelope(receipt("read", a, accepted - timedelta(seconds=30))))
    assert (await deliveries_by_psid(db, campaign_id))[a].status is DeliveryStatus.DELIVERED


async def test_an_event_applied_on_a_later_try_keeps_no_error_of_the_earlier_one(
    hook: httpx.AsyncClient, people_admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    campaign_id, (a,), rows = await claimed_campaign(people_admin, sim, db, 1)
    await write_results(
        db,
        campaign_id,
        [deliveries.Outcome(rows[a].id, DeliveryStatus.SENT, message_id="m1", sent_at=utcnow())],
        now=utcnow(),
    )
    async with db.transaction() as session:
        event = WebhookEvent(
            event_key="delivery:retry-test",
            fb_page_id=PAGE,
            psid=a,
            kind="delivery",
            payload=receipt("delivery", a, utcnow()),
            received_at=utcnow(),
            error=f"delivery {rows[a].id} is still sending",  # what an earlier try said
        )
        session.add(event)
        await session.flush()
        event_id = event.id
    assert await run_webhook_events(db, [event_id]) == 1
    async with db.transaction() as session:
        stored = await session.get(WebhookEvent, event_id)
    assert stored is not None and stored.processed_at is not None
    assert stored.error is None
    assert (await deliveries_by_psid(db, campaign_id))[a].status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize(("rate", "people"), [(2, 6), (40, 80), (300, 600)])
async def test_a_campaign_everyone_reads_ends_with_every_delivery_read(
    rate: int,
    people: int,
    people_admin: httpx.AsyncClient,
    engine: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    """Facebook sends an echo, a delivery receipt (with mids) and a read receipt for every
    message, receipts 0.2–1 s and reads 2–4 s after the send: every delivery ends `read`, and
    the counters say so, at a slow, a medium and the default rate."""
    page_id = await setup_page(people_admin, sim, send_rate=rate)
    psids = await add_people(sim, people_admin, page_id, people)
    campaign_id = await new_campaign(people_admin, page_id)
    async with LoopbackApp(engine) as url:
        await point_simulator(
            sim,
            url,
            p_delivered=1.0,
            p_read=1.0,
            p_omit_mids=0.0,
            delivery_delay=[0.2, 1.0],
            read_delay=[2.0, 4.0],
        )
        assert (await people_admin.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
        running = RunningWorker(engine_settings, db)
        # The sweep (which retries events left unprocessed) stays out of the way: receipts
        # must apply without it.
        running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=3600)
        started = time.monotonic()
        async with running:
            await wait_for(people_admin, campaign_id, {"completed"}, timeout=60 + people / rate)

            async def all_read() -> bool:
                return (await counts(people_admin, campaign_id))["read"] == people

            with contextlib.suppress(AssertionError):  # the assertions below say what is missing
                await until(all_read, timeout=30)
    got = await counts(people_admin, campaign_id)
    rows = await deliveries_by_psid(db, campaign_id)
    by_status: dict[str, int] = {}
    for row in rows.values():
        by_status[row.status.value] = by_status.get(row.status.value, 0) + 1
    assert len(await outbox(sim)) == people
    assert by_status == {"read": people}, f"{by_status} after {time.monotonic() - started:.1f} s"
    assert (got["sent"], got["delivered"], got["read"]) == (0, 0, people)
    assert all(rows[p].delivered_at is not None for p in psids)
    async with db.transaction() as session:
        stale = await session.scalar(
            select(func.count(WebhookEvent.id)).where(WebhookEvent.error.is_not(None))
        )
    assert stale == 0
