"""Message sequences under the engine's hard cases (issue 19): a worker SIGKILLed in the
middle of people's sequences, and the Page's rate with every message a Send call.

The kill test runs `pagecast web` and `pagecast worker` processes on PostgreSQL (the harness
of tests/test_reliability.py); the pacing test runs the app and a worker in one process, like
`pagecast serve`, against the simulator process (the harness of tests/test_pacing.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import httpx
import pytest
from sqlalchemy import select

import test_pacing
import test_reliability
from factories import postgresql_only
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus
from pagecast.settings import Settings
from processes import WorkerProcess
from test_pacing import Serve, assert_paced, reached, send_times, serve_page, until_done
from test_reliability import (
    FINAL,
    RECONCILING,
    Env,
    counters,
    outbox,
    point_webhooks,
    setup_page,
    statuses,
    wait_until_done,
)

pytestmark = [pytest.mark.slow]

# The fixtures of the two harnesses.
postgres = test_reliability.postgres
env_factory = test_reliability.env_factory
env = test_reliability.env
graph_process = test_pacing.graph_process
graph = test_pacing.graph
serve_settings = test_pacing.serve_settings

SEQUENCE = [
    {"attachment": {"type": "image", "url": "https://example.com/sale.png"}},
    {
        "text": "Hi {{first_name|there}}, 20% off today",
        "buttons": [{"type": "web_url", "title": "Shop", "url": "https://example.com/shop"}],
    },
    {"text": "Reply STOP to opt out"},
]
PEOPLE = 2_000


async def mid_sequence(db: Database, campaign_id: int, worker: WorkerProcess) -> int:
    """Deliveries `worker` holds with some but not all of their messages accepted."""
    async with db.transaction() as session:
        claimed = await session.scalars(
            select(Delivery.claimed_by).where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.parts_sent.between(1, len(SEQUENCE) - 1),
            )
        )
        return sum(1 for c in claimed if test_reliability.claimed_by_pid(c) == worker.pid)


async def kill_mid_sequence(env: Env, campaign_id: int, workers: list[WorkerProcess]) -> int:
    """SIGKILL the first of `workers` seen holding deliveries part-way through their
    sequence, and start another in its place; returns how many it held so."""
    deadline = time.monotonic() + 120
    while True:
        for index, worker in enumerate(workers):
            assert worker.alive(), worker.log()[-3000:]
            held = await mid_sequence(env.db, campaign_id, worker)
            if held:
                worker.kill()
                workers[index] = env.worker(**RECONCILING)
                return held
        assert time.monotonic() < deadline, "no worker was ever seen mid-sequence"
        await asyncio.sleep(0.02)


async def prove_echoes_live(env: Env, sim: httpx.AsyncClient, page: int, campaign_id: int) -> None:
    """Once the kills' claims are `unknown`, another campaign of the Page sends to people
    added since: its echoes show the Page's echo stream live past the lost attempts, so
    reconciliation may take a missing echo as a missing message (else, with nothing sent
    after them, they would end `ambiguous`: services/reconcile.py)."""
    deadline = time.monotonic() + 120
    while not (await counters(env.db, campaign_id))["unknown"]:
        assert time.monotonic() < deadline, await counters(env.db, campaign_id)
        await asyncio.sleep(0.1)
    later = await test_reliability.add_people(env, sim, page, 20, start=PEOPLE)
    async with env.db.transaction() as session:
        ids = list(await session.scalars(select(Contact.id).where(Contact.psid.in_(later))))
    await test_reliability.start_campaign(env, page, audience={"type": "contacts", "ids": ids})


async def parts_sent(db: Database, campaign_id: int) -> set[int]:
    async with db.transaction() as session:
        return set(
            await session.scalars(
                select(Delivery.parts_sent).where(Delivery.campaign_id == campaign_id)
            )
        )


async def messages_by_person(db: Database, campaign_id: int) -> dict[str, list[str]]:
    """Each person's delivery id: what each of their messages' metadata must name."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.psid, Delivery.id)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        return {
            psid: [f"{delivery_id}:1", f"{delivery_id}:2", str(delivery_id)]
            for psid, delivery_id in rows
        }


