"""Queue & health for operators (admins): the same data and actions as `/api/admin/health`
and `/api/admin/queue`, rendered; it calls those functions rather than repeating them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pagecast.permissions import Permission
from pagecast.web.api import admin
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@router.get("/queue")
async def queue_page(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    viewer.actor.require(Permission.ADMIN)
    health = await admin.health(viewer.actor, ctx)
    queue = await admin.queue_overview(viewer.actor, ctx) if health["redis"]["ok"] else None
    return page(request, "queue.html", viewer, health=health, queue=queue)


@router.post("/queue/{action}")
async def queue_action(
    action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """retry-failed, clean, pause, resume: the API's queue actions."""
    viewer.actor.require(Permission.ADMIN)
    await admin.queue_action(action, viewer.actor, ctx)
    return redirect("/queue")
