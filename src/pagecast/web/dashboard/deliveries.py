"""The campaign page's deliveries table: filters (status, variant, error code, name or PSID),
Next/Previous by keyset, and "Download CSV" of the same filter (issues 20 and 21).

The rows come from `services.delivery_list`, as the API's; the CSV is the API's
(`web.api.deliveries.csv_response`), so its columns are the API's item keys.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from pagecast.permissions import Permission
from pagecast.schemas import BIGINT_MAX, Id, Line, parse_id
from pagecast.services import delivery_list
from pagecast.services.delivery_list import Filters
from pagecast.web.api.deliveries import csv_response
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page
from pagecast.web.deps import ContextDep

__all__ = ["PAGE_SIZE", "router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 50
Cursor = Annotated[int | None, Query(ge=1, le=BIGINT_MAX)]


def _filters(
    status: str | None, variant: str | None, code: str | None, q: str | None
) -> tuple[Filters, str | None]:
    """The form's filters, and a note when the error code is not a number (then unused)."""
    number = parse_id(code.strip()) if code and code.strip() else None
    note = None
    if code and code.strip() and number is None:
        note = f"Error code {code.strip()[:20]!r} is not a number (e.g. 551); showing every code."
    filters = delivery_list.parse(
        status=[status] if status else [], variant=variant, error_code=number, search=q
    )
    return filters, note


def _query(filters: Filters, **cursor: int | None) -> str:
    """The fragment's query string for these filters (the form's names) and a cursor."""
    shown = {
        "status": ",".join(s.value for s in filters.statuses),
        "variant": filters.variant or "",
        "code": "" if filters.error_code is None else str(filters.error_code),
        "q": filters.search or "",
    }
    shown |= {k: str(v) for k, v in cursor.items() if v is not None}
    return urlencode({k: v for k, v in shown.items() if v})


@router.get("/campaigns/{campaign_id}/deliveries")
async def delivery_table(
    campaign_id: Id,
    request: Request,
    viewer: ViewerDep,
    ctx: ContextDep,
    status: Line | None = None,
    variant: Annotated[Line | None, Query(max_length=8)] = None,
    code: Line | None = None,
    q: Line | None = None,
    after: Cursor = None,
    before: Cursor = None,
) -> Response:
    """One page of the table (HTMX fragment): after the id `after` (Next) or the page
    before the id `before` (Previous)."""
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    filters, note = _filters(status, variant, code, q)
    async with ctx.db.transaction() as session:
        found = await delivery_list.page(
            session, campaign_id, filters, after=after, before=before, limit=PAGE_SIZE
        )
        total, exact = await delivery_list.count(session, campaign_id, filters)
    backwards = before is not None and after is None
    has_next = (not backwards and found.more) or (backwards and found.items != [])
    has_previous = (backwards and found.more) or (not backwards and after is not None)
    base = f"/campaigns/{campaign_id}/deliveries"
    return page(
        request,
        "_deliveries.html",
        viewer,
        campaign_id=campaign_id,
        items=found.items,
        total=total,
        exact=exact,
        note=note,
        next_url=f"{base}?{_query(filters, after=found.last)}" if has_next else None,
        previous_url=f"{base}?{_query(filters, before=found.first)}" if has_previous else None,
        csv_url=f"{base}.csv?{_query(filters)}",
    )


@router.get("/campaigns/{campaign_id}/deliveries.csv")
async def delivery_csv(
    campaign_id: Id,
    viewer: ViewerDep,
    ctx: ContextDep,
    status: Line | None = None,
    variant: Annotated[Line | None, Query(max_length=8)] = None,
    code: Line | None = None,
    q: Line | None = None,
) -> Response:
    """Every delivery of the table's filter as CSV (the API's columns)."""
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    filters, _ = _filters(status, variant, code, q)
    return await csv_response(ctx, campaign_id, filters)
