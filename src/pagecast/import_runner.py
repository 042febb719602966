"""Contact imports in the background: the stored CSV read in a thread, written in batches.

`ImportRunner` belongs to one process (the web app's `AppContext`, or the CLI). `start`
checks the stored file (UTF-8, a `psid` column: refused at once, before any job exists),
records a running job (`services.import_jobs`) and runs it as an asyncio task of that
process. The task reads `batch_rows` rows at a time in a worker thread (`CsvReader`: the
decoding, parsing and checks of every row, valid or not, happen off the event loop) while it
writes the previous batch in one short transaction with the job's counts, so webhooks and
progress reads get the database between batches. A process that closes its context stops
its imports, each recorded as `interrupted`; one that dies is reported so once its
heartbeat is stale. Why here and not in the worker: docs/architecture.md, "Issue 17:
imports in the background".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from pagecast.background import Jobs
from pagecast.db import Database
from pagecast.errors import PagecastError
from pagecast.models import ContactImport, ImportState
from pagecast.permissions import Actor
from pagecast.services import contact_import, import_jobs
from pagecast.services.contact_import import Batch, CsvReader

__all__ = ["ImportOptions", "ImportRunner"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ContactImport], None]
_ABANDONED_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class ImportOptions:
    directory: Path  # where uploads are stored until their job has opened them
    batch_rows: int = 2000
    max_tags: int = 50


class ImportRunner:
    """The contact imports of this process."""

    def __init__(self, db: Database, options: ImportOptions) -> None:
        self.db, self.options = db, options
        self._jobs = Jobs("import")

    def new_upload_path(self) -> Path:
        """A fresh path in the uploads directory (created 0700) for a file to be written 0600.

        An upload is deleted once its job has opened it; one older than a day was left by a
        process that died between storing and opening it, and is deleted here.
        """
        directory = self.options.directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stale = time.time() - _ABANDONED_AFTER_S
        for old in directory.glob("*.csv"):
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < stale:
                    old.unlink()
        return directory / f"{secrets.token_hex(12)}.csv"

    async def start(
        self, actor: Actor, page_id: int, path: Path, *, file_name: str, delete: bool = True
    ) -> ContactImport:
        """Check the file, record a running import and run it in the background.

        The file is deleted (when `delete`) once the job has opened it, or when it is refused.
        Raises `InvalidInput` for a file that cannot be imported, `NotFound`, `InvalidState`.
        """
        job, reader = await self._open(actor, page_id, path, file_name=file_name, delete=delete)
        self._jobs.start(job.id, self._run(job, actor, reader, None))
        return job

    async def run_here(
        self,
        actor: Actor,
        page_id: int,
        path: Path,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ContactImport:
        """Import a file to its end in this task (the CLI); returns the final job."""
        job, reader = await self._open(actor, page_id, path, file_name=path.name, delete=False)
        await self._run(job, actor, reader, on_progress)
        async with self.db.reading() as session:
            return await import_jobs.get(session, job.id)

    async def wait(self, import_id: int) -> None:
        """Until the background import `import_id` of this process has ended (tests, shutdown)."""
        await self._jobs.wait(import_id)

    async def close(self) -> None:
        """Stop this process's imports; each is recorded as `interrupted`."""
        await self._jobs.close()

    # ----------------------------------------------------------------------------- running

    async def _open(
        self, actor: Actor, page_id: int, path: Path, *, file_name: str, delete: bool
    ) -> tuple[ContactImport, CsvReader]:
        try:
            size, reader = await asyncio.to_thread(self._check_and_open, path)
        except BaseException:
            if delete:
                path.unlink(missing_ok=True)
            raise
        if delete:  # the reader holds the file open; nothing is left behind after a crash
            path.unlink(missing_ok=True)
        try:
            async with self.db.transaction() as session:
                job = await import_jobs.start(
                    session,
                    actor,
                    page_id,
                    file_name=file_name,
                    file_bytes=size,
                    ignored_columns=reader.ignored_columns,
                )
        except BaseException:
            reader.close()
            raise
        return job, reader

    def _check_and_open(self, path: Path) -> tuple[int, CsvReader]:
        with open(path, "rb") as file:
            contact_import.check_utf8(file)
        return os.path.getsize(path), CsvReader(path, max_tags=self.options.max_tags)

    async def _run(
        self,
        job: ContactImport,
        actor: Actor,
        reader: CsvReader,
        on_progress: ProgressCallback | None,
    ) -> None:
        state, error = ImportState.COMPLETED, None
        reading: asyncio.Future[Batch] | None = None
        listed = 0
        try:
            reading = asyncio.ensure_future(self._read(reader))
            while True:
                assert reading is not None  # None only after the last batch, which ends the loop
                batch = await reading
                # Read the next batch in the thread while this one is written.
                reading = None if batch.done else asyncio.ensure_future(self._read(reader))
                writing = asyncio.ensure_future(self._write(job, batch, listed))
                try:
                    running = await asyncio.shield(writing)
                except asyncio.CancelledError:
                    # A transaction cancelled half-way can leave SQLite's write lock held:
                    # the batch commits (or fails) first, then the import stops.
                    with contextlib.suppress(Exception):
                        await writing
                    raise
                listed = min(listed + len(batch.errors), contact_import.MAX_ERRORS_LISTED)
                if not running:
                    state, error = ImportState.INTERRUPTED, "The import was marked as stopped."
                    break
                if on_progress is not None:
                    async with self.db.reading() as session:
                        on_progress(await import_jobs.get(session, job.id))
                if batch.done:
                    break
        except PagecastError as exc:  # a row that is not CSV: what came before is kept
            state, error = ImportState.FAILED, exc.message
        except asyncio.CancelledError:
            state, error = ImportState.INTERRUPTED, "The process running this import stopped."
            raise
        except Exception as exc:
            logger.exception("page %d: import %d failed", job.page_id, job.id)
            state, error = ImportState.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}"
        finally:
            if reading is not None:  # a thread cannot be cancelled: let it end its batch
                with contextlib.suppress(BaseException):
                    await asyncio.shield(reading)
            reader.close()
            # Shielded: a cancelled task must still record how it ended.
            await asyncio.shield(self._finish(job, actor, state, error))
        logger.info("page %d: import %d %s", job.page_id, job.id, state.value)

    async def _write(self, job: ContactImport, batch: Batch, listed: int) -> bool:
        """One batch and the job's counts in one transaction; False when the job was stopped."""
        async with self.db.transaction() as session:
            if self.db.dialect == "postgresql":
                # A batch's commit need not wait for its WAL flush: the job's counts commit
                # with the rows, so a crash loses both together, and the synchronous commit
                # that ends the job flushes everything before it says `completed`.
                await session.execute(text("SET LOCAL synchronous_commit = off"))
            created, updated = await contact_import.upsert(session, job.page_id, batch.rows)
            return await import_jobs.record_batch(
                session,
                job.id,
                bytes_read=batch.bytes_read,
                rows=batch.read,
                created=created,
                updated=updated,
                refused=batch.errors,
                listed=listed,
            )

    async def _read(self, reader: CsvReader) -> Batch:
        return await asyncio.to_thread(reader.next_batch, self.options.batch_rows)

    async def _finish(
        self, job: ContactImport, actor: Actor, state: ImportState, error: str | None
    ) -> None:
        async with self.db.transaction() as session:
            await import_jobs.finish(session, actor, job.id, state, error=error)
