"""Deliveries through a send: the ranges a plan cuts, the claim, the
bulk result write, cancel and retry, and the claims of lost workers.

Every status change here moves the campaign's counters in the same transaction
(services/counters.py), so progress reads are O(1) and always agree with the rows. What
happens to a delivery outside a send lives with its concept: echoes (services/echoes.py),
receipts (services/receipts.py), reconciliation (services/reconcile.py), deletes
(services/campaigns.py, services/contacts.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, UTCDateTime
from pagecast.services import (
    due_plan,
    echoes,
    receipts,
    retry_rule,
    variants,
)
from pagecast.services.counters import Shifts, shift

__all__ = [
    "Claimed",
    "Outcome",
    "Recipient",
    "cancel_pending",
    "claim",
    "count_queued",
    "has_due_pending",
    "lost_claims",
    "mark_unreachable",
    "note_parts",
    "pending_ranges",
    "record",
    "retry_failed",
    "shift",
]

_TABLE = Delivery.__table__
# Written in the SQL, not bound: the partial index of due pending rows (migration 0024)
# matches only a literal in a generic plan (variants.not_waiting does the same).
_PENDING: Any = literal_column(f"'{DeliveryStatus.PENDING.value}'")
_CONTACTS = Contact.__table__


def _due(now: datetime, due: Any = None) -> Any:
    """A pending delivery may be sent now: it has no retry wait left, and its due time
    (each person's local time, quiet hours, send window) has come; or, given `due`, its due
    time meets that condition instead (a planner pass's window, due_plan.in_window)."""
    return and_(
        _TABLE.c.status == _PENDING,
        or_(_TABLE.c.next_attempt_at.is_(None), _TABLE.c.next_attempt_at <= now),
        due_plan.due_now(now) if due is None else due,
        variants.not_waiting(_TABLE.c.variant),  # an experiment's rest waits for its winner
    )


async def pending_ranges(
    session: AsyncSession,
    campaign_id: int,
    *,
    after_id: int,
    chunk_size: int,
    max_chunks: int,
    due: Any = None,
) -> list[tuple[int, int]]:
    """Consecutive (first_id, last_id) ranges of `chunk_size` pending deliveries (the last
    one may hold fewer), at most `max_chunks` of them.

    The database numbers the ids and returns one row per range: the plan step used to load
    every id (50,000 at 500 chunks of 100) into the worker to cut them up, a few MB of its
    peak memory (docs/performance.md, P6). `due`: a condition on their due time
    (due_plan.in_window), the pending deliveries due by now for the planner."""
    # The LIMIT comes first, so PostgreSQL stops after that many ids (a Sort under a window
    # function would order every pending delivery of the campaign). Each range is keyed by
    # its first row's number, counted from 0 (no division: SQLite's FLOOR is not always
    # compiled in).
    ids = (
        select(_TABLE.c.id)
        .where(
            _TABLE.c.campaign_id == campaign_id,
            _TABLE.c.status == _PENDING,
            _TABLE.c.id > after_id,
            variants.not_waiting(_TABLE.c.variant),
            *([] if due is None else [due]),
        )
        .order_by(_TABLE.c.id)
        .limit(chunk_size * max_chunks)
        .subquery()
    )
    number = func.row_number().over(order_by=ids.c.id) - 1
    numbered = select(ids.c.id, (number - number % chunk_size).label("chunk")).subquery()
    rows = await session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by(numbered.c.chunk)
        .order_by(numbered.c.chunk)
    )
    return [(first, last) for first, last in rows]


@dataclass(frozen=True)
class Recipient:
    """What a send needs of a contact: its address, names and the send-time checks."""

    psid: str
    first_name: str | None
    last_name: str | None
    opted_out_at: datetime | None
    unreachable_at: datetime | None
    last_inbound_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    contact_id: int
    attempts: int
    recipient: Recipient
    # Messages of the campaign's sequence Facebook has accepted: the next to send is this
    # index (0 for a single message, and for a sequence's first attempt).
    parts_sent: int = 0
    # The A/B variant this person gets (None: the campaign's one content).
    variant: str | None = None


async def claim(
    session: AsyncSession,
    campaign_id: int,
    first_id: int,
    last_id: int,
    *,
    worker_id: str,
    now: datetime,
) -> list[Claimed]:
    """Flip due pending deliveries of the range to `sending` for this worker.

    A conditional UPDATE: two workers, a replayed job or a resumed campaign can never claim
    the same delivery twice (docs/design.md invariant 3).
    """
    result = await session.execute(
        update(_TABLE)
        .where(
            _TABLE.c.campaign_id == campaign_id,
            _TABLE.c.id.between(first_id, last_id),
            _due(now),
        )
        .values(
            status=DeliveryStatus.SENDING.value,
            claimed_by=worker_id,
            claimed_at=now,
            attempts=_TABLE.c.attempts + 1,
            updated_at=now,
        )
        .returning(
            _TABLE.c.id,
            _TABLE.c.contact_id,
            _TABLE.c.attempts,
            _TABLE.c.parts_sent,
            _TABLE.c.variant,
        )
    )
    rows = result.all()
    recipients = await _recipients(session, {row[1] for row in rows})
    claimed = [
        Claimed(row[0], row[1], row[2], recipients[row[1]], row[3], row[4])
        for row in rows
        if row[1] in recipients
    ]
    if len(claimed) < len(rows):
        # A contact deleted while a snapshot was inserting it (the two transactions did not
        # see each other; no foreign key orders them): its delivery goes as the contact did.
        orphans = [row[0] for row in rows if row[1] not in recipients]
        await session.execute(delete(_TABLE).where(_TABLE.c.id.in_(orphans)))
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(n_total=Campaign.n_total - len(orphans))
        )
        await shift(session, campaign_id, {DeliveryStatus.PENDING: -len(orphans)})
    await shift(
        session,
        campaign_id,
        {DeliveryStatus.PENDING: -len(claimed), DeliveryStatus.SENDING: len(claimed)},
    )
    return sorted(claimed, key=lambda c: c.delivery_id)