@postgresql_only
@pytest.mark.timeout(600)
async def test_sigkill_mid_sequence_each_person_gets_each_message_exactly_once(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    """A kill while the worker holds people part-way through their three messages:
    the accepted messages' echoes (and what the worker wrote after each round) say where
    each person is, reconciliation resends the rest, and the outbox holds each person's three
    messages once each, in order."""
    web = env.web()
    await point_webhooks(sim, web.url)
    # Echoes only: receipts moving deliveries on would race the counters' comparison.
    knobs = await sim.post("/__sim/knobs", json={"p_delivered": 0.0, "p_read": 0.0})
    assert knobs.status_code == 200, knobs.text
    page = await setup_page(env, sim, send_rate=300)
    eligible = await test_reliability.add_people(env, sim, page, PEOPLE)
    workers = [env.worker(**RECONCILING), env.worker(**RECONCILING)]
    campaign_id = await test_reliability.start_campaign(env, page, content=None, messages=SEQUENCE)
    await test_reliability.wait_for_sent(env, campaign_id, PEOPLE // 5, workers[0])
    held = await kill_mid_sequence(env, campaign_id, workers)
    await prove_echoes_live(env, sim, page, campaign_id)
    await wait_until_done(env, campaign_id, timeout=300, workers=workers)
    assert held > 0
    by_status = await statuses(env.db, campaign_id)
    reached = sum(
        by_status[s] for s in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
    )
    expected = await messages_by_person(env.db, campaign_id)
    got: dict[str, list[str]] = defaultdict(list)
    for message in await outbox(sim):
        if message["psid"] in expected:
            got[message["psid"]].append(message["metadata"])
    twice = [p for p, sent in got.items() if len(sent) != len(set(sent))]
    assert not twice, f"{len(twice)} people got a message twice, e.g. {got[twice[0]]}"
    wrong = {p: got.get(p) for p in eligible if got.get(p) != expected[p]}
    assert not wrong, (
        f"{len(wrong)} people did not get the sequence once in order ({by_status}): "
        f"{list(wrong.items())[:5]}"
    )
    assert reached == PEOPLE, by_status
    assert set(by_status) <= FINAL
    assert await parts_sent(env.db, campaign_id) == {len(SEQUENCE)}
    stored = await counters(env.db, campaign_id)
    assert stored == {s.value: by_status.get(s, 0) for s in DeliveryStatus}
    assert web.alive(), web.log()[-3000:]
    # The kills' claims went through reconciliation: proven absent by the echoes, resent.
    assert await _resent(env.db, campaign_id)


async def _resent(db: Database, campaign_id: int) -> list[DeliveryStatus]:
    async with db.transaction() as session:
        return list(
            await session.scalars(
                select(Delivery.status).where(
                    Delivery.campaign_id == campaign_id, Delivery.resent_at.is_not(None)
                )
            )
        )


@pytest.mark.parametrize("batch", [1, 10], ids=["one-message-a-request", "graph-batches"])
async def test_a_sequence_never_gives_the_page_more_than_its_rate_in_any_second(
    serve_settings: Settings, db: Database, graph: httpx.AsyncClient, batch: int
) -> None:
    """Each message of a sequence is a Send call that takes one of the Page's slots: three
    messages to 100 people are 300 calls, never more than the rate in any sliding second."""
    rate, people = 50.0, 100
    settings = serve_settings.model_copy(update={"send_batch_size": batch})
    async with Serve(settings, db) as serve:
        api, page_id = await serve_page(serve, graph, rate)
        await test_pacing.add_people(graph, api, page_id, people, start=0)
        created = await api.post(
            "/api/campaigns", json={"name": "Sequence", "page_id": page_id, "messages": SEQUENCE}
        )
        assert created.status_code == 201, created.text
        campaign_id = int(created.json()["id"])
        started = await api.post(f"/api/campaigns/{campaign_id}/start")
        assert started.status_code == 202, started.text
        await until_done(api, campaign_id)
        assert reached(await test_pacing.counts(api, campaign_id)) == people
    assert_paced(await send_times(graph), rate, people * len(SEQUENCE))
