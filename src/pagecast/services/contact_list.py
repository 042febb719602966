"""A Page's contacts as people list them: a filter's total, sorted keyset pages (First,
Previous, Next), tag counts for autocomplete, and batches for a CSV of any size.

Who matches is `services/contact_filter.clauses`; this module only orders and pages. Pages
are keyed on (sort key, id), never OFFSET: a page costs the rows it reads, however deep.
A sort key that can be empty (a name, the last inbound time) puts its empty rows last in
both directions. The plans and times on 1,000,000 contacts are docs/performance.md (P10).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, literal, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.contact_filter_schema import ContactFilter
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import Contact, Tag, contact_tags
from pagecast.schemas import ID_MAX, parse_id
from pagecast.services import contact_filter, pages

__all__ = [
    "DEFAULT_LIMIT",
    "EXPORT_COLUMNS",
    "MAX_LIMIT",
    "PAGE_SIZES",
    "SORTS",
    "ContactPage",
    "Sort",
    "batches",
    "page",
    "parse_sort",
    "tag_counts",
    "total",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
PAGE_SIZES = (25, 50, 100, 500)
_BATCH = 2_000  # contacts an export batch reads in one short transaction
# The importer's columns (services/contact_import.py), so an export imports back as it was.
EXPORT_COLUMNS = ("psid", "first_name", "last_name", "tags", "last_inbound_at", "timezone")

_KEYS: dict[str, Any] = {
    "id": None,
    "name": Contact.first_name,
    "last_inbound": Contact.last_inbound_at,
    "created": Contact.created_at,
}
SORTS = tuple(name for key in _KEYS for name in (key, f"-{key}"))


@dataclass(frozen=True)
class Sort:
    """A sort key of `_KEYS`, ascending or (`descending`) not; ids break ties the same way."""

    key: str = "id"
    descending: bool = False

    @property
    def name(self) -> str:
        return f"-{self.key}" if self.descending else self.key


def parse_sort(text: str | None) -> Sort:
    """`id`, `name`, `last_inbound` or `created`, with a leading `-` for descending.

    Raises:
        InvalidInput: another value (naming the field `sort` and the values there are).
    """
    text = (text or "id").strip()
    key = text.removeprefix("-")
    if key not in _KEYS:
        raise InvalidInput(
            f"sort: {text[:40]!r} is not a sort; use one of {', '.join(SORTS)} "
            "(a leading - sorts descending).",
            field="sort",
        )
    return Sort(key, text.startswith("-"))


@dataclass(frozen=True)
class ContactPage:
    """One page of contacts in the sort's order, and cursors to the pages around it."""

    items: list[Contact]
    next_cursor: str | None
    prev_cursor: str | None


def _encode(sort: Sort, row: Contact, direction: Literal["next", "prev"]) -> str:
    column = _KEYS[sort.key]
    value = None if column is None else getattr(row, column.key)
    if isinstance(value, datetime):
        value = value.isoformat()
    data = {"s": sort.name, "v": value, "i": row.id, "d": direction}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _bad_cursor(why: str) -> InvalidInput:
    return InvalidInput(
        f"cursor: {why}; use next_cursor or prev_cursor as given, or leave it out for the "
        "first page.",
        field="cursor",
    )


