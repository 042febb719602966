"""The audience snapshot: one delivery per matching contact, written by one INSERT … SELECT
(or one per slice, services/snapshots.py), with each person's due time (services/due_plan.py),
their A/B variant (services/variants.py) and the Page's frequency cap in the same statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, UTCDateTime
from pagecast.services import audience, due_plan, frequency_cap, series_exclusion, variants

__all__ = ["snapshot", "snapshot_insert", "snapshot_with_due_times"]

_TABLE = Delivery.__table__


def snapshot_insert(
    campaign: Campaign,
    now: datetime,
    *where: Any,
    due: due_plan.DuePlan | None = None,
    cap: dict[str, int] | None = None,
) -> Any:
    """The snapshot's INSERT … SELECT: one delivery per matching contact (and `where`), those
    that cannot be sent to now `skipped` with the reason (the Page's frequency `cap` among
    them), each due when `due` says (its zone's due time; None: all at once)."""
    reason = frequency_cap.with_cap(
        audience.exclusion_reason(campaign.messaging_type, now), cap, now
    )
    # A/B variants and an experiment's holdout, by a seeded hash in this statement.
    reason, extra = variants.assignment(campaign, reason)
    due_at, source = due_plan.due_column(due)
    rows = (
        select(
            literal(campaign.id),
            Contact.id,
            case(
                (reason.is_(None), DeliveryStatus.PENDING.value),
                else_=DeliveryStatus.SKIPPED.value,
            ),
            reason,
            literal(0),
            literal(now, UTCDateTime()),
            due_at,
            *extra.values(),
        )
        .select_from(source)
        .where(
            *audience.matches(campaign.page_id, campaign.audience),
            *series_exclusion.snapshot_conditions(campaign),  # issue 20: never twice in a series
            *where,
        )
    )
    return insert(_TABLE).from_select(
        [
            "campaign_id",
            "contact_id",
            "status",
            "reason",
            "attempts",
            "updated_at",
            "due_at",
            *extra,
        ],
        rows,
    )


async def snapshot_with_due_times(
    session: AsyncSession, campaign: Campaign, now: datetime, *where: Any
) -> None:
    """Run the snapshot's INSERT … SELECT for contacts matching `where`, with each zone's due
    time (services/due_plan.py), and keep the campaign's latest due time."""
    due = await due_plan.plan(session, campaign, now, *where)
    cap = await frequency_cap.cap_of(session, campaign.page_id)
    await session.execute(snapshot_insert(campaign, now, *where, due=due, cap=cap))
    latest = due.latest if due is not None else None
    if latest is not None and (campaign.last_due_at is None or latest > campaign.last_due_at):
        await session.execute(
            update(Campaign).where(Campaign.id == campaign.id).values(last_due_at=latest)
        )
        campaign.last_due_at = latest


async def snapshot(session: AsyncSession, campaign: Campaign, now: datetime) -> dict[str, int]:
    """Create one delivery per matching contact with one INSERT … SELECT.

    Contacts that cannot be sent to now are `skipped` with the reason. Returns counts.
    """
    await series_exclusion.lock_series(session, campaign.series_id)  # issue 20: one at a time
    await snapshot_with_due_times(session, campaign, now)  # with the Page's frequency cap
    counted = await session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.campaign_id == campaign.id)
        .group_by(Delivery.status)
    )
    by_status = {status: count for status, count in counted}
    total = sum(by_status.values())
    await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(
            n_total=total,
            n_pending=by_status.get(DeliveryStatus.PENDING, 0),
            n_skipped=by_status.get(DeliveryStatus.SKIPPED, 0),
        )
    )
    return {
        "total": total,
        "pending": by_status.get(DeliveryStatus.PENDING, 0),
        "skipped": by_status.get(DeliveryStatus.SKIPPED, 0),
    }
