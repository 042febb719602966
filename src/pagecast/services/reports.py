"""Read-only views of a campaign's deliveries for people: errors grouped, sends over time
(the table itself is services/delivery_list.py). Nothing here changes a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Delivery, DeliveryStatus

__all__ = [
    "ErrorGroup",
    "error_groups",
    "sends_over_time",
]


@dataclass(frozen=True)
class ErrorGroup:
    status: str
    reason: str | None
    kind: str | None
    code: int | None
    subcode: int | None
    count: int
    example: str | None


async def error_groups(session: AsyncSession, campaign_id: int) -> list[ErrorGroup]:
    """Failed, skipped and unknown deliveries grouped by outcome and Graph error code."""
    key = (
        Delivery.status,
        Delivery.reason,
        Delivery.error_kind,
        Delivery.error_code,
        Delivery.error_subcode,
    )
    rows = await session.execute(
        select(*key, func.count(), func.max(Delivery.error_message))
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_(
                (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.UNKNOWN)
            ),
        )
        .group_by(*key)
        .order_by(func.count().desc())
    )
    return [
        ErrorGroup(
            status=status.value,
            reason=reason,
            kind=kind,
            code=code,
            subcode=subcode,
            count=count,
            example=example,
        )
        for status, reason, kind, code, subcode, count, example in rows
    ]


async def sends_over_time(
    session: AsyncSession, campaign_id: int, *, buckets: int = 30
) -> list[tuple[datetime, int]]:
    """Messages accepted by Facebook per second-bucket, over the campaign's sending time."""
    times = [
        at
        for at in await session.scalars(
            select(Delivery.sent_at)
            .where(Delivery.campaign_id == campaign_id, Delivery.sent_at.is_not(None))
            .order_by(Delivery.sent_at)
            .limit(200_000)
        )
        if at is not None  # the query leaves these out; this tells the type checker
    ]
    if not times:
        return []
    start, end = times[0], times[-1]
    span = max((end - start).total_seconds(), 1.0)
    width = span / buckets
    counts = [0] * buckets
    for at in times:
        counts[min(int((at - start).total_seconds() / width), buckets - 1)] += 1
    return [(start + (end - start) * (i / buckets), n) for i, n in enumerate(counts)]
