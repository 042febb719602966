"""Reconciliation of a message sequence whose worker was lost (issue 19): the echoes of its
earlier messages (`"<id>:<k>"` in `metadata`) prove which arrived, and only what follows them
is sent. Real signed webhooks into the app, a real worker, the Graph simulator."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

import test_webhooks
from pagecast.db import Database
from pagecast.models import Contact, DeliveryStatus, Page, WebhookEvent, utcnow
from pagecast.services import deliveries as deliveries_service
from pagecast.settings import Settings
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
from test_webhooks import LoopbackApp, envelope, point_simulator, post, until

# The fixtures of test_webhooks: the app with the webhook secrets (`engine`, its admin
# `people_admin`), and the same app without Redis that applies events inline (`hook`).
hook_settings = test_webhooks.hook_settings
inline_app = test_webhooks.inline_app
hook = test_webhooks.hook
engine_settings = test_webhooks._engine_settings
engine = test_webhooks.engine
people_admin = test_webhooks.people_admin

FIRST = {"attachment": {"type": "image", "url": "https://example.com/sale.png"}}
SECOND = {"text": "Hi {{first_name|there}}, the sale is on"}


def echo(psid: str, metadata: str) -> dict[str, Any]:
    """The `message_echoes` event Facebook sends for a message the Page sent to `psid`."""
    return {
        "sender": {"id": PAGE},
        "recipient": {"id": psid},
        "timestamp": int(time.time() * 1000),
        "message": {"is_echo": True, "mid": f"m_{psid}_{metadata}", "metadata": metadata},
    }


async def test_a_lost_sequence_is_reconciled_message_by_message_from_its_echoes(
    people_admin: httpx.AsyncClient,
    engine: Any,
    hook: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    """A worker died holding two people's 2-message deliveries, after it had sent the first
    message to one of them (its echo arrived) and before it wrote anything. Once the Page's
    echo stream is shown live past the attempt, reconciliation resends both: the one whose
    first message echoed gets the second only; the other gets both."""
    page_id = await setup_page(people_admin, sim)
    echoed, silent = await add_people(sim, people_admin, page_id, 2)
    first = await new_campaign(people_admin, page_id, content=None, messages=[FIRST, SECOND])
    assert (await people_admin.post(f"/api/campaigns/{first}/start")).status_code == 202
    rows = await deliveries_by_psid(db, first)
    async with db.transaction() as session:
        claimed = await deliveries_service.claim(
            session,
            first,
            min(r.id for r in rows.values()),
            max(r.id for r in rows.values()),
            worker_id="gone:1:dead",
            # A few seconds ago: the echo watermark moves in steps of a second
            # (echoes.ECHO_WATERMARK_STEP), and the later campaign's echoes must move it.
            now=utcnow() - timedelta(seconds=5),
        )
    assert len(claimed) == 2
    # The first message to `echoed` reached Facebook: its echo comes back (signed, through
    # the webhook route, applied at once by the app without Redis).
    answer = await post(hook, envelope(echo(echoed, f"{rows[echoed].id}:1")))
    assert answer.status_code == 200, answer.text
    rows = await deliveries_by_psid(db, first)
    assert (rows[echoed].status, rows[echoed].parts_sent) == (DeliveryStatus.SENDING, 1)
    assert rows[echoed].message_id is None  # not the proof of the whole delivery
    assert rows[silent].parts_sent == 0

    def worker(grace: float) -> RunningWorker:
        running = RunningWorker(engine_settings, db)
        running.worker.config = dataclasses.replace(
            running.worker.config, sweep_seconds=0.3, webhook_retry_after=0.5, unknown_grace=grace
        )
        return running

    async with LoopbackApp(engine) as url:
        await point_simulator(sim, url, delivery_delay=[0, 0], read_delay=[0, 0])
        async with worker(grace=3600):  # the dead worker's claims become unknown

            async def both_unknown() -> bool:
                got = await deliveries_by_psid(db, first)
                return all(got[p].status is DeliveryStatus.UNKNOWN for p in (echoed, silent))

            await until(both_unknown)
            since = max(r.unknown_since for r in (await deliveries_by_psid(db, first)).values())
            # Another campaign of the Page sends and its echoes arrive: the echo stream is
            # live past the lost attempt, so a missing echo now proves a missing message.
            later = await add_people(sim, people_admin, page_id, 2, start=100)
            async with db.transaction() as session:
                later_ids = list(
                    await session.scalars(select(Contact.id).where(Contact.psid.in_(later)))
                )
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
        async with worker(grace=0.5):  # the grace period is over: reconcile, then resend
            done = await wait_for(people_admin, first, {"completed"}, timeout=30)
    rows = await deliveries_by_psid(db, first)
    mine = [m for m in await outbox(sim) if m["psid"] in (echoed, silent)]
    assert [(m["psid"], m["metadata"]) for m in mine if m["psid"] == echoed] == [
        (echoed, str(rows[echoed].id))  # the second message only, closing the delivery
    ]
    assert [m["metadata"] for m in mine if m["psid"] == silent] == [
        f"{rows[silent].id}:1",
        str(rows[silent].id),
    ]
    for psid in (echoed, silent):
        assert rows[psid].status in (
            DeliveryStatus.SENT,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.READ,
        ), (rows[psid].status, rows[psid].reason)
        assert rows[psid].parts_sent == 2 and rows[psid].resent_at is not None
    assert done["counts"]["unknown"] == 0 and done["counts"]["failed"] == 0


async def test_an_echo_of_an_earlier_message_never_lowers_what_was_recorded(
    people_admin: httpx.AsyncClient, hook: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    """Echoes arrive in any order and twice: `parts_sent` only rises; an echo naming another
    person's delivery, metadata that is not ours, or a part that more would follow but none
    does (it would mark the delivery sent with nothing sent), changes nothing."""
    page_id = await setup_page(people_admin, sim)
    person, other = await add_people(sim, people_admin, page_id, 2)
    campaign = await new_campaign(
        people_admin, page_id, content=None, messages=[FIRST, SECOND, FIRST]
    )
    assert (await people_admin.post(f"/api/campaigns/{campaign}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign)
    mine = rows[person].id
    # ":3" and ":99" name no message that more follow in a campaign of 3: not ours
    garbage = (f"{mine}:x", f"{mine}:0", f"{mine}:3", f"{mine}:99")
    for metadata in (f"{mine}:2", f"{mine}:1", f"{mine}:2", *garbage):
        assert (await post(hook, envelope(echo(person, metadata)))).status_code == 200
    assert (await post(hook, envelope(echo(other, f"{mine}:2")))).status_code == 200
    async with db.transaction() as session:
        waiting = list(
            await session.execute(
                select(WebhookEvent.id, WebhookEvent.error).where(
                    WebhookEvent.processed_at.is_(None)
                )
            )
        )
    assert waiting == [], waiting  # each echo was applied when it was posted
    rows = await deliveries_by_psid(db, campaign)
    assert (rows[person].parts_sent, rows[other].parts_sent) == (2, 0)
    assert rows[person].status is DeliveryStatus.PENDING and rows[person].message_id is None
