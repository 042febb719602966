"""Segments in the dashboard (issue 21): a Page's saved filters with their counts, saved
from the contacts list, deleted, and "New campaign to these people" from the list's filter
or ticked contacts (the composer opens with the audience filled: `audience_form`)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy import select

from pagecast.errors import InvalidInput
from pagecast.models import Contact
from pagecast.permissions import Permission
from pagecast.schemas import Id, parse_id
from pagecast.segment_schema import SegmentCreate
from pagecast.services import pages, segments
from pagecast.services.content import describe as describe_error
from pagecast.web.dashboard import audience_form
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@router.get("/segments")
async def segment_list(
    request: Request, viewer: ViewerDep, ctx: ContextDep, page_id: str | None = None
) -> Response:
    viewer.actor.require(Permission.CONTACTS_READ)
    async with ctx.db.transaction() as session:
        page_rows = await pages.list_all(session)
        chosen = next((p for p in page_rows if str(p.id) == page_id), None) or (
            page_rows[0] if page_rows else None
        )
        rows = []
        if chosen is not None:
            rows = [
                (s, await segments.count(session, s), audience_form.describe(json.dumps(s.filter)))
                for s in await segments.list_page(session, chosen.id)
            ]
    return page(request, "segments.html", viewer, pages=page_rows, chosen=chosen, rows=rows)


@router.post("/segments")
async def save_segment(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Save the contacts list's filter (its parameters, as hidden fields) under a name."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    form = await request.form()
    page_id = parse_id(str(form.get("page_id", "")))
    if page_id is None:
        raise InvalidInput("Choose the Page of the segment.", field="page_id")
    body = {"name": str(form.get("name", "")), "filter": audience_form.filter_from(form)}
    try:
        data = SegmentCreate.model_validate(body)
    except ValidationError as exc:
        path, message = describe_error(exc)[0]
        raise InvalidInput(message, field=path or "name") from exc
    async with ctx.db.transaction() as session:
        await segments.create(session, viewer.actor, page_id, data)
    return redirect(f"/segments?page_id={page_id}")


@router.post("/segments/{segment_id}/delete")
async def delete_segment(
    segment_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CONTACTS_WRITE)
    async with ctx.db.transaction() as session:
        page_id = (await segments.get(session, segment_id)).page_id
        await segments.delete(session, viewer.actor, segment_id)
    return redirect(f"/segments?page_id={page_id}")


@router.post("/contacts/campaign")
async def campaign_to_chosen(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """ "New campaign to these people" from ticked contacts: the composer with their PSIDs."""
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    form = await request.form()
    if form.get("scope") == "all":  # "Select all N matching": the list's filter itself
        kept = {
            key.removeprefix("f_"): value
            for key, value in form.multi_items()
            if key.startswith("f_") and isinstance(value, str) and value
        }
        query = {"page_id": str(form.get("page_id", "")), "audience": "filter", **kept}
        return redirect(f"/campaigns/new?{urlencode(query)}")
    ids = [i for v in form.getlist("contact_id") if isinstance(v, str) and (i := parse_id(v))]
    if not ids:
        raise InvalidInput("Tick at least one contact first.", field="contact_id")
    async with ctx.db.transaction() as session:
        rows = (
            await session.execute(
                select(Contact.page_id, Contact.psid)
                .where(Contact.id.in_(ids))
                .order_by(Contact.id)
            )
        ).all()
    if not rows:
        raise InvalidInput("The ticked contacts no longer exist.", field="contact_id")
    query = {"page_id": rows[0].page_id, "psids": ",".join(r.psid for r in rows)}
    return redirect(f"/campaigns/new?{urlencode(query)}")
