"""Contacts of a Page: list with filters and cursor paging, CRUD, CSV import."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from pagecast.errors import InvalidInput, PagecastError
from pagecast.permissions import Actor, Permission
from pagecast.schemas import ContactCreate, ContactUpdate, Id, Line
from pagecast.services import contact_import, contacts
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["contacts"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CONTACTS_READ)]
Writer = Annotated[Actor, require(Permission.CONTACTS_WRITE)]
MAX_IMPORT_BYTES = 100 * 1024 * 1024


class PayloadTooLarge(PagecastError):
    status_code = 413
    code = "payload_too_large"


@router.get("/pages/{page_id}/contacts", **documented(openapi.ContactList))
async def list_contacts(
    page_id: Id,
    actor: Reader,
    ctx: ContextDep,
    tag: Annotated[Line | None, Query(max_length=100)] = None,
    q: Annotated[Line | None, Query(max_length=200)] = None,
    window: contacts.Window | None = None,
    opted_out: bool | None = None,
    unreachable: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        rows = await contacts.list_page(
            session,
            page_id,
            tag=tag,
            search=q,
            window=window,
            opted_out=opted_out,
            unreachable=unreachable,
            after_id=render.parse_cursor(cursor),
            limit=limit,
        )
        return {
            "items": [render.contact(c) for c in rows],
            "next_cursor": render.cursor(rows[-1].id) if len(rows) == limit else None,
        }


@router.post("/pages/{page_id}/contacts", **documented(openapi.ContactOut, 409, status=201))
async def create_contact(
    page_id: Id, body: ContactCreate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return render.contact(await contacts.create(session, actor, page_id, body))


async def _upload(request: Request) -> bytes:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_part_size=MAX_IMPORT_BYTES) as form:  # closes the temp files
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("Send the CSV as a multipart field named `file`.", field="file")
            data = await upload.read()
    else:
        data = await request.body()
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"The file is {len(data):,} bytes; split it into files under 100 MB.", field="file"
        )
    if not data.strip():
        raise InvalidInput(
            "The CSV is empty; the first line must name the columns (psid, …).", field="file"
        )
    return data


@router.post("/pages/{page_id}/contacts/import")
async def import_contacts(
    page_id: Id, request: Request, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Body: `text/csv`, or a multipart upload in the field `file`."""
    data = await _upload(request)
    async with ctx.db.transaction() as session:
        report = await contact_import.import_csv(session, actor, page_id, data)
    return {
        "rows": report.rows,
        "imported": report.imported,
        "error_count": report.error_count,
        "errors": [asdict(e) for e in report.errors],
        "ignored_columns": report.ignored_columns,
    }


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
