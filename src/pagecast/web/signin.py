"""Signing in and out, for the API and the dashboard alike: the login limit, the password
check, the server-side session and its cookie."""

from __future__ import annotations

from fastapi import Request, Response

from pagecast.context import AppContext
from pagecast.errors import TooManyRequests, Unauthorized
from pagecast.models import Role, User
from pagecast.permissions import Actor
from pagecast.services import audit, sessions, users
from pagecast.web.deps import SESSION_COOKIE
from pagecast.web.login_limit import keys_for, limit_of

__all__ = ["clear_cookie", "set_cookie", "sign_in", "sign_out", "start_session"]


async def sign_in(request: Request, ctx: AppContext, email: str, password: str) -> tuple[User, str]:
    """Check the login limit, then the password; the user and a new session's cookie.

    The attempt is counted before anything is awaited on its behalf and given back only when
    the password was right, so concurrent guesses cannot outrun the limit.
    """
    limit, keys = limit_of(request.app), keys_for(request, email)
    if wait := await limit.reserve(keys):
        raise TooManyRequests(
            f"Too many login attempts; try again in {wait} seconds.", retry_after=wait
        )
    user, refused = await users.check_password(ctx.db, email, password)
    if user is None or refused is not None:  # stays counted
        await _audit_failure(request, ctx, email, user, refused or "wrong password")
        raise Unauthorized("Wrong email or password.")
    await limit.refund(keys)
    return await start_session(request, ctx, user.id)


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def _audit_failure(
    request: Request, ctx: AppContext, email: str, user: User | None, reason: str
) -> None:
    """A failed login in the audit log: the email tried as the actor, why, and the client's
    address (never the password). Attempts refused by the login limit are not recorded."""
    tried = " ".join(email.split()).lower()[:254] or "(no email)"
    nobody = Actor(user_id=None, name=tried, role=Role.VIEWER, permissions=frozenset())
    async with ctx.db.transaction() as session:
        await audit.record(
            session,
            nobody,
            "auth.login_failed",
            object_type="user",
            object_id=user.id if user is not None else None,
            details={"reason": reason, "ip": _address(request)},
        )


async def start_session(
    request: Request, ctx: AppContext, user_id: int, *, via: str = "password"
) -> tuple[User, str]:
    """A new session for the user, audited as `auth.login` (`via`: password, setup link)."""
    async with ctx.db.transaction() as session:
        user = await users.get(session, user_id)
        row, cookie = await sessions.start(
            session,
            user,
            days=ctx.settings.session_days,
            user_agent=request.headers.get("user-agent", ""),
            address=_address(request),
        )
        await audit.record(
            session,
            users.actor_for(user),
            "auth.login",
            object_type="user",
            object_id=user.id,
            details={"via": via, "ip": row.address, "session_id": row.id},
        )
    return user, cookie


async def sign_out(ctx: AppContext, actor: Actor, session_id: int | None) -> None:
    """End the caller's session, audited as `auth.logout` (nothing to end for an API token)."""
    if session_id is not None:
        async with ctx.db.transaction() as session:
            await sessions.end(session, actor, session_id, action="auth.logout")


def set_cookie(response: Response, request: Request, ctx: AppContext, cookie: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.settings.session_days * 86_400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
