"""Issue 22, the events the worker's sending causes: `campaign.paused` by the breaker and by
the Page's stop, `page.token_invalid` and `page.restricted` once per change (not per failed
send), and `campaign.progress` at most every 10 s of the workers' clock.

The worker runs in-process against the Graph simulator through the real client, on SQLite
and PostgreSQL; time is the worker's injected clock, running faster than the real one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

import test_sending
from factories import connected_page, engine_settings
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import Campaign, CampaignStatus, OutboundEvent, utcnow
from pagecast.security import Vault
from pagecast.services import campaign_events
from pagecast.settings import Settings
from pagecast.worker import build
from pagecast.worker.state import Clock
from test_outbound_emit_campaigns import events, kinds
from test_sending import (
    SIM_TOKEN,
    RunningWorker,
    add_people,
    new_campaign,
    setup_page,
    wait_for,
)

sending_settings = test_sending.sending_settings
engine_app = test_sending.engine_app
admin = test_sending.admin
manager = test_sending.manager

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here


async def test_the_breaker_pauses_with_reason_breaker_once(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=50)
    await add_people(sim, manager, page_id, 60)
    await sim.post(
        "/__sim/script",
        json={
            "match": {"path": "messages"},
            "responses": [{"code": 100, "message": "Invalid parameter", "times": 1000}],
        },
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"paused"})
    with_progress = [t for t, _, _ in await events(db, progress=True)]
    # The chunk that paused it (and any chunk written after) reports no progress.
    assert with_progress[-1] == "campaign.paused"
    found = await events(db)
    assert kinds(found) == [
        ("campaign.created", campaign_id),
        ("campaign.started", campaign_id),
        ("campaign.paused", campaign_id),
    ]
    paused = found[2][2]
    assert paused["reason"] == "breaker" and paused["message"].startswith("Circuit breaker")
    assert await events(db, prefix="page.") == []


async def test_a_revoked_token_is_one_page_event_then_a_page_pause_then_a_resume(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 30)
    await sim.post("/__sim/tokens/revoke", json={"access_token": SIM_TOKEN, "subcode": 460})
    first = await new_campaign(manager, page_id)
    second = await new_campaign(manager, page_id, name="Other")
    await manager.post(f"/api/campaigns/{first}/start")
    await manager.post(f"/api/campaigns/{second}/start")
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, first, {"paused"})
        await wait_for(manager, second, {"paused"})
        # A person pausing what the Page's stop paused keeps it paused by them: the same
        # state, no new event.
        assert (await manager.post(f"/api/campaigns/{second}/pause")).status_code == 200
        await sim.post(
            "/__sim/tokens",
            json={"access_token": "EAAGnewtoken", "kind": "PAGE", "page_id": "1001"},
        )
        new_token = {"access_token": "EAAGnewtoken"}
        assert (await admin.patch(f"/api/pages/{page_id}", json=new_token)).status_code == 200
        assert (await manager.post(f"/api/campaigns/{first}/resume")).status_code == 200
        await wait_for(manager, first, {"completed"})
    page_events = await events(db, prefix="page.")
    # Each failed send of both campaigns' chunks said 190: the Page changed once.
    assert [(t, d["page_id"], d["status"], d["previous_status"]) for t, _, d in page_events] == [
        ("page.token_invalid", page_id, "token_invalid", "active")
    ]
    assert "460" in page_events[0][2]["reason"] and page_events[0][2]["fb_page_id"] == "1001"
    assert "EAAG" not in str(page_events[0][2])  # never a token
    found = await events(db)
    pauses = [(c, d["reason"]) for t, c, d in found if t == "campaign.paused"]
    assert sorted(pauses) == [(first, "page"), (second, "page")]
    assert [t for t, c, _ in found if c == second] == [
        "campaign.created",
        "campaign.started",
        "campaign.paused",
    ]
    assert [t for t, c, _ in found if c == first][-2:] == ["campaign.resumed", "campaign.completed"]
    async with db.transaction() as session:
        order = list(await session.scalars(select(OutboundEvent.type).order_by(OutboundEvent.id)))
    # The Page's event comes before the pauses it caused.
    assert order.index("page.token_invalid") < order.index("campaign.paused")


async def test_a_restriction_error_is_one_page_restricted_event(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 10)
    await sim.post(
        "/__sim/script",
        json={
            "match": {"path": "messages"},
            "responses": [{"code": 368, "message": "Temporarily blocked", "times": 100}],
        },
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"paused"})
    page_events = await events(db, prefix="page.")
    assert [(t, d["status"]) for t, _, d in page_events] == [("page.restricted", "restricted")]
    assert [(t, d.get("reason")) for t, _, d in await events(db)][-1] == (
        "campaign.paused",
        "page",
    )


class FastClock(Clock):
    """The worker's clock running `speed` times faster than the real one from now on."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start_real = time.time()
        self.start = utcnow()

    def _elapsed(self) -> float:
        return (time.time() - self.start_real) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._elapsed())

    def time(self) -> float:
        return self.start_real + self._elapsed()


