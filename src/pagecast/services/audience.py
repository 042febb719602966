"""Who a campaign reaches: the audience query, eligibility now, and the pre-send preview.

The same SQL expressions drive the preview and (in the sending engine) the audience snapshot,
so what the preview promises is what the start does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Contact, MessagingType, Tag, contact_tags, utcnow

__all__ = [
    "EXCLUSION_REASONS",
    "Preview",
    "Reachable",
    "excluded_now",
    "exclusion_reason",
    "matches",
    "preview",
    "window_for",
]

# 24 hours for standard messages; 7 days for the two message tags still allowed
# (docs/graph-api.md, "Messaging windows and message tags").
STANDARD_WINDOW = timedelta(hours=24)
TAG_WINDOW = timedelta(days=7)
EXCLUSION_REASONS = ("opted_out", "unreachable", "window_unknown", "outside_window")


def window_for(messaging_type: MessagingType) -> timedelta:
    return TAG_WINDOW if messaging_type is MessagingType.MESSAGE_TAG else STANDARD_WINDOW


def _has_tag(names: list[str]) -> ColumnElement[bool]:
    return exists(
        select(contact_tags.c.contact_id)
        .join(Tag, Tag.id == contact_tags.c.tag_id)
        .where(contact_tags.c.contact_id == Contact.id, Tag.name.in_(names))
    )


def matches(page_id: int, audience: dict[str, Any]) -> list[ColumnElement[bool]]:
    """WHERE clauses selecting the contacts of `audience` on the Page (eligible or not)."""
    clauses: list[ColumnElement[bool]] = [Contact.page_id == page_id]
    if audience["type"] == "tags":
        if audience.get("include"):
            clauses.append(_has_tag(audience["include"]))  # any of the included tags
        if audience.get("exclude"):
            clauses.append(~_has_tag(audience["exclude"]))
    elif audience["type"] == "contacts":
        clauses.append(Contact.id.in_(audience["ids"]))
    return clauses


# Who may receive a message is written twice, side by side: as SQL for the audience snapshot
# and the preview (`exclusion_reason`), and in Python for the send-time re-check of a claimed
# delivery (`excluded_now`). tests/test_exclusion_rule.py checks that they agree on every
# combination, through real SQL on SQLite and PostgreSQL.


def exclusion_reason(messaging_type: MessagingType, now: datetime) -> Any:
    """A SQL CASE naming why a contact cannot be sent to now, or NULL when it can."""
    return case(
        (Contact.opted_out_at.is_not(None), "opted_out"),
        (Contact.unreachable_at.is_not(None), "unreachable"),
        (Contact.last_inbound_at.is_(None), "window_unknown"),
        (Contact.last_inbound_at < now - window_for(messaging_type), "outside_window"),
        else_=None,
    )


class Reachable(Protocol):
    """What the rule reads of a person (a `Contact`, or a claimed delivery's recipient)."""

    @property
    def opted_out_at(self) -> datetime | None: ...

    @property
    def unreachable_at(self) -> datetime | None: ...

    @property
    def last_inbound_at(self) -> datetime | None: ...


def excluded_now(person: Reachable, messaging_type: MessagingType, now: datetime) -> str | None:
    """`exclusion_reason` for one person already read: why they cannot be sent to now, or
    None when they can (invariant 7: re-checked at send time)."""
    if person.opted_out_at is not None:
        return "opted_out"
    if person.unreachable_at is not None:
        return "unreachable"
    if person.last_inbound_at is None:
        return "window_unknown"
    if person.last_inbound_at < now - window_for(messaging_type):
        return "outside_window"
    return None


@dataclass(frozen=True)
class Preview:
    total: int
    eligible: int
    excluded: dict[str, int]
    sample: Contact | None


async def preview(session: AsyncSession, campaign: Campaign) -> Preview:
    """How many contacts the campaign matches, how many are eligible now, and why not the rest."""
    now = utcnow()
    reason = exclusion_reason(campaign.messaging_type, now).label("reason")
    rows = await session.execute(
        select(reason, func.count())
        .where(*matches(campaign.page_id, campaign.audience))
        .group_by(reason)
    )
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    eligible = 0
    for why, count in rows:
        if why is None:
            eligible = count
        else:
            excluded[why] = count
    sample = await session.scalar(
        select(Contact)
        .where(
            *matches(campaign.page_id, campaign.audience),
            exclusion_reason(campaign.messaging_type, now).is_(None),
        )
        .order_by(Contact.first_name.is_(None), Contact.id)
        .limit(1)
    )
    return Preview(
        total=eligible + sum(excluded.values()), eligible=eligible, excluded=excluded, sample=sample
    )
