"""The audit log (admins): filtered, newest first by cursor, or all of a filter as CSV.

There is no route that changes or removes an entry: `GET` is the only method here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from pagecast.context import AppContext
from pagecast.csv_export import csv_chunks
from pagecast.models import utcnow
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Line
from pagecast.services import audit_list
from pagecast.services.audit_list import DEFAULT_LIMIT, MAX_LIMIT, Filters
from pagecast.web import render
from pagecast.web.api.deliveries import wants_csv
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, errors
from pagecast.web.openapi_audit import listed

__all__ = ["csv_response", "router"]

router = APIRouter(prefix="/api", tags=["audit"], responses=errors(*API_ERRORS))
Admin = Annotated[Actor, require(Permission.USERS_MANAGE)]
_TIME = "ISO 8601 with a zone (2026-12-01T09:00:00Z or …+08:00)"


async def _rows(ctx: AppContext, filters: Filters) -> Any:
    async for rows in audit_list.batches(ctx.db, filters):
        yield [audit_list.csv_row(row) for row in rows]


def csv_response(ctx: AppContext, filters: Filters) -> Response:
    """Every entry `filters` match, newest first, as a CSV download (a batch at a time)."""
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        csv_chunks(audit_list.CSV_COLUMNS, _rows(ctx, filters)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pagecast-audit-{stamp}.csv"'},
    )


@router.get("/audit", **listed())
async def audit_log(
    request: Request,
    actor: Admin,
    ctx: ContextDep,
    actor_: Annotated[
        Line | None,
        Query(
            alias="actor",
            max_length=254,
            description="Who: a user id, or the name entries carry (an email, `cli`, `system`; "
            "for a failed login, the email tried).",
        ),
    ] = None,
    action: Annotated[
        Line | None,
        Query(
            max_length=70,
            description="One action (`user.created`), or a prefix ending with `.` or `*` "
            "(`campaign.`).",
        ),
    ] = None,
    object_type: Annotated[
        Line | None, Query(max_length=50, description="campaign, page, user, contact, …")
    ] = None,
    object_id: Annotated[Line | None, Query(max_length=20, description="The object's id.")] = None,
    since: Annotated[
        Line | None, Query(max_length=40, description=f"From this time on (inclusive); {_TIME}.")
    ] = None,
    until: Annotated[
        Line | None, Query(max_length=40, description=f"Before this time (exclusive); {_TIME}.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="csv: every matching entry as CSV (as `Accept: text/csv`)."),
    ] = None,
) -> Any:
    """Who did what to which object, and when, newest first, `limit` at a time. Paging is by
    keyset on the entry's id: a walk through `next_cursor` lists every older entry once,
    however many are written meanwhile. With `Accept: text/csv` or `format=csv`, every
    matching entry (no paging) as a CSV file. Admins only; entries cannot be changed or
    deleted through Pagecast."""
    filters = audit_list.parse(
        actor=actor_,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
    )
    if format == "csv" or (format is None and wants_csv(request)):
        audit_list.decode_cursor(cursor)  # a bad cursor is a 422 here too
        return csv_response(ctx, filters)
    async with ctx.db.reading() as session:
        found = await audit_list.page(session, filters, cursor=cursor, limit=limit)
    return {"items": [render.audit(row) for row in found.items], "next_cursor": found.next_cursor}
