"""Segments (issue 21): a contact filter of a Page saved under a name.

Who is in a segment is `contact_filter.clauses` of its filter, the contacts list's rule, read
at the moment it is asked: the count here, a campaign's preview, and the campaign's start
(`audience.freeze`). A segment that a draft or scheduled campaign targets cannot be deleted
(docs/architecture.md, "Issue 21: segments"). These functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.contact_filter_schema import ContactFilter
from pagecast.errors import InvalidState, NotFound
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Segment,
    Series,
    SeriesStatus,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.segment_schema import SegmentCreate, SegmentUpdate
from pagecast.services import audit, contact_filter, pages

__all__ = [
    "count",
    "create",
    "delete",
    "filter_of",
    "get",
    "list_page",
    "stored",
    "update",
    "users",
]

# Campaigns that will read the segment when they start; a started one keeps its own copy.
_WAITING = (CampaignStatus.DRAFT, CampaignStatus.AWAITING_APPROVAL, CampaignStatus.SCHEDULED)
_LISTED = 10


def stored(chosen: ContactFilter) -> dict[str, Any]:
    """A filter as a segment (or a filter audience) keeps it: JSON, the defaults left out."""
    return chosen.model_dump(mode="json", exclude_defaults=True)


def filter_of(segment: Segment) -> ContactFilter:
    return ContactFilter.model_validate(segment.filter)


async def get(session: AsyncSession, segment_id: int) -> Segment:
    segment = await session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"Segment {segment_id} does not exist.", field="segment_id")
    return segment


async def list_page(session: AsyncSession, page_id: int) -> list[Segment]:
    """The Page's segments by name."""
    await pages.get(session, page_id)
    return list(
        await session.scalars(
            select(Segment).where(Segment.page_id == page_id).order_by(Segment.name, Segment.id)
        )
    )


async def count(session: AsyncSession, segment: Segment, now: datetime | None = None) -> int:
    """How many contacts of the Page are in the segment at `now` (eligible or not)."""
    where = contact_filter.clauses(segment.page_id, filter_of(segment), now or utcnow())
    return int(await session.scalar(select(func.count()).select_from(Contact).where(*where)) or 0)


async def _named(
    session: AsyncSession,
    page_id: int,
    name: str,
    segment: Segment,
    change: Callable[[], None] = lambda: None,
) -> None:
    """Make `change` to `segment` and flush it in a savepoint; its name already used on the
    Page is refused naming the other one (the transaction goes on: the savepoint is undone)."""
    try:
        async with session.begin_nested():
            change()
            session.add(segment)
            await session.flush()
    except IntegrityError as exc:
        other = await session.scalar(
            select(Segment.id).where(Segment.page_id == page_id, Segment.name == name)
        )
        raise InvalidState(
            f"Page {page_id} already has a segment named {name!r} (segment {other}); choose "
            "another name, or change that segment.",
            field="name",
        ) from exc


async def create(session: AsyncSession, actor: Actor, page_id: int, data: SegmentCreate) -> Segment:
    """A new segment of the Page.

    Raises:
        NotFound: no such Page.
        InvalidState: the Page has a segment of that name.
    """
    await pages.get(session, page_id)
    segment = Segment(
        page_id=page_id, name=data.name, filter=stored(data.filter), created_by=actor.name
    )
    await _named(session, page_id, data.name, segment)
    await audit.record(
        session,
        actor,
        "segment.created",
        object_type="segment",
        object_id=segment.id,
        details={"page_id": page_id, "name": segment.name, "filter": segment.filter},
    )
    return segment


async def update(
    session: AsyncSession, actor: Actor, segment_id: int, data: SegmentUpdate
) -> Segment:
    """Rename the segment or change its filter; campaigns not started yet read the change."""
    segment = await get(session, segment_id)
    changes = data.model_dump(exclude_unset=True)
    before = {"name": segment.name, "filter": segment.filter}

    def change() -> None:
        # Inside the savepoint: a name taken on the Page fails its flush, not the transaction.
        if data.name is not None:
            segment.name = data.name
        if data.filter is not None:
            segment.filter = stored(data.filter)

    await _named(session, segment.page_id, data.name or segment.name, segment, change)
    await audit.record(
        session,
        actor,
        "segment.updated",
        object_type="segment",
        object_id=segment.id,
        details={
            "changed": sorted(changes),
            "changes": audit.changes(before, {"name": segment.name, "filter": segment.filter}),
        },
    )
    return segment


def _targets(target: dict[str, Any] | None, segment: Segment) -> bool:
    target = target or {}
    return target.get("type") == "segment" and target.get("segment_id") == segment.id


async def users(session: AsyncSession, segment: Segment) -> list[str]:
    """What will read the segment later: draft and scheduled campaigns, and series not
    ended, whose audience it is ("campaign 4 (Spring sale)"), by id."""
    # The audience is JSON: read in Python, the same on SQLite and PostgreSQL (a Page has
    # few campaigns waiting to start and few series).
    waiting = await session.scalars(
        select(Campaign)
        .where(Campaign.page_id == segment.page_id, Campaign.status.in_(_WAITING))
        .order_by(Campaign.id)
    )
    found = [f"campaign {c.id} ({c.name})" for c in waiting if _targets(c.audience, segment)]
    running = await session.scalars(
        select(Series)
        .where(Series.page_id == segment.page_id, Series.status != SeriesStatus.ENDED)
        .order_by(Series.id)
    )
    found += [
        f"series {s.id} ({s.name})"
        for s in running
        if _targets(s.campaign.get("audience"), segment)
    ]
    return found


async def delete(session: AsyncSession, actor: Actor, segment_id: int) -> None:
    """Delete the segment.

    Raises:
        InvalidState: a draft or scheduled campaign, or a series not ended, targets it
            (named, at most ten). Started campaigns kept their own copy.
    """
    segment = await get(session, segment_id)
    waiting = await users(session, segment)
    if waiting:
        named = ", ".join(waiting[:_LISTED])
        more = f" and {len(waiting) - _LISTED} more" if len(waiting) > _LISTED else ""
        raise InvalidState(
            f"Segment {segment.id} ({segment.name}) is the audience of {named}{more}, which "
            "will read it when they start. Change their audience (or end the series), then "
            "delete the segment.",
            field="segment_id",
        )
    await session.delete(segment)
    await session.flush()
    await audit.record(
        session,
        actor,
        "segment.deleted",
        object_type="segment",
        object_id=segment_id,
        details={"page_id": segment.page_id, "name": segment.name},
    )
