"""The per-Page frequency cap: at most N campaign messages per person in D days.

Off unless set (`Page.frequency_cap` is None). A person is over the cap when at least N
deliveries of theirs were sent (`sent_at`) in the D days before the campaign's start;
deliveries are the Page's campaign messages (a contact belongs to one Page), whichever
campaign sent them. The count uses the index `ix_deliveries_contact_id_sent_at`.

The same rule (`with_cap`) serves the snapshot, whose INSERT … SELECT skips people over the
cap with reason `frequency_cap` (the other reasons come first; an experiment's holdout is
cut only from the people left: services/variants.py), and the audience preview, which
counts them (services/audience.py). It is checked once, at the
snapshot: a person a running campaign has not reached yet is not counted by a campaign
started meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Contact, Delivery, Page

__all__ = ["REASON", "cap_of", "over", "reason", "with_cap", "words"]

REASON = "frequency_cap"
_TABLE = Delivery.__table__


def words(cap: dict[str, int] | None) -> str:
    """The cap as people read it: "at most 2 messages per person in 7 days", or "off"."""
    if not cap:
        return "off"
    n, d = cap["messages"], cap["days"]
    return (
        f"at most {n} message{'s' if n != 1 else ''} per person in {d} day{'s' if d != 1 else ''}"
    )


async def cap_of(session: AsyncSession, page_id: int) -> dict[str, int] | None:
    """The Page's cap, or None when it has none."""
    value = await session.scalar(select(Page.frequency_cap).where(Page.id == page_id))
    return value if isinstance(value, dict) and value else None


def over(contact_id: Any, cap: dict[str, int], now: datetime) -> ColumnElement[bool]:
    """SQL: the person `contact_id` got at least cap["messages"] campaign messages in the
    cap["days"] days before `now`."""
    since = now - timedelta(days=cap["days"])
    sent = _TABLE.alias("capped")
    recent = (
        select(func.count())
        .select_from(sent)
        .where(
            sent.c.contact_id == contact_id,
            sent.c.sent_at.is_not(None),
            sent.c.sent_at > since,
        )
        .scalar_subquery()
    )
    return recent >= cap["messages"]


def reason(cap: dict[str, int] | None, now: datetime) -> ColumnElement[Any] | None:
    """SQL naming REASON for a contact over the cap (else NULL); None when there is no cap."""
    if not cap:
        return None
    return case((over(Contact.id, cap, now), REASON), else_=None)


def with_cap(base: Any, cap: dict[str, int] | None, now: datetime) -> Any:
    """The exclusion reason `base`, else REASON for a person over the cap (the one rule of
    the snapshot's INSERT … SELECT and of the audience preview: the other reasons come
    first, and the cap comes before an experiment's holdout, which is cut from the rest)."""
    capped = reason(cap, now)
    return base if capped is None else func.coalesce(base, capped)
