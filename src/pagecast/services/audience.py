"""Who a campaign reaches: the audience query, eligibility now, and the pre-send preview.

The same SQL expressions drive the preview and (in the sending engine) the audience snapshot,
so what the preview promises is what the start does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, case, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pagecast.contact_filter_schema import ContactFilter
from pagecast.errors import InvalidInput
from pagecast.models import Campaign, Contact, MessagingType, Segment, Tag, contact_tags, utcnow
from pagecast.services import contact_filter, frequency_cap
from pagecast.services.contact_filter import STANDARD_WINDOW, has_all_tags, has_any_tag

__all__ = [
    "EXCLUSION_REASONS",
    "KNOWN_TAGS_LISTED",
    "STANDARD_WINDOW",
    "Preview",
    "Reachable",
    "TagWarning",
    "any_eligible",
    "check",
    "chosen_psids",
    "count",
    "editable",
    "excluded_now",
    "exclusion_reason",
    "freeze",
    "known_tags",
    "matches",
    "preview",
    "reason_words",
    "resolve",
    "tag_warnings",
    "window_for",
    "window_words",
]

# 24 hours for standard messages (STANDARD_WINDOW); 7 days for the two message tags still allowed
# (docs/graph-api.md, "Messaging windows and message tags").
TAG_WINDOW = timedelta(days=7)
EXCLUSION_REASONS = (
    "opted_out",
    "unreachable",
    "window_unknown",
    "outside_window",
    frequency_cap.REASON,  # issue 20: the Page's cap, at the snapshot (services/frequency_cap.py)
)


def window_for(messaging_type: MessagingType) -> timedelta:
    return TAG_WINDOW if messaging_type is MessagingType.MESSAGE_TAG else STANDARD_WINDOW


def window_words(messaging_type: MessagingType) -> str:
    """The messaging window of `messaging_type` in words ("24-hour" or "7-day")."""
    return "7-day" if messaging_type is MessagingType.MESSAGE_TAG else "24-hour"


_REASON_WORDS = {
    "opted_out": "opted out",
    "unreachable": "unreachable",
    "window_unknown": "with no known message to the Page",
    "outside_window": "outside the {window} messaging window",
    frequency_cap.REASON: "over the Page's frequency cap",
}


def reason_words(reason: str, messaging_type: MessagingType) -> str:
    """An exclusion reason (`EXCLUSION_REASONS`) as people read it, after a number or a name:
    "2 outside the 24-hour messaging window"."""
    return _REASON_WORDS[reason].format(window=window_words(messaging_type))


def matches(
    page_id: int, audience: dict[str, Any], now: datetime | None = None
) -> list[ColumnElement[bool]]:
    """WHERE clauses selecting the contacts of `audience` on the Page (eligible or not).

    A `segment` audience must be resolved first (`resolve`, or `freeze` at the start): its
    filter is read from the segment, which a pure function cannot do. A filter is evaluated
    at the audience's `as_of` (written when the campaign started), else at `now`.
    """
    clauses: list[ColumnElement[bool]] = [Contact.page_id == page_id]
    kind = audience["type"]
    if kind == "tags":
        if audience.get("include"):
            tagged = has_all_tags if audience.get("match") == "all" else has_any_tag
            clauses.append(tagged(audience["include"]))
        if audience.get("exclude"):
            clauses.append(~has_any_tag(audience["exclude"]))
    elif kind == "contacts":
        if audience.get("psids") is not None:
            clauses.append(_one_of(Contact.psid, audience["psids"]))
        else:  # the older form, by internal id
            clauses.append(_one_of(Contact.id, audience["ids"]))
    elif kind in ("filter", "segment"):
        if "filter" not in audience:
            raise ValueError(f"a {kind} audience must be resolved before it is matched")
        as_of = audience.get("as_of")
        when = datetime.fromisoformat(as_of) if as_of else (now or utcnow())
        chosen = ContactFilter.model_validate(audience["filter"])
        clauses.extend(contact_filter.clauses(page_id, chosen, when))
    return clauses


def _one_of(column: InstrumentedAttribute[Any], values: list[Any]) -> ColumnElement[bool]:
    """`column IN (values)` with the values written into the SQL, not bound one by one: up to
    100,000 chosen people (schemas.MAX_CHOSEN) would pass the drivers' limits on bound
    parameters (32,767 on asyncpg). They are checked input: PSIDs are digits, ids integers."""
    return column.in_(
        bindparam("chosen", values, expanding=True, literal_execute=True, unique=True)
    )


async def resolve(session: AsyncSession, page_id: int, audience: dict[str, Any]) -> dict[str, Any]:
    """`audience` with a segment's current filter filled in (a started campaign's audience is
    already frozen and kept as it is).

    Raises:
        InvalidInput: the segment does not exist or is another Page's (`audience.segment_id`).
    """
    if audience.get("type") != "segment" or "as_of" in audience:
        return audience
    segment = await session.get(Segment, audience["segment_id"])
    if segment is None or segment.page_id != page_id:
        raise InvalidInput(
            f"Segment {audience['segment_id']} is not a segment of Page {page_id}; see the "
            f"Page's segments with GET /api/pages/{page_id}/segments or `pagecast segments list`.",
            field="audience.segment_id",
        )
    return {**audience, "name": segment.name, "filter": dict(segment.filter)}


async def freeze(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """At the start: a segment's or filter's audience is evaluated once, at `now`, with the
    segment's filter of this moment; the campaign keeps that copy (its later snapshot
    slices, its report), so a segment edited or deleted afterwards changes nothing."""
    if campaign.audience.get("type") not in ("segment", "filter") or "as_of" in campaign.audience:
        return
    resolved = await resolve(session, campaign.page_id, campaign.audience)
    campaign.audience = {**resolved, "as_of": now.isoformat()}


_FROZEN = {"segment": ("name", "filter", "as_of"), "filter": ("as_of",)}
_NAMES_LISTED = 10


def editable(target: dict[str, Any]) -> dict[str, Any]:
    """A stored audience as a campaign body gives it: without what the start wrote into it
    (`freeze`), so a duplicate targets the segment as it is then."""
    frozen = _FROZEN.get(target.get("type", ""), ())
    return {key: value for key, value in target.items() if key not in frozen}


def _listed(missing: list[str]) -> str:
    shown = ", ".join(missing[:_NAMES_LISTED])
    return shown + (
        f" and {len(missing) - _NAMES_LISTED:,} more" if len(missing) > _NAMES_LISTED else ""
    )


async def check(session: AsyncSession, page_id: int, target: dict[str, Any]) -> None:
    """Save's checks of an audience that need the database: chosen people are contacts of
    the Page, a segment is one of its segments.

    Raises:
        InvalidInput: naming the PSIDs (or ids) that are not the Page's contacts, at most
            ten of them and how many in all; or the segment.
    """
    kind = target.get("type")
    if kind == "segment":
        await resolve(session, page_id, target)
    if kind != "contacts":
        return
    by_psid = target.get("psids") is not None
    column, field = (Contact.psid, "audience.psids") if by_psid else (Contact.id, "audience.ids")
    wanted = list(target["psids"] if by_psid else target["ids"])
    found: set[Any] = set()
    for start in range(0, len(wanted), 10_000):  # bounded IN lists
        part = wanted[start : start + 10_000]
        found |= set(
            await session.scalars(
                select(column).where(Contact.page_id == page_id, column.in_(part))
            )
        )
    missing = [str(value) for value in dict.fromkeys(wanted) if value not in found]
    if not missing:
        return
    what = "PSID" if by_psid else "contact id"
    raise InvalidInput(
        f"{len(missing):,} {what}s are not contacts of Page {page_id}: {_listed(missing)}. "
        "Remove them, or import those people first (the contacts list shows each PSID)."
        if len(missing) > 1
        else f"{what} {missing[0]} is not a contact of Page {page_id}. Remove it, or import "
        "that person first (the contacts list shows each PSID).",
        field=field,
    )


async def chosen_psids(session: AsyncSession, page_id: int, target: dict[str, Any]) -> list[str]:
    """The PSIDs of a `contacts` audience, also when it is stored in the older form (internal
    ids), so the composer shows people by PSID; by contact id."""
    if target.get("psids") is not None:
        return list(target["psids"])
    found = await session.scalars(
        select(Contact.psid)
        .where(Contact.page_id == page_id, _one_of(Contact.id, list(target.get("ids") or [])))
        .order_by(Contact.id)
    )
    return list(found)


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


async def _reason_with_cap(session: AsyncSession, campaign: Campaign, now: datetime) -> Any:
    """`exclusion_reason`, then the Page's frequency cap when it has one: what the snapshot's
    INSERT … SELECT does (services/deliveries.py `snapshot_insert`)."""
    cap = await frequency_cap.cap_of(session, campaign.page_id)
    return frequency_cap.with_cap(exclusion_reason(campaign.messaging_type, now), cap, now)


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


async def count(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> tuple[int, dict[str, int]]:
    """How many contacts of the audience are eligible at `now`, and the rest by reason."""
    reason = (await _reason_with_cap(session, campaign, now)).label("reason")
    target = await resolve(session, campaign.page_id, campaign.audience)
    rows = await session.execute(
        select(reason, func.count()).where(*matches(campaign.page_id, target, now)).group_by(reason)
    )
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    eligible = 0
    for why, number in rows:
        if why is None:
            eligible = number
        else:
            excluded[why] = number
    return eligible, excluded


async def any_eligible(session: AsyncSession, campaign: Campaign, now: datetime) -> bool:
    """Whether at least one contact of the audience can be messaged at `now` (stops at the
    first one: cheap however large the audience, unless nearly nobody is eligible)."""
    reason = await _reason_with_cap(session, campaign, now)
    target = await resolve(session, campaign.page_id, campaign.audience)
    return bool(
        await session.scalar(
            select(
                exists().where(
                    *matches(campaign.page_id, target, now),
                    reason.is_(None),
                )
            )
        )
    )


async def preview(session: AsyncSession, campaign: Campaign) -> Preview:
    """How many contacts the campaign matches, how many are eligible now, and why not the rest."""
    now = utcnow()
    eligible, excluded = await count(session, campaign, now)
    reason = await _reason_with_cap(session, campaign, now)
    target = await resolve(session, campaign.page_id, campaign.audience)
    sample = await session.scalar(
        select(Contact)
        .where(
            *matches(campaign.page_id, target, now),
            reason.is_(None),
        )
        .order_by(Contact.first_name.is_(None), Contact.id)
        .limit(1)
    )
    return Preview(
        total=eligible + sum(excluded.values()), eligible=eligible, excluded=excluded, sample=sample
    )


# A tag no contact of the Page has matches nobody: saving such an audience is allowed (the
# tags may come with the next import) but answered with a warning listing the Page's tags.
KNOWN_TAGS_LISTED = 100


@dataclass(frozen=True)
class TagWarning:
    """Tags of an audience field (`audience.include` or `audience.exclude`) that no contact
    of the Page has, and the tags it has (at most KNOWN_TAGS_LISTED, by name)."""

    field: str
    unknown: list[str]
    known: list[str]

    @property
    def message(self) -> str:
        names = ", ".join(repr(name) for name in self.unknown)
        plural = "s" if len(self.unknown) > 1 else ""
        said = f"No contact of this Page has the tag{plural} {names}"
        if not self.known:
            return f"{said}: no contact of the Page has any tag yet."
        listed = ", ".join(self.known) + (" …" if len(self.known) >= KNOWN_TAGS_LISTED else "")
        return f"{said}. Known tags: {listed}."


def _tag_on_page(page_id: int) -> ColumnElement[bool]:
    """The `Tag` row is on at least one contact of the Page."""
    return exists(
        select(literal(1))
        .select_from(contact_tags.join(Contact, Contact.id == contact_tags.c.contact_id))
        .where(contact_tags.c.tag_id == Tag.id, Contact.page_id == page_id)
    )


async def known_tags(
    session: AsyncSession, page_id: int, *, limit: int = KNOWN_TAGS_LISTED
) -> list[str]:
    """The tags that contacts of the Page have, by name (for the composer's autocomplete)."""
    return list(
        await session.scalars(
            select(Tag.name).where(_tag_on_page(page_id)).order_by(Tag.name).limit(limit)
        )
    )


async def tag_warnings(
    session: AsyncSession, page_id: int, audience: dict[str, Any]
) -> list[TagWarning]:
    """One warning per audience field naming tags that no contact of the Page has."""
    if audience.get("type") != "tags":
        return []
    named = {f: list(audience.get(f) or []) for f in ("include", "exclude")}
    wanted = {name for names in named.values() for name in names}
    if not wanted:
        return []
    found = set(
        await session.scalars(select(Tag.name).where(Tag.name.in_(wanted), _tag_on_page(page_id)))
    )
    if found == wanted:
        return []
    known = await known_tags(session, page_id)
    return [
        TagWarning(f"audience.{field}", unknown, known)
        for field, names in named.items()
        if (unknown := [name for name in dict.fromkeys(names) if name not in found])
    ]
