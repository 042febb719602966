"""User administration (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id, Line, UserCreate, UserUpdate
from pagecast.services import audit, users
from pagecast.web import render
from pagecast.web.deps import ContextDep, require

router = APIRouter(prefix="/api", tags=["users"])
Admin = Annotated[Actor, require(Permission.USERS_MANAGE)]


@router.get("/users")
async def list_users(actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.user(u) for u in await users.list_all(session)]}


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.user(await users.create(session, actor, body))


@router.get("/users/{user_id}")
async def get_user(user_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.user(await users.get(session, user_id))


@router.patch("/users/{user_id}")
async def update_user(
    user_id: Id, body: UserUpdate, actor: Admin, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.user(await users.update(session, actor, user_id, body))


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: Id, actor: Admin, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await users.delete(session, actor, user_id)


@router.get("/audit")
async def audit_log(
    actor: Admin,
    ctx: ContextDep,
    object_type: Annotated[Line | None, Query(max_length=50)] = None,
    object_id: Id | None = None,
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        rows = await audit.list_for(session, object_type=object_type, object_id=object_id)
        return {"items": [render.audit(r) for r in rows]}