def _decode(text: str, sort: Sort) -> tuple[Any, int, bool]:
    """The cursor's sort value, contact id and whether it goes back (prev)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text.encode()))
        name, value, last_id, direction = data["s"], data["v"], data["i"], data["d"]
    except (ValueError, TypeError, KeyError) as exc:
        raise _bad_cursor("it is not one this API returned") from exc
    if name != sort.name:
        raise _bad_cursor(f"it belongs to the sort {str(name)[:20]!r}, not {sort.name!r}")
    contact_id = parse_id(str(last_id), ID_MAX) if isinstance(last_id, int) else None
    if contact_id is None or direction not in ("next", "prev"):
        raise _bad_cursor("it is not one this API returned")
    if value is not None and _KEYS[sort.key] is not None:
        value = _cursor_value(sort, value)
    return value, contact_id, direction == "prev"


def _cursor_value(sort: Sort, value: Any) -> Any:
    """A cursor's sort value as `_encode` writes it: text without NUL (PostgreSQL refuses
    one), or an ISO time with its offset that exists in UTC; anything else is refused."""
    if sort.key == "name":
        if isinstance(value, str) and "\x00" not in value:
            return value
        raise _bad_cursor("it is not one this API returned")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment.astimezone(UTC)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _bad_cursor("it is not one this API returned") from exc


def _beyond(sort: Sort, value: Any, last_id: int, back: bool) -> list[ColumnElement[bool]]:
    """The rows after (value, last_id) in the sort's order, or before it (`back`), as parts
    read one after the other in that order: keys past the cursor's as one row comparison
    (an index bound, so a page deep in the list reads a page of index entries: an OR with
    the empty keys read every row before the cursor, 0.85 s halfway through 1,000,000),
    and the empty keys, which come last, on their own."""
    less = sort.descending != back  # compare with < when descending, or going back; not both
    column = _KEYS[sort.key]
    past_id = Contact.id < last_id if less else Contact.id > last_id
    if column is None:
        return [past_id]
    if value is None:  # empty keys come last: past an empty key is more empty keys, by id
        empties = and_(column.is_(None), past_id)
        return [empties, column.is_not(None)] if back else [empties]
    key, at = tuple_(column, Contact.id), tuple_(literal(value, column.type), literal(last_id))
    keyed = and_(column.is_not(None), key < at if less else key > at)
    return [keyed] if back else [keyed, column.is_(None)]


def _order(sort: Sort, back: bool) -> list[Any]:
    descending = sort.descending != back
    column = _KEYS[sort.key]
    by_id = Contact.id.desc() if descending else Contact.id.asc()
    if column is None:
        return [by_id]
    ordered = column.desc() if descending else column.asc()
    return [ordered.nulls_first() if back else ordered.nulls_last(), by_id]


async def page(
    session: AsyncSession,
    page_id: int,
    f: ContactFilter,
    *,
    now: datetime,
    sort: Sort = Sort(),
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ContactPage:
    """Up to `limit` contacts matching `f`, in `sort` order: the first page, or the page
    after (`next_cursor`) or before (`prev_cursor`) the one a cursor came from.

    Raises:
        NotFound: no such Page.
        InvalidInput: a cursor this API did not give for this sort.
    """
    where = contact_filter.clauses(page_id, f, now)
    parts: list[ColumnElement[bool]]
    back, parts = False, [true()]  # the first page: one part, everything
    if cursor is not None:  # a bad cursor is refused before the Page is looked up
        value, last_id, back = _decode(cursor, sort)
        parts = _beyond(sort, value, last_id, back)
    await pages.get(session, page_id)
    rows: list[Contact] = []
    for part in parts:
        rows += await session.scalars(
            select(Contact)
            .where(*where, part)
            .order_by(*_order(sort, back))
            .limit(limit + 1 - len(rows))
        )
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    if back:
        rows.reverse()
    has_next = (more and not back) or (back and bool(rows))
    has_prev = (more and back) or (not back and cursor is not None and bool(rows))
    return ContactPage(
        items=rows,
        next_cursor=_encode(sort, rows[-1], "next") if has_next else None,
        prev_cursor=_encode(sort, rows[0], "prev") if has_prev else None,
    )


async def total(session: AsyncSession, page_id: int, f: ContactFilter, *, now: datetime) -> int:
    """How many contacts of the Page match `f` (an exact count)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Contact)
            .where(*contact_filter.clauses(page_id, f, now))
        )
        or 0
    )


async def tag_counts(
    session: AsyncSession, page_id: int, *, prefix: str | None = None, limit: int = 20
) -> list[tuple[str, int]]:
    """The Page's tags (those starting with `prefix`, any case) with how many of its
    contacts have each, the most used first."""
    await pages.get(session, page_id)
    used = func.count().label("used")
    query = (
        select(Tag.name, used)
        .select_from(contact_tags)
        .join(Tag, Tag.id == contact_tags.c.tag_id)
        .join(Contact, Contact.id == contact_tags.c.contact_id)
        .where(Contact.page_id == page_id)
        .group_by(Tag.name)
        .order_by(used.desc(), Tag.name)
        .limit(limit)
    )
    if prefix:
        query = query.where(Tag.name.istartswith(prefix, autoescape=True))
    return [(name, int(n)) for name, n in await session.execute(query)]


async def batches(
    db: Database, page_id: int, f: ContactFilter, *, now: datetime, size: int = _BATCH
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Every contact matching `f` as `EXPORT_COLUMNS` rows, by id, `size` at a time; each
    batch is read in its own short transaction (an export of 1,000,000 holds neither a
    connection nor the rows while the client downloads).

    Raises:
        NotFound: no such Page (before the first batch).
    """
    async with db.reading() as session:
        await pages.get(session, page_id)
    where = contact_filter.clauses(page_id, f, now)
    after = 0
    while True:
        async with db.reading() as session:
            rows = (
                await session.execute(
                    select(
                        Contact.id,
                        Contact.psid,
                        Contact.first_name,
                        Contact.last_name,
                        Contact.last_inbound_at,
                        Contact.timezone,
                    )
                    .where(*where, Contact.id > after)
                    .order_by(Contact.id)
                    .limit(size)
                )
            ).all()
            if not rows:
                return
            tags: dict[int, list[str]] = defaultdict(list)
            found = await session.execute(
                select(contact_tags.c.contact_id, Tag.name)
                .join(Tag, Tag.id == contact_tags.c.tag_id)
                .where(contact_tags.c.contact_id.in_([r.id for r in rows]))
                .order_by(contact_tags.c.contact_id, Tag.name)
            )
            for contact_id, name in found:
                tags[contact_id].append(name)
        yield [
            (
                r.psid,
                r.first_name,
                r.last_name,
                ";".join(tags.get(r.id, ())),
                r.last_inbound_at.isoformat() if r.last_inbound_at else None,
                r.timezone,
            )
            for r in rows
        ]
        after = rows[-1].id
