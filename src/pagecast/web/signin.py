"""Signing in and out, for the API and the dashboard alike: the login limit, the password
check, the server-side session and its cookie."""

from __future__ import annotations

from fastapi import Request, Response

from pagecast.context import AppContext
from pagecast.errors import TooManyRequests
from pagecast.models import User
from pagecast.permissions import Actor
from pagecast.services import sessions, users
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
    user = await users.authenticate(ctx.db, email, password)  # Unauthorized: stays counted
    await limit.refund(keys)
    return await start_session(request, ctx, user.id)


async def start_session(request: Request, ctx: AppContext, user_id: int) -> tuple[User, str]:
    async with ctx.db.transaction() as session:
        user = await users.get(session, user_id)
        _, cookie = await sessions.start(
            session,
            user,
            days=ctx.settings.session_days,
            user_agent=request.headers.get("user-agent", ""),
            address=request.client.host if request.client else "",
        )
    return user, cookie


async def sign_out(ctx: AppContext, actor: Actor, session_id: int | None) -> None:
    """End the caller's session (nothing to end for an API token)."""
    if session_id is not None:
        async with ctx.db.transaction() as session:
            await sessions.end(session, actor, session_id)


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
