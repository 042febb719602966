"""A Page's overview (issue 21): messages sent and failed per day over the last 30 days,
opt-outs in those days, its send rate and state, and the campaigns a stop paused. The
limiter's live throttle is Redis's, added at the edge (pagecast/reports_view.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    utcnow,
)
from pagecast.services import pages

__all__ = ["DAYS", "Overview", "get"]

DAYS = 30


@dataclass(frozen=True)
class Overview:
    page: Page
    days: list[date]  # the last DAYS days in UTC, oldest first, today last
    sent: list[int]  # messages Facebook accepted, by day
    failed: list[int]  # deliveries that failed, by the day they last changed
    opt_outs: int  # contacts of the Page who opted out in these days
    paused: list[Campaign]  # its campaigns paused by a stop (breaker, spam warning, Page)


def _day(value: object) -> date:
    """A `date()` result as a date: SQLite answers text, PostgreSQL a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _utc_date(session: AsyncSession, column: Any) -> Any:
    """The UTC day of a time column. PostgreSQL's `date()` of a timestamptz is the day in
    the session's time zone (the server's, not always UTC); SQLite stores UTC text."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


async def _per_day(
    session: AsyncSession, page_id: int, column: Any, since: datetime, *extra: Any
) -> dict[date, int]:
    day = _utc_date(session, column)
    rows = await session.execute(
        select(day, func.count())
        .select_from(Delivery)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Campaign.page_id == page_id, column >= since, *extra)
        .group_by(day)
    )
    return {_day(d): n for d, n in rows}


async def get(session: AsyncSession, page_id: int, *, now: datetime | None = None) -> Overview:
    """The Page's last DAYS days (today included, in UTC)."""
    page = await pages.get(session, page_id)
    now = now or utcnow()
    today = now.date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    sent = await _per_day(session, page_id, Delivery.sent_at, since)
    failed = await _per_day(
        session, page_id, Delivery.updated_at, since, Delivery.status == DeliveryStatus.FAILED
    )
    opt_outs = await session.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.page_id == page_id, Contact.opted_out_at >= since)
    )
    paused = await session.scalars(
        select(Campaign)
        .where(
            Campaign.page_id == page_id,
            Campaign.status == CampaignStatus.PAUSED,
            Campaign.status_reason.is_not(None),
        )
        .order_by(Campaign.id.desc())
        .limit(20)
    )
    return Overview(
        page=page,
        days=days,
        sent=[sent.get(d, 0) for d in days],
        failed=[failed.get(d, 0) for d in days],
        opt_outs=int(opt_outs or 0),
        paused=list(paused),
    )
