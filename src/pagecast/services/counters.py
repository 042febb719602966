"""A campaign's counters by delivery status (`Campaign.n_<status>`), moved with every status
change in the same transaction, so progress reads are O(1) and agree with the rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, DeliveryStatus

__all__ = ["DEFERRED", "defer_shifts", "flush_shifts", "shift"]

DEFERRED = "pagecast.deferred_shifts"


def defer_shifts(session: AsyncSession) -> None:
    """Keep this transaction's counter moves until `flush_shifts`: a batch of webhook events
    then takes each campaign row's lock once, at its end, in campaign id order, so that
    concurrent batches never deadlock on them."""
    session.info[DEFERRED] = {}


async def flush_shifts(session: AsyncSession) -> list[int]:
    """Apply the deferred counter moves; returns the campaigns they touched."""
    pending: dict[int, Counter[DeliveryStatus]] = session.info.pop(DEFERRED, None) or {}
    for campaign_id in sorted(pending):
        await shift(session, campaign_id, pending[campaign_id])
    return sorted(pending)


async def shift(
    session: AsyncSession, campaign_id: int, deltas: Mapping[DeliveryStatus, int]
) -> None:
    """Apply +/- counts per status to the campaign's counters in one UPDATE (or keep them for
    `flush_shifts` after `defer_shifts`)."""
    deferred = session.info.get(DEFERRED)
    if deferred is not None:
        deferred.setdefault(campaign_id, Counter()).update(deltas)
        return
    values: dict[str, Any] = {
        f"n_{status.value}": getattr(Campaign, f"n_{status.value}") + delta
        for status, delta in deltas.items()
        if delta
    }
    if values:
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))
