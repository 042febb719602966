"""The audit page (admins): who did what to which object and when, filtered by a GET form
(so a filtered view is a link to share), "Older" by cursor, and "Download CSV" of the filter.

The rows, the filters and the CSV are the API's (`services.audit_list`,
`web.api.audit.csv_response`); times in the form are read in the viewer's zone.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from pagecast.errors import InvalidInput
from pagecast.permissions import Permission
from pagecast.schemas import Line
from pagecast.services import audit_list
from pagecast.web.api.audit import csv_response
from pagecast.web.dashboard import times
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page
from pagecast.web.deps import ContextDep

__all__ = ["PAGE_SIZE", "router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 50
Field = Annotated[Line | None, Query(max_length=254)]

# Where an object of each type is seen in the dashboard (while it exists).
_LINKS = {
    "campaign": "/campaigns/{id}",
    "page": "/pages/{id}/overview",
    "series": "/series/{id}",
    "template": "/templates/{id}/edit",
    "segment": "/segments",
    "user": "/users",
    "webhook": "/outbound-webhooks/{id}",
}


def _link(row: Any, alive: set[tuple[str, int]]) -> str | None:
    if row.object_id is None or (row.object_type, row.object_id) not in alive:
        return None
    if row.object_type == "contact":
        details = row.details or {}
        if "page_id" in details and "psid" in details:
            return "/contacts?" + urlencode({"page_id": details["page_id"], "q": details["psid"]})
        return None
    shape = _LINKS.get(row.object_type)
    return shape.format(id=row.object_id) if shape else None


def _parse(form: dict[str, str], zone: str) -> audit_list.Filters:
    """The form's filters; `since` and `until` typed in the viewer's zone (or ISO with one)."""
    return audit_list.parse(
        actor=form["actor"],
        action=form["action"],
        object_type=form["object_type"],
        object_id=form["object_id"],
        since=_read_time(form, "since", zone),
        until=_read_time(form, "until", zone),
    )


def _read_time(form: dict[str, str], field: str, zone: str) -> str | None:
    """A `datetime-local` field read in the viewer's zone; InvalidInput naming the field for
    a time the zone's clocks skip or one past the times Pagecast stores."""
    try:
        return times.read_field(form[field], zone)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}.", field=field) from exc
    except OverflowError:
        raise InvalidInput(
            f"{field}: {form[field]} is outside the times Pagecast stores (years 1 to 9999).",
            field=field,
        ) from None


def _form(
    actor: Field = None,
    action: Field = None,
    object_type: Field = None,
    object_id: Field = None,
    since: Field = None,
    until: Field = None,
) -> dict[str, str]:
    """The filter form's fields as typed (trimmed; empty when not given): the page and its
    CSV read the same ones."""
    given = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }
    return {name: (value or "").strip() for name, value in given.items()}


FormDep = Annotated[dict[str, str], Depends(_form)]


@router.get("/audit")
async def audit_page(
    request: Request,
    viewer: ViewerDep,
    ctx: ContextDep,
    form: FormDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=audit_list.MAX_LIMIT)] = PAGE_SIZE,
) -> Response:
    """The newest entries matching the form, `limit` (default `PAGE_SIZE`) at a time."""
    viewer.actor.require(Permission.USERS_MANAGE)
    shown = {k: v for k, v in form.items() if v}
    sized = shown | ({"limit": str(limit)} if limit != PAGE_SIZE else {})
    error, rows, alive, older = None, [], set(), None
    try:
        filters = _parse(form, times.viewer_zone(viewer))
        async with ctx.db.reading() as session:
            found = await audit_list.page(session, filters, cursor=cursor, limit=limit)
            rows, alive = found.items, await audit_list.existing(session, found.items)
        if found.next_cursor:
            older = "/audit?" + urlencode(sized | {"cursor": found.next_cursor})
    except InvalidInput as exc:
        error = exc.message
    return page(
        request,
        "audit.html",
        viewer,
        status_code=422 if error else 200,
        form=form,
        limit=limit if limit != PAGE_SIZE else None,
        error=error,
        rows=[
            {"row": r, "link": _link(r, alive), "change": audit_list.change_text(r.details)}
            for r in rows
        ],
        older_url=older,
        newest_url="/audit?" + urlencode(sized) if cursor else None,
        csv_url="/audit.csv?" + urlencode(shown),
    )


@router.get("/audit.csv")
async def audit_csv(viewer: ViewerDep, ctx: ContextDep, form: FormDep) -> Response:
    """Every entry of the page's filter as CSV (the API's columns)."""
    viewer.actor.require(Permission.USERS_MANAGE)
    return csv_response(ctx, _parse(form, times.viewer_zone(viewer)))
