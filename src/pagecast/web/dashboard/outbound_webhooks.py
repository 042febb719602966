"""Outbound webhooks in the dashboard (issue 22), for admins: the endpoints with their state
(on, failing since, turned off and why), a form that registers one and shows its secret once,
and per endpoint its events, on/off, delete, a new secret, "Send test ping" and the delivery
log with "Send again". The same services as `/api/webhooks`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from pagecast.endpoint_schema import EndpointCreate, EndpointUpdate
from pagecast.errors import InvalidInput, NotFound
from pagecast.permissions import Permission
from pagecast.schemas import Id
from pagecast.services import outbound_deliveries, outbound_events, webhook_endpoints
from pagecast.services.content import describe as describe_error
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep
from pagecast.web.webhook_render import NO_STORE, SECRET_NOTE

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PATH = "/outbound-webhooks"
_ACTIONS = ("enable", "disable", "delete", "ping", "rotate-secret")


def _body(model: Any, fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        path, message = describe_error(exc)[0]
        raise InvalidInput(message, field=path or "url") from exc


def _fields(form: Any) -> dict[str, Any]:
    return {
        "url": str(form.get("url", "")).strip(),
        "events": [str(e) for e in form.getlist("events")],
        "description": str(form.get("description", "")),
    }


@router.get(PATH)
async def endpoint_list(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.ADMIN)
    async with ctx.db.transaction() as session:
        rows = await webhook_endpoints.list_all(session)
    return page(
        request,
        "outbound_webhooks.html",
        viewer,
        rows=rows,
        event_types=outbound_events.EVENT_TYPES,
        created=None,
    )


@router.post(PATH)
async def create_endpoint(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Register an endpoint and show its secret, this once (not a redirect: the secret is in
    this answer only)."""
    viewer.actor.require(Permission.ADMIN)
    body = _body(EndpointCreate, _fields(await request.form()))
    async with ctx.db.transaction() as session:
        made = await webhook_endpoints.create(session, viewer.actor, ctx.vault, body)
        rows = await webhook_endpoints.list_all(session)
    shown = page(
        request,
        "outbound_webhooks.html",
        viewer,
        rows=rows,
        event_types=outbound_events.EVENT_TYPES,
        created=made,
        secret_note=SECRET_NOTE,
    )
    shown.headers["Cache-Control"] = NO_STORE
    return shown


@router.get(PATH + "/{webhook_id}")
async def endpoint_page(
    webhook_id: Id,
    request: Request,
    viewer: ViewerDep,
    ctx: ContextDep,
    cursor: str | None = None,
    status: str | None = None,
) -> Response:
    viewer.actor.require(Permission.ADMIN)
    wanted = status if status in outbound_deliveries.STATUSES else None
    async with ctx.db.transaction() as session:
        endpoint = await webhook_endpoints.get(session, webhook_id)
        log = await webhook_endpoints.delivery_log(
            session, webhook_id, cursor=cursor, status=wanted
        )
    return page(
        request,
        "outbound_webhook.html",
        viewer,
        endpoint=endpoint,
        log=log,
        status=wanted,
        statuses=outbound_deliveries.STATUSES,
        event_types=outbound_events.EVENT_TYPES,
        rotated=None,
    )


@router.post(PATH + "/{webhook_id}")
async def update_endpoint(
    webhook_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Save the URL, events and description."""
    viewer.actor.require(Permission.ADMIN)
    async with ctx.db.transaction() as session:
        await webhook_endpoints.get(session, webhook_id)
    body = _body(EndpointUpdate, _fields(await request.form()))
    async with ctx.db.transaction() as session:
        await webhook_endpoints.update(session, viewer.actor, webhook_id, body)
    return redirect(f"{PATH}/{webhook_id}")


@router.post(PATH + "/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    webhook_id: Id, delivery_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """ "Send again": the worker sends the event once more, at once."""
    viewer.actor.require(Permission.ADMIN)
    async with ctx.db.transaction() as session:
        await webhook_endpoints.redeliver(session, viewer.actor, webhook_id, delivery_id)
    return redirect(f"{PATH}/{webhook_id}")


@router.post(PATH + "/{webhook_id}/{action}")
async def act(
    webhook_id: Id, action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Turn on or off, delete, send a test ping, or make a new secret (shown once)."""
    viewer.actor.require(Permission.ADMIN)
    if action not in _ACTIONS:
        raise NotFound("There is no such page; check the link.")
    actor = viewer.actor
    async with ctx.db.transaction() as session:
        if action == "delete":
            await webhook_endpoints.delete(session, actor, webhook_id)
            return redirect(PATH)
        if action in ("enable", "disable"):
            change = EndpointUpdate(enabled=action == "enable")
            await webhook_endpoints.update(session, actor, webhook_id, change)
        elif action == "ping":
            await webhook_endpoints.ping(session, actor, webhook_id)
        else:
            made = await webhook_endpoints.rotate_secret(session, actor, ctx.vault, webhook_id)
            log = await webhook_endpoints.delivery_log(session, webhook_id)
            shown = page(
                request,
                "outbound_webhook.html",
                viewer,
                endpoint=made.endpoint,
                log=log,
                status=None,
                statuses=outbound_deliveries.STATUSES,
                event_types=outbound_events.EVENT_TYPES,
                rotated=made.secret,
                secret_note=SECRET_NOTE,
            )
            shown.headers["Cache-Control"] = NO_STORE
            return shown
    return redirect(f"{PATH}/{webhook_id}")
