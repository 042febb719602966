"""A person acting in a Page's thread: the contact, its messaging window, its consent.

A message, a postback, a reaction, a referral or an opt-in creates the contact on its first
event and opens its window (`touch`); a message that is an opt-out or opt-in keyword changes
its consent (`keywords`), the newest keyword winning when events arrive out of order; the
User Profile lookup names a contact that has no name yet (`set_profile`).
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.models import Contact, Page, utcnow
from pagecast.services import contact_events, contacts

__all__ = [
    "DEFAULT_OPT_OUT_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_REPLY",
    "is_opt_out",
    "keywords",
    "set_profile",
    "touch",
]

DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "UNSUBSCRIBE", "STOP ALL")
OPT_IN_KEYWORDS = ("START",)
OPT_OUT_REPLY = (
    "You are unsubscribed and will not get messages from us any more. "
    "Reply START to subscribe again."
)


async def touch(session: AsyncSession, page: Page, psid: str, at: datetime) -> Contact:
    """The person acted in the thread at `at`: the contact exists (created on its first
    event) and its messaging window opens (never moved backwards)."""
    contact = await contacts.locked(session, page.id, psid, create=True)
    assert contact is not None
    if contact.last_inbound_at is None or contact.last_inbound_at < at:
        contact.last_inbound_at = at
    await session.flush()
    return contact


def _normalise(text: str) -> str:
    return " ".join(text.split()).upper()


def is_opt_out(page: Page, text: str | None) -> bool:
    """The message is one of the Page's opt-out keywords."""
    if not text or not isinstance(text, str):
        return False
    return _normalise(text) in {
        _normalise(k) for k in (page.opt_out_keywords or DEFAULT_OPT_OUT_KEYWORDS)
    }


async def keywords(
    session: AsyncSession, page: Page, contact: Contact, text: str | None, at: datetime
) -> bool:
    """Apply an opt-out or opt-in keyword; True when this message opted the contact out."""
    if not text or not isinstance(text, str):
        return False
    said, stop = _normalise(text), is_opt_out(page, text)
    if not stop and said not in OPT_IN_KEYWORDS:
        return False
    if contact.consent_changed_at is not None and contact.consent_changed_at >= at:
        return False  # a newer keyword was applied already (events out of order)
    contact.consent_changed_at = at
    opted_out = False
    if stop and contact.opted_out_at is None:
        contact.opted_out_at = at
        opted_out = True
    elif said in OPT_IN_KEYWORDS and contact.opted_out_at is not None:
        contact.opted_out_at = None
    await session.flush()
    if opted_out:
        await contact_events.opted_out(
            session, page.id, [(contact.id, contact.psid)], at, contact_events.Source.KEYWORD
        )
    return opted_out


# The UTC offsets there are, in minutes (the API's `utc_offset_minutes` takes the same).
_OFFSET_MIN, _OFFSET_MAX = -720, 840


async def set_profile(
    session: AsyncSession,
    contact_id: int,
    *,
    first_name: str | None,
    last_name: str | None,
    locale: str | None = None,
    timezone: float | None = None,
) -> bool:
    """Names from the User Profile API, for a contact that still has none. The profile's
    `timezone` is its UTC offset in hours: kept as `utc_offset_minutes` (a zone set by a
    person, `contacts.timezone`, takes precedence; services/due_times.py), within the
    offsets there are (UTC-12 to UTC+14: a wrong one must not fail a snapshot)."""
    offset = None
    if timezone is not None and math.isfinite(timezone):
        offset = max(_OFFSET_MIN, min(_OFFSET_MAX, round(timezone * 60)))
    result = await session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.first_name.is_(None), Contact.last_name.is_(None))
        .values(
            first_name=first_name,
            last_name=last_name,
            locale=func.coalesce(Contact.locale, locale),
            utc_offset_minutes=func.coalesce(Contact.utc_offset_minutes, offset),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))
