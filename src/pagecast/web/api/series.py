"""Series (issue 20): recurring campaigns. CRUD, pause, resume and end; each run is a
campaign of its own (GET /api/campaigns/{id})."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pagecast.models import SeriesStatus
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id
from pagecast.series_schema import SeriesCreate, SeriesUpdate
from pagecast.services import series
from pagecast.web import openapi_series, render, series_render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["series"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CAMPAIGNS_READ)]
Writer = Annotated[Actor, require(Permission.CAMPAIGNS_WRITE)]
Sender = Annotated[Actor, require(Permission.CAMPAIGNS_SEND)]


@router.get("/series", **documented(openapi_series.SeriesList))
async def list_series(
    actor: Reader,
    ctx: ContextDep,
    status: SeriesStatus | None = None,
    page_id: Id | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        rows = await series.list_all(
            session,
            status=status,
            page_id=page_id,
            limit=limit,
            after_id=render.parse_cursor(cursor),
        )
        return {
            "items": [series_render.series(r) for r in rows],
            "next_cursor": render.cursor(rows[-1].id) if len(rows) == limit else None,
        }


@router.post("/series", **documented(openapi_series.SeriesOut, status=201))
async def create_series(body: SeriesCreate, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """A new active series: its first run is the schedule's next time. Needs
    campaigns:write and campaigns:send (its runs start by themselves)."""
    async with ctx.db.transaction() as session:
        return series_render.series(await series.create(session, actor, body))


@router.get("/series/{series_id}", **documented(openapi_series.SeriesDetailOut))
async def get_series(series_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """The series with its next run times and its latest runs (each a campaign)."""
    async with ctx.db.transaction() as session:
        row = await series.get(session, series_id)
        return series_render.series(row, await series.runs(session, series_id))


@router.patch("/series/{series_id}", **documented(openapi_series.SeriesOut, 409))
async def update_series(
    series_id: Id, body: SeriesUpdate, actor: Sender, ctx: ContextDep
) -> dict[str, Any]:
    """Change a series that has not ended; the next runs use the change."""
    async with ctx.db.transaction() as session:
        return series_render.series(await series.update(session, actor, series_id, body))


@router.delete("/series/{series_id}", **documented(None, status=204))
async def delete_series(series_id: Id, actor: Writer, ctx: ContextDep) -> None:
    """Delete a series; its runs stay as campaigns."""
    async with ctx.db.transaction() as session:
        await series.delete(session, actor, series_id)


@router.post("/series/{series_id}/pause", **documented(openapi_series.SeriesOut, 409))
async def pause_series(series_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return series_render.series(await series.pause(session, actor, series_id))


@router.post("/series/{series_id}/resume", **documented(openapi_series.SeriesOut, 409))
async def resume_series(series_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """Active again from the schedule's next time (runs that passed meanwhile are not sent)."""
    async with ctx.db.transaction() as session:
        return series_render.series(await series.resume(session, actor, series_id))


@router.post("/series/{series_id}/end", **documented(openapi_series.SeriesOut, 409))
async def end_series(series_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """No more runs, for good."""
    async with ctx.db.transaction() as session:
        return series_render.series(await series.end(session, actor, series_id))
