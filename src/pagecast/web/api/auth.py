"""Login, logout, your login sessions, who am I, and API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from pagecast.models import User
from pagecast.schemas import Id, Login, MeUpdate, TokenCreate
from pagecast.services import sessions, tokens, users
from pagecast.web import openapi, render, signin
from pagecast.web.deps import ActorDep, ContextDep, current_session
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["auth"], responses=errors(*API_ERRORS))
SessionDep = Depends(current_session)


@router.post("/auth/login", **documented(openapi.LoginOut, 429))
async def login(
    body: Login, request: Request, response: Response, ctx: ContextDep
) -> dict[str, Any]:
    """Start a session (cookie). Failed attempts are limited per address and per email
    (`login_attempt_limit` in `login_attempt_window`): 429 with `Retry-After`."""
    user, cookie = await signin.sign_in(request, ctx, body.email, body.password)
    signin.set_cookie(response, request, ctx, cookie)
    return {"user": render.user(user), "csrf_token": ctx.vault.csrf_token(cookie)}


@router.post("/auth/logout", **documented(None, status=204))
async def logout(
    actor: ActorDep, response: Response, ctx: ContextDep, current: int | None = SessionDep
) -> None:
    """End this session (its cookie stops working everywhere at once)."""
    await signin.sign_out(ctx, actor, current)
    signin.clear_cookie(response)


@router.get("/sessions", **documented(openapi.LoginSessionList))
async def list_sessions(
    actor: ActorDep, ctx: ContextDep, current: int | None = SessionDep
) -> dict[str, Any]:
    """Your live login sessions, newest first."""
    async with ctx.db.reading() as session:
        rows = await sessions.list_active(session, actor.user_id or 0)
    return {"items": [render.login_session(r, current) for r in rows]}


@router.delete("/sessions/{session_id}", **documented(openapi.LoginSessionOut))
async def end_session(
    session_id: Id, actor: ActorDep, ctx: ContextDep, current: int | None = SessionDep
) -> dict[str, Any]:
    """Sign one session out: one of yours, or anyone's for an admin."""
    async with ctx.db.transaction() as session:
        return render.login_session(await sessions.end(session, actor, session_id), current)


@router.get("/me", **documented(openapi.MeOut))
async def me(actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        user = await users.get(session, actor.user_id or 0)
        return render.user(user) | {"permissions": sorted(p.value for p in actor.permissions)}


@router.patch("/me", **documented(openapi.MeOut))
async def update_me(body: MeUpdate, actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    """Change your own settings: `timezone`, an IANA name ("Asia/Manila"), the zone the
    dashboard shows times in and reads the schedule field in. An unknown name is a 422 naming
    the field, and nothing changes."""
    async with ctx.db.transaction() as session:
        user = await users.get(session, actor.user_id or 0)
        if body.timezone is not None:
            user = await users.set_timezone(session, actor, user.id, body.timezone)
        return render.user(user) | {"permissions": sorted(p.value for p in actor.permissions)}


@router.get("/tokens", **documented(openapi.TokenList))
async def list_tokens(actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.token(t) for t in await tokens.list_for(session, actor)]}


@router.post("/tokens", **documented(openapi.NewTokenOut, status=201))
async def create_token(body: TokenCreate, actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        user = await session.get(User, actor.user_id)
        assert user is not None
        row, raw = await tokens.create(session, actor, user, body.name)
    return render.token(row) | {"token": raw, "note": "Shown once; store it now."}


@router.delete("/tokens/{token_id}", **documented(openapi.TokenOut))
async def revoke_token(token_id: Id, actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.token(await tokens.revoke(session, actor, token_id))
