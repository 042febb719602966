"""The audit log as people read it (issue 22): filtered, newest first in pages by keyset, and
in batches for a CSV of any size. Nothing here writes; nothing anywhere edits an entry.

Pages are keyed on `audit_log.id`, descending: a page lists the entries older than its
cursor's id, so entries written while someone pages (always newer, higher ids) never shift a
page, and a walk sees every older entry exactly once (no OFFSET: a deep page costs what it
reads). The API, the dashboard, the CSV and the CLI all take their filters from `parse` and
their rows from `page` or `batches`. The query plans and times are docs/performance.md (P12).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import (
    AuditLog,
    Campaign,
    Contact,
    Segment,
    Series,
    Template,
    User,
    WebhookEndpoint,
)
from pagecast.models import (
    Page as PageRow,
)
from pagecast.schemas import ID_MAX, parse_id
from pagecast.services.audit import plain

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Filters",
    "Page",
    "batches",
    "change_text",
    "csv_row",
    "decode_cursor",
    "encode_cursor",
    "existing",
    "in_utc",
    "page",
    "parse",
    "parse_time",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_BATCH = 2_000  # entries a CSV batch reads in one short transaction
CSV_COLUMNS = (
    "id",
    "at",
    "actor",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "change",
    "details",
)
_ACTION = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
_OBJECT_TYPE = re.compile(r"[a-z0-9_]{1,32}")
_TIME_EXAMPLE = "2026-12-01T09:00:00Z or 2026-12-01T17:00:00+08:00"


@dataclass(frozen=True)
class Filters:
    """Which entries: every condition given must hold (none: all of them).

    `action` is one action (`user.created`) or, with `action_prefix`, every action starting
    with it (`campaign.`); `since` is inclusive and `until` exclusive."""

    actor: str | None = None
    actor_id: int | None = None
    action: str | None = None
    action_prefix: bool = False
    object_type: str | None = None
    object_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        where: list[Any] = []
        if self.actor_id is not None:
            where.append(AuditLog.actor_id == self.actor_id)
        if self.actor is not None:
            where.append(AuditLog.actor == self.actor)
        if self.action is not None:
            if self.action_prefix:
                where.append(AuditLog.action.startswith(self.action, autoescape=True))
            else:
                where.append(AuditLog.action == self.action)
        if self.object_type is not None:
            where.append(AuditLog.object_type == self.object_type)
        if self.object_id is not None:
            where.append(AuditLog.object_id == self.object_id)
        if self.since is not None:
            where.append(AuditLog.at >= self.since)
        if self.until is not None:
            where.append(AuditLog.at < self.until)
        return where


def parse_time(text: str | None, field: str) -> datetime | None:
    """An ISO 8601 time with its zone (`Z` or an offset), else an InvalidInput naming `field`."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: {value[:40]!r} is not an ISO 8601 time; write one such as {_TIME_EXAMPLE}.",
            field=field,
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(
            f"{field}: {value[:40]!r} has no time zone, so it is no one moment; add "
            f"`Z` for UTC or an offset, as in {_TIME_EXAMPLE}.",
            field=field,
        )
    return in_utc(moment, field)


def in_utc(moment: datetime, field: str) -> datetime:
    """`moment` (aware) in UTC, as the database compares it; InvalidInput naming `field` for
    one whose offset moves it past year 9999 or before year 1 (no such moment is stored)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{field}: {moment.isoformat()} is outside the times Pagecast stores (years 1 to "
            f"9999 in UTC); write one such as {_TIME_EXAMPLE}.",
            field=field,
        ) from None


def parse(
    *,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: int | str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
) -> Filters:
    """Filters from what a person typed.

    - `actor`: a user id (digits) or the name entries carry (an email, `cli`, `system`);
      any case.
    - `action`: one action (`campaign.started`), or a prefix ending with `.` or `*`
      (`campaign.`, `campaign.*`, `user.pass*`).
    - `object_type`, `object_id`: the object (`campaign`, 12).
    - `since`, `until`: ISO 8601 times with a zone (or aware datetimes).

    Raises:
        InvalidInput: a value that cannot be one (naming its field and what to write).
    """
    found = Filters()
    who = (actor or "").strip()
    if who:
        if len(who) > 254:
            raise InvalidInput(
                "actor: at most 254 characters (an email, a user id, `cli` or `system`).",
                field="actor",
            )
        number = parse_id(who)
        if who.isdigit() and number is None:
            raise InvalidInput(
                f"actor: {who[:20]} is not a user id: ids run from 1 to {ID_MAX}.", field="actor"
            )
        found = replace(found, actor_id=number) if number else replace(found, actor=who.lower())
    what = (action or "").strip().lower()
    if what:
        prefix = what.endswith(("*", "."))
        stem = what.rstrip("*")
        bare = stem.rstrip(".")
        if len(what) > 64 or not bare or not _ACTION.fullmatch(bare):
            raise InvalidInput(
                f"action: {what[:70]!r} is not an action; write one such as campaign.started, "
                "or a prefix ending with `.` or `*` such as campaign. (letters, digits, `_` "
                "and dots).",
                field="action",
            )
        found = replace(found, action=stem, action_prefix=prefix)
    kind = (object_type or "").strip().lower()
    if kind:
        if not _OBJECT_TYPE.fullmatch(kind):
            raise InvalidInput(
                f"object_type: {kind[:40]!r} is not an object type; write one such as campaign, "
                "page, user, contact, segment, series or template.",
                field="object_type",
            )
        found = replace(found, object_type=kind)
    if object_id is not None and str(object_id).strip():
        number = parse_id(str(object_id).strip())
        if number is None:
            raise InvalidInput(
                f"object_id: {str(object_id)[:20]!r} is not an id: ids run from 1 to {ID_MAX}.",
                field="object_id",
            )
        found = replace(found, object_id=number)
    start = in_utc(since, "since") if isinstance(since, datetime) else parse_time(since, "since")
    end = in_utc(until, "until") if isinstance(until, datetime) else parse_time(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidInput(
            "until: it must be later than since (since is inclusive, until exclusive).",
            field="until",
        )
    return replace(found, since=start, until=end)


def encode_cursor(before_id: int) -> str:
    """The opaque `next_cursor` for the entries older than `before_id`."""
    return base64.urlsafe_b64encode(f"audit:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    """The id a `next_cursor` carries; InvalidInput (field `cursor`) for anything else."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        kind, _, number = (
            base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition(":")
        )
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        kind, number = "", ""
    found = parse_id(number) if kind == "audit" else None
    if found is None:
        raise InvalidInput(
            "cursor: it is not one this API returned; use next_cursor as given, or leave it "
            "out for the newest entries.",
            field="cursor",
        )
    return found


