"""A/B experiments at their edges (issue 20): a slice inserted after a hand pick, the
frequency cap with a holdout, the holdout's replies, concurrent decisions, a completed
campaign's status, tiny samples, and the dashboard's refusal of a non-finite test time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

import test_sending
from factories import ADMIN_ACTOR, connected_page, create_user, postgresql_only, session_cookie
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.errors import InvalidState
from pagecast.models import (
    AuditLog,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    Role,
    utcnow,
)
from pagecast.security import Vault
from pagecast.services import (
    abstats,
    experiments,
    frequency_cap,
    snapshot_insert,
    snapshots,
    variants,
)
from pagecast.settings import Settings
from pagecast.web import progress
from pagecast.web.deps import SESSION_COOKIE
from pagecast.worker import build
from pagecast.worker.sweep import sweep

sending_settings = test_sending.sending_settings

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
        await snapshot_insert.snapshot(session, campaign, utcnow())
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


async def _tested(db: Database, page_id: int, b_reads: int, **values: Any) -> int:
    """A started experiment two hours into its one-hour test: 60 sent of A (10 read) and of
    B (`b_reads` read), and a rest waiting."""
    async with db.transaction() as session:
        ids = list(await session.scalars(select(Contact.id).where(Contact.page_id == page_id)))
        now = utcnow()
        values = {"status": CampaignStatus.SENDING, "started_at": now - timedelta(hours=2)} | values
        campaign = _campaign(page_id, **values)
        session.add(campaign)
        await session.flush()

        def row(contact_id: int, variant: str, read: bool) -> dict[str, Any]:
            status = DeliveryStatus.READ if read else DeliveryStatus.SENT
            return {
                "campaign_id": campaign.id,
                "contact_id": contact_id,
                "variant": variant,
                "status": status.value,
                "attempts": 1,
                "sent_at": now - timedelta(hours=2),
                "updated_at": now,
            }

        rows = [row(c, "A", i < 10) for i, c in enumerate(ids[:60])]
        rows += [row(c, "B", i < b_reads) for i, c in enumerate(ids[60:120])]
        rows += [
            {"campaign_id": campaign.id, "contact_id": c, "variant": variants.WAITING}
            | {"status": DeliveryStatus.PENDING.value, "attempts": 0, "updated_at": now}
            for c in ids[120:]
        ]
        await session.execute(insert(Delivery), rows)
        return campaign.id


async def _audits(db: Database, campaign_id: int) -> list[str]:
    async with db.transaction() as session:
        return list(
            await session.scalars(
                select(AuditLog.action).where(
                    AuditLog.object_type == "campaign", AuditLog.object_id == campaign_id
                )
            )
        )


@postgresql_only
async def test_concurrent_decisions_and_a_hand_pick_decide_once(db: Database, vault: Vault) -> None:
    """Two sweeps deciding at once, or a sweep and a person picking: one decision, one audit
    record, and the rest gets one winner."""
    page = await connected_page(db, vault)
    await _people(db, page.id, 150)
    first = await _tested(db, page.id, b_reads=50)
    second = await _tested(db, page.id, b_reads=50)

    async def sweep() -> list[int]:
        async with db.transaction() as session:
            return [c.id for c in await experiments.decide_due(session, utcnow())]

    one, two = await asyncio.gather(sweep(), sweep())
    assert sorted(one + two) == [first, second], (one, two)
    assert await _audits(db, first) == ["campaign.experiment_decided"]
    third = await _tested(db, page.id, b_reads=50)
    decided, picked = await asyncio.gather(sweep(), pick_third(db, third))
    actions = await _audits(db, third)
    assert len(actions) == 1, actions
    async with db.transaction() as session:
        campaign = await session.get(Campaign, third)
        assert campaign is not None and campaign.experiment_state == "decided"
        rest = Counter(
            await session.scalars(
                select(Delivery.variant).where(
                    Delivery.campaign_id == third, Delivery.status == DeliveryStatus.PENDING
                )
            )
        )
    assert set(rest) == {campaign.winner}, rest
    assert (picked == "picked") == (third not in decided) == (campaign.winner == "A")


async def pick_third(db: Database, campaign_id: int) -> str:
    try:
        async with db.transaction() as session:
            await experiments.pick_winner(session, ADMIN_ACTOR, campaign_id, "A", utcnow())
    except InvalidState:
        return "refused"
    return "picked"


async def test_a_completed_campaign_still_testing_reads_done_and_is_not_decided(
    db: Database, vault: Vault
) -> None:
    """Test cohort and holdout are the whole audience: the campaign completes before the
    test time is over; its experiment reads `done`, not "deciding … pick a winner"."""
    page = await connected_page(db, vault)
    await _people(db, page.id, 120)
    campaign_id = await _tested(db, page.id, b_reads=50, status=CampaignStatus.COMPLETED)
    async with db.transaction() as session:
        assert await experiments.decide_due(session, utcnow()) == []
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.experiment_state == "testing"
        report = await experiments.report(session, campaign)
    assert report is not None and report["status"] == "done"
    assert await _audits(db, campaign_id) == []


async def test_a_campaign_cancelled_after_it_was_listed_is_not_decided(
    db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    await _people(db, page.id, 150)
    campaign_id = await _tested(db, page.id, b_reads=50)
    async with db.transaction() as session:
        assert await experiments.due(session, utcnow()) == [campaign_id]
    async with db.transaction() as session:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(status=CampaignStatus.CANCELLED)
        )
    async with db.transaction() as session:
        assert await experiments.decide_one(session, campaign_id, utcnow()) is None
    assert await _audits(db, campaign_id) == []


async def test_one_experiment_that_cannot_be_decided_stops_neither_the_others_nor_the_sweep(
    db: Database, vault: Vault, sending_settings: Settings
) -> None:
    page = await connected_page(db, vault)
    await _people(db, page.id, 150)
    broken = await _tested(db, page.id, b_reads=50)
    fine = await _tested(db, page.id, b_reads=50)
    async with db.transaction() as session:
        await session.execute(  # a setting this version cannot read (say, a newer one's)
            update(Campaign)
            .where(Campaign.id == broken)
            .values(experiment=CUT | {"winner_metric": "revenue"})
        )
    ctx = AppContext(sending_settings, database=db)
    try:
        await sweep(build(ctx).env)
    finally:
        await ctx.close()
    async with db.transaction() as session:
        states = dict(
            (
                await session.execute(
                    select(Campaign.id, Campaign.experiment_state).where(
                        Campaign.id.in_([broken, fine])
                    )
                )
            ).all()
        )
    assert states == {broken: "testing", fine: "decided"}


@pytest.mark.parametrize("hours", ["inf", "1e400", "nan", "-Infinity"])
async def test_a_test_time_that_is_no_number_is_named_by_the_composer(
    app: Any, db: Database, vault: Vault, hours: str
) -> None:
    page = await connected_page(db, vault)
    user, _ = await create_user(db, Role.ADMIN, email="ab@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        form = {
            "csrf_token": app.state.context.vault.csrf_token(cookie),
            "name": "AB",
            "page_id": str(page.id),
            "text": "Hi, 10% off",
            "ab_on": "1",
            "ab_text_B": "Hi, free shipping",
            "ab_test_percent": "20",
            "ab_decide_hours": hours,
        }
        composed = await client.post("/campaigns/new", data=form)
    assert composed.status_code == 422, composed.text[:300]
    assert 'class="field-error"' in composed.text and "decide_after_seconds" in composed.text


def test_tiny_samples_are_never_significant() -> None:
    """3 of 3 against 0 of 3: p = 0.014 by the normal approximation, which does not hold on
    so few; each arm must expect 5 successes and 5 failures at the pooled rate."""
    tiny = abstats.compare(3, 3, 0, 3)
    assert tiny.p_value < 0.05 and not tiny.significant
    assert not abstats.enough(3, 3, 0, 3) and abstats.enough(60, 100, 45, 100)
    assert abstats.compare(60, 100, 45, 100).significant
    campaign = _campaign(1, CUT)
    winner, reason = experiments.decide(
        campaign, {"A": experiments.Tally(sent=3, read=3), "B": experiments.Tally(sent=3)}
    )
    assert winner is None and reason.startswith("Not enough data yet") and "A: 3 of 3" in reason
    assert reason.endswith("pick a winner.")
    winner, _ = experiments.decide(
        campaign,
        {"A": experiments.Tally(sent=40, read=40), "B": experiments.Tally(sent=40, read=4)},
    )
    assert winner == "A"  # 40 of 40 against 4 of 40 is plenty
    winner, reason = experiments.decide(
        campaign,
        {"A": experiments.Tally(sent=60, read=20), "B": experiments.Tally(sent=60, read=22)},
    )
    assert winner is None and "not significant at 95 %" in reason, reason


async def test_the_experiment_report_is_cached_until_its_state_changes(
    api: Any, db: Database, vault: Vault, monkeypatch: Any
) -> None:
    """Every GET and event-stream tick shares one report per REPORT_TTL; a hand pick shows
    at once (with fresh counts)."""
    admin = await api(Role.ADMIN)
    page = await connected_page(db, vault)
    await _people(db, page.id, 150)
    campaign_id = await _tested(db, page.id, b_reads=12)

    async def read_a() -> tuple[int, str]:
        body = (await admin.get(f"/api/campaigns/{campaign_id}")).json()["experiment"]
        return body["variants"]["A"]["read"], body["status"]

    assert await read_a() == (10, "testing")
    async with db.transaction() as session:
        one = await session.scalar(
            select(Delivery.id).where(
                Delivery.campaign_id == campaign_id,
                Delivery.variant == "A",
                Delivery.status == DeliveryStatus.SENT,
            )
        )
        await session.execute(
            update(Delivery).where(Delivery.id == one).values(status=DeliveryStatus.READ)
        )
    assert await read_a() == (10, "testing")  # within REPORT_TTL: the same report
    picked = await admin.post(f"/api/campaigns/{campaign_id}/winner", json={"key": "A"})
    assert picked.status_code == 200, picked.text
    assert await read_a() == (11, "sending_winner")
    monkeypatch.setattr(progress, "REPORT_TTL", 0.0)
    async with db.transaction() as session:
        await session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.variant == "A",
                Delivery.status == DeliveryStatus.SENT,
            )
            .values(status=DeliveryStatus.READ)
        )
    assert await read_a() == (60, "sending_winner")
