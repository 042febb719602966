"""Contacts: the people who messaged a Page, with tags, their messaging window and opt-outs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from pagecast.errors import Conflict, InvalidInput, NotFound
from pagecast.models import Campaign, Contact, Delivery, DeliveryStatus, Tag, contact_tags, utcnow
from pagecast.permissions import Actor
from pagecast.schemas import ContactCreate, ContactUpdate
from pagecast.services import audit, contact_events, pages
from pagecast.services.counters import shift

__all__ = [
    "add_tags",
    "create",
    "delete",
    "ensure_tags",
    "get",
    "ids_of",
    "insert_for",
    "locked",
    "update",
]


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT with ON CONFLICT support (SQLite and PostgreSQL share the API)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def locked(session: AsyncSession, page_id: int, psid: str, *, create: bool) -> Contact | None:
    """The Page's contact with this PSID, locked (PostgreSQL; SQLite transactions are
    serialised already) so that a message, a receipt and an echo of one person are applied
    one after the other. `create`: insert it first when it does not exist."""
    if create:
        insert = insert_for(session)
        await session.execute(
            insert(Contact)
            .values(page_id=page_id, psid=psid, created_at=utcnow(), updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["page_id", "psid"])
        )
    return await session.scalar(
        select(Contact)
        .where(Contact.page_id == page_id, Contact.psid == psid)
        .options(raiseload(Contact.tags))  # not needed here: no query per event for them
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def ensure_tags(session: AsyncSession, names: set[str]) -> dict[str, int]:
    """Tag ids by name, creating the missing tags."""
    if not names:
        return {}
    insert = insert_for(session)
    await session.execute(
        insert(Tag).values([{"name": n} for n in sorted(names)]).on_conflict_do_nothing()
    )
    rows = await session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names)))
    return {name: tag_id for name, tag_id in rows}


async def add_tags(session: AsyncSession, pairs: list[tuple[int, str]]) -> None:
    """Tag contacts: (contact_id, tag name) pairs; existing tags are kept."""
    if not pairs:
        return
    ids = await ensure_tags(session, {name for _, name in pairs})
    rows = [{"contact_id": cid, "tag_id": ids[name]} for cid, name in set(pairs)]
    insert = insert_for(session)
    await session.execute(insert(contact_tags).on_conflict_do_nothing(), rows)


async def get(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.")
    return contact


async def ids_of(session: AsyncSession, page_id: int, psids: list[str]) -> list[int]:
    """The ids of the Page's contacts with these PSIDs (the command line names people by PSID).

    Raises:
        NotFound: no such Page.
        InvalidInput: PSIDs that are not contacts of the Page.
    """
    await pages.get(session, page_id)
    wanted = set(psids)
    rows = await session.execute(
        select(Contact.psid, Contact.id).where(Contact.page_id == page_id, Contact.psid.in_(wanted))
    )
    found: dict[str, int] = {psid: contact_id for psid, contact_id in rows}
    if missing := sorted(wanted - found.keys()):
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidInput(
            f"{len(missing):,} of the PSIDs given are not contacts of Page {page_id} ({shown}); "
            f"see `pagecast contacts list --page {page_id}`.",
            field="psid",
        )
    return sorted(found.values())


def _apply(contact: Contact, changes: dict[str, Any]) -> None:
    now = utcnow()
    for flag, column in (("opted_out", "opted_out_at"), ("unreachable", "unreachable_at")):
        if flag in changes:
            wanted = changes.pop(flag)
            if wanted and getattr(contact, column) is None:
                setattr(contact, column, now)
            elif wanted is False:
                setattr(contact, column, None)
    changes.pop("tags", None)
    for name, value in changes.items():
        setattr(contact, name, value)


async def _set_tags(session: AsyncSession, contact: Contact, names: list[str]) -> None:
    await session.execute(sql_delete(contact_tags).where(contact_tags.c.contact_id == contact.id))
    await add_tags(session, [(contact.id, name) for name in names])
    await session.refresh(contact, ["tags"])


async def create(session: AsyncSession, actor: Actor, page_id: int, data: ContactCreate) -> Contact:
    page = await pages.get(session, page_id)
    existing = await session.scalar(
        select(Contact.id).where(Contact.page_id == page.id, Contact.psid == data.psid)
    )
    if existing is not None:
        raise Conflict(
            f"Page {page.id} already has a contact with psid {data.psid} (contact {existing}).",
            field="psid",
        )
    contact = Contact(page_id=page.id, psid=data.psid)
    _apply(contact, data.model_dump(exclude_unset=True, exclude={"psid"}))
    session.add(contact)
    await session.flush()
    await _set_tags(session, contact, data.tags or [])
    await audit.record(
        session,
        actor,
        "contact.created",
        object_type="contact",
        object_id=contact.id,
        details={"page_id": page.id, "psid": contact.psid, "name": _name(contact)},
    )
    await _opted_out(session, contact, None)
    return contact


def _name(contact: Contact) -> str | None:
    return " ".join(n for n in (contact.first_name, contact.last_name) if n) or None


def _audited(contact: Contact) -> dict[str, Any]:
    """What a person edits of a contact, as the audit log compares it before and after."""
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "utc_offset_minutes": contact.utc_offset_minutes,
        "profile_pic_url": contact.profile_pic_url,
        "last_inbound_at": contact.last_inbound_at,
        "opted_out": contact.opted_out_at is not None,
        "unreachable": contact.unreachable_at is not None,
        "is_tester": contact.is_tester,
        "tags": [t.name for t in contact.tags],
    }


async def update(
    session: AsyncSession, actor: Actor, contact_id: int, data: ContactUpdate
) -> Contact:
    contact = await get(session, contact_id)
    before = _audited(contact)
    changes = data.model_dump(exclude_unset=True)
    tags = changes.get("tags")
    was = contact.opted_out_at
    _apply(contact, changes)
    await session.flush()
    if tags is not None:
        await _set_tags(session, contact, tags)
    found = audit.changes(before, _audited(contact))
    # An opt-out (or opt-in) made by a person is its own action, so it can be found as one.
    action = "contact.updated"
    if "opted_out" in found:
        action = "contact.opted_out" if found["opted_out"]["to"] else "contact.opted_in"
    await audit.record(
        session,
        actor,
        action,
        object_type="contact",
        object_id=contact.id,
        details={
            "page_id": contact.page_id,
            "psid": contact.psid,
            "name": _name(contact),
            "changes": found,
        },
    )
    await _opted_out(session, contact, was)
    return contact


async def _opted_out(session: AsyncSession, contact: Contact, was: datetime | None) -> None:
    """`contact.opted_out` when a person's change opted the contact out."""
    if was is None and contact.opted_out_at is not None:
        await contact_events.opted_out(
            session,
            contact.page_id,
            [(contact.id, contact.psid)],
            contact.opted_out_at,
            contact_events.Source.PERSON,
        )


