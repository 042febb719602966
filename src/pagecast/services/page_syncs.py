"""Audience syncs of a Page: their state and progress in `page_syncs`, and merging the people found.

A sync is started here (refused while another one of the Page runs), its process reports
progress and heartbeats through `progress`, and ends it with `finish`. A running sync whose
heartbeat is older than `STALE_AFTER` belongs to a process that died: `expire_stale` (called
by `start` and `latest`) marks it `interrupted`, so it is reported as such and blocks
nothing. The Graph calls live in `pagecast.audience_sync`; these functions take a session
and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import InvalidState, NotFound, reconnect_hint
from pagecast.models import Contact, PageStatus, PageSync, SyncState, utcnow
from pagecast.permissions import Actor
from pagecast.services import audit, contacts, pages

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_AFTER",
    "Merged",
    "Person",
    "expire_stale",
    "finish",
    "get",
    "latest",
    "merge_people",
    "progress",
    "report",
    "start",
]

HEARTBEAT_SECONDS = 5.0
# Six missed heartbeats: the process that ran it is gone (killed, crashed, or stopped).
STALE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Person:
    """Someone found in a conversation of the Page."""

    psid: str
    first_name: str | None
    last_name: str | None
    # Their own last message among those the API returned; None when none of them is theirs.
    last_inbound_at: datetime | None


@dataclass(frozen=True)
class Merged:
    created: int
    updated: int


async def expire_stale(session: AsyncSession, page_id: int, now: datetime | None = None) -> None:
    """Mark the Page's running sync `interrupted` when its process stopped heartbeating."""
    now = now or utcnow()
    await session.execute(
        update(PageSync)
        .where(
            PageSync.page_id == page_id,
            PageSync.state == SyncState.RUNNING,
            PageSync.heartbeat_at < now - STALE_AFTER,
        )
        .values(
            state=SyncState.INTERRUPTED,
            finished_at=PageSync.heartbeat_at,
            error="The process running this sync stopped (no heartbeat since the time in "
            "finished_at). Start a new sync.",
        )
    )


async def start(
    session: AsyncSession, actor: Actor, page_id: int, *, now: datetime | None = None
) -> PageSync:
    """Record a new running sync of the Page.

    Raises:
        InvalidState: another sync of the Page runs, or the Page cannot call Facebook.
    """
    now = now or utcnow()
    page = await pages.get(session, page_id)
    if page.status is not PageStatus.ACTIVE:
        raise InvalidState(
            f"Page {page.name} is {page.status.value}"
            f"{': ' + page.status_reason if page.status_reason else ''}. Reconnect it with a new "
            "token ({hint}) before syncing its audience.",
            field="page_id",
            hint=reconnect_hint(page.id, page.fb_page_id),
        )
    await expire_stale(session, page_id, now)
    running = await session.scalar(
        select(PageSync).where(PageSync.page_id == page_id, PageSync.state == SyncState.RUNNING)
    )
    if running is not None:
        raise _already_running(running)
    sync = PageSync(
        page_id=page_id,
        state=SyncState.RUNNING,
        started_by=actor.name,
        started_at=now,
        heartbeat_at=now,
        calls=0,
        threads_seen=0,
        contacts_created=0,
        contacts_updated=0,
    )
    try:
        async with session.begin_nested():  # the unique index decides a race between processes
            session.add(sync)
    except IntegrityError as exc:
        running = await session.scalar(
            select(PageSync).where(PageSync.page_id == page_id, PageSync.state == SyncState.RUNNING)
        )
        if running is None:
            raise
        raise _already_running(running) from exc
    await audit.record(session, actor, "page.sync_started", object_type="page", object_id=page_id)
    return sync


def _already_running(sync: PageSync) -> InvalidState:
    return InvalidState(
        f"Page {sync.page_id} is already being synced: sync {sync.id} has been running since "
        f"{_iso(sync.started_at)} (started by {sync.started_by}). Follow its progress with "
        f"GET /api/pages/{sync.page_id}/sync or `pagecast pages sync {sync.page_id} --status`; "
        "start another once it has finished.",
        field="page_id",
    )


