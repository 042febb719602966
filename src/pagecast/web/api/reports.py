"""Reports (issue 21): a campaign's report, archiving finished campaigns, a Page's overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from pagecast.csv_export import csv_lines
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id
from pagecast.services import campaign_archive, campaigns
from pagecast.web import openapi, render, reports_body
from pagecast.web.api.deliveries import wants_csv
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

__all__ = ["router"]

router = APIRouter(prefix="/api", responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CAMPAIGNS_READ)]
Writer = Annotated[Actor, require(Permission.CAMPAIGNS_WRITE)]
PageReader = Annotated[Actor, require(Permission.PAGES_READ)]


@router.get("/campaigns/{campaign_id}/report", tags=["campaigns"], **documented(openapi.ReportOut))
async def campaign_report(campaign_id: Id, request: Request, actor: Reader, ctx: ContextDep) -> Any:
    """Counts by status, by reason (with words) and by Graph error code (with what it means
    and what to do); rates; timings. `Accept: text/csv` gives the same as rows of section,
    key, words, value. docs/api.md names each rate's denominator."""
    body = await reports_body.campaign_report(ctx, campaign_id)
    if not wants_csv(request):
        return body
    return StreamingResponse(
        csv_lines(("section", "key", "words", "value"), list(reports_body.report_rows(body))),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'
        },
    )


@router.post(
    "/campaigns/{campaign_id}/archive", tags=["campaigns"], **documented(openapi.CampaignOut, 409)
)
async def archive_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    """Take a completed or cancelled campaign out of the default list (`?archived=true`
    lists it); recorded in the audit trail."""
    async with ctx.db.transaction() as session:
        campaign = await campaign_archive.archive(session, actor, campaign_id)
        return render.campaign(campaign, campaigns.counts(campaign))


@router.post(
    "/campaigns/{campaign_id}/unarchive", tags=["campaigns"], **documented(openapi.CampaignOut)
)
async def unarchive_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    """Put an archived campaign back in the default list."""
    async with ctx.db.transaction() as session:
        campaign = await campaign_archive.unarchive(session, actor, campaign_id)
        return render.campaign(campaign, campaigns.counts(campaign))


@router.get("/pages/{page_id}/overview", tags=["pages"], **documented(openapi.OverviewOut))
async def page_overview(page_id: Id, actor: PageReader, ctx: ContextDep) -> Response | Any:
    """The last 30 days (UTC) by day: messages sent and failed; opt-outs; the send rate, any
    throttle Facebook imposed (null when Redis cannot be reached), campaigns a stop paused,
    and the token's state."""
    return await reports_body.overview(ctx, page_id)
