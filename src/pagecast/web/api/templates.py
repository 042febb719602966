"""Reusable message templates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id, TemplateCreate, TemplateUpdate
from pagecast.services import templates
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["templates"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.TEMPLATES_READ)]
Writer = Annotated[Actor, require(Permission.TEMPLATES_WRITE)]


@router.get("/templates", **documented(openapi.TemplateList))
async def list_templates(actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return {"items": [render.template(t) for t in await templates.list_all(session)]}


@router.post("/templates", **documented(openapi.TemplateOut, 409, status=201))
async def create_template(body: TemplateCreate, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.template(await templates.create(session, actor, body))


@router.get("/templates/{template_id}", **documented(openapi.TemplateOut))
async def get_template(template_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.template(await templates.get(session, template_id))


@router.patch("/templates/{template_id}", **documented(openapi.TemplateOut, 409))
async def update_template(
    template_id: Id, body: TemplateUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.template(await templates.update(session, actor, template_id, body))


@router.delete("/templates/{template_id}", **documented(None, 409, status=204))
async def delete_template(template_id: Id, actor: Writer, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await templates.delete(session, actor, template_id)
