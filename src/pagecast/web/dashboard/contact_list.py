"""The Contacts page's list: filters, total, sort, page size, First/Previous/Next, select
all matching, bulk tag/untag/opt-out and the CSV of the filter; the same services as
`web/api/contact_list.py` (who matches is `services/contact_filter.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict

from pagecast import timezones
from pagecast.contact_filter_schema import ContactBulk, ContactFilter
from pagecast.errors import InvalidInput, field_path, in_words
from pagecast.models import utcnow
from pagecast.permissions import Permission
from pagecast.schemas import parse_id
from pagecast.services import contact_bulk, contact_list, import_jobs, pages
from pagecast.services.contact_list import PAGE_SIZES, SORTS
from pagecast.web.api.contact_list import contacts_csv
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect, same_site_path
from pagecast.web.deps import ContextDep

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
DEFAULT_SIZE = 100
_TAG_FIELDS = ("tags_any", "tags_all", "tags_none")
_TEXT_FIELDS = ("q", "window", "inbound_from", "inbound_to", "timezone")
_FLAGS = ("opted_out", "unreachable", "is_tester")
# The filter's form fields, as the page's links and the bulk form carry them.
FILTER_FIELDS = (*_TAG_FIELDS, *_TEXT_FIELDS, *_FLAGS)
_SORT_WORDS = {
    "id": "Oldest added (id)",
    "-id": "Newest added (id)",
    "name": "First name A-Z",
    "-name": "First name Z-A",
    "last_inbound": "Last message, oldest",
    "-last_inbound": "Last message, newest",
    "created": "Created, oldest",
    "-created": "Created, newest",
}


def _as_filter(form: Mapping[str, str]) -> ContactFilter:
    """The form's filter fields as a `ContactFilter`; empty fields do not filter. A bad
    value is an `InvalidInput` naming its field (rendered as the dashboard's error page)."""
    data: dict[str, Any] = {}
    for name in _TAG_FIELDS:
        data[name] = [t.strip() for t in form.get(name, "").split(",") if t.strip()]
    if legacy := form.get("tag", "").strip():  # the old single-tag box and its links
        data["tags_any"].append(legacy)
    for name in _TEXT_FIELDS:
        if value := form.get(name, "").strip():
            data[name] = value
    for name in _FLAGS:
        flag = {"yes": True, "no": False}.get(form.get(name, ""))
        if flag is not None:
            data[name] = flag
    try:
        return ContactFilter.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = field_path([p for p in error["loc"] if isinstance(p, str)]) or None
        words = in_words(error)
        raise InvalidInput(f"{field}: {words}" if field else words, field=field) from exc


def _form_values(query: ImmutableMultiDict[str, str]) -> dict[str, str]:
    return {name: query.get(name, "") for name in (*FILTER_FIELDS, "tag")}


@router.get("/contacts")
async def contact_list_page(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CONTACTS_READ)
    query = request.query_params
    shown = _form_values(query)
    f = _as_filter(shown)
    sort = contact_list.parse_sort(query.get("sort") or None)
    size = parse_id(query.get("limit")) or DEFAULT_SIZE
    size = size if size in PAGE_SIZES else DEFAULT_SIZE
    now = utcnow()
    async with ctx.db.transaction() as session:
        page_rows = await pages.list_all(session)
        chosen = next((p for p in page_rows if str(p.id) == query.get("page_id")), None) or (
            page_rows[0] if page_rows else None
        )
        found, total, tags, recent = None, 0, [], []
        if chosen is not None:
            found = await contact_list.page(
                session, chosen.id, f, now=now, sort=sort, cursor=query.get("cursor"), limit=size
            )
            total = await contact_list.total(session, chosen.id, f, now=now)
            tags = await contact_list.tag_counts(session, chosen.id, limit=200)
            recent = await import_jobs.list_recent(session, page_id=chosen.id, limit=5)
    kept = {k: v for k, v in shown.items() if v and k != "tag"}
    if shown["tag"]:
        kept["tags_any"] = ",".join(filter(None, [kept.get("tags_any", ""), shown["tag"]]))
    base = {"page_id": chosen.id if chosen else "", **kept, "sort": sort.name, "limit": size}
    here = f"/contacts?{urlencode(base)}"
    return page(
        request,
        "contacts.html",
        viewer,
        pages=page_rows,
        chosen=chosen,
        rows=found.items if found else [],
        total=total,
        tags=tags,
        filters=shown | {"tags_any": kept.get("tags_any", "")},
        filter_fields=kept,
        sort=sort.name,
        sorts=[(s, _SORT_WORDS[s]) for s in SORTS],
        size=size,
        sizes=PAGE_SIZES,
        here=here + (f"&cursor={query['cursor']}" if query.get("cursor") else ""),
        first_url=here if found and found.prev_cursor else None,
        prev_url=f"{here}&cursor={found.prev_cursor}" if found and found.prev_cursor else None,
        next_url=f"{here}&cursor={found.next_cursor}" if found and found.next_cursor else None,
        csv_url=f"/contacts.csv?{urlencode({'page_id': base['page_id'], **kept})}",
        changed=query.get("changed")
        if parse_id(query.get("changed")) or query.get("changed") == "0"
        else None,
        imports=[import_jobs.report(j, errors=False) for j in recent],
        max_tags=ctx.settings.import_max_tags_per_contact,
        max_bytes=ctx.settings.import_max_bytes,
        now=now,
        zone_names=timezones.names(),
    )


@router.get("/contacts.csv")
async def contact_csv(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Every contact of the list's filter as CSV, in the importer's columns."""
    viewer.actor.require(Permission.CONTACTS_READ)
    page_id = parse_id(request.query_params.get("page_id"))
    if page_id is None:
        raise InvalidInput("page_id: choose the Page to export.", field="page_id")
    return await contacts_csv(ctx, page_id, _as_filter(_form_values(request.query_params)))


@router.post("/contacts/bulk")
async def bulk(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Tag, untag or opt out the ticked contacts, or (`scope=all`) every one the filter
    matches; back to the list with how many changed."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    form = await request.form()
    page_id = parse_id(str(form.get("page_id", "")))
    if page_id is None:
        raise InvalidInput("page_id: choose the Page first.", field="page_id")
    action = str(form.get("action", ""))
    tag = str(form.get("bulk_tag", "")).strip() or None
    target: dict[str, Any]
    if form.get("scope") == "all":
        values = {k: str(form.get(f"f_{k}", "")) for k in FILTER_FIELDS}
        target = {"filter": _as_filter(values)}
    else:
        ids = [i for v in form.getlist("contact_id") if isinstance(v, str) and (i := parse_id(v))]
        if not ids:
            raise InvalidInput(
                "contact_id: tick at least one contact, or choose all matching.",
                field="contact_id",
            )
        target = {"ids": ids}
    try:
        body = ContactBulk.model_validate({"action": action, "tag": tag} | target)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = field_path([p for p in error["loc"] if isinstance(p, str)]) or None
        words = in_words(error)
        raise InvalidInput(f"{field}: {words}" if field else words, field=field) from exc
    changed = await contact_bulk.apply(ctx.db, viewer.actor, page_id, body, utcnow())
    back = same_site_path(str(form.get("back") or ""), f"/contacts?page_id={page_id}")
    return redirect(f"{back}{'&' if '?' in back else '?'}changed={changed}")
