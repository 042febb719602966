"""Queue & health for operators (admins): the same data and actions as `/api/admin/health`
and `/api/admin/queue`, rendered; it calls those functions rather than repeating them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from pagecast import queue_jobs
from pagecast.errors import NotFound
from pagecast.permissions import Permission
from pagecast.services import outbound_deliveries
from pagecast.web.api import admin
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@router.get("/queue")
async def queue_page(
    request: Request,
    viewer: ViewerDep,
    ctx: ContextDep,
    queue: Annotated[Literal["sending", "webhooks"], Query()] = "sending",
    state: Annotated[str, Query()] = "failed",
) -> Response:
    """Health, both queues' counts, the workers, and one queue's jobs in one state."""
    viewer.actor.require(Permission.ADMIN)
    health = await admin.health(viewer.actor, ctx)
    # Issue 22: outbound webhooks have no queue (the delivery rows are it), so their counts
    # come from the database, shown even when Redis does not answer.
    async with ctx.db.reading() as session:
        outbound = await outbound_deliveries.counts(session)
    overview = jobs = None
    if health["redis"]["ok"]:
        overview = await admin.queue_overview(viewer.actor, ctx)
        jobs = await admin.queue_jobs(viewer.actor, ctx, queue=queue, state=state, limit=50)
    return page(
        request,
        "queue.html",
        viewer,
        health=health,
        queue=overview,
        jobs=jobs,
        outbound=outbound,
        queues=queue_jobs.QUEUES,
        states=queue_jobs.STATES,
    )


@router.post("/queue/jobs/{queue}/{job_id:path}/{action}")
async def job_action(
    queue: str, job_id: str, action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """retry (a failed job) or remove (a job no worker runs): the API's job actions."""
    viewer.actor.require(Permission.ADMIN)
    if action == "retry":
        job = await admin.retry_job(queue, job_id, viewer.actor, ctx)
        return redirect(f"/queue?queue={queue}&state={job['state']}")
    if action == "remove":
        await admin.remove_job(queue, job_id, viewer.actor, ctx)
        return redirect(f"/queue?queue={queue}")
    raise NotFound(f"Unknown job action {action!r}; use retry or remove.")


@router.post("/queue/{action}")
async def queue_action(
    action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """retry-failed, clean, pause, resume: the API's queue actions."""
    viewer.actor.require(Permission.ADMIN)
    await admin.queue_action(action, viewer.actor, ctx)
    return redirect("/queue")
