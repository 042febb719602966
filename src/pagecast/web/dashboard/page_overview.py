"""A Page's overview page (issue 21): the last 30 days of sent and failed messages on a
chart with axes, opt-outs, the send rate and any throttle, paused campaigns, the token's
state. The same body as `GET /api/pages/{id}/overview` (web/reports_body.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pagecast.permissions import Permission
from pagecast.schemas import Id
from pagecast.web import charts, reports_body
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page
from pagecast.web.deps import ContextDep

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@router.get("/pages/{page_id}/overview")
async def page_overview(
    page_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    viewer.actor.require(Permission.PAGES_READ)
    body = await reports_body.overview(ctx, page_id)
    days = body["days"]
    chart = charts.line_chart(
        [d["day"][5:] for d in days],  # MM-DD
        [("sent", [d["sent"] for d in days]), ("failed", [d["failed"] for d in days])],
        x_title="Day (UTC)",
        y_title="Messages",
        title="Messages sent and failed per day, last 30 days",
        chart_id="page-days-chart",
    )
    return page(request, "page_overview.html", viewer, overview=body, chart=chart)
