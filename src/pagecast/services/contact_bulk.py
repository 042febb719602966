"""Bulk actions on a Page's contacts: tag, untag or opt out the chosen ones or every one a
filter matches, in bounded batches, with one audit entry.

The action is on the contacts there are when it starts (a contact created meanwhile is left
alone). Each batch of `BATCH` contacts is its own short transaction, so tagging 1,000,000 people
neither holds row locks for minutes nor blocks the webhook's writes to them; a failure part
way leaves the batches before it done, and the audit entry says how many changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.contact_filter_schema import ContactBulk
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import Contact, contact_tags
from pagecast.permissions import Actor
from pagecast.services import audit, contact_events, contact_filter, contacts, pages

__all__ = ["BATCH", "apply"]

BATCH = 1_000


async def _check_ids(session: AsyncSession, page_id: int, ids: list[int]) -> None:
    wanted = set(ids)
    found = set(
        await session.scalars(
            select(Contact.id).where(Contact.page_id == page_id, Contact.id.in_(wanted))
        )
    )
    if missing := sorted(wanted - found):
        shown = ", ".join(str(i) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidInput(
            f"ids: {len(missing):,} of the ids are not contacts of Page {page_id} ({shown}); "
            "choose contacts from this Page's list.",
            field="ids",
        )


async def _apply_batch(
    session: AsyncSession,
    page_id: int,
    body: ContactBulk,
    batch: list[int],
    tag_id: int | None,
    now: datetime,
) -> int:
    if body.action == "opt_out":
        changed = list(
            await session.execute(
                update(Contact)
                .where(Contact.id.in_(batch), Contact.opted_out_at.is_(None))
                # As an opt-out keyword does: an opt-in keyword written before `now` and
                # arriving late does not undo it (services/inbound.keywords).
                .values(opted_out_at=now, consent_changed_at=now, updated_at=now)
                .returning(Contact.id, Contact.psid)
            )
        )
        changed.sort()
        await contact_events.opted_out(
            session,
            page_id,
            [(contact_id, psid) for contact_id, psid in changed],
            now,
            contact_events.Source.BULK,
        )
        return len(changed)
    if body.action == "tag":
        has_it = exists().where(
            contact_tags.c.contact_id == Contact.id, contact_tags.c.tag_id == tag_id
        )
        done = await session.execute(
            insert(contact_tags).from_select(
                ["contact_id", "tag_id"],
                select(Contact.id, literal(tag_id)).where(Contact.id.in_(batch), ~has_it),
            )
        )
    else:
        done = await session.execute(
            delete(contact_tags).where(
                and_(contact_tags.c.tag_id == tag_id, contact_tags.c.contact_id.in_(batch))
            )
        )
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


async def apply(db: Database, actor: Actor, page_id: int, body: ContactBulk, now: datetime) -> int:
    """Run `body` on the Page's contacts; how many contacts it changed (one already tagged,
    untagged or opted out is not counted).

    Raises:
        NotFound: no such Page.
        InvalidInput: ids that are not contacts of the Page (nothing is changed).
    """
    async with db.transaction() as session:
        await pages.get(session, page_id)
        if body.ids is not None:
            await _check_ids(session, page_id, body.ids)
        tag_id = None
        if body.tag:
            tag_id = (await contacts.ensure_tags(session, {body.tag}))[body.tag]
        # The contacts there are now: one created while the batches run (a new person
        # writing to the Page) was not among the "all N matching" the operator chose.
        newest = await session.scalar(
            select(func.max(Contact.id)).where(Contact.page_id == page_id)
        )
    where = [Contact.page_id == page_id, Contact.id <= (newest or 0)]
    if body.filter is not None:
        where += contact_filter.clauses(page_id, body.filter, now)
    else:
        where.append(Contact.id.in_(sorted(set(body.ids or ()))))
    changed, after, finished = 0, 0, False
    try:
        while True:
            async with db.transaction() as session:
                batch = list(
                    await session.scalars(
                        select(Contact.id)
                        .where(*where, Contact.id > after)
                        .order_by(Contact.id)
                        .limit(BATCH)
                    )
                )
                if not batch:
                    break
                changed += await _apply_batch(session, page_id, body, batch, tag_id, now)
            after = batch[-1]
        finished = True
    finally:  # the batches done are audited even when a later one fails
        await _audit(db, actor, page_id, body, changed, finished)
    return changed


async def _audit(
    db: Database, actor: Actor, page_id: int, body: ContactBulk, changed: int, finished: bool
) -> None:
    details: dict[str, Any] = {"action": body.action, "tag": body.tag, "changed": changed}
    if not finished:
        details["failed_part_way"] = True
    if body.filter is not None:
        details["filter"] = body.filter.model_dump(mode="json", exclude_defaults=True)
    else:
        details["ids"] = len(set(body.ids or ()))
    async with db.transaction() as session:
        await audit.record(
            session,
            actor,
            f"contacts.{body.action}",
            object_type="page",
            object_id=page_id,
            details=details,
        )