async def _recipients(session: AsyncSession, contact_ids: set[int]) -> dict[int, Recipient]:
    """The contacts still there among `contact_ids`, as plain rows (no ORM objects: a chunk
    loads a hundred of them for every hundred sends)."""
    if not contact_ids:
        return {}
    c = _CONTACTS.c  # table columns: the rows skip the ORM's loading step
    rows = await session.execute(
        select(
            c.id,
            c.psid,
            c.first_name,
            c.last_name,
            c.opted_out_at,
            c.unreachable_at,
            c.last_inbound_at,
        ).where(c.id.in_(contact_ids))
    )
    return {row[0]: Recipient(*row[1:]) for row in rows}


@dataclass
class Outcome:
    """What happened to one claimed delivery; written in bulk by `record`."""

    delivery_id: int
    status: DeliveryStatus
    reason: str | None = None
    message_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    fbtrace_id: str | None = None
    next_attempt_at: datetime | None = None
    # When Facebook accepted a `sent` one: the Send API's answer arrived (an echo's timestamp,
    # noted while it was sending, takes precedence). None: the time of the write.
    sent_at: datetime | None = None
    # A throttled or released delivery gives its attempt back (it never reached Facebook).
    refund_attempt: bool = False
    # Seconds until the Page may send again (throttle); not stored.
    retry_after: float | None = None
    # How long the Send API call took (for the metrics); not stored.
    latency: float | None = None
    # Messages of the sequence Facebook accepted so far (None: unchanged). A `sending`
    # outcome is a sequence's part accepted with more to send (never written by `record`).
    parts_sent: int | None = None


