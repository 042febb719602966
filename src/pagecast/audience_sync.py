"""Audience sync: every conversation of a Page, through the Conversations API, into contacts.

`SyncRunner` belongs to one process (the web app's `AppContext`, or a CLI command). It
starts a sync (`services.page_syncs.start`, refused while another runs anywhere) and runs it
as an asyncio task of that process, writing progress and a heartbeat to `page_syncs`; the
task is cancelled, and its sync marked `interrupted`, when the process closes its context.
Why it runs there and not in the worker: `docs/architecture.md`, "Audience sync".

Each page of threads (up to 100) is one Graph call, paced at the Conversations API's
2 calls/s per Page (docs/graph-api.md, "Rate limits"), and one transaction: new people become contacts, known ones
get a newer `last_inbound_at` (their own last message, never the thread's `updated_time`).
A token or restriction error stops the sync and marks the Page as the worker does
(`services.sending.stop_page`); throttling waits; transient errors are retried a few times
from the same cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pagecast.background import Jobs
from pagecast.db import Database
from pagecast.graph import (
    DEFAULT_THROTTLE_SECONDS,
    Conversation,
    ErrorKind,
    GraphClient,
    GraphError,
    PageCredentials,
)
from pagecast.models import PageSync, SyncState
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import page_syncs, pages, sending

__all__ = ["CONVERSATIONS_PER_SECOND", "Pace", "Progress", "SyncOptions", "SyncRunner"]

logger = logging.getLogger(__name__)

# Spec 7.1 / 9.5: the Conversations API admits 2 calls per second per Page.
CONVERSATIONS_PER_SECOND = 2.0


class Pace:
    """At most `rate` calls per second: the next call starts 1/rate s after the last one ended.

    Measured from the end of a call, so the server sees them at least that far apart whatever
    the network did. One sync per Page runs at a time (the database enforces it), so a
    process-local pace is the Page's pace.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate + 0.01
        self._next = 0.0

    async def wait(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def done(self) -> None:
        self._next = time.monotonic() + self._interval


@dataclass(frozen=True)
class SyncOptions:
    page_size: int = 100
    calls_per_second: float = CONVERSATIONS_PER_SECOND
    # Transient failures (code 1/2, 5xx, timeouts) in a row before the sync gives up.
    retries: int = 5
    retry_base_seconds: float = 1.0
    # A throttle asking to wait longer than this ends the sync instead.
    max_throttle_wait: float = 900.0
    heartbeat_seconds: float = page_syncs.HEARTBEAT_SECONDS


@dataclass(frozen=True)
class Progress:
    """Counters of a running sync, for a progress bar."""

    calls: int
    threads_seen: int
    contacts_created: int
    contacts_updated: int


ProgressCallback = Callable[[Progress], None]


class _Stop(Exception):
    """The sync ends with this state and error."""

    def __init__(self, state: SyncState, error: str | None) -> None:
        super().__init__(error)
        self.state, self.error = state, error


class SyncRunner:
    """The audience syncs of this process."""

    def __init__(
        self,
        db: Database,
        *,
        graph: GraphClient,
        vault: Vault,
        app_secret: str | None,
        options: SyncOptions | None = None,
    ) -> None:
        self.db, self.graph, self.vault, self.app_secret = db, graph, vault, app_secret
        self.options = options or SyncOptions()
        self._jobs = Jobs("page-sync")
        self._paces: dict[int, Pace] = {}

    async def start(self, actor: Actor, page_id: int) -> PageSync:
        """Record a new sync and run it in the background; raises `InvalidState` while one runs."""
        async with self.db.transaction() as session:
            sync = await page_syncs.start(session, actor, page_id)
        self._jobs.start(sync.id, self._run(sync.id, page_id, None))
        return sync

    async def run_here(
        self, actor: Actor, page_id: int, on_progress: ProgressCallback | None = None
    ) -> PageSync:
        """Start a sync and run it to its end in this task (the CLI); returns the final row."""
        async with self.db.transaction() as session:
            sync = await page_syncs.start(session, actor, page_id)
        await self._run(sync.id, page_id, on_progress)
        async with self.db.transaction() as session:
            return await page_syncs.get(session, sync.id)

    async def wait(self, sync_id: int) -> None:
        """Until the background sync `sync_id` of this process has ended (tests, shutdown)."""
        await self._jobs.wait(sync_id)

    async def close(self) -> None:
        """Stop this process's syncs; each is recorded as `interrupted`."""
        await self._jobs.close()

    # ------------------------------------------------------------------------------- running

    async def _run(self, sync_id: int, page_id: int, on_progress: ProgressCallback | None) -> None:
        heart = asyncio.create_task(self._heartbeat(sync_id))
        state, error = SyncState.COMPLETED, None
        try:
            await self._sync(sync_id, page_id, on_progress)
        except _Stop as stop:
            state, error = stop.state, stop.error
        except asyncio.CancelledError:
            state, error = SyncState.INTERRUPTED, "The process running this sync stopped."
            raise
        except Exception as exc:
            logger.exception("page %d: sync %d failed", page_id, sync_id)
            state, error = SyncState.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}"
        finally:
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
            # Shielded: a cancelled task must still record how it ended.
            await asyncio.shield(self._finish(sync_id, state, error))
        logger.info("page %d: sync %d %s", page_id, sync_id, state.value)

    async def _finish(self, sync_id: int, state: SyncState, error: str | None) -> None:
        async with self.db.transaction() as session:
            await page_syncs.finish(session, sync_id, state, error=error)

    async def _heartbeat(self, sync_id: int) -> None:
        # Also beats while the sync waits out a throttle, so it never looks dead then.
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            try:
                async with self.db.transaction() as session:
                    await page_syncs.progress(session, sync_id)
            except Exception:
                logger.warning("sync %d: heartbeat failed", sync_id, exc_info=True)

    async def _sync(self, sync_id: int, page_id: int, on_progress: ProgressCallback | None) -> None:
        async with self.db.transaction() as session:
            page = await pages.get(session, page_id)
            token, secret = pages.credentials(self.vault, page)
            fb_page_id = page.fb_page_id
        creds = PageCredentials(token, secret or self.app_secret)
        # Per Page and kept between syncs: a sync started right after another keeps the pace.
        pace = self._paces.setdefault(page_id, Pace(self.options.calls_per_second))
        seen: set[str] = set()
        totals = Progress(0, 0, 0, 0)
        after: str | None = None
        failures = 0
        while True:
            listing = self.graph.conversation_pages(
                creds, fb_page_id, limit=self.options.page_size, after=after
            )
            try:
                while True:
                    await pace.wait()
                    try:
                        batch = await anext(listing)
                    except StopAsyncIteration:
                        return
                    finally:
                        pace.done()
                    failures = 0
                    fresh = [t for t in batch.conversations if t.id not in seen]
                    seen.update(t.id for t in fresh)
                    people = [p for t in fresh if (p := _person(t)) is not None]
                    async with self.db.transaction() as session:
                        merged = await page_syncs.merge_people(session, page_id, people)
                        running = await page_syncs.progress(
                            session, sync_id, calls=1, threads=len(fresh), merged=merged
                        )
                    if not running:
                        raise _Stop(SyncState.INTERRUPTED, "The sync was marked as stopped.")
                    totals = Progress(
                        totals.calls + 1,
                        totals.threads_seen + len(fresh),
                        totals.contacts_created + merged.created,
                        totals.contacts_updated + merged.updated,
                    )
                    if on_progress is not None:
                        on_progress(totals)
                    after = batch.after_cursor or after
            except GraphError as exc:
                failures += 1
                totals = dataclasses.replace(totals, calls=totals.calls + 1)
                async with self.db.transaction() as session:
                    await page_syncs.progress(session, sync_id, calls=1)
                await asyncio.sleep(await self._after_error(exc, page_id, failures))
            finally:
                await listing.aclose()

    async def _after_error(self, exc: GraphError, page_id: int, failures: int) -> float:
        """Seconds to wait before trying the same cursor again; raises `_Stop` to give up."""
        where = f"the Conversations API refused the sync: {exc.graph_message or exc.message}"
        code = f"code {exc.code_text}"
        if exc.kind is ErrorKind.STOP_PAGE:
            status = pages.stopped_status(exc.revokes_token)
            reason = f"{exc.graph_message or exc.message} ({code})"
            async with self.db.transaction() as session:
                await sending.stop_page(session, page_id, status, reason)
            raise _Stop(
                SyncState.FAILED,
                f"Stopped: {where} ({code}). The Page is now {status.value}; reconnect it with "
                f"a new token (PATCH /api/pages/{page_id}) and sync again.",
            )
        if exc.kind is ErrorKind.THROTTLE:
            # The per-second limit is not a spent budget: the next seconds admit calls.
            wait = 2.0 if exc.per_second_limit else exc.regain_seconds or DEFAULT_THROTTLE_SECONDS
            if wait > self.options.max_throttle_wait or failures > 3 * self.options.retries:
                raise _Stop(
                    SyncState.FAILED,
                    f"Facebook is throttling this Page's calls ({code}; wait {wait:.0f} s). "
                    "Sync again later; contacts synced so far are kept.",
                )
            logger.info("page %d: sync throttled (%s), waiting %.1f s", page_id, code, wait)
            return wait
        if exc.kind in (ErrorKind.RETRY, ErrorKind.AMBIGUOUS):
            if failures > self.options.retries:
                hint = (
                    " Facebook fails the conversation list of a Page that sends more than "
                    "40 messages/s (Inbox degradation, about 10 minutes after such a burst); "
                    "sync again once the campaign is done."
                    if exc.code == 2
                    else " Sync again in a few minutes."
                )
                raise _Stop(
                    SyncState.FAILED,
                    f"Gave up after {failures} failed calls in a row: {where} ({exc.kind.value}, "
                    f"{code if exc.code else f'HTTP {exc.status}'}).{hint} Contacts synced so "
                    "far are kept.",
                )
            return float(self.options.retry_base_seconds * 2 ** (failures - 1))
        raise _Stop(
            SyncState.FAILED,
            f"Stopped: {where} ({code}). Check that the Page token has the "
            "pages_messaging, pages_manage_metadata and pages_read_engagement permissions.",
        )


def _person(thread: Conversation) -> page_syncs.Person | None:
    user = thread.user
    if user is None:
        return None
    first, last = _split_name(user.name)
    return page_syncs.Person(
        psid=user.id,
        first_name=first,
        last_name=last,
        last_inbound_at=thread.last_user_message_at,
    )


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    # Participants carry one display name; the User Profile API (webhooks) has the parts.
    if not name or not name.strip():
        return None, None
    first, _, last = name.strip().partition(" ")
    return first, last.strip() or None