async def delete(session: AsyncSession, actor: Actor, contact_id: int) -> None:
    """Delete the contact with its deliveries (they have no foreign key to cascade them) and
    take those off their campaigns' counters, in this transaction."""
    # Contacts before deliveries before campaign rows, the order webhook batches lock them
    # in; deleting the deliveries waits for a worker's claim transaction that holds one.
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id).with_for_update()
    )
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.")
    await _delete_deliveries(session, contact_id)
    await session.delete(contact)
    await audit.record(
        session,
        actor,
        "contact.deleted",
        object_type="contact",
        object_id=contact_id,
        details={"page_id": contact.page_id, "psid": contact.psid, "name": _name(contact)},
    )
    await session.flush()


async def _delete_deliveries(session: AsyncSession, contact_id: int) -> Counter[int]:
    """Delete the contact's deliveries and take them off their campaigns' counters (nothing
    cascades from `contacts`: models.Delivery). Returns how many each campaign lost.

    The caller locks the contact row first (contacts before deliveries before campaign
    rows): the DELETE then waits for a worker holding one of these deliveries in its claim
    transaction."""
    table = Delivery.__table__
    rows = (
        await session.execute(
            sql_delete(table)
            .where(table.c.contact_id == contact_id)
            .returning(table.c.campaign_id, table.c.status)
        )
    ).all()
    lost: Counter[int] = Counter()
    by_campaign: dict[int, Counter[DeliveryStatus]] = {}
    for campaign_id, status in rows:
        lost[campaign_id] += 1
        by_campaign.setdefault(campaign_id, Counter())[DeliveryStatus(status)] -= 1
    for campaign_id in sorted(by_campaign):  # campaign rows in id order, as everywhere
        await session.execute(
            sql_update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(n_total=Campaign.n_total - lost[campaign_id])
        )
        await shift(session, campaign_id, by_campaign[campaign_id])
    return lost
