"""Webhook intake: signature checks and storage of concurrent POSTs in shared transactions.

Meta counts a webhook POST as failed unless it is answered 2xx within 5 s, and it delivers
bursts (a campaign's receipts arrive by the thousand). One transaction per POST makes them
queue for the database's write lock (SQLite's busy handler sleeps between tries), so 1,000
concurrent POSTs took 9-15 s here. Instead, POSTs wait in a queue and one writer at a time
takes everything queued: each POST's signature is checked over its raw bytes first, and the
events of all valid bodies are stored with one INSERT in one transaction; each POST is
answered once that transaction has committed. The writer runs only while POSTs are waiting;
no task outlives a burst.

One bad POST fails alone (issue 17, item 5). Nothing a POST says reaches the database before
its signature is checked: the secrets are the Pages' own app secrets (one query that takes
no input from the bodies) and PAGECAST_APP_SECRET. A POST may carry at most
PAGECAST_WEBHOOK_MAX_ENTRIES entries. Should the shared transaction fail all the same, each
valid POST of the batch is stored on its own, so only the one that fails is answered 5xx.

The batch's new events are handed on for processing once, by one of its POSTs (`Stored.
dispatch`), so a burst makes a few queue jobs rather than one per POST (1,000 concurrent
enqueues exhausted the Redis connection pool).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from pagecast.context import AppContext
from pagecast.errors import Forbidden, InvalidInput, PagecastError, PayloadTooLarge
from pagecast.graph.security import verify_signature
from pagecast.models import Page
from pagecast.services import webhooks

__all__ = ["Intake", "Stored"]

_NO_SECRET = (
    "Webhook refused: no app secret to check X-Hub-Signature-256 with. Set "
    "PAGECAST_APP_SECRET (or give the Page its app secret)."
)
_BAD_SIGNATURE = "Webhook refused: X-Hub-Signature-256 is missing or does not match."
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What a POST stored (`ids`), and the events it must hand on for processing (`dispatch`:
    every new event of its batch for one POST of the batch, empty for the others)."""

    ids: list[int]
    dispatch: list[int]


@dataclass
class _Post:
    raw: bytes
    signature: str | None
    body: Any
    done: asyncio.Future[Stored] = field(repr=False)


class Intake:
    """One per app: `submit` returns the ids of the new events stored from a POST."""

    def __init__(self, ctx: AppContext, *, max_batch: int = 500) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self.max_entries = ctx.settings.webhook_max_entries
        self._clear: dict[str, str] = {}  # encrypted secret -> secret (decrypt once)
        self._waiting: list[_Post] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, raw: bytes, signature: str | None, body: Any) -> Stored:
        """Check the signature and store the body's events (redeliveries are skipped).

        Raises:
            Forbidden: no app secret, or a missing or wrong signature; nothing is stored.
            InvalidInput: a correctly signed body that is not a Messenger webhook.
            PayloadTooLarge: a correctly signed body with too many entries.
        """
        post = _Post(raw, signature, body, asyncio.get_running_loop().create_future())
        self._waiting.append(post)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_waiting())
        return await post.done

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = (
                self._waiting[: self.max_batch],
                self._waiting[self.max_batch :],
            )
            try:
                await self._write(batch)
            except BaseException as exc:  # the transaction failed: these POSTs get a 5xx
                for post in batch:
                    if not post.done.done():
                        post.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _write(self, batch: list[_Post]) -> None:
        secrets = await self._own_secrets()
        valid: list[_Post] = []
        for post in batch:
            error = self._check(post, secrets)
            if error is not None:
                post.done.set_exception(error)
            else:
                valid.append(post)
        if not valid:
            return
        try:
            await self._store(valid)
        except Exception:
            if len(valid) == 1:
                raise
            logger.warning(
                "storing a batch of %d webhook POSTs failed; storing them one by one", len(valid)
            )
            for post in valid:
                try:
                    await self._store([post])
                except Exception as exc:  # this POST alone gets the 5xx
                    post.done.set_exception(exc)

    async def _store(self, posts: list[_Post]) -> None:
        async with self.ctx.db.transaction() as session:
            stored = await webhooks.store_many(session, [post.body for post in posts])
        # Committed: now they may be acknowledged.
        every = sorted(i for ids in stored if not isinstance(ids, str) for i in ids)
        carrier = next((p for p, ids in zip(posts, stored, strict=True) if ids), None)
        for post, ids in zip(posts, stored, strict=True):
            if isinstance(ids, str):
                post.done.set_exception(InvalidInput(f"{ids}; nothing was stored.", field="body"))
            else:
                post.done.set_result(Stored(ids, every if post is carrier else []))

    async def _own_secrets(self) -> dict[str, str]:
        """The Pages' own app secrets, by Facebook Page id. One query that takes nothing from
        the bodies: what a POST says never reaches the database before its signature holds."""
        async with self.ctx.db.reading() as session:
            rows = (
                await session.execute(
                    select(Page.fb_page_id, Page.app_secret_encrypted).where(
                        Page.app_secret_encrypted.is_not(None)
                    )
                )
            ).all()
        found: dict[str, str] = {}
        for fb_page_id, encrypted in rows:
            if encrypted is None:  # the query leaves these out; this tells the type checker
                continue
            if encrypted not in self._clear:
                self._clear[encrypted] = self.ctx.vault.decrypt(encrypted)
            if self._clear[encrypted]:
                found[fb_page_id] = self._clear[encrypted]
        return found

    def _check(self, post: _Post, secrets: dict[str, str]) -> PagecastError | None:
        # The Page's own app secret when the body's Page has one, else PAGECAST_APP_SECRET.
        own = {secrets[p] for p in webhooks.page_ids(post.body) if p in secrets}
        secret = None if len(own) > 1 else self.ctx.app_secret_for(next(iter(own), None))
        if secret is None:  # (one body cannot be signed by two apps)
            return Forbidden(_NO_SECRET)
        if not verify_signature(secret, post.raw, post.signature):
            return Forbidden(_BAD_SIGNATURE)
        if not isinstance(post.body, dict):
            return InvalidInput(
                "The webhook body is not a JSON object (or not valid JSON); nothing was stored.",
                field="body",
            )
        entries = post.body.get("entry")
        if isinstance(entries, list) and len(entries) > self.max_entries:
            return PayloadTooLarge(
                f"The webhook body has {len(entries):,} entries; at most {self.max_entries:,} "
                "are accepted (PAGECAST_WEBHOOK_MAX_ENTRIES). Nothing was stored.",
                field="entry",
            )
        return None
