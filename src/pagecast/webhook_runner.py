"""Runs stored webhook events through `services.webhooks`, a batch per transaction.

Shared by the worker's `webhook` job, the worker's sweep (events left unprocessed) and the
web app's fallback when Redis is unreachable. An event is claimed by setting `processed_at`
in the same transaction that applies it, so two runners never apply one event twice, and a
failure rolls the claim back: the event stays unprocessed and the sweep tries it again.

After an event's commit, `Reactions` makes the Graph calls it asked for: the User Profile
lookup for a contact without a name (rate-limited per Page, errors tolerated) and the one
confirmation reply to an opt-out. A crash between the commit and the call skips the call:
at most once, never twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from pagecast.db import Database
from pagecast.graph import GraphClient, GraphError, PageCredentials
from pagecast.models import Page, WebhookEvent, utcnow
from pagecast.security import Vault
from pagecast.services import inbound, pages, webhooks

__all__ = ["Reactions", "run", "run_pending"]

logger = logging.getLogger(__name__)


class Reactions:
    """The Graph calls that follow processed events, for one process."""

    def __init__(
        self,
        *,
        graph: GraphClient,
        vault: Vault,
        app_secret: str | None,
        profiles_per_second: float = 5.0,
        replan: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self.graph, self.vault, self.app_secret = graph, vault, app_secret
        # Plans (campaign id, priority) again: the campaigns a policy unblock resumed. Without
        # it (or when it fails) the worker's sweep plans them.
        self.replan = replan
        self._interval = 1.0 / profiles_per_second
        self._next_profile: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def follow(self, db: Database, result: webhooks.Result) -> None:
        if self.replan is not None:
            for campaign_id, priority in result.resumed:
                await self.replan(campaign_id, priority)
        if result.page_id is None or result.psid is None:
            return
        if not (result.lookup_profile or result.confirm_opt_out):
            return
        async with db.transaction() as session:
            page = await session.get(Page, result.page_id)
            if page is None or not page.access_token_encrypted:
                return
            token, secret = pages.credentials(self.vault, page)
        creds = PageCredentials(token, secret or self.app_secret)
        if result.confirm_opt_out:
            try:
                await self.graph.send_message(
                    creds,
                    psid=result.psid,
                    message={"text": inbound.OPT_OUT_REPLY},
                    messaging_type="RESPONSE",
                )
            except GraphError as exc:
                logger.warning(
                    "page %d: opt-out confirmation to contact %s failed (%s, fbtrace_id %s)",
                    result.page_id,
                    result.contact_id,
                    exc.kind.value,
                    exc.fbtrace_id,
                )
        if result.lookup_profile and result.contact_id is not None:
            await self._profile(db, creds, result.page_id, result.contact_id, result.psid)

    async def _profile(
        self, db: Database, creds: PageCredentials, page_id: int, contact_id: int, psid: str
    ) -> None:
        async with self._lock:  # at most `profiles_per_second` lookups per Page
            wait = self._next_profile.get(page_id, 0.0) - time.monotonic()
            self._next_profile[page_id] = time.monotonic() + max(wait, 0.0) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            profile = await self.graph.get_profile(creds, psid)
        except GraphError as exc:
            logger.info(
                "page %d: no profile for contact %d (%s); it keeps no name",
                page_id,
                contact_id,
                exc.kind.value,
            )
            return
        async with db.transaction() as session:
            await inbound.set_profile(
                session,
                contact_id,
                first_name=profile.first_name,
                last_name=profile.last_name,
                locale=profile.locale,
                timezone=profile.timezone,
            )


def _order(event: WebhookEvent) -> tuple[str, str, float, int]:
    # Per person in timestamp order; people in (Page, psid) order, the order in which a
    # result write locks them too (services/receipts.py).
    at = webhooks.event_time(event.payload.get("timestamp"))
    return (event.fb_page_id or "", event.psid or "", at.timestamp() if at else 0.0, event.id)


async def run(db: Database, event_ids: Sequence[int], reactions: Reactions | None = None) -> int:
    """Process the unprocessed events among `event_ids`, in timestamp order per person.

    One transaction (one commit) for the batch: at hundreds of echoes a second a commit per
    event was what limited the intake. Should the batch fail as a whole (a deadlock, the
    database gone), each event is tried on its own.
    """
    if not event_ids:
        return 0
    try:
        async with db.transaction() as session:
            results = await _apply(session, list(event_ids))
    except Exception:
        logger.info("webhook batch failed; processing its events one by one", exc_info=True)
        results = []
        for event_id in event_ids:
            try:
                async with db.transaction() as session:
                    results += await _apply(session, [event_id])
            except Exception as exc:
                logger.warning(
                    "webhook event %d failed; the sweep will retry it", event_id, exc_info=True
                )
                await _note_error(db, event_id, f"{type(exc).__name__}: {exc}")
    if reactions is not None:
        for result in results:
            try:
                await reactions.follow(db, result)
            except Exception:
                logger.warning("webhook follow-up failed (%s)", result.reason, exc_info=True)
    return len(results)


async def _apply(session: Any, event_ids: list[int]) -> list[webhooks.Result]:
    """Apply the batch's unprocessed events; returns the results of those applied."""
    # Claimed in one statement by setting processed_at in the transaction that applies them:
    # two runners never apply one event twice, and never wait on each other's claims midway.
    # On PostgreSQL, events another runner is applying right now are skipped, not waited for
    # (that runner applies them; a later job or the sweep retries what it gave back).
    free = (
        select(WebhookEvent.id)
        .where(WebhookEvent.id.in_(event_ids), WebhookEvent.processed_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    claimed = list(
        await session.scalars(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(free.scalar_subquery()))
            .values(processed_at=utcnow())
            .returning(WebhookEvent.id)
        )
    )
    if not claimed:
        return []
    events = list(await session.scalars(select(WebhookEvent).where(WebhookEvent.id.in_(claimed))))
    batch = webhooks.Batch()
    applied: list[webhooks.Result] = []
    for event in sorted(events, key=_order):
        # No savepoint per event: `process` writes nothing when it answers "not yet", and any
        # other failure fails the batch (then each event is tried on its own).
        result = await webhooks.process(session, event, batch)
        if not result.done:
            await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id)
                .values(processed_at=None, error=(result.reason or "not yet")[:2000])
            )
            continue
        if result.reason or event.error:
            # What it says now: an error of an earlier try ("not yet") is no longer true.
            await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id)
                .values(error=result.reason[:2000] if result.reason else None)
            )
        applied.append(result)
    await batch.end(session)
    return applied


async def _note_error(db: Database, event_id: int, error: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(WebhookEvent).where(WebhookEvent.id == event_id).values(error=error[:2000])
        )


async def run_pending(
    db: Database,
    *,
    older_than: float,
    reactions: Reactions | None = None,
    give_up_after: float = 86_400.0,
    limit: int = 500,
    batch: int = 50,
) -> int:
    """The sweep: process events left unprocessed for `older_than` seconds (a lost job, Redis
    down, an echo that came before its send was recorded). Events still failing after
    `give_up_after` seconds are closed with their last error."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.processed_at.is_(None),
                WebhookEvent.received_at < now - timedelta(seconds=give_up_after),
            )
            .values(processed_at=now)
        )
        ids = list(
            await session.scalars(
                select(WebhookEvent.id)
                .where(
                    WebhookEvent.processed_at.is_(None),
                    WebhookEvent.received_at <= now - timedelta(seconds=older_than),
                )
                .order_by(WebhookEvent.id)
                .limit(limit)
            )
        )
    # Short transactions: a job's runner never waits long behind the sweep.
    return sum([await run(db, ids[i : i + batch], reactions) for i in range(0, len(ids), batch)])
