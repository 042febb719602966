"""A campaign's deliveries as people list them: filtered, in pages by keyset, and in batches
for a CSV of any size (issues 20 and 21). Nothing here changes a row.

Pages are keyed on `deliveries.id` (ascending): a row is listed after the cursor's id or
not at all, so a listing walks every row exactly once while the worker changes statuses,
and no page costs more than the rows it reads (no OFFSET). The API, the dashboard, the CSV
and the CLI all take their rows from `page` or `batches`, with the filters of `parse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import Contact, Delivery, DeliveryStatus, MessagingType
from pagecast.services import audience, campaigns

__all__ = [
    "COUNT_CAP",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Filters",
    "Item",
    "Page",
    "batches",
    "count",
    "page",
    "parse",
    "query",
    "reason_text",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_BATCH = 2_000  # rows a CSV batch reads in one short transaction
COUNT_CAP = 10_000  # a filtered count stops there ("more than 10,000")

# Words for the reasons the sending engine writes (services/retries.py, worker/chunk.py,
# worker/results.py); the audience's exclusion reasons have theirs in services/audience.py.
_OUTCOME_WORDS = {
    "retrying": "waiting to retry after a temporary error",
    "retries_exhausted": "temporary errors until the retries ran out",
    "recipient_unreachable": "the person cannot be reached any more",
    "ambiguous": "no answer from Facebook: it may have arrived",
    "bad_request": "Facebook refused the message as malformed",
    "throttle": "rate limited by Facebook",
    "retry": "a temporary Facebook error",
    "stop_page": "the Page cannot send (token, permission or restriction)",
    "worker_lost": "the worker sending it stopped; checked before any resend",
    "expired": "the campaign's expiry time passed before it was sent",
    "cancelled": "the campaign was cancelled before it was sent",
}


def reason_text(reason: str | None, messaging_type: MessagingType) -> str | None:
    """A delivery's `reason` in words: an exclusion reason as the audience preview says it
    ("outside the 24-hour messaging window"), an engine outcome from `_OUTCOME_WORDS`, else
    the code with spaces (a reason added later still reads)."""
    if reason is None:
        return None
    try:
        return audience.reason_words(reason, messaging_type)
    except KeyError:
        return _OUTCOME_WORDS.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class Filters:
    """Which deliveries: every condition given must hold (none: all of the campaign's)."""

    statuses: tuple[DeliveryStatus, ...] = ()
    variant: str | None = None
    error_code: int | None = None
    reason: str | None = None
    # The dashboard's box: a PSID exactly, or part of a first or last name.
    search: str | None = None

    def clauses(self, campaign_id: int) -> list[Any]:
        where: list[Any] = [Delivery.campaign_id == campaign_id]
        if len(self.statuses) == 1:
            where.append(Delivery.status == self.statuses[0])
        elif self.statuses:
            where.append(Delivery.status.in_(self.statuses))
        if self.variant is not None:
            where.append(Delivery.variant == self.variant)
        if self.error_code is not None:
            where.append(Delivery.error_code == self.error_code)
        if self.reason is not None:
            where.append(Delivery.reason == self.reason)
        if self.search:
            like = f"%{self.search}%"
            where.append(
                or_(
                    Contact.psid == self.search,
                    Contact.first_name.ilike(like),
                    Contact.last_name.ilike(like),
                )
            )
        return where

    def query(self) -> dict[str, Any]:
        """The filters as query parameters (for links to the next page or the CSV)."""
        shown: dict[str, Any] = {
            "status": ",".join(s.value for s in self.statuses),
            "variant": self.variant,
            "error_code": self.error_code,
            "reason": self.reason,
            "q": self.search,
        }
        return {k: v for k, v in shown.items() if v not in (None, "")}


def parse(
    *,
    status: Iterable[str] = (),
    variant: str | None = None,
    error_code: int | None = None,
    reason: str | None = None,
    search: str | None = None,
) -> Filters:
    """Filters from what a person typed: `status` values each one status or a comma list.

    Raises:
        InvalidInput: a status that is not a delivery status (naming the field and the
            statuses there are).
    """
    wanted: list[DeliveryStatus] = []
    for value in status:
        for word in value.split(","):
            word = word.strip().lower()
            if not word:
                continue
            if word not in set(DeliveryStatus):
                known = ", ".join(s.value for s in DeliveryStatus)
                raise InvalidInput(
                    f"status: {word[:40]!r} is not a delivery status; use one or more of "
                    f"{known} (repeat status= or separate them with commas).",
                    field="status",
                )
            if DeliveryStatus(word) not in wanted:
                wanted.append(DeliveryStatus(word))
    return Filters(
        statuses=tuple(wanted),
        variant=(variant or "").strip() or None,
        error_code=error_code,
        reason=(reason or "").strip() or None,
        search=(search or "").strip()[:200] or None,
    )


@dataclass(frozen=True)
class Item:
    """One delivery as listed: its outcome and its person (None when the contact is gone)."""

    id: int
    contact_id: int
    psid: str | None
    first_name: str | None
    last_name: str | None
    status: DeliveryStatus
    reason: str | None
    reason_words: str | None
    variant: str | None
    due_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    clicked_at: datetime | None
    replied_at: datetime | None
    attempts: int
    error_code: int | None
    error_subcode: int | None
    error_kind: str | None
    error_message: str | None
    fbtrace_id: str | None

    @property
    def name(self) -> str | None:
        return " ".join(n for n in (self.first_name, self.last_name) if n) or None


_COLUMNS = (
    Delivery.id,
    Delivery.contact_id,
    Contact.psid,
    Contact.first_name,
    Contact.last_name,
    Delivery.status,
    Delivery.reason,
    Delivery.variant,
    Delivery.due_at,
    Delivery.sent_at,
    Delivery.delivered_at,
    Delivery.read_at,
    Delivery.clicked_at,
    Delivery.replied_at,
    Delivery.attempts,
    Delivery.error_code,
    Delivery.error_subcode,
    Delivery.error_kind,
    Delivery.error_message,
    Delivery.fbtrace_id,
)


@dataclass(frozen=True)
class Page:
    """One page of deliveries; `more` says whether rows follow the last one (in the
    direction asked), `first`/`last` are the ids of its ends (cursors for Previous/Next)."""

    items: list[Item]
    more: bool

    @property
    def first(self) -> int | None:
        return self.items[0].id if self.items else None

    @property
    def last(self) -> int | None:
        return self.items[-1].id if self.items else None


def query(
    campaign_id: int,
    filters: Filters,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Select[*tuple[Any, ...]]:
    """The SELECT of one page: ascending ids after `after`, or (with only `before`) the
    descending ids before it. Its plans are in docs/performance.md (P11)."""
    where = filters.clauses(campaign_id)
    if after is not None:
        where.append(Delivery.id > after)
    if before is not None:
        where.append(Delivery.id < before)
    order = Delivery.id.desc() if before is not None and after is None else Delivery.id
    statement: Select[*tuple[Any, ...]] = (
        select(*_COLUMNS)
        .select_from(Delivery)
        # Outer: a delivery whose contact was deleted in the one race contacts.delete leaves
        # (docs/architecture.md, "Deliveries without foreign keys") is still listed.
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(*where)
        .order_by(order)
        .limit(limit)
    )
    return statement


async def _read(
    session: AsyncSession,
    campaign_id: int,
    filters: Filters,
    messaging_type: MessagingType,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> list[Item]:
    items = []
    found = await session.execute(
        query(campaign_id, filters, after=after, before=before, limit=limit)
    )
    for row in found:
        values = list(row)
        values.insert(7, reason_text(row.reason, messaging_type))
        items.append(Item(*values))
    return items


async def page(
    session: AsyncSession,
    campaign_id: int,
    filters: Filters,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Up to `limit` deliveries of the campaign matching `filters`, by id: after the id
    `after` (Next), or the last ones before the id `before` (Previous), in ascending order.

    Raises:
        NotFound: no such campaign.
    """
    campaign = await campaigns.get(session, campaign_id)
    items = await _read(
        session,
        campaign_id,
        filters,
        campaign.messaging_type,
        after=after,
        before=before,
        limit=limit + 1,
    )
    more = len(items) > limit
    items = items[:limit]
    if before is not None and after is None:
        items.reverse()
    return Page(items=items, more=more)


async def batches(
    db: Database, campaign_id: int, filters: Filters, *, size: int = _BATCH
) -> AsyncIterator[list[Item]]:
    """Every matching delivery, `size` at a time, each batch read in its own short
    transaction (a CSV of 1,000,000 rows holds neither a connection nor the rows while the
    client downloads).

    Raises:
        NotFound: no such campaign (before the first batch).
    """
    async with db.transaction() as session:
        messaging_type = (await campaigns.get(session, campaign_id)).messaging_type
    after: int | None = None
    while True:
        async with db.transaction() as session:
            items = await _read(
                session,
                campaign_id,
                filters,
                messaging_type,
                after=after,
                before=None,
                limit=size,
            )
        if items:
            yield items
        if len(items) < size:
            return
        after = items[-1].id


async def count(session: AsyncSession, campaign_id: int, filters: Filters) -> tuple[int, bool]:
    """How many deliveries match, and whether that is exact: from the campaign's counters
    (O(1)) when only statuses filter, else counted up to `COUNT_CAP` (then not exact).

    Raises:
        NotFound: no such campaign.
    """
    campaign = await campaigns.get(session, campaign_id)
    if filters == Filters(statuses=filters.statuses):
        counted = campaigns.counts(campaign)
        if not filters.statuses:
            return counted["total"], True
        return sum(counted[s.value] for s in filters.statuses), True
    capped = (
        select(Delivery.id)
        .select_from(Delivery)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(*filters.clauses(campaign_id))
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    found = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    return min(found, COUNT_CAP), found <= COUNT_CAP