async def record(
    session: AsyncSession,
    campaign_id: int,
    outcomes: Sequence[Outcome],
    *,
    worker_id: str,
    now: datetime,
) -> Counter[DeliveryStatus]:
    """Write the outcomes of claimed deliveries (one executemany) and move the counters.

    Only rows still `sending` under this worker's claim are written (locked first, in id
    order): a claim the sweep took from a worker it thought dead is not overwritten, and
    the counters move by exactly the rows written. Receipts that arrived before this write
    are applied to what became `sent` (services/receipts.py). Returns what the sends came
    to: how many rows went to each status, an echoed one counted as `sent` (before any
    receipt moved it on)."""
    if not outcomes:
        return Counter()
    # The people first (receipts lock them too), then their deliveries.
    await receipts.lock_people(session, [o.delivery_id for o in outcomes])
    mine = set(
        await session.scalars(
            select(_TABLE.c.id)
            .where(
                _TABLE.c.id.in_([o.delivery_id for o in outcomes]),
                _TABLE.c.status == DeliveryStatus.SENDING.value,
                _TABLE.c.claimed_by == worker_id,
            )
            .order_by(_TABLE.c.id)
            .with_for_update()
        )
    )
    outcomes = [o for o in outcomes if o.delivery_id in mine]
    if not outcomes:
        return Counter()
    statement = (
        update(_TABLE)
        .where(
            _TABLE.c.id == bindparam("b_id"),
            _TABLE.c.status == DeliveryStatus.SENDING.value,
            _TABLE.c.claimed_by == worker_id,
        )
        .values(
            status=bindparam("b_status"),
            reason=bindparam("b_reason"),
            # An echo noted while it was sending (services/echoes.py) keeps its mid and its
            # time (Facebook's own clock, the one of the receipts' watermarks).
            message_id=func.coalesce(bindparam("b_message_id"), _TABLE.c.message_id),
            sent_at=func.coalesce(_TABLE.c.sent_at, bindparam("b_sent_at", type_=UTCDateTime())),
            error_code=bindparam("b_error_code"),
            error_subcode=bindparam("b_error_subcode"),
            error_kind=bindparam("b_error_kind"),
            error_message=bindparam("b_error_message"),
            fbtrace_id=bindparam("b_fbtrace_id"),
            next_attempt_at=bindparam("b_next_attempt_at", type_=UTCDateTime()),
            attempts=_TABLE.c.attempts - bindparam("b_refund"),
            unknown_since=bindparam("b_unknown_since", type_=UTCDateTime()),
            parts_sent=_at_least(bindparam("b_parts")),
            claimed_by=None,
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )
    await session.execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_status": o.status.value,
                "b_reason": o.reason,
                "b_message_id": o.message_id,
                "b_sent_at": (o.sent_at or now) if o.status is DeliveryStatus.SENT else None,
                "b_error_code": o.error_code,
                "b_error_subcode": o.error_subcode,
                "b_error_kind": o.error_kind,
                "b_error_message": (o.error_message or "")[:2000] or None,
                "b_fbtrace_id": o.fbtrace_id,
                "b_next_attempt_at": o.next_attempt_at,
                "b_refund": 1 if o.refund_attempt else 0,
                "b_unknown_since": now if o.status is DeliveryStatus.UNKNOWN else None,
                "b_parts": o.parts_sent,
                "b_now": now,
            }
            for o in outcomes
        ],
    )
    moved = Counter(o.status for o in outcomes)
    deltas: dict[DeliveryStatus, int] = {DeliveryStatus.SENDING: -len(outcomes)}
    for status, count in moved.items():
        deltas[status] = deltas.get(status, 0) + count
    await shift(session, campaign_id, deltas)
    unsent = [o.delivery_id for o in outcomes if o.status is not DeliveryStatus.SENT]
    if unsent:
        left = await echoes.settle(session, campaign_id, now, unsent)
        moved.subtract(left)
        moved[DeliveryStatus.SENT] += left.total()
    sent = [o.delivery_id for o in outcomes if o.status is DeliveryStatus.SENT]
    await receipts.catch_up(session, sent)
    return moved


def _at_least(parts: Any) -> Any:
    """`parts_sent` raised to `parts` (never lowered: an echo may have proven more; a NULL
    `parts` keeps it)."""
    column = _TABLE.c.parts_sent
    return case((column < parts, parts), else_=column)


async def note_parts(
    session: AsyncSession, accepted: Sequence[Outcome], *, worker_id: str, now: datetime
) -> None:
    """Write how many messages of their sequence Facebook accepted for deliveries this worker
    still holds (one executemany), so that a retry, a resume or a reconciliation after a
    lost worker starts after them (docs/sending.md, "Message sequences")."""
    if not accepted:
        return
    # The lock order of every writer here: contacts, then deliveries (an echo of a part
    # takes its contact first, then the delivery: without this, the two could wait on
    # each other).
    await receipts.lock_people(session, [o.delivery_id for o in accepted])
    await session.execute(
        update(_TABLE)
        .where(
            _TABLE.c.id == bindparam("b_id"),
            _TABLE.c.status == DeliveryStatus.SENDING.value,
            _TABLE.c.claimed_by == worker_id,
        )
        .values(parts_sent=_at_least(bindparam("b_parts")), updated_at=now),
        [
            {"b_id": o.delivery_id, "b_parts": o.parts_sent}
            for o in sorted(accepted, key=lambda o: o.delivery_id)
        ],
    )


