"""Media uploaded once per Page through the Attachment Upload API and reused by
`attachment_id` (the upload itself is the caller's: services do not call Facebook)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import MessageAttachment

__all__ = ["find", "remember"]


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


async def find(session: AsyncSession, page_id: int, kind: str, url: str) -> str | None:
    """The `attachment_id` this Page already has for (kind, url), if any."""
    return await session.scalar(
        select(MessageAttachment.attachment_id).where(
            MessageAttachment.page_id == page_id,
            MessageAttachment.type == kind,
            MessageAttachment.url_sha256 == _digest(url),
        )
    )


async def remember(
    session: AsyncSession, page_id: int, kind: str, url: str, attachment_id: str
) -> str:
    """Keep `attachment_id` for (kind, url); when another request stored one first, that
    one is kept and returned."""
    known = await find(session, page_id, kind, url)
    if known is not None:
        return known
    session.add(
        MessageAttachment(
            page_id=page_id,
            type=kind,
            url=url,
            url_sha256=_digest(url),
            attachment_id=attachment_id,
        )
    )
    await session.flush()
    return attachment_id
