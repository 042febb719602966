"""Login sessions: a server-side row per signed-in browser, so that logout, a password change
and an admin's "sign out everywhere" end them at once.

The cookie is `<id>.<secret>`; the row keeps the secret's SHA-256. Reading a session is one
query of a read session on every request (`authenticate`); `last_seen_at` moves at most once
every `LAST_SEEN_STEP` (`touch`, which the caller runs after the answer), as for API tokens.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import security
from pagecast.db import rowcount
from pagecast.errors import NotFound, Unauthorized
from pagecast.models import LoginSession, User, utcnow
from pagecast.permissions import Actor, Permission
from pagecast.services import audit

__all__ = [
    "LAST_SEEN_STEP",
    "authenticate",
    "end",
    "end_all",
    "list_active",
    "start",
    "touch",
]

LAST_SEEN_STEP = timedelta(minutes=1)
_EXPIRED = "Your session has ended; log in again."


async def start(
    session: AsyncSession, user: User, *, days: int, user_agent: str = "", address: str = ""
) -> tuple[LoginSession, str]:
    """A new session for `user` (who just proved their password): the row and its cookie."""
    now = utcnow()
    row = LoginSession(
        user_id=user.id,
        secret_hash="",
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(days=days),
        user_agent=user_agent[:200],
        address=address[:64],
    )
    session.add(row)
    await session.flush()
    cookie, row.secret_hash = security.new_session_cookie(row.id)
    user.last_login_at = now
    await session.flush()
    return row, cookie


async def authenticate(session: AsyncSession, cookie: str) -> tuple[User, int, bool]:
    """The user of a live session cookie, the session's id, and whether `last_seen_at` is
    due for a refresh. Reads only: run it in `db.reading()`."""
    parsed = security.parse_session_cookie(cookie)
    if parsed is None:
        raise Unauthorized(_EXPIRED)
    session_id, secret_hash = parsed
    row = (
        await session.execute(
            select(
                LoginSession.secret_hash,
                LoginSession.expires_at,
                LoginSession.revoked_at,
                LoginSession.last_seen_at,
                User,
            )
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.id == session_id)
        )
    ).one_or_none()
    now = utcnow()
    if (
        row is None
        or not hmac.compare_digest(row.secret_hash, secret_hash)
        or row.revoked_at is not None
        or row.expires_at <= now
        or not row.User.is_active
    ):
        raise Unauthorized(_EXPIRED)
    return row.User, session_id, now - row.last_seen_at >= LAST_SEEN_STEP


async def touch(session: AsyncSession, session_id: int) -> None:
    """Record that the session was used now (at most once every `LAST_SEEN_STEP`)."""
    now = utcnow()
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.last_seen_at <= now - LAST_SEEN_STEP)
        .values(last_seen_at=now)
    )


async def list_active(session: AsyncSession, user_id: int | None = None) -> list[LoginSession]:
    """Live sessions, newest first: one user's, or everyone's (`user_id=None`)."""
    query = (
        select(LoginSession)
        .where(LoginSession.revoked_at.is_(None), LoginSession.expires_at > utcnow())
        .order_by(LoginSession.id.desc())
    )
    if user_id is not None:
        query = query.where(LoginSession.user_id == user_id)
    return list(await session.scalars(query))


async def end(
    session: AsyncSession, actor: Actor, session_id: int, *, action: str = "session.ended"
) -> LoginSession:
    """End one session: the actor's own, or anyone's for an admin. Audited as `action`
    (`auth.logout` when someone signs themselves out)."""
    row = await session.get(LoginSession, session_id)
    if row is None or (row.user_id != actor.user_id and not actor.can(Permission.USERS_MANAGE)):
        raise NotFound(f"Session {session_id} does not exist. List yours with GET /api/sessions.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await audit.record(
            session,
            actor,
            action,
            object_type="user",
            object_id=row.user_id,
            details={"session_id": row.id},
        )
    await session.flush()
    return row


async def end_all(
    session: AsyncSession, actor: Actor, user_id: int, *, keep: int | None = None, reason: str
) -> int:
    """End every live session of `user_id` except `keep`; returns how many ended."""
    query = update(LoginSession).where(
        LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(LoginSession.id != keep)
    result = await session.execute(query.values(revoked_at=utcnow()))
    ended = rowcount(result)
    await audit.record(
        session,
        actor,
        "sessions.ended",
        object_type="user",
        object_id=user_id,
        details={"count": ended, "reason": reason, "kept": keep},
    )
    return ended
