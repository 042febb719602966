"""Segments (issue 21): a Page's saved contact filters, each with how many it matches now.
A campaign targets one with the audience `{"type": "segment", "segment_id": N}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id
from pagecast.segment_schema import SegmentCreate, SegmentUpdate
from pagecast.services import segments
from pagecast.web import openapi_segments, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["segments"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CONTACTS_READ)]
Writer = Annotated[Actor, require(Permission.CONTACTS_WRITE)]


@router.get("/pages/{page_id}/segments", **documented(openapi_segments.SegmentList))
async def list_segments(page_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """The Page's segments by name, each with its count now."""
    async with ctx.db.transaction() as session:
        rows = await segments.list_page(session, page_id)
        return {"items": [render.segment(s, await segments.count(session, s)) for s in rows]}


@router.post(
    "/pages/{page_id}/segments", **documented(openapi_segments.SegmentOut, 409, status=201)
)
async def create_segment(
    page_id: Id, body: SegmentCreate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Save a filter under a name (unique on the Page)."""
    async with ctx.db.transaction() as session:
        segment = await segments.create(session, actor, page_id, body)
        return render.segment(segment, await segments.count(session, segment))


@router.get("/segments/{segment_id}", **documented(openapi_segments.SegmentOut))
async def get_segment(segment_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        segment = await segments.get(session, segment_id)
        return render.segment(segment, await segments.count(session, segment))


@router.patch("/segments/{segment_id}", **documented(openapi_segments.SegmentOut, 409))
async def update_segment(
    segment_id: Id, body: SegmentUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    """Rename the segment or replace its filter; campaigns not started yet read the change."""
    async with ctx.db.transaction() as session:
        segment = await segments.update(session, actor, segment_id, body)
        return render.segment(segment, await segments.count(session, segment))


@router.delete("/segments/{segment_id}", **documented(None, 409, status=204))
async def delete_segment(segment_id: Id, actor: Writer, ctx: ContextDep) -> None:
    """Delete the segment; refused (409) while a draft or scheduled campaign, or a series,
    targets it. Started campaigns keep the filter they started with."""
    async with ctx.db.transaction() as session:
        await segments.delete(session, actor, segment_id)
