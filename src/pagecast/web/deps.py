"""Request dependencies: the app context and who is calling (API token or session cookie)."""

from __future__ import annotations

import time
from typing import Annotated, cast

from fastapi import BackgroundTasks, Depends, Request

from pagecast import security
from pagecast.context import AppContext
from pagecast.errors import Forbidden, Unauthorized
from pagecast.models import User
from pagecast.permissions import Actor, Permission
from pagecast.services import sessions, tokens, users

__all__ = [
    "SESSION_COOKIE",
    "TOKEN_CACHE_S",
    "ActorDep",
    "ContextDep",
    "current_session",
    "require",
    "session_user",
]

SESSION_COOKIE = "pagecast_session"
TOKEN_CACHE_S = 1.0
CSRF_HEADER = "x-csrf-token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def get_context(request: Request) -> AppContext:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per
    # request (P7).
    return cast(AppContext, request.app.state.context)  # set by create_app


ContextDep = Annotated[AppContext, Depends(get_context)]


class _Tokens:
    """API tokens authenticated in this process in the last TOKEN_CACHE_S seconds (P7: a
    client polling progress a hundred times a second costs one token query a second).

    A revocation, role change, deactivation or deletion made in this process applies to
    the requests that come after it (`tokens.CHANGES`); one made in another process (a
    second web process, the CLI), or by a request racing the change, within TOKEN_CACHE_S.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, int, Actor]] = {}

    async def actor(self, ctx: AppContext, raw: str, background: BackgroundTasks) -> Actor:
        key = security.hash_token(raw)
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < TOKEN_CACHE_S and seen[1] == tokens.CHANGES.count:
            return seen[2]
        changes = tokens.CHANGES.count
        async with ctx.db.reading() as session:  # never waits for a writer (SQLite)
            actor, due = await tokens.authenticate(session, raw)
        if due is not None:
            background.add_task(_touch, ctx, due)  # after the answer
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < TOKEN_CACHE_S}
        self._seen[key] = (now, changes, actor)
        return actor


async def _touch(ctx: AppContext, token_id: int) -> None:
    async with ctx.db.transaction() as session:
        await tokens.touch(session, token_id)


async def session_user(
    ctx: AppContext, cookie: str, background: BackgroundTasks
) -> tuple[User, int]:
    """The user of a live session cookie and the session's id (else Unauthorized): one read,
    and a `last_seen_at` refresh after the answer at most once a minute."""
    async with ctx.db.reading() as session:  # never waits for a writer (SQLite)
        user, session_id, due = await sessions.authenticate(session, cookie)
    if due:
        background.add_task(_touch_session, ctx, session_id)
    return user, session_id


async def _touch_session(ctx: AppContext, session_id: int) -> None:
    async with ctx.db.transaction() as session:
        await sessions.touch(session, session_id)


def _tokens(request: Request) -> _Tokens:
    cache: _Tokens | None = getattr(request.app.state, "tokens", None)
    if cache is None:
        cache = request.app.state.tokens = _Tokens()
    return cache


async def current_actor(request: Request, ctx: ContextDep, background: BackgroundTasks) -> Actor:
    """The caller: `Authorization: Bearer <token>`, or a session cookie (plus CSRF header)."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is not None:
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized("Send the API token as `Authorization: Bearer <token>`.")
        return await _tokens(request).actor(ctx, raw.strip(), background)
    if cookie is None:
        raise Unauthorized(
            "Log in, or send an API token as `Authorization: Bearer <token>` "
            "(create one with `pagecast tokens create --user EMAIL`)."
        )
    user, session_id = await session_user(ctx, cookie, background)
    request.state.login_session = session_id
    if request.method in _UNSAFE and request.headers.get(CSRF_HEADER) != ctx.vault.csrf_token(
        cookie
    ):
        raise Forbidden(f"Missing or wrong {CSRF_HEADER} header; reload the page and try again.")
    return users.actor_for(user)


ActorDep = Annotated[Actor, Depends(current_actor)]


def current_session(request: Request) -> int | None:
    """The id of the login session behind this request (None for an API token)."""
    return getattr(request.state, "login_session", None)


def require(permission: Permission) -> object:
    """A dependency that lets the request through only with `permission`."""

    async def check(actor: ActorDep) -> Actor:
        actor.require(permission)
        return actor

    return Depends(check)
