"""Reusable message content that campaigns can point at."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import Conflict, InvalidState, NotFound
from pagecast.models import Campaign, Template, utcnow
from pagecast.permissions import Actor
from pagecast.schemas import TemplateCreate, TemplateUpdate
from pagecast.services import approval_requests, audit, content

__all__ = ["create", "delete", "get", "list_all", "update"]


async def get(session: AsyncSession, template_id: int) -> Template:
    template = await session.get(Template, template_id)
    if template is None:
        raise NotFound(
            f"Template {template_id} does not exist. List templates with GET /api/templates.",
            field="template_id",
        )
    return template


async def list_all(session: AsyncSession) -> list[Template]:
    return list(await session.scalars(select(Template).order_by(Template.name)))


async def _check_name(session: AsyncSession, name: str, template_id: int | None = None) -> None:
    other = await session.scalar(select(Template.id).where(Template.name == name))
    if other is not None and other != template_id:
        raise Conflict(
            f"A template named {name!r} already exists (template {other}); choose another name.",
            field="name",
        )


async def create(session: AsyncSession, actor: Actor, data: TemplateCreate) -> Template:
    await _check_name(session, data.name)
    content.check_length(data.content, {})
    template = Template(name=data.name, content=data.content.stored())
    session.add(template)
    await session.flush()
    await audit.record(
        session, actor, "template.created", object_type="template", object_id=template.id
    )
    return template


async def update(
    session: AsyncSession, actor: Actor, template_id: int, data: TemplateUpdate
) -> Template:
    template = await get(session, template_id)
    before = {"name": template.name, "content": template.content}
    if data.name is not None:
        await _check_name(session, data.name, template.id)
        template.name = data.name
    if data.content is not None:
        content.check_length(data.content, {})
        template.content = data.content.stored()
    await session.flush()
    after = {"name": template.name, "content": template.content}
    await audit.record(
        session,
        actor,
        "template.updated",
        object_type="template",
        object_id=template.id,
        details={"changes": audit.changes(before, after, named=("content",))},
    )
    if data.content is not None:  # issue 22: what an approver saw is no longer what is sent
        await approval_requests.withdraw_for_template(session, actor, template.id, utcnow())
    return template


async def delete(session: AsyncSession, actor: Actor, template_id: int) -> None:
    template = await get(session, template_id)
    used = await session.scalar(
        select(Campaign.id).where(Campaign.template_id == template.id).limit(1)
    )
    if used is not None:
        raise InvalidState(
            f"Template {template_id} is used by campaign {used}; change that campaign first."
        )
    await session.delete(template)
    await audit.record(
        session, actor, "template.deleted", object_type="template", object_id=template_id
    )
    await session.flush()
