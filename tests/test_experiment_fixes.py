"""A/B experiments at their edges (issue 20): a slice inserted after a hand pick, the
frequency cap with a holdout, the holdout's replies, concurrent decisions, a completed
campaign's status, tiny samples, and the dashboard's refusal of a non-finite test time.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from factories import ADMIN_ACTOR, connected_page, postgresql_only
from pagecast.db import Database
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    utcnow,
)
from pagecast.security import Vault
from pagecast.services import deliveries, experiments, frequency_cap, snapshots, variants

A = {"text": "Hi, 10% off"}
CUT = {"test_percent": 20, "holdout_percent": 10, "decide_after_seconds": 3600}


async def _people(db: Database, page_id: int, count: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(Contact),
            [
                {"page_id": page_id, "psid": f"8{i:06d}", "last_inbound_at": utcnow(), **values}
                for i in range(count)
            ],
        )


def _campaign(page_id: int, experiment: Any = CUT, **values: Any) -> Campaign:
    return Campaign(
        name="ab",
        page_id=page_id,
        content=A,
        audience={"type": "all"},
        variants=[{"key": k, "content": A, "weight": 1} for k in "AB"],
        experiment=experiment,
        experiment_state="testing",
        variant_seed=7,
        **values,
    )


async def _rows(db: Database, campaign_id: int) -> list[tuple[int, str | None, str, str | None]]:
    async with db.transaction() as session:
        return [
            (c, v, s.value if hasattr(s, "value") else s, r)
            for c, v, s, r in await session.execute(
                select(Delivery.contact_id, Delivery.variant, Delivery.status, Delivery.reason)
                .where(Delivery.campaign_id == campaign_id)
                .order_by(Delivery.contact_id)
            )
        ]


@postgresql_only
async def test_a_slice_inserted_after_a_hand_pick_gets_the_winner(
    db: Database, vault: Vault
) -> None:
    """The rest of a slice written after the winner was picked gets the winner, not the
    waiting mark nothing would move again (the campaign would never complete)."""
    page = await connected_page(db, vault)
    await _people(db, page.id, snapshots.SNAPSHOT_FIRST + 500)
    now = utcnow()
    campaign = _campaign(page.id, status=CampaignStatus.SENDING, started_at=now)
    async with db.transaction() as session:
        session.add(campaign)
        await session.flush()
        _, rest = await snapshots.first_slice(session, campaign, now, [])
    assert rest is not None
    async with db.transaction() as session:
        await experiments.pick_winner(session, ADMIN_ACTOR, campaign.id, "B", now)
    async with db.transaction() as session:
        await snapshots.insert_slice(session, campaign.id, after=rest.after, upto=rest.upto)
    rows = await _rows(db, campaign.id)
    assert len(rows) == snapshots.SNAPSHOT_FIRST + 500
    assert not [r for r in rows if r[1] == variants.WAITING]
    late = Counter(v for c, v, _, r in rows if c > rest.after and r != variants.HOLDOUT)
    assert late["B"] > late["A"] > 0, late  # the rest got B, the test cohort its own


async def _snapshot(db: Database, campaign: Campaign) -> dict[int, tuple[str | None, str | None]]:
    async with db.transaction() as session:
        session.add(campaign)
        await session.flush()
        await deliveries.snapshot(session, campaign, utcnow())
    return {c: (v, r) for c, v, _, r in await _rows(db, campaign.id)}


async def test_the_frequency_cap_comes_before_the_holdout_in_every_cohort(
    db: Database, vault: Vault
) -> None:
    """People over the Page's cap are skipped `frequency_cap` wherever the hash put them
    (holdout, test cohort, rest); the holdout is cut from the others only, so it and the
    test cohort lose the same kind of people (the lift stays fair)."""
    page = await connected_page(db, vault)
    await _people(db, page.id, 600)
    free = await _snapshot(db, _campaign(page.id, CUT | {"holdout_percent": 30}))
    async with db.transaction() as session:
        earlier = _campaign(page.id, None)
        session.add(earlier)
        await session.flush()
        capped = sorted(free)[::2]
        now = utcnow()
        await session.execute(
            insert(Delivery),
            [
                {
                    "campaign_id": earlier.id,
                    "contact_id": c,
                    "status": DeliveryStatus.READ.value,
                    "attempts": 1,
                    "sent_at": now - timedelta(days=1),
                    "updated_at": now,
                }
                for c in capped
            ],
        )
        await session.execute(
            update(Page).where(Page.id == page.id).values(frequency_cap={"messages": 1, "days": 7})
        )
    got = await _snapshot(db, _campaign(page.id, CUT | {"holdout_percent": 30}))
    assert {c for c, (_, r) in got.items() if r == frequency_cap.REASON} == set(capped)
    held = {c for c, (_, r) in free.items() if r == variants.HOLDOUT}
    assert held & set(capped)  # some of the capped people were the holdout's
    assert {c for c, (_, r) in got.items() if r == variants.HOLDOUT} == held - set(capped)
    assert all(got[c][0] == free[c][0] for c in got)  # nobody changes variant
