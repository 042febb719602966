"""The audit log: who did what to which campaign, Page or user, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import AuditLog
from pagecast.permissions import Actor

__all__ = ["list_for", "record"]


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: int | None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one audit entry. `details` must never hold a secret (tokens, passwords)."""
    entry = AuditLog(
        actor_id=actor.user_id,
        actor=actor.name,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_for(
    session: AsyncSession,
    *,
    object_type: str | None = None,
    object_id: int | None = None,
    limit: int = 100,
) -> list[AuditLog]:
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if object_type is not None:
        query = query.where(AuditLog.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditLog.object_id == object_id)
    return list(await session.scalars(query))