@dataclass(frozen=True)
class Page:
    """One page of entries, newest first, and the cursor to the older ones (None: no more)."""

    items: list[AuditLog]
    next_cursor: str | None


def _query(filters: Filters, *, before: int | None, limit: int) -> Select[AuditLog]:
    where = filters.clauses()
    if before is not None:
        where.append(AuditLog.id < before)
    return select(AuditLog).where(*where).order_by(AuditLog.id.desc()).limit(limit)


async def page(
    session: AsyncSession,
    filters: Filters,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Up to `limit` entries matching `filters`, newest first, older than the cursor's."""
    before = decode_cursor(cursor)
    limit = max(1, min(limit, MAX_LIMIT))
    rows = list(await session.scalars(_query(filters, before=before, limit=limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1].id) if more and rows else None)


async def batches(
    db: Database, filters: Filters, *, size: int = _BATCH
) -> AsyncIterator[list[AuditLog]]:
    """Every matching entry, newest first, `size` at a time, each batch read in its own short
    transaction (an export of millions holds neither a connection nor the rows)."""
    before: int | None = None
    while True:
        async with db.reading() as session:
            rows = list(await session.scalars(_query(filters, before=before, limit=size)))
            session.expunge_all()
        if rows:
            yield rows
        if len(rows) < size:
            return
        before = rows[-1].id


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "none"
    return json.dumps(value, ensure_ascii=False, default=str)


def change_text(details: dict[str, Any] | None) -> str:
    """An entry's `details` in one line: `role: "viewer" → "manager"; reason: wrong password`."""
    if not details:
        return ""
    parts: list[str] = []
    for name, value in details.items():
        if name == "changes" and isinstance(value, dict):
            for field, change in value.items():
                if isinstance(change, dict) and "from" in change:
                    parts.append(f"{field}: {_value(change['from'])} → {_value(change['to'])}")
                else:
                    parts.append(f"{field}: changed")
        elif isinstance(value, str):
            parts.append(f"{name}: {value}")
        else:
            parts.append(f"{name}: {_value(value)}")
    return "; ".join(parts)


def csv_row(row: AuditLog) -> list[Any]:
    """One entry in `CSV_COLUMNS` order (the CSV writer keeps formula-like cells text)."""
    return [
        row.id,
        plain(row.at),
        row.actor,
        row.actor_id,
        row.action,
        row.object_type,
        row.object_id,
        change_text(row.details),
        json.dumps(row.details, ensure_ascii=False, sort_keys=True) if row.details else "",
    ]


_KINDS: dict[str, Any] = {
    "campaign": Campaign,
    "page": PageRow,
    "contact": Contact,
    "user": User,
    "segment": Segment,
    "series": Series,
    "template": Template,
    "webhook": WebhookEndpoint,
}


async def existing(session: AsyncSession, rows: list[AuditLog]) -> set[tuple[str, int]]:
    """Which of the entries' objects still exist, as (object_type, object_id): one query a
    kind (the dashboard links those, and names the others as deleted)."""
    wanted: dict[str, set[int]] = {}
    for row in rows:
        if row.object_id is not None and row.object_type in _KINDS:
            wanted.setdefault(row.object_type, set()).add(row.object_id)
    found: set[tuple[str, int]] = set()
    for kind, ids in wanted.items():
        model = _KINDS[kind]
        for object_id in await session.scalars(select(model.id).where(model.id.in_(ids))):
            found.add((kind, object_id))
    return found
