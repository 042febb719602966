"""Delivery and read receipts: what a watermark covers, kept per person, applied in any order.

A receipt says "every message to this person up to `watermark` (Facebook's clock) has been
delivered" (or read). A delivery receipt may also name the messages' mids; a read receipt
never does. Webhook events arrive at least once and in any order, and a receipt often
arrives before the worker has written the Send API's answer for the message it covers. So:

- each person keeps the newest delivery and read watermark seen
  (`Contact.delivered_watermark_at`, `read_watermark_at`), never moved backwards;
- a receipt moves that person's deliveries it covers forward at once (`advance`);
- a delivery that becomes `sent` later (the worker's result write, an echo, an ambiguous
  outcome settled by its echo) is moved by the watermarks already kept (`catch_up`), so the
  order in which the answer, the echo and the receipts land never changes the outcome.

A delivery is covered when its `sent_at` (when Facebook accepted it: the echo's timestamp,
else the arrival of the Send API's answer) is at most the watermark plus `CLOCK_SKEW`, or
when the receipt names its mid. Statuses only move forward: sent → delivered → read.

Lock order (PostgreSQL): a person's contact row before its deliveries before the campaign
rows. A receipt locks the contact (`apply`) and the result write locks the
contacts of its deliveries first (`lock_people`), both in psid order, so a receipt and the
result it covers are applied one after the other, never both missing each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Contact, Delivery, DeliveryStatus, UTCDateTime, utcnow
from pagecast.services import contacts
from pagecast.services.counters import Shifts, move

__all__ = [
    "CLOCK_SKEW",
    "DELIVERY",
    "READ",
    "advance",
    "apply",
    "catch_up",
    "lock_people",
    "note",
]

DELIVERY, READ = "delivery", "read"
# Our time for a send (the Send API's answer) is a little later than Facebook's time for the
# same message, and the two clocks may differ a little. The cost: a second message to the
# same person less than this after the first is covered by the first one's receipt.
CLOCK_SKEW = timedelta(seconds=1)

_TABLE = Delivery.__table__
# What each kind of receipt moves forward, and to what.
_FORWARD = {
    DELIVERY: ((DeliveryStatus.SENT,), DeliveryStatus.DELIVERED),
    READ: ((DeliveryStatus.SENT, DeliveryStatus.DELIVERED), DeliveryStatus.READ),
}
_WATERMARK = {DELIVERY: "delivered_watermark_at", READ: "read_watermark_at"}


def covers(watermark: datetime | None, sent_at: datetime | None) -> bool:
    """Whether a receipt with `watermark` covers a message Facebook accepted at `sent_at`."""
    return watermark is not None and sent_at is not None and sent_at <= watermark + CLOCK_SKEW


def note(contact: Contact, kind: str, watermark: datetime) -> None:
    """Keep the person's newest watermark of this kind (a late, older receipt changes nothing)."""
    column = _WATERMARK[kind]
    current = getattr(contact, column)
    if current is None or current < watermark:
        setattr(contact, column, watermark)


async def apply(
    session: AsyncSession,
    page_id: int,
    psid: str,
    kind: str,
    watermark: datetime,
    mids: Sequence[str],
    *,
    shifts: Shifts,
) -> str | None:
    """A receipt webhook event: keep the person's watermark and move what it covers now;
    deliveries whose result is not written yet are moved by it when it is (`catch_up`).
    Returns why nothing was done, or None."""
    contact = await contacts.locked(session, page_id, psid, create=False)
    if contact is None:
        return f"no contact {psid} on Page {page_id}; ignored"
    note(contact, kind, watermark)
    await session.flush()
    await advance(session, contact.id, kind, watermark, mids, shifts=shifts)
    return None


async def lock_people(session: AsyncSession, delivery_ids: Sequence[int]) -> None:
    """Lock the contacts of these deliveries (PostgreSQL; SQLite serialises writers), in the
    order webhook batches take them: a receipt for one of them waits for this transaction,
    or this transaction reads the watermark that receipt wrote."""
    if not delivery_ids:
        return
    people = select(_TABLE.c.contact_id).where(_TABLE.c.id.in_(list(delivery_ids)))
    await session.execute(
        select(Contact.id)
        .where(Contact.id.in_(people.scalar_subquery()))
        .order_by(Contact.page_id, Contact.psid)
        .with_for_update()
    )


