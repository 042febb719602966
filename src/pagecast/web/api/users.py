"""User administration (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id, UserCreate, UserUpdate
from pagecast.services import sessions, users
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, current_session, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["users"], responses=errors(*API_ERRORS))
Admin = Annotated[Actor, require(Permission.USERS_MANAGE)]


@router.get("/users", **documented(openapi.UserList))
async def list_users(actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.user(u) for u in await users.list_all(session)]}


@router.post("/users", **documented(openapi.UserOut, 409, status=201))
async def create_user(body: UserCreate, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.user(await users.create(session, actor, body))


@router.get("/users/{user_id}", **documented(openapi.UserOut))
async def get_user(user_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.user(await users.get(session, user_id))


@router.patch("/users/{user_id}", **documented(openapi.UserOut, 409))
async def update_user(
    user_id: Id,
    body: UserUpdate,
    actor: Admin,
    ctx: ContextDep,
    current: int | None = Depends(current_session),
) -> dict[str, Any]:
    """A new `password` signs the user out everywhere (yourself: everywhere but here)."""
    async with ctx.db.transaction() as session:
        user = await users.update(session, actor, user_id, body, keep_session=current)
        return render.user(user)


@router.get("/users/{user_id}/sessions", **documented(openapi.LoginSessionList))
async def list_user_sessions(user_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """The user's live login sessions, newest first."""
    async with ctx.db.transaction() as session:
        await users.get(session, user_id)
        rows = await sessions.list_active(session, user_id)
    return {"items": [render.login_session(r) for r in rows]}


@router.delete("/users/{user_id}/sessions", **documented(openapi.EndedSessionsOut))
async def end_user_sessions(user_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """Sign the user out everywhere: every login session ends (API tokens stay)."""
    async with ctx.db.transaction() as session:
        await users.get(session, user_id)
        ended = await sessions.end_all(session, actor, user_id, reason="signed out by an admin")
    return {"ended": ended}


@router.delete("/users/{user_id}", **documented(None, 409, status=204))
async def delete_user(user_id: Id, actor: Admin, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await users.delete(session, actor, user_id)
