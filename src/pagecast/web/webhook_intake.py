"""Webhook intake: signature checks and storage of concurrent POSTs in shared transactions.

Meta counts a webhook POST as failed unless it is answered 2xx within 5 s, and it delivers
bursts (a campaign's receipts arrive by the thousand). One transaction per POST makes them
queue for the database's write lock (SQLite's busy handler sleeps between tries), so 1,000
concurrent POSTs took 9-15 s here. Instead, POSTs wait in a queue and one writer at a time
takes everything queued: one transaction looks up the Pages' app secrets, checks every
signature over its raw bytes and stores the events of all valid bodies with one INSERT,
and each POST is answered once that transaction has committed. The
writer runs only while POSTs are waiting; no task outlives a burst.

The batch's new events are handed on for processing once, by one of its POSTs (`Stored.
dispatch`), so a burst makes a few queue jobs rather than one per POST (1,000 concurrent
enqueues exhausted the Redis connection pool).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from pagecast.context import AppContext
from pagecast.errors import Forbidden, InvalidInput
from pagecast.graph.security import verify_signature
from pagecast.models import Page
from pagecast.services import pages, webhooks

__all__ = ["Intake", "Stored"]

_NO_SECRET = (
    "Webhook refused: no app secret to check X-Hub-Signature-256 with. Set "
    "PAGECAST_APP_SECRET (or give the Page its app secret)."
)
_BAD_SIGNATURE = "Webhook refused: X-Hub-Signature-256 is missing or does not match."


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
        self._waiting: list[_Post] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, raw: bytes, signature: str | None, body: Any) -> Stored:
        """Check the signature and store the body's events (redeliveries are skipped).

        Raises:
            Forbidden: no app secret, or a missing or wrong signature; nothing is stored.
            InvalidInput: a correctly signed body that is not a JSON object.
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
        valid: list[_Post] = []
        async with self.ctx.db.transaction() as session:
            secrets = await self._page_secrets(session, batch)
            for post in batch:
                error = self._check(post, secrets)
                if error is not None:
                    post.done.set_exception(error)
                else:
                    valid.append(post)
            stored = await webhooks.store_many(session, [post.body for post in valid])
        # Committed: now they may be acknowledged.
        every = sorted(i for ids in stored for i in ids or ())
        carrier = next((post for post, ids in zip(valid, stored, strict=True) if ids), None)
        for post, ids in zip(valid, stored, strict=True):
            if ids is None:
                post.done.set_exception(
                    InvalidInput("The webhook body is not a Messenger webhook; nothing stored.")
                )
            else:
                post.done.set_result(Stored(ids, every if post is carrier else []))

    async def _page_secrets(self, session: Any, batch: list[_Post]) -> dict[str, str]:
        """The own app secrets of the Pages the batch's bodies name."""
        ids = {page_id for post in batch for page_id in webhooks.page_ids(post.body)}
        if not ids:
            return {}
        found: dict[str, str] = {}
        for page in await session.scalars(
            select(Page).where(Page.fb_page_id.in_(ids), Page.app_secret_encrypted.is_not(None))
        ):
            secret = pages.credentials(self.ctx.vault, page)[1]
            if secret:
                found[page.fb_page_id] = secret
        return found

    def _check(self, post: _Post, secrets: dict[str, str]) -> Exception | None:
        # The Page's own app secret when the body's Page has one, else PAGECAST_APP_SECRET.
        own = {secrets[p] for p in webhooks.page_ids(post.body) if p in secrets}
        secret = None if len(own) > 1 else self.ctx.app_secret_for(next(iter(own), None))
        if secret is None:  # (one body cannot be signed by two apps)
            return Forbidden(_NO_SECRET)
        if not verify_signature(secret, post.raw, post.signature):
            return Forbidden(_BAD_SIGNATURE)
        if not isinstance(post.body, dict):
            return InvalidInput("The webhook body is not a JSON object.")
        return None