async def advance(
    session: AsyncSession,
    contact_id: int,
    kind: str,
    watermark: datetime,
    mids: Sequence[str] = (),
    *,
    shifts: Shifts | None = None,
) -> int:
    """Move the person's deliveries that a receipt covers (or names by mid) forward; returns
    how many moved. Counter moves go to `shifts` when given (else now)."""
    sources, target = _FORWARD[kind]
    covered = Delivery.sent_at <= watermark + CLOCK_SKEW
    if mids:
        covered = or_(covered, Delivery.message_id.in_(list(mids)))
    rows = list(
        await session.execute(
            select(Delivery.id, Delivery.campaign_id, Delivery.status).where(
                Delivery.contact_id == contact_id, Delivery.status.in_(sources), covered
            )
        )
    )
    if not rows:
        return 0
    values: dict[str, Any] = {"status": target, "updated_at": utcnow()}
    if target is DeliveryStatus.READ:
        values["read_at"] = watermark
    # A read implies delivered: keep the first known delivery time, else the watermark.
    values["delivered_at"] = func.coalesce(Delivery.delivered_at, watermark)
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_([r.id for r in rows]), Delivery.status.in_(sources))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await _count(session, [(r.campaign_id, r.status, target) for r in rows], shifts)
    return len(rows)


async def catch_up(
    session: AsyncSession, delivery_ids: Sequence[int], *, shifts: Shifts | None = None
) -> Counter[DeliveryStatus]:
    """Apply the watermarks their people already have to these deliveries, when `sent` or
    `delivered` (receipts that came before the send's result). Returns how many moved to
    each status. Counter moves go to `shifts` when given (else now)."""
    if not delivery_ids:
        return Counter()
    c = Contact.__table__.c
    rows = list(
        await session.execute(
            select(
                _TABLE.c.id,
                _TABLE.c.campaign_id,
                _TABLE.c.status,
                _TABLE.c.sent_at,
                _TABLE.c.delivered_at,
                c.delivered_watermark_at,
                c.read_watermark_at,
            )
            .join(Contact.__table__, c.id == _TABLE.c.contact_id)
            .where(
                _TABLE.c.id.in_(list(delivery_ids)),
                _TABLE.c.status.in_([DeliveryStatus.SENT.value, DeliveryStatus.DELIVERED.value]),
                or_(c.delivered_watermark_at.is_not(None), c.read_watermark_at.is_not(None)),
            )
            .order_by(_TABLE.c.id)
        )
    )
    writes: list[dict[str, Any]] = []
    moves: list[tuple[int, DeliveryStatus, DeliveryStatus]] = []
    now = utcnow()
    for row in rows:
        status = DeliveryStatus(row.status)
        delivered_at, read_at, target = row.delivered_at, None, status
        if status is DeliveryStatus.SENT and covers(row.delivered_watermark_at, row.sent_at):
            target, delivered_at = DeliveryStatus.DELIVERED, row.delivered_watermark_at
        if covers(row.read_watermark_at, row.sent_at):
            target, read_at = DeliveryStatus.READ, row.read_watermark_at
            delivered_at = delivered_at or row.read_watermark_at
        if target is status:
            continue
        writes.append(
            {
                "b_id": row.id,
                "b_from": status.value,
                "b_status": target.value,
                "b_delivered_at": delivered_at,
                "b_read_at": read_at,
                "b_now": now,
            }
        )
        moves.append((row.campaign_id, status, target))
    if writes:
        await session.execute(
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.status == bindparam("b_from"))
            .values(
                status=bindparam("b_status"),
                delivered_at=bindparam("b_delivered_at", type_=UTCDateTime()),
                read_at=bindparam("b_read_at", type_=UTCDateTime()),
                updated_at=bindparam("b_now", type_=UTCDateTime()),
            ),
            writes,
        )
        await _count(session, moves, shifts)
    moved: Counter[DeliveryStatus] = Counter()
    for _, status, target in moves:
        moved[status] -= 1
        moved[target] += 1
    return moved


async def _count(
    session: AsyncSession,
    moves: Sequence[tuple[int, DeliveryStatus, DeliveryStatus]],
    shifts: Shifts | None,
) -> None:
    by_campaign: dict[int, Counter[DeliveryStatus]] = {}
    for campaign_id, source, target in moves:
        deltas = by_campaign.setdefault(campaign_id, Counter())
        deltas[source] -= 1
        deltas[target] += 1
    for campaign_id in sorted(by_campaign):
        await move(session, campaign_id, by_campaign[campaign_id], shifts)
