"""A campaign's counters by delivery status (`Campaign.n_<status>`), moved with every status
change in the same transaction, so progress reads are O(1) and agree with the rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, DeliveryStatus

__all__ = ["Shifts", "move", "shift"]


class Shifts:
    """Counter moves kept for one write per campaign at the end of a transaction (`flush`).

    A transaction that moves the counters of many campaigns in any order (a batch of webhook
    events, the sweep's lost claims, a reconciliation pass) creates one, passes it to what
    moves counters, and flushes it last: each campaign row's lock is then taken once, at the
    end, in campaign id order, so concurrent transactions never deadlock on them."""

    def __init__(self) -> None:
        self._by_campaign: dict[int, Counter[DeliveryStatus]] = {}

    def add(self, campaign_id: int, deltas: Mapping[DeliveryStatus, int]) -> None:
        self._by_campaign.setdefault(campaign_id, Counter()).update(deltas)

    async def flush(self, session: AsyncSession) -> list[int]:
        """Apply the kept moves, in campaign id order; returns the campaigns they touched."""
        touched = sorted(self._by_campaign)
        for campaign_id in touched:
            await shift(session, campaign_id, self._by_campaign[campaign_id])
        self._by_campaign = {}
        return touched


async def shift(
    session: AsyncSession, campaign_id: int, deltas: Mapping[DeliveryStatus, int]
) -> None:
    """Apply +/- counts per status to the campaign's counters now, in one UPDATE."""
    values: dict[str, Any] = {
        f"n_{status.value}": getattr(Campaign, f"n_{status.value}") + delta
        for status, delta in deltas.items()
        if delta
    }
    if values:
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))


async def move(
    session: AsyncSession,
    campaign_id: int,
    deltas: Mapping[DeliveryStatus, int],
    shifts: Shifts | None,
) -> None:
    """Move the counters now (`shifts` None) or keep the move in the caller's `shifts`."""
    if shifts is None:
        await shift(session, campaign_id, deltas)
    else:
        shifts.add(campaign_id, deltas)
