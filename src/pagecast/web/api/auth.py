"""Login, logout, who am I, and API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from pagecast.errors import PagecastError, Unauthorized
from pagecast.models import User
from pagecast.schemas import Id, Login, TokenCreate
from pagecast.services import tokens, users
from pagecast.web import openapi, render
from pagecast.web.deps import SESSION_COOKIE, ActorDep, ContextDep
from pagecast.web.login_limit import keys_for, limiter_of
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["auth"], responses=errors(*API_ERRORS))
SESSION_TTL = 14 * 86_400


class TooManyAttempts(PagecastError):
    status_code = 429
    code = "too_many_attempts"


@router.post("/auth/login", **documented(openapi.LoginOut, 429))
async def login(
    body: Login, request: Request, response: Response, ctx: ContextDep
) -> dict[str, Any]:
    limiter, keys = limiter_of(request.app), keys_for(request, body.email)
    if wait := limiter.retry_after(*keys):
        raise TooManyAttempts(f"Too many failed logins; try again in {wait} seconds.")
    try:
        async with ctx.db.transaction() as session:
            user = await users.authenticate(session, body.email, body.password)
    except Unauthorized:
        limiter.failed(*keys)
        raise
    limiter.succeeded(*keys)
    cookie = ctx.vault.sign_session(user.id, SESSION_TTL)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_TTL,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return {"user": render.user(user), "csrf_token": ctx.vault.csrf_token(cookie)}


@router.post("/auth/logout", **documented(None, status=204))
async def logout(actor: ActorDep, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", **documented(openapi.MeOut))
async def me(actor: ActorDep, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        user = await users.get(session, actor.user_id or 0)
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
