"""A Page's contacts as a list: filters, total, sorted cursor pages, tag counts, bulk
actions, and the CSV of a filter (`Accept: text/csv`, as the deliveries list does)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from pagecast.contact_filter_schema import ContactBulk, ContactFilter, Window
from pagecast.context import AppContext
from pagecast.models import utcnow
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id, Line
from pagecast.services import contact_bulk, contact_list, pages
from pagecast.services.contact_list import DEFAULT_LIMIT, MAX_LIMIT, SORTS
from pagecast.web import render
from pagecast.web.api.deliveries import wants_csv
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors
from pagecast.web.openapi_contacts import BulkOut, TagCountList, listed

__all__ = ["FilterDep", "contacts_csv", "router"]

router = APIRouter(prefix="/api", tags=["contacts"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CONTACTS_READ)]
Writer = Annotated[Actor, require(Permission.CONTACTS_WRITE)]
# Bounded so a request stays under the HTTP server's header limits (a longer URL is refused
# by the server itself, without our error body): 10 values of 500 characters.
_Tags = Annotated[
    list[Annotated[str, Query(max_length=500)]] | None,
    Query(max_length=10, description="Tag names; repeat the parameter or separate with commas."),
]
_DAY = "A date (2026-03-01; for inbound_to all of that day, UTC) or an ISO 8601 time."


def _names(values: list[str] | None) -> list[str]:
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def _filter(
    tag: Annotated[Line | None, Query(max_length=100, description="Same as tags_any.")] = None,
    tags_any: _Tags = None,
    tags_all: _Tags = None,
    tags_none: _Tags = None,
    window: Window | None = None,
    opted_out: bool | None = None,
    unreachable: bool | None = None,
    is_tester: bool | None = None,
    inbound_from: Annotated[str | None, Query(max_length=40, description=_DAY)] = None,
    inbound_to: Annotated[str | None, Query(max_length=40, description=_DAY)] = None,
    q: Annotated[Line | None, Query(max_length=200, description="Name part or PSID.")] = None,
    timezone: Annotated[Line | None, Query(max_length=64, description="IANA zone.")] = None,
) -> ContactFilter:
    """The query parameters as a `ContactFilter` (a ValidationError is a 422 naming them)."""
    return ContactFilter(
        tags_any=_names(tags_any) + ([tag] if tag else []),
        tags_all=_names(tags_all),
        tags_none=_names(tags_none),
        window=window,
        opted_out=opted_out,
        unreachable=unreachable,
        is_tester=is_tester,
        inbound_from=inbound_from or None,  # type: ignore[arg-type]  # the model parses text
        inbound_to=inbound_to or None,  # type: ignore[arg-type]
        q=q or None,
        timezone=timezone or None,
    )


FilterDep = Annotated[ContactFilter, Depends(_filter)]


async def contacts_csv(ctx: AppContext, page_id: int, f: ContactFilter) -> Response:
    """Every contact `f` matches as a CSV download in the importer's columns, a batch at a
    time (constant memory). The Page is looked up first: a wrong id is a 404, not a file."""
    async with ctx.db.reading() as session:
        await pages.get(session, page_id)
    return StreamingResponse(
        render.contacts_csv(ctx.db, page_id, f, utcnow()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="page-{page_id}-contacts.csv"'},
    )


@router.get("/pages/{page_id}/contacts", **listed())
async def list_contacts(
    page_id: Id,
    request: Request,
    f: FilterDep,
    actor: Reader,
    ctx: ContextDep,
    sort: Annotated[
        str | None, Query(max_length=20, description=f"One of {', '.join(SORTS)}.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=400, description="`next_cursor` or `prev_cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Any:
    """The Page's contacts matching the filters, `limit` at a time in `sort` order, with
    their `total`. With `Accept: text/csv`, every matching contact as a CSV that the import
    reads back (psid, first_name, last_name, tags, last_inbound_at, timezone)."""
    order = contact_list.parse_sort(sort)
    if wants_csv(request):
        return await contacts_csv(ctx, page_id, f)
    now = utcnow()
    async with ctx.db.transaction() as session:
        found = await contact_list.page(
            session, page_id, f, now=now, sort=order, cursor=cursor, limit=limit
        )
        total = await contact_list.total(session, page_id, f, now=now)
        return {
            "items": [render.contact(c) for c in found.items],
            "total": total,
            "next_cursor": found.next_cursor,
            "prev_cursor": found.prev_cursor,
        }


@router.get("/pages/{page_id}/tags", **documented(TagCountList))
async def list_tags(
    page_id: Id,
    actor: Reader,
    ctx: ContextDep,
    q: Annotated[Line | None, Query(max_length=100, description="The start of the name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """The Page's tags (those starting with `q`, any case), each with how many of its
    contacts have it, the most used first: for autocomplete and tag counts."""
    async with ctx.db.reading() as session:
        found = await contact_list.tag_counts(
            session, page_id, prefix=(q or "").strip() or None, limit=limit
        )
    return {"items": [{"name": name, "contacts": n} for name, n in found]}


@router.post("/pages/{page_id}/contacts/bulk", **documented(BulkOut))
async def bulk(page_id: Id, body: ContactBulk, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    """Tag, untag or opt out the contacts in `ids`, or every contact matching `filter`
    (the list's filters, as a JSON object), in batches of 1,000."""
    return {"changed": await contact_bulk.apply(ctx.db, actor, page_id, body, utcnow())}
