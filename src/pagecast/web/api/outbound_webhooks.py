"""Outbound webhook endpoints (issue 22), admins only: register a URL for chosen events (its
signing secret is in the answer, once), change or turn it off, read its delivery log, send a
delivery again and send a test ping. The worker delivers (worker/outbound.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from pagecast.endpoint_schema import EndpointCreate, EndpointUpdate
from pagecast.permissions import Actor, Permission
from pagecast.schemas import Id
from pagecast.services import webhook_endpoints
from pagecast.services.webhook_endpoints import LOG_LIMIT
from pagecast.web import openapi_webhooks, webhook_render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["outbound webhooks"], responses=errors(*API_ERRORS))
Admin = Annotated[Actor, require(Permission.ADMIN)]


@router.get("/webhooks", **documented(openapi_webhooks.EndpointList))
async def list_endpoints(actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        rows = await webhook_endpoints.list_all(session)
    return {"items": [webhook_render.endpoint(e) for e in rows]}


@router.post("/webhooks", **documented(openapi_webhooks.EndpointCreatedOut, status=201))
async def create_endpoint(
    body: EndpointCreate, actor: Admin, ctx: ContextDep, response: Response
) -> dict[str, Any]:
    """Register an endpoint; the answer holds its signing `secret`, shown only this once."""
    response.headers["Cache-Control"] = webhook_render.NO_STORE
    async with ctx.db.transaction() as session:
        made = await webhook_endpoints.create(session, actor, ctx.vault, body)
        return webhook_render.created(made)


@router.get("/webhooks/{webhook_id}", **documented(openapi_webhooks.EndpointOut))
async def get_endpoint(webhook_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        return webhook_render.endpoint(await webhook_endpoints.get(session, webhook_id))


@router.patch("/webhooks/{webhook_id}", **documented(openapi_webhooks.EndpointOut))
async def update_endpoint(
    webhook_id: Id, body: EndpointUpdate, actor: Admin, ctx: ContextDep
) -> dict[str, Any]:
    """Change url, events, description; `enabled: true` also clears the failing state."""
    async with ctx.db.transaction() as session:
        endpoint = await webhook_endpoints.update(session, actor, webhook_id, body)
        return webhook_render.endpoint(endpoint)


@router.delete("/webhooks/{webhook_id}", **documented(None, status=204))
async def delete_endpoint(webhook_id: Id, actor: Admin, ctx: ContextDep) -> None:
    """Delete the endpoint and its delivery log; nothing more is sent to it."""
    async with ctx.db.transaction() as session:
        await webhook_endpoints.delete(session, actor, webhook_id)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret", **documented(openapi_webhooks.EndpointCreatedOut)
)
async def rotate_secret(
    webhook_id: Id, actor: Admin, ctx: ContextDep, response: Response
) -> dict[str, Any]:
    """A new signing secret, shown this once; the next attempts are signed with it."""
    response.headers["Cache-Control"] = webhook_render.NO_STORE
    async with ctx.db.transaction() as session:
        made = await webhook_endpoints.rotate_secret(session, actor, ctx.vault, webhook_id)
        return webhook_render.created(made)


@router.get("/webhooks/{webhook_id}/deliveries", **documented(openapi_webhooks.DeliveryLog))
async def delivery_log(
    webhook_id: Id,
    actor: Admin,
    ctx: ContextDep,
    status: Annotated[
        Literal["pending", "delivered", "failed"] | None,
        Query(description="Only deliveries in this status."),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=20, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = LOG_LIMIT,
) -> dict[str, Any]:
    """The endpoint's deliveries, newest first, each as its latest attempt left it."""
    async with ctx.db.transaction() as session:
        page = await webhook_endpoints.delivery_log(
            session, webhook_id, cursor=cursor, limit=limit, status=status
        )
        return webhook_render.log(page)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    **documented(openapi_webhooks.DeliveryOut, 409, status=202),
)
async def redeliver(
    webhook_id: Id, delivery_id: Id, actor: Admin, ctx: ContextDep
) -> dict[str, Any]:
    """Send the delivery's event again (delivered, failed or pending): the worker sends it
    at once; 409 while the endpoint is turned off."""
    async with ctx.db.transaction() as session:
        await webhook_endpoints.redeliver(session, actor, webhook_id, delivery_id)
        item = await webhook_endpoints.log_entry(session, webhook_id, delivery_id)
        return webhook_render.log_item(item)


@router.post(
    "/webhooks/{webhook_id}/ping", **documented(openapi_webhooks.DeliveryOut, 409, status=202)
)
async def ping(webhook_id: Id, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """Send a `webhook.ping` event to this endpoint only; its delivery is in the log."""
    async with ctx.db.transaction() as session:
        delivery = await webhook_endpoints.ping(session, actor, webhook_id)
        item = await webhook_endpoints.log_entry(session, webhook_id, delivery.id)
        return webhook_render.log_item(item)
