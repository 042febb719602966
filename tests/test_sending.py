"""The sending engine end to end: API start → queue (real Redis) → worker → Graph simulator.

Nothing in the sending path is mocked: the worker runs in-process with the real Graph
client against the simulator over a socket, on both database backends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from factories import (
    SIM_TOKEN,
    app_client,
    create_user,
    engine_settings,
    import_contacts,
    sim_page,
)
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Role, utcnow
from pagecast.services import pacing, snapshots
from pagecast.settings import Settings
from pagecast.worker import build
from pagecast.worker.state import Clock
from pagecast.worker.sweep import sweep

PAGE = "1001"


@pytest.fixture
def sending_settings(settings: Settings, redis_url: str) -> Settings:
    return engine_settings(
        settings,
        redis_url,
        worker_concurrency=50,
        breaker_consecutive_bad=5,
        unknown_grace=2.0,  # long enough to watch a campaign wait for its reconciliation
    )


@pytest.fixture
async def engine_app(sending_settings: Settings, db: Database) -> AsyncIterator[Any]:
    from pagecast.web.app import create_app

    application = create_app(sending_settings, database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def manager(engine_app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    _, raw = await create_user(db, Role.MANAGER, email="sender@example.com")
    async with app_client(engine_app, raw) as client:
        yield client


@pytest.fixture
async def admin(engine_app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    _, raw = await create_user(db, Role.ADMIN, email="boss@example.com")
    async with app_client(engine_app, raw) as client:
        yield client


class RunningWorker:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.ctx = AppContext(settings, database=db)
        self.worker = build(self.ctx)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningWorker:
        self.task = asyncio.create_task(self.worker.run(install_signals=False))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=30)
        await self.ctx.close()


async def setup_page(
    admin: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    *,
    send_rate: float = 200,
    fb_page: str = PAGE,
    token: str = SIM_TOKEN,
) -> int:
    await sim_page(sim, page_id=fb_page, token=token)
    response = await admin.post("/api/pages", json={"access_token": token, "send_rate": send_rate})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def add_people(
    sim: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    page_id: int,
    count: int,
    *,
    start: int = 1,
    sim_status: str = "active",
    hours_ago: float = 1,
    fb_page: str = PAGE,
) -> list[str]:
    psids = [str(10_000 + i) for i in range(start, start + count)]
    inbound = (utcnow() - timedelta(hours=hours_ago)).isoformat()
    people = [
        {
            "page_id": fb_page,
            "psid": p,
            "first_name": f"P{p}",
            "last_name": "X",
            "last_user_action": "now",
            "status": sim_status,
        }
        for p in psids
    ]
    assert (await sim.post("/__sim/users", json=people)).status_code in (200, 201)
    csv = "psid,first_name,last_inbound_at\n" + "".join(f"{p},P{p},{inbound}\n" for p in psids)
    report = await import_contacts(manager, page_id, csv.encode())
    assert report["imported"] == count, report
    return psids


async def new_campaign(manager: httpx.AsyncClient, page_id: int, **overrides: Any) -> int:
    body = {
        "name": "Sale",
        "page_id": page_id,
        "content": {"text": "Hi {{first_name|there}}"},
    } | overrides
    response = await manager.post("/api/campaigns", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def delivery_ids(db: Database, campaign_id: int) -> list[int]:
    """The campaign's delivery ids, in order."""
    async with db.transaction() as session:
        return list(
            await session.scalars(
                select(Delivery.id).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
            )
        )


async def wait_for(
    manager: httpx.AsyncClient, campaign_id: int, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Poll until the campaign is in one of `statuses` with nothing in flight."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
        if body["status"] in statuses and body["counts"]["sending"] == 0:
            return body
        assert time.monotonic() < deadline, f"campaign stayed {body['status']}: {body['counts']}"
        await asyncio.sleep(0.1)


async def outbox(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await sim.get("/__sim/outbox", params={"page_id": PAGE})).json()["messages"]


async def deliveries_by_psid(db: Database, campaign_id: int) -> dict[str, Delivery]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.psid, Delivery)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        return {psid: delivery for psid, delivery in rows}