async def test_progress_comes_at_most_every_ten_seconds_whichever_worker_writes(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """Two workers write small chunks of one campaign for about 3 s at 20 clock seconds per
    real second: about 60 s of their clock, so 3 to 7 progress events, 10 s apart or more."""
    settings = engine_settings(sending_settings, sending_settings.redis_url, chunk_size=4)
    page_id = await setup_page(admin, sim, send_rate=25)
    await add_people(sim, manager, page_id, 80)
    campaign_id = await new_campaign(manager, page_id)
    clock = FastClock(speed=20)
    contexts = [AppContext(settings, database=db) for _ in range(2)]
    workers = [build(ctx, clock=clock) for ctx in contexts]
    tasks = [asyncio.create_task(w.run(install_signals=False)) for w in workers]
    try:
        await manager.post(f"/api/campaigns/{campaign_id}/start")
        await wait_for(manager, campaign_id, {"completed"})
    finally:
        for w in workers:
            w.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        for ctx in contexts:
            await ctx.close()
    async with db.transaction() as session:
        rows = list(
            await session.scalars(
                select(OutboundEvent)
                .where(OutboundEvent.type == "campaign.progress")
                .order_by(OutboundEvent.id)
            )
        )
    assert 2 <= len(rows) <= 8, [r.created_at for r in rows]
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(rows)]
    assert all(gap >= 10 for gap in gaps), gaps
    percents = [r.data["percent"] for r in rows]
    assert percents == sorted(percents) and percents[0] >= 0 and percents[-1] < 100
    last = rows[-1].data
    assert last["campaign_id"] == campaign_id and last["status"] == "sending"
    assert last["counts"]["total"] == 80 and rows[-1].campaign_id == campaign_id
    found = await events(db, progress=True)
    assert found[-1][0] == "campaign.completed"  # nothing after the end


async def test_progress_is_due_ten_seconds_after_the_last_and_only_while_sending(
    db: Database, vault: Vault
) -> None:
    """The rule itself, at times given by the caller (the worker passes its clock's)."""
    page = await connected_page(db, vault)
    at = utcnow()
    async with db.transaction() as session:
        campaign = Campaign(
            name="Rule",
            page_id=page.id,
            content={"text": "hi"},
            audience={"type": "all"},
            status=CampaignStatus.SENDING,
            n_total=4,
            n_pending=3,
            n_sent=1,
        )
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id

    async def progress(seconds: float) -> dict[str, Any] | None:
        async with db.transaction() as session:
            event = await campaign_events.progress(
                session, campaign_id, now=at + timedelta(seconds=seconds)
            )
            return None if event is None else dict(event.data)

    first = await progress(0)
    assert first is not None and first["percent"] == 25.0
    assert first["counts"]["pending"] == 3 and first["counts"]["sent"] == 1
    assert await progress(9.9) is None
    assert await progress(10) is not None
    async with db.transaction() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.PAUSED)
        )
    assert await progress(60) is None


async def test_the_endpoints_are_read_once_per_event_never_per_delivery(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """The sending path's cost: 120 deliveries in 5 chunks read the endpoints once for each
    event (started, at most one progress in these few seconds, completed), not per chunk or
    per delivery."""
    from sqlalchemy import event as sa_event

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 120)
    campaign_id = await new_campaign(manager, page_id)
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The worker's webhook sender also looks for endpoints failing for days on each of
        # its passes; that is its own read, not the sending path's.
        if "FROM webhook_endpoints" in statement and "failing_since IS NOT NULL" not in statement:
            reads.append(statement)

    engine = db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        await manager.post(f"/api/campaigns/{campaign_id}/start")
        async with RunningWorker(sending_settings, db):
            await wait_for(manager, campaign_id, {"completed"})
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    written = [t for t, _, _ in await events(db, progress=True)][1:]  # after created
    assert written[0] == "campaign.started" and written[-1] == "campaign.completed"
    assert len(written) <= 3
    assert len(reads) == len(written)