def report(sync: PageSync, now: datetime | None = None) -> dict[str, Any]:
    """The sync as the API and the CLI show it."""
    end = sync.finished_at or now or utcnow()
    return {
        "id": sync.id,
        "page_id": sync.page_id,
        "state": sync.state.value,
        "running": sync.state is SyncState.RUNNING,
        "started_by": sync.started_by,
        "started_at": _iso(sync.started_at),
        "finished_at": _iso(sync.finished_at),
        "heartbeat_at": _iso(sync.heartbeat_at),
        "elapsed_seconds": round((end - sync.started_at).total_seconds(), 1),
        "calls": sync.calls,
        "threads_seen": sync.threads_seen,
        "contacts_created": sync.contacts_created,
        "contacts_updated": sync.contacts_updated,
        "error": sync.error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


async def get(session: AsyncSession, sync_id: int) -> PageSync:
    sync = await session.get(PageSync, sync_id)
    if sync is None:
        raise NotFound(f"Sync {sync_id} does not exist.", field="sync_id")
    return sync


async def latest(session: AsyncSession, page_id: int) -> PageSync | None:
    """The Page's most recent sync (a dead one reported as `interrupted`), or None."""
    await pages.get(session, page_id)
    await expire_stale(session, page_id)
    return await session.scalar(
        select(PageSync).where(PageSync.page_id == page_id).order_by(PageSync.id.desc()).limit(1)
    )


async def progress(
    session: AsyncSession,
    sync_id: int,
    *,
    calls: int = 0,
    threads: int = 0,
    merged: Merged | None = None,
    now: datetime | None = None,
) -> bool:
    """Add to the counters and beat the heart; False when the sync is no longer running."""
    values: dict[str, object] = {
        "heartbeat_at": now or utcnow(),
        "calls": PageSync.calls + calls,
        "threads_seen": PageSync.threads_seen + threads,
    }
    if merged is not None:
        values["contacts_created"] = PageSync.contacts_created + merged.created
        values["contacts_updated"] = PageSync.contacts_updated + merged.updated
    result = await session.execute(
        update(PageSync)
        .where(PageSync.id == sync_id, PageSync.state == SyncState.RUNNING)
        .values(**values)
    )
    return bool(rowcount(result))


async def finish(
    session: AsyncSession,
    sync_id: int,
    state: SyncState,
    *,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """End a running sync (`completed`, `failed` or `interrupted`), with the error if any."""
    now = now or utcnow()
    await session.execute(
        update(PageSync)
        .where(PageSync.id == sync_id, PageSync.state == SyncState.RUNNING)
        .values(state=state, finished_at=now, heartbeat_at=now, error=error)
    )


async def merge_people(session: AsyncSession, page_id: int, people: Sequence[Person]) -> Merged:
    """Create the contacts not known yet and refresh the others.

    `last_inbound_at` only moves forward (a webhook may already know a newer message), and
    names fill in only where none is stored (the User Profile API's, or an import's, win).
    """
    by_psid = {p.psid: p for p in people}
    if not by_psid:
        return Merged(0, 0)
    insert = contacts.insert_for(session)
    created = set(
        await session.scalars(
            insert(Contact)
            .values(
                [
                    {
                        "page_id": page_id,
                        "psid": p.psid,
                        "first_name": p.first_name,
                        "last_name": p.last_name,
                        "last_inbound_at": p.last_inbound_at,
                    }
                    for p in by_psid.values()
                ]
            )
            .on_conflict_do_nothing(index_elements=["page_id", "psid"])
            .returning(Contact.psid)
        )
    )
    updated = 0
    existing = [psid for psid in by_psid if psid not in created]
    if existing:
        rows = await session.scalars(
            select(Contact).where(Contact.page_id == page_id, Contact.psid.in_(existing))
        )
        for contact in rows:
            person = by_psid[contact.psid]
            changed = False
            seen = person.last_inbound_at
            if seen is not None and (
                contact.last_inbound_at is None or seen > contact.last_inbound_at
            ):
                contact.last_inbound_at, changed = seen, True
            if not contact.first_name and not contact.last_name and person.first_name:
                contact.first_name, contact.last_name = person.first_name, person.last_name
                changed = True
            updated += changed
        await session.flush()
    return Merged(created=len(created), updated=updated)
