"""Echoes of our own sends: the proof that a message reached Facebook.

An echo (`message_echoes` webhook) carries the delivery id we put in the message's
`metadata`. It turns a delivery whose outcome was unclear (`unknown` after a timeout or a
dead worker, `pending` or `failed` after an error once Facebook had it) into `sent`, so it is
never sent again; on a delivery still `sending` it is noted (its mid and Facebook's time)
and the worker's result write settles it (`settle`). Each echo also shows the Page's echo
stream live up to that delivery's claim (`Page.echo_seen_at`, what services/reconcile.py
relies on to prove a message absent), written once per batch (`Watermarks`).

A sequence's messages (issue 19) carry `"<id>:<k>"` for its k-th message when more follow,
and `"<id>"` for its last: an echo of `"<id>"` still proves the whole delivery (its last
message is sent only once the ones before it were accepted), and an echo of an earlier one
proves that many were (`apply_part`: `Delivery.parts_sent`), so a resend starts after them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.models import Campaign, Delivery, DeliveryStatus, Page, utcnow
from pagecast.schemas import BIGINT_MAX, parse_id
from pagecast.services import contacts, receipts
from pagecast.services.counters import Shifts, move

__all__ = [
    "ECHO_WATERMARK_STEP",
    "BeingWritten",
    "Watermarks",
    "apply",
    "apply_part",
    "metadata",
    "parse_metadata",
    "settle",
]

_TABLE = Delivery.__table__
# An echo proves that these deliveries reached Facebook (a timeout, a dead worker, a retry
# whose earlier attempt did arrive): they become `sent`.
_PROVEN_BY_ECHO = (DeliveryStatus.UNKNOWN, DeliveryStatus.PENDING, DeliveryStatus.FAILED)
# A noted echo turns these into `sent` when the worker's result is written.
_SETTLED_BY_ECHO = (
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.CANCELLED,
)
ECHO_WATERMARK_STEP = timedelta(seconds=1)


def _every_part() -> Any:
    """The number of messages of the delivery's campaign: what an echo of its last message
    proves Facebook has (a correlated subquery; 1 unless the campaign is a sequence).
    `json_array_length` needs the column to stay `json` on PostgreSQL (`jsonb` would need
    `jsonb_array_length`)."""
    return (
        select(func.coalesce(func.json_array_length(Campaign.messages), 1))
        .where(Campaign.id == _TABLE.c.campaign_id)
        .scalar_subquery()
    )


def metadata(delivery_id: int, index: int, count: int) -> str:
    """The `message.metadata` of message `index` (from 0) of a delivery's `count`: the
    delivery id for its last message (a single message's as ever), `"<id>:<k>"` (k from 1)
    for one that more follow."""
    return str(delivery_id) if index >= count - 1 else f"{delivery_id}:{index + 1}"


def parse_metadata(value: str) -> tuple[int, int | None] | None:
    """(delivery id, k) of an echo's metadata, k None for a delivery's last message; None
    when it is not ours."""
    head, sep, tail = value.partition(":")
    delivery_id = parse_id(head, BIGINT_MAX)
    if delivery_id is None:
        return None
    if not sep:
        return delivery_id, None
    part = parse_id(tail)
    return None if part is None else (delivery_id, part)


class BeingWritten(Exception):
    """The worker is writing this delivery's result right now: apply the echo later."""


class Watermarks:
    """The Pages' echo watermarks a batch of events moved, written once by `write`."""

    def __init__(self) -> None:
        self._seen: dict[int, datetime] = {}

    def note(self, page: Page, claimed_at: datetime | None) -> None:
        """Move the Page's echo watermark to this delivery's claim time. Written at most
        about once a second per Page: a lower watermark only delays a resend."""
        if claimed_at is None:
            return
        seen = page.echo_seen_at
        if seen is not None and claimed_at - seen < ECHO_WATERMARK_STEP:
            return
        if page.id not in self._seen or self._seen[page.id] < claimed_at:
            self._seen[page.id] = claimed_at

    async def write(self, session: AsyncSession) -> None:
        """Write the noted watermarks, in Page id order (never moving one backwards)."""
        for page_id in sorted(self._seen):
            await session.execute(
                update(Page)
                .where(
                    Page.id == page_id,
                    or_(Page.echo_seen_at.is_(None), Page.echo_seen_at < self._seen[page_id]),
                )
                .values(echo_seen_at=self._seen[page_id])
                .execution_options(synchronize_session=False)
            )
        self._seen = {}


async def apply(
    session: AsyncSession,
    page: Page,
    psid: str,
    delivery_id: int,
    mid: str,
    at: datetime,
    *,
    shifts: Shifts,
    watermarks: Watermarks,
) -> str | None:
    """An echo of delivery `delivery_id` (message `mid`, Facebook's time `at`) to person
    `psid`. Returns what was noted when nothing moved, or None. Raises `BeingWritten`, before
    it writes anything, when the worker holds the row."""
    contact = await contacts.locked(session, page.id, psid, create=False)
    if contact is None:
        return f"no contact {psid} on Page {page.id}; echo ignored"
    delivery = await session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.contact_id == contact.id)
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        return f"echo names delivery {delivery_id}, which is not this person's"
    if delivery.status is DeliveryStatus.SENDING:
        # The worker has not written its result yet: note the echo's mid, which its result
        # write keeps and which settles an ambiguous outcome as `sent` (`settle`). Had the
        # result just been written, try again later.
        # Never waits for the worker's lock on the row (it would deadlock with its result
        # write): a row being written right now is tried again later.
        free = await session.scalar(
            select(Delivery.id)
            .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.SENDING)
            .with_for_update(skip_locked=True)
        )
        if free is None:
            raise BeingWritten(f"delivery {delivery.id} is being written")
        # Its mid, and Facebook's time for it (the clock of the receipts' watermarks): the
        # result write keeps both.
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(message_id=mid, sent_at=at)
            .execution_options(synchronize_session=False)
        )
        watermarks.note(page, delivery.claimed_at)
        return None  # its result write settles it (`settle`)
    now = utcnow()
    if delivery.status in _PROVEN_BY_ECHO:
        moved = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == delivery.status)
            .values(
                status=DeliveryStatus.SENT,
                reason=None,
                message_id=mid,
                sent_at=at,
                next_attempt_at=None,
                parts_sent=_every_part(),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(moved):
            shifts.add(delivery.campaign_id, {delivery.status: -1, DeliveryStatus.SENT: 1})
    elif delivery.status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ):
        # Confirmed: the echo's mid, and Facebook's own time (the clock of the watermarks).
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(message_id=mid, sent_at=at, parts_sent=_every_part(), updated_at=now)
            .execution_options(synchronize_session=False)
        )
    else:
        return f"delivery {delivery.id} is {delivery.status.value}; echo noted"
    watermarks.note(page, delivery.claimed_at)
    # Receipts processed before this echo cover it when their watermark is later.
    await receipts.catch_up(session, [delivery.id], shifts=shifts)
    return None


