"""The audit log: who did what to which campaign, Page, contact or user, and when.

`record` is the one way an entry is written, in the transaction of the change it reports;
nothing in Pagecast updates or deletes an entry. An entry's `details` is the change in words a
person reads: for an update, `changes` maps each field changed to its `from` and `to` (see
`changes`); a secret (password, token, app secret) is only ever named ("replaced",
"changed"), never shown: callers leave its value out of what they compare. Listing,
filtering and exporting entries is `services.audit_list`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import AuditLog
from pagecast.permissions import Actor

__all__ = ["changes", "list_for", "plain", "record"]

_LONG = 200  # a text longer than this is cut (with "…"); a structure is only named


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
        actor=actor.name[:254],
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
    session.add(entry)
    await session.flush()
    return entry


def plain(value: Any) -> Any:
    """`value` as JSON a person reads: a time in ISO 8601 UTC, an enum by its value, a long
    text cut; a list or mapping is kept when short, else named by its size."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        return value if len(value) <= _LONG else value[:_LONG] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping | list | tuple | set):
        text = repr(value)
        if len(text) <= _LONG:
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            return [plain(v) for v in value]
        return f"({len(value)} items)"
    return str(value)[:_LONG]


def changes(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    named: Iterable[str] = (),
) -> dict[str, Any]:
    """Each field whose value differs, as `{"from": old, "to": new}` (`plain` values); a
    field in `named` (a message, an audience: too large to read in a row) is
    `{"changed": true}`. Never give it a secret's value."""
    summary = set(named)
    found: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in summary:
            found[name] = {"changed": True}
        else:
            found[name] = {"from": plain(old), "to": plain(new)}
    return found


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
