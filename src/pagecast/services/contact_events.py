"""`contact.opted_out` (issue 22): a contact of a Page opted out, by an opt-out keyword in
their thread (services/inbound.py), or by a person through the contacts API, the dashboard
or the command line (one contact: services/contacts.py; bulk: services/contact_bulk.py).

One event per contact whose `opted_out_at` went from empty to set, in the transaction of that
change; a contact already opted out changes nothing and emits nothing. Imports cannot opt a
contact out (their columns have no consent), so they emit none.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.services import outbound_events

__all__ = ["Source", "opted_out"]


class Source(enum.StrEnum):
    """How the contact opted out: `data.source`."""

    KEYWORD = "keyword"  # they wrote an opt-out keyword (STOP…) to the Page
    PERSON = "person"  # a user marked them opted out (one contact)
    BULK = "bulk"  # a user's bulk action on chosen or filtered contacts


async def opted_out(
    session: AsyncSession,
    page_id: int,
    people: Sequence[tuple[int, str]],
    at: datetime,
    source: Source,
) -> None:
    """Emit `contact.opted_out` for each (contact id, PSID) of the Page, in the order given."""
    await outbound_events.emit_many(
        session,
        "contact.opted_out",
        [
            {
                "contact_id": contact_id,
                "page_id": page_id,
                "psid": psid,
                "opted_out_at": at.isoformat(),
                "source": source.value,
            }
            for contact_id, psid in people
        ],
    )
