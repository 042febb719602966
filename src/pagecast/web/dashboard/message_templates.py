"""Templates in the dashboard: list, create and edit (the composer's message fields and
preview), use one in a new campaign, and save a composer's message as a template."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from pagecast.errors import PagecastError
from pagecast.models import Template
from pagecast.permissions import Permission
from pagecast.schemas import Id, TemplateCreate, TemplateUpdate, parse_id
from pagecast.services import pages, templates
from pagecast.web.dashboard import message_form
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.dashboard.composer import CHIPS, form_errors
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _kind(body: dict[str, Any]) -> str:
    """A stored message in a few words, for the list."""
    if body.get("cards"):
        return f"{len(body['cards'])} card(s)"
    if body.get("attachment"):
        return str(body["attachment"].get("type", "attachment"))
    return "text with buttons" if body.get("buttons") else "text"


def _body(form: FormData, name_field: str) -> dict[str, Any]:
    return {
        "name": str(form.get(name_field, "")).strip(),
        "content": message_form.content_from(form),
    }


@router.get("/templates")
async def list_templates(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.TEMPLATES_READ)
    async with ctx.db.transaction() as session:
        rows = await templates.list_all(session)
    saved = parse_id(request.query_params.get("saved"))
    return page(
        request,
        "templates.html",
        viewer,
        rows=[(t, _kind(t.content)) for t in rows],
        saved=next((t for t in rows if t.id == saved), None),
    )


async def _form(
    request: Request,
    viewer: Any,
    ctx: Any,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    template: Template | None = None,
    status_code: int = 200,
) -> Response:
    async with ctx.db.transaction() as session:
        page_rows = await pages.list_all(session)
    return page(
        request,
        "template_form.html",
        viewer,
        status_code=status_code,
        v=values,
        errors=errors,
        template=template,
        pages=page_rows,
        **message_form.template_context(),
        chips=CHIPS,
    )


@router.get("/templates/new")
async def new_template(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    return await _form(request, viewer, ctx, values={}, errors={})


@router.post("/templates/new")
async def create_template(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    form = await request.form()
    try:
        data = TemplateCreate.model_validate(_body(form, "name"))
        async with ctx.db.transaction() as session:
            template = await templates.create(session, viewer.actor, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        values = dict(form)
        return await _form(
            request, viewer, ctx, values=values, errors=form_errors(exc), status_code=422
        )
    return redirect(f"/templates?saved={template.id}")


@router.get("/templates/{template_id}/edit")
async def edit_template(
    template_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    async with ctx.db.transaction() as session:
        template = await templates.get(session, template_id)
    values = message_form.values_of(template.content) | {"name": template.name}
    return await _form(request, viewer, ctx, values=values, errors={}, template=template)


@router.post("/templates/{template_id}/edit")
async def update_template(
    template_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    form = await request.form()
    async with ctx.db.transaction() as session:
        template = await templates.get(session, template_id)
    try:
        data = TemplateUpdate.model_validate(_body(form, "name"))
        async with ctx.db.transaction() as session:
            template = await templates.update(session, viewer.actor, template_id, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        return await _form(
            request,
            viewer,
            ctx,
            values=dict(form),
            errors=form_errors(exc),
            template=template,
            status_code=422,
        )
    return redirect(f"/templates?saved={template.id}")


@router.post("/templates/{template_id}/delete")
async def delete_template(
    template_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    async with ctx.db.transaction() as session:
        await templates.delete(session, viewer.actor, template_id)
    return redirect("/templates")


@router.post("/templates/from-composer")
async def save_as_template(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """The composer's "Save message as template": its message under `template_name`; a
    refusal is shown on the template form with the message kept."""
    viewer.actor.require(Permission.TEMPLATES_WRITE)
    form = await request.form()
    try:
        data = TemplateCreate.model_validate(_body(form, "template_name"))
        async with ctx.db.transaction() as session:
            template = await templates.create(session, viewer.actor, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403, 404):
            raise
        values = dict(form) | {"name": form.get("template_name", "")}
        return await _form(
            request, viewer, ctx, values=values, errors=form_errors(exc), status_code=422
        )
    return redirect(f"/templates?saved={template.id}")
