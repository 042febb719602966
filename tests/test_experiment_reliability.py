"""An A/B experiment through a worker killed with SIGKILL during its test phase (issue 20):
nobody's variant changes, nobody gets two messages, the holdout gets none, and the rest
gets the winner once it is picked. Workers are real `pagecast worker` processes
(test_reliability's fixtures); several processes write at once: PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

import test_reliability
from factories import postgresql_only
from pagecast.db import Database
from pagecast.models import Contact, Delivery, DeliveryStatus
from pagecast.services import variants
from test_reliability import (
    RECONCILING,
    Env,
    add_people,
    outbox,
    setup_page,
    start_campaign,
    stuck_sending,
    wait_for_sent,
    wait_until_done,
)

pytestmark = [pytest.mark.slow]

env_factory = test_reliability.env_factory
env = test_reliability.env
postgres = test_reliability.postgres

TWO = [
    {"key": "A", "content": {"text": "Hi {{first_name|there}}, 10% off"}},
    {"key": "B", "content": {"text": "Hi {{first_name|there}}, free shipping today"}},
]
EXPERIMENT = {"test_percent": 20, "holdout_percent": 10, "decide_after_seconds": 3600}


async def assigned(db: Database, campaign_id: int) -> dict[str, tuple[str | None, str | None]]:
    """Each person's (variant, reason) as stored."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.psid, Delivery.variant, Delivery.reason)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        return {psid: (variant, reason) for psid, variant, reason in rows}


async def cohort_open(db: Database, campaign_id: int) -> int:
    """Deliveries of the test cohort not final yet (pending, sending or unknown)."""
    async with db.transaction() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.variant.in_(["A", "B"]),
                    Delivery.status.in_(
                        [DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN]
                    ),
                )
            )
            or 0
        )


@postgresql_only
@pytest.mark.timeout(300)
async def test_a_worker_killed_in_the_test_phase_changes_nobodys_variant(
    postgres: str, env: Env, sim: httpx.AsyncClient
) -> None:
    page = await setup_page(env, sim, send_rate=60)
    await add_people(env, sim, page, 2000)
    fast = RECONCILING | {"PAGECAST_UNKNOWN_GRACE": "1"}
    worker = env.worker(**fast)
    campaign_id = await start_campaign(env, page, content=None, variants=TWO, experiment=EXPERIMENT)
    before = await assigned(env.db, campaign_id)
    test = [p for p, (v, _) in before.items() if v in ("A", "B")]
    assert 300 < len(test) < 500, len(test)
    await wait_for_sent(env, campaign_id, 100, worker)
    worker.kill()
    assert await stuck_sending(env.db, campaign_id), "the kill left nothing in flight"
    worker = env.worker(**fast)
    deadline = time.monotonic() + 60
    while await cohort_open(env.db, campaign_id):
        assert time.monotonic() < deadline and worker.alive(), worker.log()[-3000:]
        await asyncio.sleep(0.1)
    variant_of = {p: v for p, (v, _) in before.items()}
    assert {p: v for p, (v, _) in (await assigned(env.db, campaign_id)).items()} == variant_of
    sent = await outbox(sim)
    assert {m["psid"] for m in sent} <= set(test)  # the rest waited, the holdout too
    assert env.api is not None
    picked = await env.api.post(f"/api/campaigns/{campaign_id}/winner", json={"key": "B"})
    assert picked.status_code == 200, picked.text
    await wait_until_done(env, campaign_id, timeout=120, workers=[worker])
    after = await assigned(env.db, campaign_id)
    for psid, variant in variant_of.items():  # the rest got B, everyone else kept theirs
        assert after[psid][0] == ("B" if variant == variants.WAITING else variant), psid
    psids = Counter(m["psid"] for m in await outbox(sim))
    assert max(psids.values()) == 1, "someone got two messages"
    held = {p for p, (_, r) in before.items() if r == variants.HOLDOUT}
    assert held and not held & set(psids)
    for message in await outbox(sim):
        text = message["message"]["text"]
        assert ("free shipping" in text) == (after[message["psid"]][0] == "B")
