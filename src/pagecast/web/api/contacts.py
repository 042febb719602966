"""Contacts of a Page: CRUD and CSV imports (background jobs); the list is `contact_list`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from pagecast.permissions import Actor, Permission
from pagecast.schemas import ContactCreate, ContactUpdate, Id
from pagecast.services import contacts, import_jobs, pages
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors
from pagecast.web.uploads import store_upload

router = APIRouter(prefix="/api", tags=["contacts"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CONTACTS_READ)]
Writer = Annotated[Actor, require(Permission.CONTACTS_WRITE)]


@router.post("/pages/{page_id}/contacts", **documented(openapi.ContactOut, 409, status=201))
async def create_contact(
    page_id: Id, body: ContactCreate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.contact(await contacts.create(session, actor, page_id, body))


@router.post("/pages/{page_id}/contacts/import", **documented(openapi.ImportOut, 409, status=202))
async def import_contacts(
    page_id: Id, request: Request, response: Response, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Body: `text/csv`, or a multipart upload in the field `file`. Answers 202 with the
    import job at once; follow it at `GET /api/contacts/imports/{id}` (the `Location`)."""
    async with ctx.db.reading() as session:
        await pages.get(session, page_id)  # a 404 before the upload is read
    stored = await store_upload(
        request, ctx.imports.new_upload_path(), max_bytes=ctx.settings.import_max_bytes
    )
    job = await ctx.imports.start(actor, page_id, stored.path, file_name=stored.name)
    response.headers["Location"] = f"/api/contacts/imports/{job.id}"
    return import_jobs.report(job)


@router.get("/contacts/imports", **documented(openapi.ImportList))
async def list_imports(
    actor: Reader,
    ctx: ContextDep,
    page_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The newest imports first (of one Page with `page_id`), without their refused rows."""
    async with ctx.db.reading() as session:
        jobs = await import_jobs.list_recent(session, page_id=page_id, limit=limit)
        return {"items": [import_jobs.report(j, errors=False) for j in jobs]}


@router.get("/contacts/imports/{import_id}", **documented(openapi.ImportOut))
async def get_import(import_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """An import's state, progress (`bytes_read` of `file_bytes`) and counts; once it has
    ended, `errors` lists the first refused rows with their reasons."""
    async with ctx.db.reading() as session:
        return import_jobs.report(await import_jobs.get(session, import_id))


@router.get("/contacts/{contact_id}", **documented(openapi.ContactOut))
async def get_contact(contact_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.contact(await contacts.get(session, contact_id))


@router.patch("/contacts/{contact_id}", **documented(openapi.ContactOut, 409))
async def update_contact(
    contact_id: Id, body: ContactUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.contact(await contacts.update(session, actor, contact_id, body))


@router.delete("/contacts/{contact_id}", **documented(None, status=204))
async def delete_contact(contact_id: Id, actor: Writer, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await contacts.delete(session, actor, contact_id)