async def test_campaign_sends_exactly_one_message_per_eligible_contact(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    eligible = await add_people(sim, manager, page_id, 120)
    outside = await add_people(sim, manager, page_id, 5, start=500, hours_ago=30)
    campaign_id = await new_campaign(manager, page_id)
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    assert started.json()["counts"]["pending"] == 120 and started.json()["counts"]["skipped"] == 5
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(eligible)
    rows = await deliveries_by_psid(db, campaign_id)
    assert {m["metadata"] for m in sent} == {str(rows[p].id) for p in eligible}
    assert all(rows[p].message_id == m["mid"] for m in sent for p in [m["psid"]])
    assert {rows[p].reason for p in outside} == {"outside_window"}
    assert (
        done["counts"]["sent"] == 120
        and done["counts"]["skipped"] == 5
        and done["counts"]["pending"] == 0
    )
    assert sent[0]["message"]["text"] == f"Hi P{sent[0]['psid']}"


async def test_start_twice_is_refused_and_enqueues_nothing_twice(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    again = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert again.status_code == 409 and "is sending" in again.json()["error"]["message"]


@pytest.mark.parametrize("batch", [1, 50], ids=["one-request-each", "graph-batch"])
async def test_error_kinds_end_in_the_right_states(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    batch: int,
) -> None:
    sending_settings = sending_settings.model_copy(update={"send_batch_size": batch})
    page_id = await setup_page(admin, sim)
    ok, transient, blocked, window, rejected, ambiguous = [
        (await add_people(sim, manager, page_id, 1, start=i))[0] for i in range(1, 7)
    ]
    await sim.post(
        "/__sim/script",
        json={
            "match": {"psid": transient},
            "responses": [{"code": 2, "http": 500, "times": 2}, {"ok": True}],
        },
    )
    await sim.post(
        "/__sim/users/status", json={"page_id": PAGE, "psid": blocked, "status": "blocked"}
    )
    await sim.post(
        "/__sim/script",
        json={"match": {"psid": window}, "responses": [{"code": 10, "subcode": 2018278}]},
    )
    await sim.post(
        "/__sim/script",
        json={
            "match": {"psid": rejected},
            "responses": [{"code": 100, "message": "Invalid parameter"}],
        },
    )
    await sim.post(
        "/__sim/script", json={"match": {"psid": ambiguous}, "responses": [{"timeout": "after"}]}
    )
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    running = RunningWorker(sending_settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        await wait_for(manager, campaign_id, {"completed"})
    rows = await deliveries_by_psid(db, campaign_id)
    assert (rows[ok].status, rows[ok].attempts) == (DeliveryStatus.SENT, 1)
    assert (rows[transient].status, rows[transient].attempts) == (DeliveryStatus.SENT, 3)
    assert (rows[blocked].status, rows[blocked].reason, rows[blocked].error_code) == (
        DeliveryStatus.FAILED,
        "recipient_unreachable",
        551,
    )
    assert (rows[window].status, rows[window].reason) == (DeliveryStatus.SKIPPED, "outside_window")
    assert (rows[rejected].status, rows[rejected].reason) == (DeliveryStatus.FAILED, "bad_request")
    # The timeout made it `unknown`; with no echo (no webhooks here) nothing proves whether it
    # arrived, so after the grace period it fails `ambiguous` and is never sent again.
    assert (rows[ambiguous].status, rows[ambiguous].reason, rows[ambiguous].error_kind) == (
        DeliveryStatus.FAILED,
        "ambiguous",
        "ambiguous",
    )
    assert rows[ambiguous].attempts == 1 and rows[ambiguous].resent_at is None
    async with db.transaction() as session:
        unreachable = await session.scalar(
            select(Contact.unreachable_at).where(Contact.psid == blocked)
        )
    assert unreachable is not None
    psids = [m["psid"] for m in await outbox(sim)]
    assert sorted(psids) == sorted([ok, transient, ambiguous])  # the ambiguous one did arrive, once
    # The first attempt of all six went out together as operations of one batch request (or
    # as six requests of their own).
    sends = [
        c
        for c in (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
        if c["path"].endswith("/me/messages")
    ]
    assert [c["in_batch"] for c in sends[:6]] == [batch > 1] * 6
    assert not any(c["in_batch"] for c in sends[6:])  # a retry alone is a request of its own
    counts = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["counts"]
    assert (counts["sent"], counts["failed"], counts["skipped"], counts["unknown"]) == (2, 3, 1, 0)


async def test_each_graph_batch_is_dated_in_the_pages_window_when_it_was_written(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """A batch's calls reach Graph together when its request is written, which can be well
    after the grant on a busy worker: the worker re-dates every batch's grant in the Page's
    one-second log once the request is out (watched with Redis MONITOR)."""
    import hashlib

    import redis.asyncio as aioredis

    from pagecast import ratelimit

    sending_settings = sending_settings.model_copy(update={"send_batch_size": 10})
    page_id = await setup_page(admin, sim, send_rate=50)  # 10 calls per batch (0.2 s of rate)
    await add_people(sim, manager, page_id, 30)
    campaign_id = await new_campaign(manager, page_id)
    left_sha = hashlib.sha1(ratelimit._LEFT.encode()).hexdigest()
    redis = aioredis.from_url(sending_settings.redis_url)
    commands: list[str] = []

    # MONITOR shows every database of the server: keep this test's own (another process's
    # tests may use the same key names in another database at the same time).
    ours = int(redis.connection_pool.connection_kwargs.get("db", 0))

    async def watch() -> None:
        async with redis.monitor() as monitor:
            async for entry in monitor.listen():
                if int(entry.get("db", -1)) == ours:
                    commands.append(entry["command"])

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0.2)  # MONITOR is on before the first grant
        assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
        async with RunningWorker(sending_settings, db):
            await wait_for(manager, campaign_id, {"completed"})
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await redis.aclose()
    sends = [
        c
        for c in (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
        if c["path"].endswith("/me/messages")
    ]
    assert len(sends) == 30 and all(c["in_batch"] for c in sends)
    # A batch's operations are taken in one after another; batches are a grant (0.1 s) apart.
    batches = 1 + sum(1 for a, b in itertools.pairwise(sends) if b["time"] - a["time"] > 0.05)
    assert batches >= 3
    # One re-date per batch, named by its grant's time (a first EVALSHA that Redis answered
    # NOSCRIPT shows twice in MONITOR, hence the set).
    redated = {c.split()[-1] for c in commands if left_sha in c and f":{page_id}:w" in c}
    assert len(redated) == batches, [c for c in commands if "EVALSHA" in c]


async def test_single_sends_share_the_limiters_grants_and_each_is_its_own_request(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """At one request per message, the worker asks the limiter for as many slots as are
    free in flight (up to the Page's burst): an idle Page's first grant covers several
    sends, each still its own Send request, and that grant is re-dated once they are out.
    The real limiter is watched by wrapping its calls, not replaced."""
    assert sending_settings.send_batch_size == 1
    page_id = await setup_page(admin, sim, send_rate=300)  # a burst of 6 slots at once
    await add_people(sim, manager, page_id, 60)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    grants: list[Any] = []
    redated: list[str] = []
    async with RunningWorker(sending_settings, db) as running:
        limiter = running.ctx.limiter
        take, left = limiter.take, limiter.left

        async def watched_take(*args: Any, **kwargs: Any) -> Any:
            grant = await take(*args, **kwargs)
            grants.append(grant)
            return grant

        async def watched_left(page: int, grant: Any) -> int:
            redated.append(grant.at)
            return await left(page, grant)

        limiter.take, limiter.left = watched_take, watched_left  # type: ignore[method-assign]
        done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 60
    sends = [
        c
        for c in (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
        if c["path"].endswith("/me/messages")
    ]
    assert len(sends) == 60 and not any(c["in_batch"] for c in sends)
    assert sum(g.granted for g in grants) == 60
    shared = [g for g in grants if g.granted > 1]
    assert shared, [g.granted for g in grants]  # so fewer granting calls than messages
    assert {g.at for g in shared} <= set(redated)  # each shared grant was re-dated


async def test_transient_errors_exhaust_into_retries_exhausted(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    [psid] = await add_people(sim, manager, page_id, 1)
    await sim.post(
        "/__sim/script",
        json={"match": {"psid": psid}, "responses": [{"code": 1, "http": 500, "times": 10}]},
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    row = (await deliveries_by_psid(db, campaign_id))[psid]
    assert (row.status, row.reason, row.attempts) == (DeliveryStatus.FAILED, "retries_exhausted", 5)
    assert await outbox(sim) == []
    await sim.post("/__sim/script", json={"clear": True})
    retried = await manager.post(f"/api/campaigns/{campaign_id}/retry-failed")
    assert retried.status_code == 200 and retried.json()["retried"] == 1
    async with RunningWorker(sending_settings, db):
        await wait_for(manager, campaign_id, {"completed"})
    assert [m["psid"] for m in await outbox(sim)] == [psid]


async def test_revoked_token_stops_the_page_and_a_new_token_resumes(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 30)
    await sim.post("/__sim/tokens/revoke", json={"access_token": SIM_TOKEN, "subcode": 460})
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        paused = await wait_for(manager, campaign_id, {"paused"})
        assert "460" in paused["status_reason"]
        page = (await admin.get(f"/api/pages/{page_id}")).json()
        assert page["status"] == "token_invalid"
        assert paused["counts"]["pending"] == 30 and paused["counts"]["failed"] == 0
        refused = await manager.post(f"/api/campaigns/{campaign_id}/resume")
        assert refused.status_code == 409 and "token_invalid" in refused.json()["error"]["message"]
        await sim.post(
            "/__sim/tokens", json={"access_token": "EAAGnewtoken", "kind": "PAGE", "page_id": PAGE}
        )
        assert (
            await admin.patch(f"/api/pages/{page_id}", json={"access_token": "EAAGnewtoken"})
        ).status_code == 200
        assert (await manager.post(f"/api/campaigns/{campaign_id}/resume")).status_code == 200
        await wait_for(manager, campaign_id, {"completed"})
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)


async def until(check: Any, timeout: float = 10, what: str = "the condition") -> None:
    """Wait until `await check()` is true (a condition, not a duration)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.02)


async def drain(settings: Settings, db: Database, timeout: float = 60) -> None:
    """Run a worker in burst mode: it returns once both queues hold nothing to run."""
    ctx = AppContext(settings, database=db)
    try:
        await asyncio.wait_for(build(ctx).run(install_signals=False, burst=True), timeout)
    finally:
        await ctx.close()


async def _sending_slowly(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient
) -> tuple[int, list[str]]:
    """A started campaign of 60 people on a Page of 20/s (about 3 s of sending)."""
    page_id = await setup_page(admin, sim, send_rate=20)
    psids = await add_people(sim, manager, page_id, 60)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    return campaign_id, psids


async def _some_sent(sim: httpx.AsyncClient) -> bool:
    return len(await outbox(sim)) > 0


async def _sends_of(sim: httpx.AsyncClient, fb_page: str, least: int) -> bool:
    """At least `least` Send calls to the Page reached the simulator."""
    calls = (await sim.get("/__sim/calls", params={"page_id": fb_page})).json()["calls"]
    return sum(c["path"].endswith("/messages") for c in calls) >= least


async def test_pause_stops_the_sends_within_about_a_second(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, _ = await _sending_slowly(admin, manager, sim)
    async with RunningWorker(sending_settings, db):
        await until(lambda: _some_sent(sim), what="a first send")
        paused = await manager.post(f"/api/campaigns/{campaign_id}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        # In-flight chunks notice within about a second and put back what they hold.
        body = await wait_for(manager, campaign_id, {"paused"}, timeout=3)
    counts = body["counts"]
    assert len(await outbox(sim)) == counts["sent"] < 60
    assert counts["pending"] == 60 - counts["sent"]
    # Its queued jobs run and send nothing more: the burst ends with the queues empty.
    await drain(sending_settings, db)
    assert len(await outbox(sim)) == counts["sent"]
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["counts"] == counts


async def test_pausing_twice_answers_paused_both_times(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    campaign_id, _ = await _sending_slowly(admin, manager, sim)
    for _ in range(2):
        paused = await manager.post(f"/api/campaigns/{campaign_id}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"


async def test_a_resumed_campaign_sends_the_rest_exactly_once(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, psids = await _sending_slowly(admin, manager, sim)
    async with RunningWorker(sending_settings, db):
        await until(lambda: _some_sent(sim), what="a first send")
        assert (await manager.post(f"/api/campaigns/{campaign_id}/pause")).status_code == 200
        paused = await wait_for(manager, campaign_id, {"paused"}, timeout=3)
    assert paused["counts"]["sent"] < 60
    assert (await manager.post(f"/api/campaigns/{campaign_id}/resume")).status_code == 200
    await drain(sending_settings, db)
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "completed" and body["counts"]["sent"] == 60
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)


async def test_cancel_mid_send_ends_every_unsent_delivery_cancelled(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, psids = await _sending_slowly(admin, manager, sim)
    async with RunningWorker(sending_settings, db):
        await until(lambda: _some_sent(sim), what="a first send")
        cancelled = await manager.post(f"/api/campaigns/{campaign_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        await wait_for(manager, campaign_id, {"cancelled"}, timeout=3)
    await drain(sending_settings, db)
    counts = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["counts"]
    sent = await outbox(sim)
    assert len({m["psid"] for m in sent}) == len(sent) == counts["sent"]
    assert (
        counts["cancelled"] + counts["sent"] == 60 and counts["pending"] == counts["sending"] == 0
    )
    assert set(m["psid"] for m in sent) <= set(psids)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.n_cancelled == counts["cancelled"] > 0


async def test_circuit_breaker_pauses_after_consecutive_bad_requests(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=50)
    await add_people(sim, manager, page_id, 200)
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
        paused = await wait_for(manager, campaign_id, {"paused"})
    assert "Circuit breaker" in paused["status_reason"]
    assert paused["counts"]["pending"] > 100  # stopped within a chunk, not after every send
    assert paused["counts"]["failed"] >= 5


async def test_start_without_redis_answers_503_and_changes_nothing(
    manager: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_app: Any,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    campaign_id = await new_campaign(manager, page_id)
    from pagecast.queue import Queue
    from pagecast.redis_url import parse_redis_url

    engine_app.state.context._queue = Queue(parse_redis_url("redis://127.0.0.1:1/0"))
    response = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("Redis at 127.0.0.1:1 is unreachable (")
    assert (
        "Start Redis, or unset REDIS_URL to use the embedded one."
        in response.json()["error"]["message"]
    )
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "draft" and body["counts"]["total"] == 0


async def test_scheduled_campaign_starts_by_itself_at_its_time(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 5)
    campaign_id = await new_campaign(manager, page_id)
    at = utcnow() + timedelta(seconds=2)
    assert (
        await manager.patch(f"/api/campaigns/{campaign_id}", json={"scheduled_at": at.isoformat()})
    ).status_code == 200
    scheduled = await manager.post(f"/api/campaigns/{campaign_id}/schedule")
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"}, timeout=30)
    # Not a moment early: it started, and Facebook saw its first message, at its time.
    assert done["started_at"] >= at.isoformat().replace("+00:00", "Z")[:19]
    calls = (await sim.get("/__sim/calls", params={"limit": 10_000})).json()["calls"]
    first_send = min(c["time"] for c in calls if c["path"].endswith("/messages"))
    assert first_send >= at.timestamp(), at.timestamp() - first_send
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)


async def test_scheduling_a_time_in_the_past_is_refused(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    campaign_id = await new_campaign(
        manager, page_id, scheduled_at=(utcnow() + timedelta(minutes=5)).isoformat()
    )
    # Saved while in the future (Save refuses a past time: tests/test_timezones.py); the
    # draft then waited until its time had gone.
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.scheduled_at = utcnow() - timedelta(minutes=5)
    response = await manager.post(f"/api/campaigns/{campaign_id}/schedule")
    assert response.status_code == 409 and response.json()["error"]["field"] == "scheduled_at"
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["status"] == "draft"


async def test_a_schedule_long_past_does_not_fire_by_surprise(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    campaign_id = await new_campaign(
        manager, page_id, scheduled_at=(utcnow() + timedelta(hours=1)).isoformat()
    )
    assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
    # The machine was off: the time passed two hours ago.
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.scheduled_at = utcnow() - timedelta(hours=2)
    async with RunningWorker(sending_settings, db):  # its sweep runs at once
        deadline = time.monotonic() + 10
        while not (body := (await manager.get(f"/api/campaigns/{campaign_id}")).json())["missed"]:
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
    assert body["status"] == "scheduled" and "Missed" in body["status_reason"]
    assert await outbox(sim) == []
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")  # a person decides
    assert started.status_code == 202


class AheadClock(Clock):
    """The worker's clock, `ahead` of the real one."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return utcnow() + self.ahead

    def time(self) -> float:
        return time.time() + self.ahead.total_seconds()


async def _scheduled_in_an_hour(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient
) -> tuple[int, datetime]:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    at = utcnow() + timedelta(hours=1)
    campaign_id = await new_campaign(manager, page_id, scheduled_at=at.isoformat())
    assert (await manager.post(f"/api/campaigns/{campaign_id}/schedule")).status_code == 200
    return campaign_id, at


async def test_the_sweep_starts_a_schedule_when_the_workers_clock_reaches_it(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, _ = await _scheduled_in_an_hour(admin, manager, sim)
    ctx = AppContext(sending_settings, database=db)
    try:
        early = build(ctx, clock=AheadClock(timedelta(minutes=59)))
        await sweep(early.env)
        assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["status"] == "scheduled"
        due = build(ctx, clock=AheadClock(timedelta(hours=1, seconds=5)))
        await sweep(due.env)
    finally:
        await ctx.close()
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "sending" and not body["missed"]


async def test_the_sweep_flags_a_schedule_missed_past_the_allowed_lateness(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    campaign_id, _ = await _scheduled_in_an_hour(admin, manager, sim)
    ctx = AppContext(sending_settings, database=db)
    try:  # the machine was off: the worker's clock is two hours past the schedule
        await sweep(build(ctx, clock=AheadClock(timedelta(hours=3))).env)
    finally:
        await ctx.close()
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "scheduled" and body["missed"] and "Missed" in body["status_reason"]
    assert await outbox(sim) == []


async def test_deliveries_not_sent_by_expiry_end_expired(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=10)
    await add_people(sim, manager, page_id, 80)
    campaign_id = await new_campaign(  # about 30 sent in 4 s at 10/s, the rest expire
        manager, page_id, expires_at=(utcnow() + timedelta(seconds=4)).isoformat()
    )
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"}, timeout=30)
    counts = done["counts"]
    assert counts["expired"] > 0 and counts["sent"] > 0, counts
    assert counts["sent"] + counts["expired"] == 80
    assert len(await outbox(sim)) == counts["sent"]


async def test_progress_stream_follows_the_campaign_to_completion(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=50)
    await add_people(sim, manager, page_id, 60)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    events: list[dict[str, Any]] = []
    async with (
        RunningWorker(sending_settings, db),
        manager.stream("GET", f"/api/campaigns/{campaign_id}/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "completed" and events[-1]["counts"]["sent"] == 60
    sent_seen = [e["counts"]["sent"] for e in events]
    assert sent_seen == sorted(sent_seen) and len(set(sent_seen)) >= 2  # it moved while we watched
    assert any(e["rate_per_second"] > 0 for e in events)
    assert any(e["eta_seconds"] > 0 for e in events[:-1])


async def test_health_metrics_and_queue_admin_show_the_engine(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 10)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db) as running:
        await wait_for(manager, campaign_id, {"completed"})
        health = (await admin.get("/api/admin/health")).json()
        assert health["ok"] and health["database"]["ok"] and health["redis"]["ok"]
        assert [w["id"] for w in health["workers"]] == [running.worker.id]
        assert set(health["queue"]) >= {
            "waiting",
            "active",
            "delayed",
            "prioritized",
            "completed",
            "failed",
        }
        assert (
            health["pages"][0]["status"] == "active"
            and "throttled_for" in health["pages"][0]["throttle"]
        )
        queue = (await admin.get("/api/admin/queue")).json()
        assert queue["paused"] is False and queue["workers"][0]["id"] == running.worker.id
        assert (await admin.post("/api/admin/queue/pause")).json() == {
            "ok": True,
            "action": "pause",
        }
        assert (await admin.get("/api/admin/queue")).json()["paused"] is True
        await admin.post("/api/admin/queue/resume")
        assert (await admin.get("/api/admin/queue")).json()["paused"] is False
        assert (await admin.post("/api/admin/queue/clean")).status_code == 200
    metrics = (await admin.get("/metrics")).text
    assert f'pagecast_deliveries{{page="{PAGE}",status="sent"}} 10.0' in metrics
    assert f'pagecast_sends_total{{outcome="sent",page="{PAGE}"}} 10.0' in metrics
    assert "pagecast_send_latency_seconds_count 10.0" in metrics
    assert 'pagecast_send_latency_seconds_bucket{le="+Inf"} 10.0' in metrics
    assert "pagecast_queue_jobs{" in metrics
    assert (await manager.get("/metrics")).status_code == 403


async def test_readiness_reports_redis_down(engine_app: Any, manager: httpx.AsyncClient) -> None:
    from pagecast.queue import Queue
    from pagecast.redis_url import parse_redis_url

    engine_app.state.context._queue = Queue(parse_redis_url("redis://127.0.0.1:1/0"))
    async with app_client(engine_app) as anonymous:
        ready = await anonymous.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {
        "ok": False,
        "database": True,
        "redis": False,
    }
    assert (
        await manager.get("/api/campaigns")
    ).status_code == 200  # everything but sending still works


async def test_a_campaign_whose_jobs_were_lost_is_planned_again(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    redis_url: str,
    engine_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 30)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    app_queue = engine_app.state.context.queue
    await (await app_queue.bull()).obliterate(force=True)  # the queue lost its jobs
    # …and the chunk ids the plan will use are taken by jobs that never run (stuck jobs):
    by_psid = await deliveries_by_psid(db, campaign_id)
    ids = sorted(by_psid[p].id for p in psids)
    size = pacing.chunk_for(200, sending_settings.chunk_size)  # the Page's rate
    chunks = [(ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]
    await app_queue.enqueue_chunks(campaign_id, chunks, delay_s=3600)
    running = RunningWorker(sending_settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        await wait_for(manager, campaign_id, {"completed"}, timeout=30)
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)
    assert f"campaign {campaign_id} made no progress; planning it again" in caplog.text


async def test_claims_of_a_dead_worker_without_echo_proof_fail_ambiguous_never_resent(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 20)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    # A worker that died after its claim: rows in `sending`, claimed by an id with no heartbeat.
    from pagecast.services import deliveries as deliveries_service

    lost = psids[:5]
    by_psid = await deliveries_by_psid(db, campaign_id)
    ids = sorted(by_psid[p].id for p in lost)
    async with db.transaction() as session:
        claimed = await deliveries_service.claim(
            session, campaign_id, ids[0], ids[-1], worker_id="gone:1:dead", now=utcnow()
        )
    assert len(claimed) == 5
    running = RunningWorker(sending_settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        done = await wait_for(manager, campaign_id, {"completed"}, timeout=30)
    rows = await deliveries_by_psid(db, campaign_id)
    # `sending` → `unknown` (worker_lost) → after the grace period, with no echo stream to
    # prove they never arrived, `failed` (ambiguous).
    assert {(rows[p].status, rows[p].reason, rows[p].resent_at) for p in lost} == {
        (DeliveryStatus.FAILED, "ambiguous", None)
    }
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids[5:])  # never resent blindly
    assert (
        done["counts"]["unknown"],
        done["counts"]["failed"],
        done["counts"]["sent"],
        done["counts"]["sending"],
    ) == (0, 5, 15, 0)
    assert done["reconciling"] is None


async def test_a_campaign_with_unknown_deliveries_completes_only_once_they_are_reconciled(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    grace = sending_settings.unknown_grace
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 4)
    await sim.post(
        "/__sim/script", json={"match": {"psid": psids[0]}, "responses": [{"timeout": "after"}]}
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    running = RunningWorker(sending_settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        deadline = time.monotonic() + 20
        while True:
            body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
            if body["counts"]["sent"] == 3 and body["counts"]["unknown"] == 1:
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
        # Nothing left to send, one outcome unknown: still sending, and the API says why.
        assert body["status"] == "sending" and body["eta_seconds"] == 0
        reconciling = body["reconciling"]
        assert reconciling["count"] == 1 and "ambiguous" in reconciling["why"]
        row = (await deliveries_by_psid(db, campaign_id))[psids[0]]
        assert row.unknown_since is not None
        assert datetime.fromisoformat(reconciling["until"]) == row.unknown_since + timedelta(
            seconds=grace
        )
        done = await wait_for(manager, campaign_id, {"completed"}, timeout=20)
    assert datetime.fromisoformat(done["completed_at"]) >= row.unknown_since + timedelta(
        seconds=grace
    )
    assert (done["counts"]["unknown"], done["counts"]["failed"]) == (0, 1)


async def campaign_audit(manager: httpx.AsyncClient, campaign_id: int) -> list[dict[str, Any]]:
    response = await manager.get(f"/api/campaigns/{campaign_id}/audit")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_circuit_breaker_pauses_when_most_recent_sends_fail(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=50)
    # 6 s of sending: the breaker trips while some of it is still pending (a campaign keeps
    # only about 2 s of its rate claimed or queued).
    psids = await add_people(sim, manager, page_id, 300)
    for psid in psids[::3] + psids[1::3]:  # Facebook refuses the message to two in three
        await sim.post(
            "/__sim/script",
            json={
                "match": {"psid": psid, "path": "messages"},
                "responses": [
                    {"code": 100, "subcode": 2018074, "message": "Invalid attachment id"}
                ],
            },
        )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    ratio_only = sending_settings.model_copy(
        update={"breaker_window": 30, "breaker_consecutive_bad": 10_000}
    )
    async with RunningWorker(ratio_only, db):
        paused = await wait_for(manager, campaign_id, {"paused"})
    assert paused["status_reason"].startswith("Circuit breaker: ")
    assert "of the last 30 sends failed" in paused["status_reason"]
    assert paused["counts"]["pending"] > 0
    entries = [
        e for e in await campaign_audit(manager, campaign_id) if e["action"] == "campaign.paused"
    ]
    assert len(entries) == 1 and entries[0]["actor"] == "system", entries
    assert entries[0]["details"]["reason"] == paused["status_reason"]


async def test_people_who_blocked_the_page_do_not_trip_the_circuit_breaker(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """Who cannot be reached says nothing about the campaign's requests, even when all of
    them come first (a campaign whose first 200 people had blocked the Page paused itself
    with "200 of the last 200 sends failed" and never finished)."""
    page_id = await setup_page(admin, sim, send_rate=100)
    blocked = await add_people(sim, manager, page_id, 120, sim_status="blocked")  # 551
    reachable = await add_people(sim, manager, page_id, 40, start=121)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    small_window = sending_settings.model_copy(update={"breaker_window": 30})
    async with RunningWorker(small_window, db):
        done = await wait_for(manager, campaign_id, {"completed", "paused"})
    assert done["status"] == "completed", done["status_reason"]
    assert (done["counts"]["failed"], done["counts"]["sent"]) == (len(blocked), len(reachable))
    assert sorted(m["psid"] for m in await outbox(sim)) == reachable


SPAM_WARNING = "Warning! Messages sent from this Page could be considered bothersome or abusive."


async def test_a_spam_warning_pauses_the_campaign_and_a_resume_sends_the_rest(
    engine_app: Any,
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """613/2018338: the campaign pauses with the reason (audited), the warned delivery goes
    back to pending with its attempt refunded, nothing more of the campaign is sent, and a
    resume sends what is left, each person once."""
    page_id = await setup_page(admin, sim, send_rate=50)
    psids = await add_people(sim, manager, page_id, 100)
    await sim.post(
        "/__sim/script",
        json={
            "match": {"path": "messages"},
            "responses": [
                {"ok": True, "times": 20},
                {"code": 613, "subcode": 2018338, "message": SPAM_WARNING},
            ],
        },
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        paused = await wait_for(manager, campaign_id, {"paused", "completed"})
    assert paused["status"] == "paused", paused["counts"]
    assert "spam" in paused["status_reason"] and "613/2018338" in paused["status_reason"]
    entries = [
        e for e in await campaign_audit(manager, campaign_id) if e["action"] == "campaign.paused"
    ]
    assert len(entries) == 1 and entries[0]["actor"] == "system", entries
    # The warned message went back to pending, its attempt refunded.
    warned = [
        d for d in (await deliveries_by_psid(db, campaign_id)).values() if d.error_code == 613
    ]
    assert [(d.status, d.attempts, d.error_subcode) for d in warned] == [
        (DeliveryStatus.PENDING, 0, 2018338)
    ]
    # Nothing of the campaign was sent after the warning but what was already on its way
    # (a send is granted up to 30 ms before it leaves), and nothing once it had paused.
    calls = (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
    sends = [c for c in calls if c["path"].endswith("/messages")]
    at = next(i for i, c in enumerate(sends) if c["code"] == 613)
    assert len(sends) - at - 1 <= 2, sends[at:]
    assert len(await outbox(sim)) == paused["counts"]["sent"] < 100

    # Once the Page's throttle (Graph's regain time, 60 s here) has passed, a resume sends
    # the rest, the warned person included.
    await engine_app.state.context.limiter.clear_throttle(page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/resume")).status_code == 200
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 100 and done["status_reason"] is None
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(psids)


async def test_retry_failed_can_pick_an_error_kind(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    flaky, blocked = await add_people(sim, manager, page_id, 2)
    await sim.post(
        "/__sim/script",
        json={"match": {"psid": flaky}, "responses": [{"code": 1, "http": 500, "times": 10}]},
    )
    await sim.post(
        "/__sim/users/status", json={"page_id": PAGE, "psid": blocked, "status": "blocked"}
    )
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db):
        done = await wait_for(manager, campaign_id, {"completed"})
        assert done["counts"]["failed"] == 2
        await sim.post("/__sim/script", json={"clear": True})
        retried = await manager.post(
            f"/api/campaigns/{campaign_id}/retry-failed", params={"kind": "retry"}
        )
        assert retried.status_code == 200 and retried.json()["retried"] == 1
        done = await wait_for(manager, campaign_id, {"completed"})
    rows = await deliveries_by_psid(db, campaign_id)
    assert rows[flaky].status is DeliveryStatus.SENT
    assert (rows[blocked].status, rows[blocked].reason) == (
        DeliveryStatus.FAILED,
        "recipient_unreachable",
    )
    assert [m["psid"] for m in await outbox(sim)] == [flaky]


async def test_start_enqueues_its_first_chunks_and_plans_after_them(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    engine_app: Any,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 50)  # 2 chunks of 25 (chunk_size)
    # 20/s: a second of its rate is less than chunk_size, so its chunks are of 25.
    page_id = await setup_page(admin, sim, send_rate=20)
    await add_people(sim, manager, page_id, 60)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    ids = await delivery_ids(db, campaign_id)
    bull = await engine_app.state.context.queue.bull()
    jobs = {job.id for job in await bull.getPrioritized()}
    # No plan job between the start and the first send: the start enqueued the chunks of
    # its first deliveries itself, and the plan goes on after them.
    assert jobs == {
        f"c{campaign_id}-{ids[0]}-{ids[24]}",
        f"c{campaign_id}-{ids[25]}-{ids[49]}",
        f"p{campaign_id}-{ids[49]}",
    } | ({f"snap{campaign_id}"} if len(ids) == 50 else set())


def test_a_chunk_holds_about_a_second_of_the_rate_within_its_bounds() -> None:
    assert pacing.chunk_for(20, 100) == 100  # chunk_size is the least
    assert pacing.chunk_for(300, 100) == 300
    assert pacing.chunk_for(299.5, 100) == 299
    assert pacing.chunk_for(10_000, 100) == pacing.CHUNK_MOST == 500
    assert pacing.chunk_for(10_000, 800) == 800  # a larger chunk_size still wins


async def test_pending_ranges_are_consecutive_chunks_of_the_pending_deliveries(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    from sqlalchemy import update

    from pagecast.services import deliveries

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 40)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    ids = await delivery_ids(db, campaign_id)
    gone = set(ids[3:6]) | {ids[17]}  # under way or done: not pending
    async with db.transaction() as session:
        await session.execute(
            update(Delivery).where(Delivery.id.in_(gone)).values(status=DeliveryStatus.SENT)
        )
    pending = [i for i in ids if i not in gone]

    def expected(after_id: int, size: int, most: int) -> list[tuple[int, int]]:
        left = [i for i in pending if i > after_id][: size * most]
        return [(left[i], left[min(i + size, len(left)) - 1]) for i in range(0, len(left), size)]

    async with db.transaction() as session:
        for after_id, size, most in [(0, 7, 100), (0, 7, 3), (ids[10], 5, 2), (ids[-2], 5, 2)]:
            got = await deliveries.pending_ranges(
                session, campaign_id, after_id=after_id, chunk_size=size, max_chunks=most
            )
            assert got == expected(after_id, size, most), (after_id, size, most)
        assert (
            await deliveries.pending_ranges(
                session, campaign_id, after_id=ids[-1], chunk_size=5, max_chunks=2
            )
            == []
        )
    assert expected(0, 7, 100)[-1][1] == pending[-1] and len(expected(0, 7, 100)) == 6


async def test_campaigns_of_two_pages_send_side_by_side(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    # Page A's campaign has far more chunks than the worker has job slots, and it starts
    # first. Queued all at once, its chunks would hold every slot while they wait for A's
    # 20/s, and Page B's campaign would wait behind them (about 10 s here). A campaign
    # queues only a few seconds of its rate at a time, so B starts sending at once.
    page_a = await setup_page(admin, sim, send_rate=20)
    page_b = await setup_page(admin, sim, send_rate=20, fb_page="1002", token="EAAGpagetoken1002")
    await add_people(sim, manager, page_a, 500)
    await add_people(sim, manager, page_b, 100, start=1_000, fb_page="1002")
    campaign_a = await new_campaign(manager, page_a)
    campaign_b = await new_campaign(manager, page_b)
    async with RunningWorker(sending_settings, db):
        assert (await manager.post(f"/api/campaigns/{campaign_a}/start")).status_code == 202
        # A's chunks are queued first and A is sending.
        await until(lambda: _some_sent(sim), what="Page A's first send")
        assert (await manager.post(f"/api/campaigns/{campaign_b}/start")).status_code == 202
        # About three seconds of B's 20/s: long enough to see both Pages' rates.
        await until(lambda: _sends_of(sim, "1002", 60), timeout=20, what="60 sends to Page B")
        calls = (await sim.get("/__sim/calls", params={"limit": 10_000})).json()["calls"]
        for campaign_id in (campaign_a, campaign_b):
            assert (await manager.post(f"/api/campaigns/{campaign_id}/cancel")).status_code == 200
    sends = {
        page: sorted(
            c["time"] for c in calls if c["page_id"] == page and c["path"].endswith("/messages")
        )
        for page in (PAGE, "1002")
    }
    assert sends[PAGE] and sends["1002"], {k: len(v) for k, v in sends.items()}
    # B's first send comes within its first chunk's claim, not after A's backlog.
    assert sends["1002"][0] - sends[PAGE][0] < 2.0, sends["1002"][0] - sends[PAGE][0]
    # Both Pages kept their own rate meanwhile (20/s each, nothing lost to the other).
    both = [t for t in sends[PAGE] if t >= sends["1002"][0]]
    span = sends["1002"][-1] - sends["1002"][0]
    assert len(sends["1002"]) >= 0.7 * 20 * span and len(both) >= 0.7 * 20 * span, (
        len(sends["1002"]),
        len(both),
        span,
    )


async def test_a_worker_claims_no_more_than_two_chunks_of_a_page_at_once(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    # 50/s and chunks of 50 (a second of the rate): the campaign keeps 2 chunks queued and
    # plans more as they are claimed, and the worker has 8 job slots. Were every chunk it
    # takes to claim at once, all 400 deliveries would soon wait in `sending` for the
    # Page's slots, all of them left to reconciliation if the worker died. Two chunks claim
    # at a time; a third may still be writing its results.
    chunk = pacing.chunk_for(50, sending_settings.chunk_size)
    page_id = await setup_page(admin, sim, send_rate=50)
    await add_people(sim, manager, page_id, 400)
    campaign_id = await new_campaign(manager, page_id)
    most = 0
    async with RunningWorker(sending_settings, db):
        assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            async with db.transaction() as session:
                claimed = await session.scalar(
                    select(func.count(Delivery.id)).where(
                        Delivery.campaign_id == campaign_id,
                        Delivery.status == DeliveryStatus.SENDING,
                    )
                )
            most = max(most, int(claimed or 0))
            await asyncio.sleep(0.02)
        counts = (await manager.get(f"/api/campaigns/{campaign_id}")).json()["counts"]
        assert (await manager.post(f"/api/campaigns/{campaign_id}/cancel")).status_code == 200
    assert counts["sent"] >= chunk, counts  # chunks were sent and written meanwhile
    assert chunk <= most <= 3 * chunk, most


async def test_progress_counts_the_rate_once_a_second_and_the_rest_every_time(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pagecast.services import campaigns
    from pagecast.web import progress as progress_reads

    counted: list[int] = []
    real = campaigns.send_rate

    async def send_rate(session: Any, campaign_id: int) -> float:
        counted.append(campaign_id)
        return await real(session, campaign_id)

    monkeypatch.setattr(campaigns, "send_rate", send_rate)
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    first = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    async with db.transaction() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        row.n_pending, row.n_sent = row.n_pending - 1, row.n_sent + 1
    second = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert counted == [campaign_id]  # the rate of the first answer, reused
    assert (first["counts"]["sent"], second["counts"]["sent"]) == (0, 1)  # counts are fresh
    await manager.post(f"/api/campaigns/{campaign_id}/pause")
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["status"] == "paused"
    monkeypatch.setattr(progress_reads, "RATE_TTL", 0.0)
    # The cached rate has expired: the answer uses it and a count starts beside it.
    await manager.get(f"/api/campaigns/{campaign_id}")
    deadline = time.monotonic() + 5
    while len(counted) < 2:
        assert time.monotonic() < deadline, counted
        await asyncio.sleep(0.01)
    assert counted == [campaign_id, campaign_id]


async def test_a_batch_whose_answer_is_lost_leaves_every_message_unknown_never_resent(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    # The batch request reaches Graph (which sends all twelve) but its answer comes after
    # the client gave up: each message of it may have arrived, so each is `unknown`, and
    # with no echo stream to prove otherwise each fails `ambiguous`; none is sent twice.
    settings = sending_settings.model_copy(
        update={"send_batch_size": 50, "graph_read_timeout": 0.5}
    )
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 12)
    campaign_id = await new_campaign(manager, page_id)
    await sim.post("/__sim/latency", json={"ms": "1500"})
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    running = RunningWorker(settings, db)
    running.worker.config = dataclasses.replace(running.worker.config, sweep_seconds=0.3)
    async with running:
        done = await wait_for(manager, campaign_id, {"completed"}, timeout=30)
    rows = await deliveries_by_psid(db, campaign_id)
    assert {(r.status, r.reason, r.error_kind, r.attempts) for r in rows.values()} == {
        (DeliveryStatus.FAILED, "ambiguous", "ambiguous", 1)
    }
    assert sorted(m["psid"] for m in await outbox(sim)) == sorted(psids)  # each exactly once
    sends = [
        c
        for c in (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
        if c["path"].endswith("/me/messages")
    ]
    assert len(sends) == 12 and all(c["in_batch"] for c in sends)
    assert (done["counts"]["failed"], done["counts"]["unknown"]) == (12, 0)


async def test_concurrent_progress_reads_share_the_next_read(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pagecast.services import campaigns
    from pagecast.web import progress as progress_reads

    arrived = reads = 0
    real_read, real_arrive = campaigns.get_with_page_rate, progress_reads.Coalesced.read

    async def arrive(self: Any, *args: Any) -> Any:
        nonlocal arrived
        arrived += 1
        return await real_arrive(self, *args)

    async def slow_read(session: Any, campaign_id: int) -> Any:
        nonlocal reads
        reads += 1
        deadline = time.monotonic() + 10
        while reads == 1 and arrived < 20:  # the first read runs until every request is in
            assert time.monotonic() < deadline, arrived
            await asyncio.sleep(0.01)
        return await real_read(session, campaign_id)

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    monkeypatch.setattr(campaigns, "get_with_page_rate", slow_read)
    monkeypatch.setattr(progress_reads.Coalesced, "read", arrive)
    answers = await asyncio.gather(
        *(manager.get(f"/api/campaigns/{campaign_id}") for _ in range(20))
    )
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json()["counts"]["pending"] for a in answers} == {3}
    # The first read, and one more (not 19) for the requests that arrived while it ran: each
    # answer was read after its request arrived.
    assert reads == 2
    missing = await asyncio.gather(*(manager.get("/api/campaigns/999999") for _ in range(3)))
    assert [m.status_code for m in missing] == [404] * 3


async def test_high_priority_campaign_overtakes_a_large_normal_one(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    """On one Page, a high-priority campaign started while a large normal one is sending
    goes before every chunk of the large one that had not claimed yet: until the urgent
    one's last message, the Page sends of the large one only what it had claimed when the
    urgent one started. (With every job at the same priority, 40 to 150 messages of the
    large one's later chunks went first.)"""
    page_id = await setup_page(admin, sim, send_rate=50)  # chunks of 100: 2 s each
    big_psids = await add_people(sim, manager, page_id, 800)
    urgent_psids = await add_people(sim, manager, page_id, 100, start=801)
    async with db.transaction() as session:
        ids = {psid: id_ for psid, id_ in await session.execute(select(Contact.psid, Contact.id))}
    big = await new_campaign(
        manager,
        page_id,
        name="Newsletter",
        priority="normal",
        audience={"type": "contacts", "ids": [ids[p] for p in big_psids]},
    )
    urgent = await new_campaign(
        manager,
        page_id,
        name="Outage notice",
        priority="high",
        audience={"type": "contacts", "ids": [ids[p] for p in urgent_psids]},
    )
    await manager.post(f"/api/campaigns/{big}/start")
    async with RunningWorker(sending_settings, db):
        deadline = time.monotonic() + 30
        while (await manager.get(f"/api/campaigns/{big}")).json()["counts"]["sent"] < 150:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await manager.post(f"/api/campaigns/{urgent}/start")).status_code == 202
        async with db.transaction() as session:  # what the large one had claimed by then
            claimed_upto = await session.scalar(
                select(func.max(Delivery.id)).where(
                    Delivery.campaign_id == big, Delivery.status != DeliveryStatus.PENDING
                )
            )
        done = await wait_for(manager, urgent, {"completed"}, timeout=60)
        still = (await manager.get(f"/api/campaigns/{big}")).json()
    assert done["counts"]["sent"] == 100
    assert still["status"] == "sending" and still["counts"]["pending"] > 200, still["counts"]
    accepted = await outbox(sim)
    last_urgent = max(i for i, m in enumerate(accepted) if m["psid"] in set(urgent_psids))
    overtaken = [
        int(m["metadata"])
        for m in accepted[:last_urgent]
        if m["psid"] in set(big_psids) and int(m["metadata"]) > claimed_upto
    ]
    assert overtaken == [], f"{len(overtaken)} sends of the normal campaign went first"
