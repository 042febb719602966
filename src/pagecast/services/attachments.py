"""Media uploaded once per Page through the Attachment Upload API and reused by
`attachment_id` (the upload itself is the caller's: services do not call Facebook)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import MessageAttachment, utcnow

__all__ = ["REUSE_FOR", "find", "remember"]

# Facebook forgets an `attachment_id` 90 days after its upload; a kept id is reused for
# less than that, so that a campaign started on its last day still finds it.
REUSE_FOR = timedelta(days=80)


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


async def _row(
    session: AsyncSession, page_id: int, kind: str, url: str
) -> MessageAttachment | None:
    return await session.scalar(
        select(MessageAttachment).where(
            MessageAttachment.page_id == page_id,
            MessageAttachment.type == kind,
            MessageAttachment.url_sha256 == _digest(url),
        )
    )


async def find(
    session: AsyncSession, page_id: int, kind: str, url: str, *, now: datetime | None = None
) -> str | None:
    """The `attachment_id` this Page uploaded for (kind, url) less than `REUSE_FOR` ago."""
    row = await _row(session, page_id, kind, url)
    if row is None or row.created_at <= (now or utcnow()) - REUSE_FOR:
        return None
    return row.attachment_id


async def remember(
    session: AsyncSession,
    page_id: int,
    kind: str,
    url: str,
    attachment_id: str,
    *,
    now: datetime | None = None,
) -> str:
    """Keep `attachment_id` for (kind, url), replacing one too old to reuse; when another
    request stored a fresh one first (even at the same moment), that one is kept and returned."""
    now = now or utcnow()
    known = await find(session, page_id, kind, url, now=now)
    if known is not None:
        return known
    row = await _row(session, page_id, kind, url)
    if row is not None:  # too old to reuse: replaced
        row.attachment_id, row.created_at = attachment_id, now
        await session.flush()
        return attachment_id
    row = MessageAttachment(
        page_id=page_id,
        type=kind,
        url=url,
        url_sha256=_digest(url),
        attachment_id=attachment_id,
        created_at=now,
    )
    try:
        # Two uploads of the same URL at once: the unique index keeps the first.
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        kept = await _row(session, page_id, kind, url)
        if kept is None:
            raise
        return kept.attachment_id
    return attachment_id
