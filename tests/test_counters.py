"""A campaign's status counters: moved now (`shift`), or kept in an explicit `Shifts` that the
transaction's owner writes once per campaign, in id order, at its end."""

from __future__ import annotations

import pytest

from factories import ADMIN_ACTOR, connected_page
from pagecast.db import Database
from pagecast.message_schema import Content
from pagecast.models import Campaign, DeliveryStatus
from pagecast.schemas import CampaignCreate
from pagecast.security import Vault
from pagecast.services import campaigns, counters

PENDING, SENT = DeliveryStatus.PENDING, DeliveryStatus.SENT


@pytest.fixture
async def two_campaigns(db: Database, vault: Vault) -> list[int]:
    page_id = (await connected_page(db, vault)).id
    async with db.transaction() as session:
        made = [
            await campaigns.create(
                session,
                ADMIN_ACTOR,
                CampaignCreate(name=name, page_id=page_id, content=Content(text="Hi")),
            )
            for name in ("a", "b")
        ]
        return [c.id for c in made]


async def _counts(db: Database, campaign_id: int) -> tuple[int, int]:
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.n_pending, campaign.n_sent


async def test_shift_moves_the_counters_at_once(db: Database, two_campaigns: list[int]) -> None:
    first, _ = two_campaigns
    async with db.transaction() as session:
        await counters.shift(session, first, {PENDING: -2, SENT: 2})
    assert await _counts(db, first) == (-2, 2)


async def test_shifts_keep_the_moves_until_flushed_then_write_them_summed(
    db: Database, two_campaigns: list[int]
) -> None:
    first, second = two_campaigns
    shifts = counters.Shifts()
    async with db.transaction() as session:
        shifts.add(second, {PENDING: -1, SENT: 1})
        await counters.move(session, first, {PENDING: -1, SENT: 1}, shifts)
        shifts.add(first, {PENDING: -2, SENT: 2})
        await session.flush()
    # Nothing written yet: the moves wait for the transaction's owner.
    assert await _counts(db, first) == (0, 0)
    assert await _counts(db, second) == (0, 0)
    async with db.transaction() as session:
        touched = await shifts.flush(session)
    assert touched == [first, second]  # campaign rows in id order
    assert await _counts(db, first) == (-3, 3)
    assert await _counts(db, second) == (-1, 1)
    async with db.transaction() as session:
        assert await shifts.flush(session) == []  # flushed once


async def test_move_without_shifts_writes_at_once(db: Database, two_campaigns: list[int]) -> None:
    first, _ = two_campaigns
    async with db.transaction() as session:
        await counters.move(session, first, {SENT: 1}, None)
    assert await _counts(db, first) == (0, 1)
