"""Request dependencies: the app context and who is calling (API token or session cookie)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pagecast.context import AppContext
from pagecast.errors import Forbidden, Unauthorized
from pagecast.models import User
from pagecast.permissions import Actor, Permission
from pagecast.services import tokens, users

__all__ = ["SESSION_COOKIE", "ActorDep", "ContextDep", "require"]

SESSION_COOKIE = "pagecast_session"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_context(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]


ContextDep = Annotated[AppContext, Depends(get_context)]


async def current_actor(request: Request, ctx: ContextDep) -> Actor:
    """The caller: `Authorization: Bearer <token>`, or a session cookie (plus CSRF header)."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    async with ctx.db.transaction() as session:
        if header is not None:
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise Unauthorized("Send the API token as `Authorization: Bearer <token>`.")
            return users.actor_for(await tokens.authenticate(session, raw.strip()))
        if cookie is not None:
            user_id = ctx.vault.read_session(cookie)
            user = await session.get(User, user_id) if user_id is not None else None
            if user is None or not user.is_active:
                raise Unauthorized("Your session has expired; log in again.")
            if request.method in _UNSAFE and request.headers.get(
                CSRF_HEADER
            ) != ctx.vault.csrf_token(cookie):
                raise Forbidden(
                    f"Missing or wrong {CSRF_HEADER} header; reload the page and try again."
                )
            return users.actor_for(user)
    raise Unauthorized(
        "Log in, or send an API token as `Authorization: Bearer <token>` "
        "(create one with `pagecast tokens create --user EMAIL`)."
    )


ActorDep = Annotated[Actor, Depends(current_actor)]


def require(permission: Permission) -> object:
    """A dependency that lets the request through only with `permission`."""

    async def check(actor: ActorDep) -> Actor:
        actor.require(permission)
        return actor

    return Depends(check)
