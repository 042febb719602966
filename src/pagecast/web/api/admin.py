"""Operations: readiness, health, Prometheus metrics, and queue administration."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from pagecast import queue_jobs as queue_jobs_
from pagecast.context import AppContext
from pagecast.permissions import Actor, Permission
from pagecast.services import audit, pages
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.metrics import render as render_metrics
from pagecast.web.metrics import snapshot as metrics_snapshot
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(tags=["operations"], responses=errors(*API_ERRORS))
Admin = Annotated[Actor, require(Permission.ADMIN)]


async def _database(ctx: AppContext) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with ctx.db.transaction() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _redis(ctx: AppContext) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await ctx.queue.redis()
    except Exception as exc:  # ServiceUnavailable with the actionable message, or no Redis set
        return {"ok": False, "error": getattr(exc, "message", str(exc))}
    return {
        "ok": True,
        "where": ctx.queue.target.where,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def _workers(ctx: AppContext) -> list[dict[str, Any]]:
    return await ctx.queue.live_workers()


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": openapi.ReadyOut, "description": "Ready"},
        503: {"model": openapi.ReadyOut, "description": "The database or Redis does not answer."},
    },
)
async def readyz(ctx: ContextDep, response: Response) -> dict[str, Any]:
    """Readiness: the database and Redis answer. No authentication; no details beyond ok."""
    database, redis = await _database(ctx), await _redis(ctx)
    ready = database["ok"] and redis["ok"]
    response.status_code = 200 if ready else 503
    return {"ok": ready, "database": database["ok"], "redis": redis["ok"]}


@router.get("/api/admin/health", **documented(None))
async def health(actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """Database, Redis, workers, queue counts (sending and webhook queues) and each Page's
    state, policy enforcement and throttle."""
    database, redis = await _database(ctx), await _redis(ctx)
    body: dict[str, Any] = {
        "database": database,
        "redis": redis,
        "workers": [],
        "queue": None,
        "webhook_queue": None,
        "pages": [],
    }
    if database["ok"]:
        async with ctx.db.transaction() as session:
            rows = await pages.list_all(session)
        body["pages"] = [
            {
                "id": p.id,
                "name": p.name,
                "status": p.status.value,
                "status_reason": p.status_reason,
                "policy": render.page_policy(p),
                "send_rate": p.send_rate,
            }
            for p in rows
        ]
    if redis["ok"]:
        body["workers"] = await _workers(ctx)
        body["queue"] = await ctx.queue.counts()
        body["webhook_queue"] = await ctx.queue.webhook_counts()
        for page in body["pages"]:
            page["throttle"] = await ctx.limiter.state(page["id"])
    body["ok"] = database["ok"] and redis["ok"]
    return body


@router.get("/api/admin/queue", **documented(None, 503))
async def queue_overview(
    actor: Admin, ctx: ContextDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Counts by state (the sending queue's, and the webhook queue's as `webhook_counts`),
    failed sending jobs with their reasons, and the workers."""
    queue = await ctx.queue.bull()
    failed = await queue.getFailed(0, limit - 1)
    return {
        "counts": await ctx.queue.counts(),
        "webhook_counts": await ctx.queue.webhook_counts(),
        "paused": bool(await queue.isPaused()),
        "failed": [
            {
                "id": job.id,
                "name": job.name,
                "data": job.data,
                "reason": job.failedReason,
                "attempts": job.attemptsMade,
                "timestamp": job.timestamp,
            }
            for job in failed
        ],
        "workers": await _workers(ctx),
    }


async def audit_queue(ctx: AppContext, actor: Actor, action: str, **details: Any) -> None:
    """An operator's queue action in the audit log (`queue.paused`, `queue.job_removed`, …),
    written once Redis has done it: a queue is not part of the database's transaction."""
    async with ctx.db.transaction() as session:
        await audit.record(
            session, actor, action, object_type="queue", object_id=None, details=details
        )


_QUEUE_ACTIONS = {
    "retry-failed": "queue.retry_failed",
    "clean": "queue.cleaned",
    "pause": "queue.paused",
    "resume": "queue.resumed",
}


@router.post("/api/admin/queue/{action}", **documented(None, 503))
async def queue_action(action: str, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """`retry-failed` (failed jobs run again), `clean` (forget completed and failed jobs),
    `pause` and `resume` (every worker stops or starts taking jobs). Audited (`queue.*`)."""
    if action not in _QUEUE_ACTIONS:
        from pagecast.errors import NotFound

        raise NotFound(
            f"Unknown queue action {action!r}; use retry-failed, clean, pause or resume."
        )
    queue = await ctx.queue.bull()
    answer: dict[str, Any] = {"ok": True, "action": action}
    if action == "retry-failed":
        await ctx.queue.retry_failed_jobs()
    elif action == "clean":
        removed = 0
        for state in ("failed", "completed"):
            removed += len(await queue.clean(0, 10_000, state) or [])
        answer["removed"] = removed
    elif action == "pause":
        await queue.pause()
    else:
        await queue.resume()
    shown = {"removed": answer["removed"]} if "removed" in answer else {}
    await audit_queue(ctx, actor, _QUEUE_ACTIONS[action], queue="sending", **shown)
    return answer


@router.get("/api/admin/queue/jobs", **documented(None, 503))
async def queue_jobs(
    actor: Admin,
    ctx: ContextDep,
    queue: Annotated[str, Query(description="sending or webhooks")] = "sending",
    state: Annotated[str, Query(description=", ".join(queue_jobs_.STATES))] = "failed",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The newest jobs of one queue in one state, with their data and failure reason."""
    jobs = await queue_jobs_.list_jobs(ctx.queue, queue, state, limit=limit)
    return {"queue": queue, "state": state, "jobs": jobs}


@router.post("/api/admin/queue/jobs/{queue}/{job_id:path}/retry", **documented(None, 409, 503))
async def retry_job(queue: str, job_id: str, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """Run one failed job again."""
    job = await queue_jobs_.retry(ctx.queue, queue, job_id)
    await audit_queue(ctx, actor, "queue.job_retried", queue=queue, job_id=job_id[:200])
    return job


@router.delete("/api/admin/queue/jobs/{queue}/{job_id:path}", **documented(None, 409, 503))
async def remove_job(queue: str, job_id: str, actor: Admin, ctx: ContextDep) -> dict[str, Any]:
    """Remove one job that is not running."""
    await queue_jobs_.remove(ctx.queue, queue, job_id)
    await audit_queue(ctx, actor, "queue.job_removed", queue=queue, job_id=job_id[:200])
    return {"ok": True, "queue": queue, "id": job_id}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses=errors(*API_ERRORS, 503, text_route=True),
)
async def metrics(actor: Admin, ctx: ContextDep) -> PlainTextResponse:
    """Prometheus text format (docs/operations.md): deliveries by status and Page, Pages by
    status, campaigns by status and paused by the breaker, queue jobs, workers and their
    heartbeat age, throttles, sends and the Send API latency histogram."""
    body = render_metrics(await metrics_snapshot(ctx))
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