async def apply_part(
    session: AsyncSession,
    page: Page,
    psid: str,
    delivery_id: int,
    part: int,
    *,
    watermarks: Watermarks,
) -> str | None:
    """An echo of message `part` of a sequence that more follow: Facebook has at least
    `part` of the delivery's messages, which a retry or a resend after reconciliation then
    never sends again. Returns a note when nothing moved."""
    contact = await contacts.locked(session, page.id, psid, create=False)
    if contact is None:
        return f"no contact {psid} on Page {page.id}; echo ignored"
    row = (
        await session.execute(
            select(
                _TABLE.c.parts_sent, _TABLE.c.claimed_at, _every_part().label("message_count")
            ).where(_TABLE.c.id == delivery_id, _TABLE.c.contact_id == contact.id)
        )
    ).one_or_none()
    if row is None:
        return f"echo names delivery {delivery_id}, which is not this person's"
    if part >= row.message_count:  # Pagecast names only messages that more follow this way
        return (
            f"echo names message {part} of delivery {delivery_id}, whose campaign has "
            f"{row.message_count} message(s), as one that more follow; echo ignored"
        )
    watermarks.note(page, row.claimed_at)
    if row.parts_sent >= part:
        return None
    # The worker writes parts_sent upwards too (deliveries.note_parts): a plain "raise it"
    # that either order leaves at the larger.
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == delivery_id, _TABLE.c.parts_sent < part)
        .values(parts_sent=part)
    )
    return None


async def settle(
    session: AsyncSession,
    campaign_id: int,
    now: datetime,
    ids: Sequence[int] | None = None,
    *,
    shifts: Shifts | None = None,
) -> Counter[DeliveryStatus]:
    """Deliveries whose echo was noted while they were sending (`apply`) are `sent`,
    whatever the Send API's answer said — a timeout, a lost worker, an error after Facebook
    had delivered: the echo proves it arrived, so it is never sent again. Among `ids`, or
    every `unknown` one of the campaign. Receipts already kept for their people apply to
    them (services/receipts.py). Counter moves go to `shifts` when given (else now).
    Returns how many left each status."""
    conditions = [
        _TABLE.c.campaign_id == campaign_id,
        _TABLE.c.message_id.is_not(None),
        _TABLE.c.status.in_([s.value for s in _SETTLED_BY_ECHO]),
    ]
    if ids is not None:
        conditions.append(_TABLE.c.id.in_(list(ids)))
    else:
        conditions.append(_TABLE.c.status == DeliveryStatus.UNKNOWN.value)
    rows = list(
        await session.execute(
            select(_TABLE.c.id, _TABLE.c.status).where(*conditions).order_by(_TABLE.c.id)
        )
    )
    if not rows:
        return Counter()
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.id.in_([row.id for row in rows]))
        .values(
            status=DeliveryStatus.SENT.value,
            reason=None,
            unknown_since=None,
            next_attempt_at=None,
            sent_at=func.coalesce(_TABLE.c.sent_at, now),
            parts_sent=_every_part(),
            updated_at=now,
        )
    )
    left = Counter(DeliveryStatus(row.status) for row in rows)
    deltas: Counter[DeliveryStatus] = Counter({DeliveryStatus.SENT: len(rows)})
    deltas.subtract(left)
    await move(session, campaign_id, deltas, shifts)
    await receipts.catch_up(session, [row.id for row in rows], shifts=shifts)
    return left
