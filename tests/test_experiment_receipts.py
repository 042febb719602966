# ruff: noqa: F811  (the fixtures imported from test_webhooks are parameters here)
"""An A/B experiment decided on real read receipts (issue 20): the simulator's `engagement`
knob makes people read variant B far more than A, its webhooks reach the app on a loopback
port, the receipts mark the deliveries read, and the worker's sweep after the test time
sends B to the rest. No UPDATE of the deliveries by the test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from pagecast.db import Database
from pagecast.models import Delivery, DeliveryStatus
from pagecast.services import variants
from pagecast.settings import Settings
from test_experiments import EXPERIMENT, TWO, _sweep_at, variant_of
from test_sending import (
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
    engine,
    hook_settings,
    people_admin,
    point_simulator,
    until,
)


async def _reads(db: Database, campaign_id: int, key: str) -> int:
    async with db.transaction() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.variant == key,
                    Delivery.status == DeliveryStatus.READ,
                )
            )
            or 0
        )


async def test_b_read_more_through_the_simulators_receipts_goes_to_the_rest(
    people_admin: httpx.AsyncClient,
    engine: Any,
    sim: httpx.AsyncClient,
    engine_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(people_admin, sim)
    await add_people(sim, people_admin, page_id, 400)
    campaign_id = await new_campaign(
        people_admin, page_id, content=None, variants=TWO, experiment=EXPERIMENT
    )
    async with LoopbackApp(engine) as url:
        await point_simulator(
            sim,
            url,
            p_read=0.0,
            p_delivered=1.0,
            read_delay=[5, 5],
            engagement=[
                {"match": "free shipping", "p_read": 0.9},
                {"match": "10% off", "p_read": 0.1},
            ],
        )
        started = await people_admin.post(f"/api/campaigns/{campaign_id}/start")
        assert started.status_code == 202, started.text
        rows = await deliveries_by_psid(db, campaign_id)
        test = {p for p, d in rows.items() if d.variant in ("A", "B")}
        async with RunningWorker(engine_settings, db):

            async def cohort_sent() -> bool:
                return len(await outbox(sim)) >= len(test)

            await until(cohort_sent, timeout=30)
            assert (await sim.post("/__sim/clock/advance", json={"seconds": 10})).status_code == 200
            b_sent = sum(1 for p in test if rows[p].variant == "B")

            async def b_read() -> bool:
                return await _reads(db, campaign_id, "B") >= b_sent * 0.6

            await until(b_read, timeout=30)
            await _sweep_at(engine_settings, db, timedelta(hours=1, seconds=5))
            body = (await people_admin.get(f"/api/campaigns/{campaign_id}")).json()
            experiment = body["experiment"]
            assert experiment["winner"] == "B", experiment
            assert experiment["variants"]["B"]["read"] > experiment["variants"]["A"]["read"]
            await wait_for(people_admin, campaign_id, {"completed"})
        # The rest's receipts would go on arriving: the loopback server stops without them.
        assert (await sim.post("/__sim/webhook", json={"enabled": False})).status_code == 200
    messages = await outbox(sim)
    rest = {p for p, d in rows.items() if d.variant == variants.WAITING}
    assert {m["psid"] for m in messages} == test | rest  # the holdout got nothing
    assert all(variant_of(m) == "B" for m in messages if m["psid"] in rest)
