"""Series in the dashboard (issue 20): the list, a new series (the composer's audience,
message and policy fields, read by the composer's own `fields_from`, with a schedule, a time
zone and a mode), and a series' page with its next runs and its past runs, each linking to
its campaign; pause, resume and end."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from pagecast import timezones
from pagecast.errors import NotFound, PagecastError
from pagecast.models import MessagingType, Priority, SeriesMode, SeriesStatus
from pagecast.permissions import Permission
from pagecast.schemas import ALLOWED_TAGS, Id
from pagecast.series_schema import SeriesCreate
from pagecast.services import campaigns, pages, series, series_schedule
from pagecast.web import series_render
from pagecast.web.dashboard import message_form, times
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.dashboard.composer import CHIPS, fields_from, form_errors
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

# Which buttons a series in a state shows: (action, label, confirmation question).
_ACTIONS: dict[SeriesStatus, list[tuple[str, str, str]]] = {
    SeriesStatus.ACTIVE: [
        ("pause", "Pause", "Pause this series? No run starts until it is resumed."),
        ("end", "End", "End this series for good? Its runs stay as campaigns."),
    ],
    SeriesStatus.PAUSED: [
        ("resume", "Resume", "Resume this series from its next time?"),
        ("end", "End", "End this series for good? Its runs stay as campaigns."),
    ],
    SeriesStatus.ENDED: [],
}
_DAY_LABELS = [("mon", "Mon"), ("tue", "Tue"), ("wed", "Wed"), ("thu", "Thu"), ("fri", "Fri")]
_DAY_LABELS += [("sat", "Sat"), ("sun", "Sun")]


def _schedule_from(form: FormData) -> dict[str, Any]:
    kind = str(form.get("schedule_kind", "daily")).strip() or "daily"
    if kind == "cron":
        return {"kind": "cron", "cron": str(form.get("cron", ""))}
    at = str(form.get("time", "")).strip()
    if kind == "weekly":
        return {"kind": "weekly", "days": [str(d) for d in form.getlist("days")], "time": at}
    return {"kind": kind, "time": at}


def body_from(form: FormData, zone: str) -> dict[str, Any]:
    """The form as the API's series body (what `POST /api/series` takes)."""
    fields = fields_from(form, zone)
    for name in ("scheduled_at", "expires_at"):  # the series form has none: its schedule runs it
        fields.pop(name, None)
    return fields | {
        "schedule": _schedule_from(form),
        "timezone": str(form.get("timezone", "")).strip() or None,
        "mode": str(form.get("mode", "")).strip() or SeriesMode.NEVER_TWICE.value,
    }


@router.get("/series")
async def list_series(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    async with ctx.db.transaction() as session:
        rows = await series.list_all(session, limit=200)
        page_names = {p.id: p.name for p in await pages.list_all(session)}
        counts = await series.run_counts(session, [r.id for r in rows])
    items = [
        (
            r,
            series_schedule.describe(r.schedule, r.timezone),
            page_names.get(r.page_id),
            counts.get(r.id, 0),
        )
        for r in rows
    ]
    return page(request, "series.html", viewer, items=items, has_pages=bool(page_names))


async def _form(
    request: Request,
    viewer: Any,
    ctx: Any,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    async with ctx.db.transaction() as session:
        page_rows = await pages.list_all(session)
    return page(
        request,
        "series_form.html",
        viewer,
        status_code=status_code,
        v=values,
        errors=errors,
        general_errors=[m for k, m in errors.items() if k not in _FIELDS],
        pages=page_rows,
        **message_form.template_context(),
        chips=CHIPS,
        days=_DAY_LABELS,
        chosen_days=values.get("days") or [],
        zones=timezones.names(),
        allowed_tags=ALLOWED_TAGS,
        priorities=[p.value for p in Priority],
        messaging_types=[m.value for m in MessagingType],
    )


_FIELDS = (
    "name",
    "page_id",
    "schedule",
    "timezone",
    "mode",
    "audience",
    "content",
    "messaging_type",
    "tag",
    "send_rate",
)


@router.get("/series/new")
async def new_series(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    viewer.actor.require(Permission.CAMPAIGNS_SEND)
    values = {
        "audience_type": "all",
        "schedule_kind": "daily",
        "time": "09:00",
        "mode": "never_twice",
    }
    return await _form(request, viewer, ctx, values=values, errors={})


@router.post("/series/new")
async def create_series(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_WRITE)
    viewer.actor.require(Permission.CAMPAIGNS_SEND)
    form = await request.form()
    try:
        data = SeriesCreate.model_validate(body_from(form, times.viewer_zone(viewer)))
        async with ctx.db.transaction() as session:
            row = await series.create(session, viewer.actor, data)
    except (ValidationError, PagecastError) as exc:
        if isinstance(exc, PagecastError) and exc.status_code in (401, 403):
            raise
        values = dict(form) | {"days": form.getlist("days")}
        return await _form(
            request, viewer, ctx, values=values, errors=form_errors(exc), status_code=422
        )
    return redirect(f"/series/{row.id}")


@router.get("/series/{series_id}")
async def show_series(
    series_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    async with ctx.db.transaction() as session:
        row = await series.get(session, series_id)
        runs = await series.runs(session, series_id)
        page_row = await pages.get(session, row.page_id)
    actions = _ACTIONS[row.status] if viewer.can(Permission.CAMPAIGNS_SEND) else []
    return page(
        request,
        "series_show.html",
        viewer,
        s=row,
        page_name=page_row.name,
        schedule_text=series_schedule.describe(row.schedule, row.timezone),
        upcoming=series_render.upcoming(row),
        runs=runs,
        reached=campaigns.reached,
        actions=actions,
    )


@router.post("/series/{series_id}/{action}")
async def act(
    series_id: Id, action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_SEND)
    if action not in ("pause", "resume", "end"):
        raise NotFound(f"Series have no action {action!r}; use pause, resume or end.")
    async with ctx.db.transaction() as session:
        await getattr(series, action)(session, viewer.actor, series_id)
    return redirect(f"/series/{series_id}")
