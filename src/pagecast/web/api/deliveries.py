"""`GET /api/campaigns/{id}/deliveries`: a campaign's deliveries in pages, or as CSV.

The CSV (`Accept: text/csv`) has the same filters and the same columns as the JSON items
(`render.DELIVERY_FIELDS`); the dashboard's "Download CSV" streams through `csv_response`
too, so both are one rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from pagecast.context import AppContext
from pagecast.models import DeliveryStatus
from pagecast.permissions import Actor, Permission
from pagecast.schemas import BIGINT_MAX, Id, Int32, Line
from pagecast.services import campaigns, delivery_list
from pagecast.services.delivery_list import DEFAULT_LIMIT, MAX_LIMIT, Filters
from pagecast.web import render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, errors
from pagecast.web.openapi_deliveries import listed

__all__ = ["csv_response", "router", "wants_csv"]

router = APIRouter(prefix="/api", tags=["campaigns"], responses=errors(*API_ERRORS))
Reader = Annotated[Actor, require(Permission.CAMPAIGNS_READ)]
_STATUSES = ", ".join(s.value for s in DeliveryStatus)


def wants_csv(request: Request) -> bool:
    """The client asked for CSV (`Accept: text/csv`, before or without JSON)."""
    accept = request.headers.get("accept", "").lower()
    return "text/csv" in accept and (
        "application/json" not in accept
        or accept.index("text/csv") < accept.index("application/json")
    )


async def csv_response(ctx: AppContext, campaign_id: int, filters: Filters) -> Response:
    """Every delivery the filters match as a CSV download, in batches (constant memory).

    The campaign is looked up first, so a wrong id is a 404 and not an empty file."""
    async with ctx.db.transaction() as session:
        await campaigns.get(session, campaign_id)

    return StreamingResponse(
        render.deliveries_csv(ctx.db, campaign_id, filters),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-deliveries.csv"'
        },
    )


@router.get("/campaigns/{campaign_id}/deliveries", **listed())
async def list_deliveries(
    campaign_id: Id,
    request: Request,
    actor: Reader,
    ctx: ContextDep,
    status: Annotated[
        list[Annotated[str, Query(max_length=200)]] | None,
        Query(
            max_length=20,
            description=f"Delivery statuses ({_STATUSES}); repeat it or separate with commas.",
        ),
    ] = None,
    variant: Annotated[Line | None, Query(max_length=8, description="A variant's key.")] = None,
    error_code: Annotated[Int32 | None, Query(description="A Graph API error code.")] = None,
    reason: Annotated[Line | None, Query(max_length=64, description="A reason code.")] = None,
    q: Annotated[
        Line | None, Query(max_length=200, description="A PSID, or part of a name.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Any:
    """The campaign's deliveries in ascending id order, `limit` at a time: each with its
    person, status, reason, variant, times, attempts and last error. Paging is by keyset, so
    a walk through `next_cursor` lists every delivery once while sending goes on. With
    `Accept: text/csv`, every matching delivery (no paging) as a CSV file."""
    filters = delivery_list.parse(
        status=status or (), variant=variant, error_code=error_code, reason=reason, search=q
    )
    if wants_csv(request):
        return await csv_response(ctx, campaign_id, filters)
    after = render.parse_cursor(cursor, BIGINT_MAX)
    async with ctx.db.transaction() as session:
        found = await delivery_list.page(session, campaign_id, filters, after=after, limit=limit)
    return {
        "items": [render.delivery(item) for item in found.items],
        "next_cursor": render.cursor(found.last) if found.more else None,
    }
