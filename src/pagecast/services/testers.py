"""Test sends: who of the chosen contacts may get a campaign's test message, and its audit.

A Page's testers are its contacts marked `is_tester` (say, its own admins who messaged it).
A test goes only to testers of the campaign's Page who could be messaged now by the rule a
start applies (`audience.excluded_now`); everyone else is refused with the reason in words.
A test writes no delivery and moves no counter: it is recorded in the campaign's audit trail
only (`campaign.test_sent`). The Graph call is made by the edge (`pagecast.tester_sends`).
Takes a session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.message_schema import Content
from pagecast.models import Campaign, Contact, Page
from pagecast.permissions import Actor
from pagecast.services import audience, audit, campaigns, pages, sending

__all__ = [
    "TESTABLE",
    "TESTERS_LISTED",
    "Listed",
    "Plan",
    "Result",
    "Tester",
    "list_for_page",
    "names",
    "of_page",
    "plan",
    "record",
]

# A test is for a message that can still change: drafts, scheduled and paused campaigns.
TESTABLE = campaigns.EDITABLE
# The "Send test" form and `pagecast contacts testers` list this many of a Page's testers;
# `Listed.more` says when it has more (the API's contact list pages through all of them).
TESTERS_LISTED = 100


@dataclass(frozen=True)
class Tester:
    """A contact a test may be sent to (read out of the transaction)."""

    contact_id: int
    psid: str
    first_name: str | None
    last_name: str | None


@dataclass(frozen=True)
class Result:
    """What happened for one chosen contact: `sent` with Facebook's `message_id`, or
    `refused` (never sent) / `failed` (Facebook or the network said no) with a `reason`."""

    contact_id: int
    status: Literal["sent", "refused", "failed"]
    message_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"contact_id": self.contact_id, "status": self.status}
        if self.status == "sent":
            found["message_id"] = self.message_id
        else:
            found["reason"] = self.reason
        return found


@dataclass(frozen=True)
class Plan:
    """A test send decided: what to send, through which Page, to whom; who was refused."""

    campaign: Campaign
    page: Page
    messages: list[Content]  # what each person gets, in order (a sequence: up to 3)
    ready: list[Tester]
    refused: dict[int, Result]
    order: list[int]  # the chosen contact ids, each once, in the order asked


async def plan(
    session: AsyncSession, campaign_id: int, contact_ids: list[int], *, now: datetime
) -> Plan:
    """Decide a test send of the campaign to `contact_ids`.

    Raises:
        NotFound: no such campaign.
        InvalidState: the campaign is not a draft, scheduled or paused; its Page is not active.
    """
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(campaign, TESTABLE, "a test send")
    page = await pages.get(session, campaign.page_id)
    sending.require_active(page)
    messages = await campaigns.effective_messages(session, campaign)
    order = list(dict.fromkeys(contact_ids))
    found = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(order)))}
    ready: list[Tester] = []
    refused: dict[int, Result] = {}
    for contact_id in order:
        why = _refusal(found.get(contact_id), contact_id, campaign, page, now)
        if why is not None:
            refused[contact_id] = Result(contact_id, "refused", reason=why)
        else:
            c = found[contact_id]
            ready.append(Tester(c.id, c.psid, c.first_name, c.last_name))
    return Plan(campaign, page, messages, ready, refused, order)


def _refusal(
    contact: Contact | None, contact_id: int, campaign: Campaign, page: Page, now: datetime
) -> str | None:
    """Why a test may not go to this contact, in words; None when it may."""
    if contact is None:
        return f"Contact {contact_id} does not exist."
    if contact.page_id != page.id:
        return (
            f"Contact {contact_id} is a contact of another Page, not of {page.name}; a test "
            "goes through the campaign's Page to its own testers."
        )
    if not contact.is_tester:
        return (
            f"Contact {contact_id} is not a tester of {page.name}. Mark them as one first "
            f'(PATCH /api/contacts/{contact_id} {{"is_tester": true}}, or on the Contacts page).'
        )
    why = audience.excluded_now(contact, campaign.messaging_type, now)
    if why is None:
        return None
    if why == "opted_out":
        return f"Contact {contact_id} opted out: nothing is sent to them."
    if why == "unreachable":
        return f"Contact {contact_id} is unreachable (Facebook refused them before)."
    window = audience.reason_words("outside_window", campaign.messaging_type)
    known = " (no message of theirs is known)" if why == "window_unknown" else ""
    return (
        f"Contact {contact_id} is {window}{known} for a {campaign.messaging_type.value} "
        "message: Facebook would refuse it. Ask them to message the Page, then test again."
    )


async def record(
    session: AsyncSession, actor: Actor, campaign_id: int, results: list[Result]
) -> None:
    """Write the test send into the campaign's audit trail (and nowhere else)."""
    await audit.record(
        session,
        actor,
        "campaign.test_sent",
        object_type="campaign",
        object_id=campaign_id,
        details={"results": [r.as_dict() for r in results]},
    )


@dataclass(frozen=True)
class Listed:
    """The first `TESTERS_LISTED` testers of a Page; `more` when it has others after them."""

    testers: list[Contact]
    more: bool


def of_page(page_id: int) -> Select[Contact]:
    """The query of the Page's testers, by id."""
    # `is_tester` bare (`= 1` on SQLite): the form of the partial index's WHERE, which both
    # planners need before they use ix_contacts_page_id_testers.
    return select(Contact).where(Contact.page_id == page_id, Contact.is_tester).order_by(Contact.id)


async def list_for_page(session: AsyncSession, page_id: int) -> Listed:
    """The Page's first testers, by id (the "Send test" form's checkboxes)."""
    found = list(await session.scalars(of_page(page_id).limit(TESTERS_LISTED + 1)))
    return Listed(found[:TESTERS_LISTED], more=len(found) > TESTERS_LISTED)


async def names(session: AsyncSession, contact_ids: list[int]) -> dict[int, str]:
    """Contacts' names (their PSID when they have none) by id, for showing results."""
    rows = await session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name, Contact.psid).where(
            Contact.id.in_(contact_ids)
        )
    )
    return {
        cid: " ".join(n for n in (first, last) if n) or f"PSID {psid}"
        for cid, first, last, psid in rows
    }
