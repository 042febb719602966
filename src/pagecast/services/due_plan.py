"""The due times of a snapshot in SQL, and the engine's conditions on them (issue 20).

The rule is services/due_times.py, for one zone. A snapshot reads the distinct zones among
the contacts it inserts once (`plan`), applies the rule to each in Python, and writes every
delivery's `due_at` inside its INSERT … SELECT by joining two small lists: IANA name → due
time and profile offset → due time (a UNION ALL of constants, hashed by the database), with
the Page's zone as the default (`due_column`). 1,000,000 contacts across 400 zones: P9,
docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Page, UTCDateTime
from pagecast.services import due_times, variants

__all__ = [
    "DuePlan",
    "count_waiting",
    "due_column",
    "due_now",
    "in_window",
    "next_due",
    "plan",
    "rules_for",
]

_TABLE = Delivery.__table__
_CONTACTS = Contact.__table__


@dataclass(frozen=True)
class DuePlan:
    """Each zone's due time among a snapshot's contacts (None: at once)."""

    by_name: dict[str, datetime | None] = field(default_factory=dict)
    by_offset: dict[int, datetime | None] = field(default_factory=dict)
    default: datetime | None = None
    # PostgreSQL: the lists as VALUES, whose row count the planner knows (it took a UNION ALL
    # of constants for one row and joined it by a nested loop: 3x the plain snapshot's time).
    # SQLite has no column names for a VALUES alias: a UNION ALL there.
    as_values: bool = False

    @property
    def latest(self) -> datetime | None:
        dues = [d for d in (*self.by_name.values(), *self.by_offset.values(), self.default) if d]
        return max(dues) if dues else None


def rules_for(campaign: Campaign, page: Page, now: datetime) -> due_times.Rules:
    """The campaign's due-time rules as stored (checked when saved)."""
    quiet, window = due_times.stored(page.quiet_hours, campaign.send_window)
    return due_times.Rules(
        now=now,
        local_send_at=campaign.local_send_at,
        quiet=quiet,
        window=window,
        expires_at=campaign.expires_at,
    )


async def plan(
    session: AsyncSession, campaign: Campaign, now: datetime, *where: Any
) -> DuePlan | None:
    """The due times of the contacts of the campaign's Page (and `where`), one per zone
    among them; None when everyone is due at once (no zone is read)."""
    page = await session.get(Page, campaign.page_id)
    assert page is not None
    rules = rules_for(campaign, page, now)
    if not rules.waits:
        return None
    zones = await session.execute(
        select(_CONTACTS.c.timezone, _CONTACTS.c.utc_offset_minutes)
        .where(_CONTACTS.c.page_id == campaign.page_id, *where)
        .distinct()
    )
    by_name: dict[str, datetime | None] = {}
    by_offset: dict[int, datetime | None] = {}
    for name, offset in zones:
        if name is not None:
            if name not in by_name:
                by_name[name] = due_times.due_at(
                    rules, due_times.zone_of(name, None, page.timezone)
                )
        elif offset is not None and offset not in by_offset:
            by_offset[offset] = due_times.due_at(rules, due_times.offset_zone(offset))
    default = due_times.due_at(rules, due_times.zone_of(None, None, page.timezone))
    as_values = session.get_bind().dialect.name == "postgresql"
    return DuePlan(by_name, by_offset, default, as_values)


def _constants(name: str, key_type: Any, dues: dict[Any, datetime | None], as_values: bool) -> Any:
    # Every key, those due at once too (NULL): a row that finds no key is one whose zone was
    # not read (below).
    if as_values:
        pairs = list(dues.items())
        return values(column("key", key_type), column("due", UTCDateTime()), name=name).data(pairs)
    rows = [
        select(literal(key, key_type).label("key"), literal(due, UTCDateTime()).label("due"))
        for key, due in dues.items()
    ]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery(name)


def _lookup(
    source: Any, name: str, key_type: Any, key: Any, dues: dict[Any, datetime | None], due: DuePlan
) -> tuple[Any, Any]:
    """(the FROM clause, the due time by `key` in `dues`, else the Page default's)."""
    default = literal(due.default, UTCDateTime())
    if not dues or (due.default is None and not any(d is not None for d in dues.values())):
        return source, default  # no zone of this kind read, or all of them at once (NULL)
    table = _constants(name, key_type, dues, due.as_values)
    source = source.outerjoin(table, table.c.key == key)
    # (PostgreSQL types a VALUES column of NULLs only as text.)
    found = cast(table.c.due, UTCDateTime()) if due.as_values else table.c.due
    return source, case((table.c.key.is_not(None), found), else_=default)


def due_column(due: DuePlan | None) -> tuple[Any, Any]:
    """(the `due_at` expression, the FROM clause it needs) of a snapshot's SELECT over contacts.

    A contact whose zone is not among those read (`plan`'s SELECT and the INSERT … SELECT see
    different snapshots on PostgreSQL: a zone changed in between) gets the Page default
    zone's due time, not NULL (which would send at once)."""
    source: Any = _CONTACTS
    if due is None:
        return literal(None, UTCDateTime()), source
    c = _CONTACTS.c
    source, by_name = _lookup(source, "due_by_name", String(64), c.timezone, due.by_name, due)
    source, by_offset = _lookup(
        source, "due_by_offset", Integer(), c.utc_offset_minutes, due.by_offset, due
    )
    column = case(
        (c.timezone.is_not(None), by_name),
        (c.utc_offset_minutes.is_not(None), by_offset),
        else_=literal(due.default, UTCDateTime()),
    )
    return column, source


def due_now(now: datetime) -> Any:
    """A pending delivery's due time has come (NULL: due at once)."""
    return or_(_TABLE.c.due_at.is_(None), _TABLE.c.due_at <= now)


def in_window(after: datetime | None, upto: datetime) -> Any:
    """Deliveries whose due time is in (after, upto] (after None: at once, or at most upto):
    what one pass of the planner queues (worker/plan.py)."""
    if after is None:
        return due_now(upto)
    return and_(_TABLE.c.due_at > after, _TABLE.c.due_at <= upto)


def _waiting(campaign_id: int, now: datetime) -> list[Any]:
    return [
        _TABLE.c.campaign_id == campaign_id,
        # A literal, so PostgreSQL matches the partial index's predicate in every plan.
        _TABLE.c.status == literal_column(f"'{DeliveryStatus.PENDING.value}'"),
        _TABLE.c.due_at.is_not(None),
        _TABLE.c.due_at > now,
        # An experiment's rest waits for its winner, not for a time: the planner does not
        # wake for it, and it is not "waiting for local time".
        variants.not_waiting(_TABLE.c.variant),
    ]


async def next_due(session: AsyncSession, campaign_id: int, after: datetime) -> datetime | None:
    """The earliest due time after `after` of the campaign's pending deliveries."""
    found: datetime | None = await session.scalar(
        select(func.min(_TABLE.c.due_at)).where(*_waiting(campaign_id, after))
    )
    return found


async def count_waiting(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> tuple[int, datetime | None]:
    """How many of the campaign's deliveries wait for their due time, and the next one's
    time (0 and None once the last is due: no rows are read then)."""
    if campaign.last_due_at is None or campaign.last_due_at <= now:
        return 0, None
    count, first = (
        await session.execute(
            select(func.count(), func.min(_TABLE.c.due_at)).where(*_waiting(campaign.id, now))
        )
    ).one()
    return int(count or 0), first
