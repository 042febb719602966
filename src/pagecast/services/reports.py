"""Read-only views of a campaign's deliveries for people: errors grouped, sends, deliveries
and reads over time, and the campaign's report (counts, rates, timings: issue 21; the table
itself is services/delivery_list.py). Nothing here changes a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Delivery, DeliveryStatus, utcnow
from pagecast.services import campaigns, delivery_list, retry_rule

__all__ = [
    "OVER_TIME_ROWS",
    "ErrorGroup",
    "OverTime",
    "Report",
    "error_groups",
    "over_time",
    "rates",
    "report",
]

# The charts read at most this many sent deliveries (the first ones); a larger campaign's
# charts show its first 200,000 sends (docs/dashboard.md).
OVER_TIME_ROWS = 200_000


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


@dataclass(frozen=True)
class OverTime:
    """Sends, deliveries and reads per time bucket: `starts[i]` begins bucket i, which
    lasts `width_seconds`; the three lists have one count per bucket."""

    starts: list[datetime]
    width_seconds: float
    sent: list[int]
    delivered: list[int]
    read: list[int]

    @property
    def peak(self) -> int:
        return max([*self.sent, *self.delivered, *self.read, 0])


def _epoch_seconds(dialect: str, column: Any) -> Any:
    """A time column as seconds since 1970 in SQL (SQLite stores UTC text)."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0


async def over_time(
    session: AsyncSession, campaign_id: int, *, buckets: int = 30
) -> OverTime | None:
    """When Facebook accepted, delivered and read the campaign's messages (its first
    OVER_TIME_ROWS sends), in `buckets` equal buckets from the first send to the last event;
    None before the first send. The database counts the buckets: the dashboard reloads the
    chart every few seconds while a campaign sends, and reading each row here took seconds
    for a large campaign."""
    first = (
        select(Delivery.sent_at, Delivery.delivered_at, Delivery.read_at)
        .where(Delivery.campaign_id == campaign_id, Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at)
        .limit(OVER_TIME_ROWS)
        .subquery()
    )
    columns = (first.c.sent_at, first.c.delivered_at, first.c.read_at)
    bounds = (
        await session.execute(select(*(f(c) for c in columns for f in (func.min, func.max))))
    ).one()
    if bounds[0] is None:
        return None
    start = min(at for at in bounds[0::2] if at is not None)
    end = max(at for at in bounds[1::2] if at is not None)
    width = max((end - start).total_seconds(), 1.0) / buckets
    dialect = session.get_bind().dialect.name

    def bucket(column: Any) -> Any:
        offset = (_epoch_seconds(dialect, column) - start.timestamp()) / width
        return func.floor(offset) if dialect == "postgresql" else cast(offset, Integer)

    rows = await session.execute(
        select(*(bucket(c) for c in columns), func.count())
        .select_from(first)
        .group_by(text("1"), text("2"), text("3"))  # by position: the same expressions
    )
    counts = [[0] * buckets for _ in columns]
    for *indexes, n in rows:
        for kind, index in enumerate(indexes):
            if index is not None:
                counts[kind][min(max(int(index), 0), buckets - 1)] += n
    return OverTime(
        starts=[start + (end - start) * (i / buckets) for i in range(buckets)],
        width_seconds=width,
        sent=counts[0],
        delivered=counts[1],
        read=counts[2],
    )


@dataclass(frozen=True)
class Report:
    """A campaign's report (GET /api/campaigns/{id}/report; docs/api.md says each rate's
    denominator)."""

    campaign: Campaign
    counts: dict[str, int]
    reasons: list[tuple[str, str | None, str | None, int]]  # status, reason, words, count
    errors: list[ErrorGroup]
    retryable_failed: int
    first_send: datetime | None
    last_send: datetime | None
    now: datetime
    rates: dict[str, float | None] = field(default_factory=dict)

    @property
    def duration_seconds(self) -> float | None:
        """From start to completion, or to now while it sends; None before the start."""
        started = self.campaign.started_at
        if started is None:
            return None
        return ((self.campaign.completed_at or self.now) - started).total_seconds()

    @property
    def sends_per_second(self) -> float | None:
        """Messages Facebook accepted per second between the first and the last send."""
        if self.first_send is None or self.last_send is None:
            return None
        span = (self.last_send - self.first_send).total_seconds()
        reached = campaigns.reached(self.campaign)
        return round(reached / span, 2) if span > 0 else float(reached)


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    """The report's rates, from counts by status (None when the denominator is 0)."""
    reached = counts["sent"] + counts["delivered"] + counts["read"]
    attempted = reached + counts["failed"] + counts["unknown"]

    def ratio(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "delivered": ratio(counts["delivered"] + counts["read"], reached),
        "read": ratio(counts["read"], reached),
        "failed": ratio(counts["failed"], attempted),
        "skipped": ratio(counts["skipped"], counts["total"]),
        "reached": ratio(reached, counts["total"]),
    }


async def report(session: AsyncSession, campaign_id: int) -> Report:
    """Counts by status (the counters), by reason with words and by Graph error code; the
    rates; and the timings of the campaign."""
    campaign = await campaigns.get(session, campaign_id)
    counts = campaigns.counts(campaign)
    by_reason = await session.execute(
        select(Delivery.status, Delivery.reason, func.count())
        .where(Delivery.campaign_id == campaign_id, Delivery.reason.is_not(None))
        .group_by(Delivery.status, Delivery.reason)
        .order_by(func.count().desc())
    )
    first, last = (
        await session.execute(
            select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(
                Delivery.campaign_id == campaign_id
            )
        )
    ).one()
    return Report(
        campaign=campaign,
        counts=counts,
        reasons=[
            (status.value, reason, delivery_list.reason_text(reason, campaign.messaging_type), n)
            for status, reason, n in by_reason
        ],
        errors=await error_groups(session, campaign_id),
        retryable_failed=await retry_rule.count(session, campaign_id),
        first_send=first,
        last_send=last,
        now=utcnow(),
        rates=rates(counts),
    )
