"""Contact imports as background jobs: their rows in `contact_imports`, progress and report.

An import is started here (refused while another import of the Page runs), the process that
runs it (`pagecast.import_runner`) adds each batch's counts with `record_batch`, which also
beats its heart, and ends it with `finish`. A running import whose heartbeat is older than
`STALE_AFTER` belongs to a process that stopped: it is reported `interrupted` at once and
written so by the next `start` of any import (`expire_stale`). These functions take a
session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import Hint, InvalidState, NotFound
from pagecast.models import ContactImport, ImportState, utcnow
from pagecast.permissions import Actor
from pagecast.services import audit, outbound_events, pages
from pagecast.services.contact_import import MAX_ERRORS_LISTED, RowError

__all__ = [
    "STALE_AFTER",
    "expire_stale",
    "finish",
    "get",
    "list_recent",
    "record_batch",
    "report",
    "start",
]

# Batches commit every second or so; a minute without one means the process is gone.
STALE_AFTER = timedelta(seconds=60)
_INTERRUPTED = (
    "The process running this import stopped (no progress since the time in finished_at). "
    "The rows counted were imported; import the file again to finish it (a row imported "
    "twice changes nothing)."
)


async def expire_stale(session: AsyncSession, now: datetime | None = None) -> None:
    """Mark running imports whose process stopped heartbeating as `interrupted`, each
    audited as it ends (`contacts.imported`, by `system`: its own process never will)."""
    now = now or utcnow()
    stale = await session.scalars(
        select(ContactImport.id).where(
            ContactImport.state == ImportState.RUNNING,
            ContactImport.heartbeat_at < now - STALE_AFTER,
        )
    )
    for import_id in list(stale):
        result = await session.execute(
            update(ContactImport)
            .where(ContactImport.id == import_id, ContactImport.state == ImportState.RUNNING)
            .values(
                state=ImportState.INTERRUPTED,
                finished_at=ContactImport.heartbeat_at,
                error=_INTERRUPTED,
            )
        )
        if rowcount(result):
            await _record_end(session, Actor.system(), import_id)


async def start(
    session: AsyncSession,
    actor: Actor,
    page_id: int,
    *,
    file_name: str,
    file_bytes: int,
    ignored_columns: Sequence[str] = (),
    now: datetime | None = None,
) -> ContactImport:
    """Record a new running import of the Page.

    Raises:
        NotFound: no such Page.
        InvalidState: another import of the Page is running.
    """
    now = now or utcnow()
    await pages.get(session, page_id)
    await expire_stale(session, now)
    job = ContactImport(
        page_id=page_id,
        state=ImportState.RUNNING,
        started_by=actor.name,
        file_name=file_name[:255],
        file_bytes=file_bytes,
        bytes_read=0,
        started_at=now,
        heartbeat_at=now,
        rows=0,
        created=0,
        updated=0,
        refused=0,
        errors=[],
        ignored_columns=list(ignored_columns),
    )
    try:
        async with session.begin_nested():  # the unique index decides a race between processes
            session.add(job)
    except IntegrityError as exc:
        running = await session.scalar(
            select(ContactImport).where(
                ContactImport.page_id == page_id, ContactImport.state == ImportState.RUNNING
            )
        )
        if running is None:
            raise
        raise InvalidState(
            f"Page {page_id} is already importing contacts: import {running.id} "
            f"({running.file_name}) has been running since {_iso(running.started_at)}. Follow "
            "it with {hint} and import this file once it has finished.",
            field="page_id",
            hint=Hint(
                api=f"GET /api/contacts/imports/{running.id}",
                cli=f"`pagecast contacts imports --page {page_id}`",
            ),
        ) from exc
    await audit.record(
        session,
        actor,
        "contacts.import_started",
        object_type="page",
        object_id=page_id,
        details={"import_id": job.id, "file_name": job.file_name, "file_bytes": file_bytes},
    )
    return job


async def record_batch(
    session: AsyncSession,
    import_id: int,
    *,
    bytes_read: int,
    rows: int,
    created: int,
    updated: int,
    refused: Sequence[RowError],
    listed: int,
    now: datetime | None = None,
) -> bool:
    """Add a batch's counts (and its refused rows while fewer than `MAX_ERRORS_LISTED` are
    listed; `listed` is how many are) and beat the heart. False when the import is no longer
    running."""
    values: dict[str, Any] = {
        "heartbeat_at": now or utcnow(),
        "bytes_read": bytes_read,
        "rows": ContactImport.rows + rows,
        "created": ContactImport.created + created,
        "updated": ContactImport.updated + updated,
        "refused": ContactImport.refused + len(refused),
    }
    room = MAX_ERRORS_LISTED - listed
    if refused and room > 0:
        job = await session.get(ContactImport, import_id)
        if job is not None:
            values["errors"] = [*job.errors, *(_error(e) for e in refused[:room])]
    result = await session.execute(
        update(ContactImport)
        .where(ContactImport.id == import_id, ContactImport.state == ImportState.RUNNING)
        .values(**values)
    )
    return bool(rowcount(result))


def _error(error: RowError) -> dict[str, Any]:
    return {"row": error.row, "column": error.column, "reason": error.reason}


async def finish(
    session: AsyncSession,
    actor: Actor,
    import_id: int,
    state: ImportState,
    *,
    error: str | None = None,
    now: datetime | None = None,
) -> None:
    """End a running import (`completed`, `failed` or `interrupted`) and audit its counts;
    nothing when it ended already."""
    now = now or utcnow()
    result = await session.execute(
        update(ContactImport)
        .where(ContactImport.id == import_id, ContactImport.state == ImportState.RUNNING)
        .values(state=state, finished_at=now, heartbeat_at=now, error=error)
    )
    if rowcount(result):  # else it had ended already (expired as stale), and was audited then
        await _record_end(session, actor, import_id)


async def _record_end(session: AsyncSession, actor: Actor, import_id: int) -> None:
    """The one `contacts.imported` entry and the one `import.completed` event of an import
    that just ended (its conditional UPDATE changed the row), with its counts."""
    job = await session.get(ContactImport, import_id, populate_existing=True)
    if job is not None:
        await _emit_ended(session, job)
        await audit.record(
            session,
            actor,
            "contacts.imported",
            object_type="page",
            object_id=job.page_id,
            details={
                "import_id": job.id,
                "state": job.state.value,
                "rows": job.rows,
                "created": job.created,
                "updated": job.updated,
                "refused": job.refused,
            },
        )


async def _emit_ended(session: AsyncSession, job: ContactImport) -> None:
    """`import.completed`: the import ended (its `state` says how) with its counts."""
    await outbound_events.emit(
        session,
        "import.completed",
        {
            "import_id": job.id,
            "page_id": job.page_id,
            "file_name": job.file_name,
            "state": job.state.value,
            "rows": job.rows,
            "created": job.created,
            "updated": job.updated,
            "refused": job.refused,
            "error": job.error,
        },
    )


async def get(session: AsyncSession, import_id: int) -> ContactImport:
    job = await session.get(ContactImport, import_id)
    if job is None:
        raise NotFound(f"Import {import_id} does not exist.", field="import_id")
    return job


async def list_recent(
    session: AsyncSession, *, page_id: int | None = None, limit: int = 50
) -> list[ContactImport]:
    """The newest imports first, of one Page or of all."""
    query = select(ContactImport).order_by(ContactImport.id.desc()).limit(limit)
    if page_id is not None:
        query = query.where(ContactImport.page_id == page_id)
    return list(await session.scalars(query))


def report(
    job: ContactImport, now: datetime | None = None, *, errors: bool = True
) -> dict[str, Any]:
    """The import as the API, the CLI and the dashboard show it."""
    now = now or utcnow()
    state, finished, error = job.state, job.finished_at, job.error
    if state is ImportState.RUNNING and job.heartbeat_at < now - STALE_AFTER:
        state, finished, error = ImportState.INTERRUPTED, job.heartbeat_at, _INTERRUPTED
    end = finished or now
    done = state is ImportState.COMPLETED
    return {
        "id": job.id,
        "page_id": job.page_id,
        "state": state.value,
        "running": state is ImportState.RUNNING,
        "file_name": job.file_name,
        "file_bytes": job.file_bytes,
        "bytes_read": job.bytes_read,
        "progress": 1.0 if done else round(job.bytes_read / max(job.file_bytes, 1), 4),
        "rows": job.rows,
        "imported": job.created + job.updated,
        "created": job.created,
        "updated": job.updated,
        "refused": job.refused,
        "errors": list(job.errors) if errors else None,
        "errors_listed_at_most": MAX_ERRORS_LISTED,
        "ignored_columns": list(job.ignored_columns),
        "started_by": job.started_by,
        "started_at": _iso(job.started_at),
        "finished_at": _iso(finished),
        "elapsed_seconds": round((end - job.started_at).total_seconds(), 1),
        "error": error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None