async def mark_unreachable(
    session: AsyncSession, contact_ids: Iterable[int], now: datetime
) -> None:
    ids = list(contact_ids)
    if ids:
        await session.execute(
            update(Contact)
            .where(Contact.id.in_(ids), Contact.unreachable_at.is_(None))
            .values(unreachable_at=now)
        )


async def cancel_pending(session: AsyncSession, campaign_id: int, now: datetime) -> int:
    """Turn every pending delivery of the campaign into `cancelled`."""
    result = await session.execute(
        update(_TABLE)
        .where(_TABLE.c.campaign_id == campaign_id, _TABLE.c.status == DeliveryStatus.PENDING.value)
        .values(status=DeliveryStatus.CANCELLED.value, updated_at=now)
    )
    count = rowcount(result)
    await shift(
        session, campaign_id, {DeliveryStatus.PENDING: -count, DeliveryStatus.CANCELLED: count}
    )
    return count


async def retry_failed(
    session: AsyncSession,
    campaign_id: int,
    *,
    kinds: Sequence[str] | None,
    codes: Sequence[int] | None,
    now: datetime,
) -> int:
    """Move the failed deliveries a retry can cure (services/retry_rule.py), optionally
    only some error kinds or codes, back to `pending`."""
    result = await session.execute(
        update(Delivery)
        .where(retry_rule.condition(campaign_id, kinds=kinds, codes=codes))
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=None,
            reason=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    count = rowcount(result)
    await shift(
        session, campaign_id, {DeliveryStatus.FAILED: -count, DeliveryStatus.PENDING: count}
    )
    return count


async def lost_claims(
    session: AsyncSession, live_workers: set[str], now: datetime
) -> dict[int, int]:
    """Deliveries left in `sending` by workers that are gone become `unknown` (the request
    may have reached Facebook, so they are never resent blindly). Returns counts by campaign."""
    campaign_ids = list(
        await session.scalars(
            select(Campaign.id).where(Campaign.n_sending > 0).order_by(Campaign.id)
        )
    )
    moved: dict[int, int] = {}
    shifts = Shifts()  # campaign rows are locked last, in id order (no deadlock with webhooks)
    for campaign_id in campaign_ids:
        result = await session.execute(
            update(_TABLE)
            .where(
                _TABLE.c.campaign_id == campaign_id,
                _TABLE.c.status == DeliveryStatus.SENDING.value,
                _TABLE.c.claimed_by.not_in(live_workers)
                if live_workers
                else _TABLE.c.claimed_by.is_not(None),
            )
            .values(
                status=DeliveryStatus.UNKNOWN.value,
                reason="worker_lost",
                unknown_since=now,
                claimed_by=None,
                updated_at=now,
            )
        )
        count = rowcount(result)
        if count:
            shifts.add(campaign_id, {DeliveryStatus.SENDING: -count, DeliveryStatus.UNKNOWN: count})
            settled = await echoes.settle(session, campaign_id, now, shifts=shifts)
            moved[campaign_id] = count - settled[DeliveryStatus.UNKNOWN]
    await shifts.flush(session)
    return moved


async def has_due_pending(session: AsyncSession, campaign_id: int, now: datetime) -> bool:
    """Whether a pending delivery of the campaign may be sent now (no retry wait left)."""
    found = await session.scalar(
        select(_TABLE.c.id).where(_TABLE.c.campaign_id == campaign_id, _due(now)).limit(1)
    )
    return found is not None


async def count_queued(
    session: AsyncSession,
    campaign_id: int,
    *,
    after_id: int,
    upto: int,
    now: datetime,
    due: Any = None,
) -> int:
    """Pending deliveries with ids in (after_id, upto] that may be sent now: what of the
    chunks planned over that range is still waiting in the queue (a range of the primary
    key, so it reads those rows only). `due`: the planner pass's window (due_plan.in_window);
    deliveries that fell due after it were not queued by this pass, so they are not
    counted (else a zone falling due mid-pass would read as "still queued" for ever)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(_TABLE)
            .where(
                _TABLE.c.id > after_id,
                _TABLE.c.id <= upto,
                _TABLE.c.campaign_id == campaign_id,
                _due(now, due),
            )
        )
        or 0
    )
