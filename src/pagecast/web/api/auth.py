"""Login, logout, your login sessions, who am I, and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from pagecast.models import User
from pagecast.schemas import Login, TokenCreate
from pagecast.services import sessions, tokens, users
from pagecast.web import render, signin
from pagecast.web.deps import ActorDep, ContextDep, current_session

router = APIRouter(prefix="/api", tags=["auth"])
SessionDep = Depends(current_session)
SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "/auth/login",
    responses={
        401: {"description": "Wrong email or password."},
        429: {
            "description": "Too many login attempts; the `Retry-After` header says how many "
            "seconds to wait.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
async def login(
    body: Login, request: Request, response: Response, ctx: ContextDep
) -> dict[str, Any]:
    """Start a session (cookie). Failed attempts are limited per address and per email
    (`login_attempt_limit` in `login_attempt_window`): 429 with `Retry-After`."""
    user, cookie = await signin.sign_in(request, ctx, body.email, body.password)
    signin.set_cookie(response, request, ctx, cookie)
    return {"user": render.user(user), "csrf_token": ctx.vault.csrf_token(cookie)}


@router.post("/auth/logout", status_code=204)
async def logout(
    actor: ActorDep, response: Response, ctx: ContextDep, current: int | None = SessionDep
) -> None:
    """End this session (its cookie stops working everywhere at once)."""
    await signin.sign_out(ctx, actor, current)
    signin.clear_cookie(response)


@router.get("/sessions")
async def list_sessions(
    actor: ActorDep, ctx: ContextDep, current: int | None = SessionDep
) -> dict[str, Any]:
    """Your live login sessions, newest first."""
    async with ctx.db.reading() as session:
        rows = await sessions.list_active(session, actor.user_id or 0)
    return {"items": [render.login_session(r, current) for r in rows]}


@router.delete("/sessions/{session_id}")
async def end_session(
    session_id: SessionId, actor: ActorDep, ctx: ContextDep, current: int | None = SessionDep
) -> dict[str, Any]:
    """Sign one session out: one of yours, or anyone's for an admin."""
    async with ctx.db.transaction() as session:
        return render.login_session(await sessions.end(session, actor, session_id), current)


@router.get("/me")
async def me(actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        user = await users.get(session, actor.user_id or 0)
        return render.user(user) | {"permissions": sorted(p.value for p in actor.permissions)}


@router.get("/tokens")
async def list_tokens(actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.token(t) for t in await tokens.list_for(session, actor)]}


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreate, actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        user = await session.get(User, actor.user_id)
        assert user is not None
        row, raw = await tokens.create(session, actor, user, body.name)
    return render.token(row) | {"token": raw, "note": "Shown once; store it now."}


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: int, actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.token(await tokens.revoke(session, actor, token_id))
