"""Campaigns: drafts, edits under the state machine, duplicate, audience preview."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from pagecast import actions
from pagecast.context import AppContext
from pagecast.models import CampaignStatus
from pagecast.permissions import Actor, Permission
from pagecast.schemas import CampaignCreate, CampaignUpdate, Id, Int32, Line
from pagecast.services import audience, audit, campaigns, content
from pagecast.web import openapi, render
from pagecast.web.deps import ContextDep, require
from pagecast.web.openapi import API_ERRORS, documented, errors

router = APIRouter(prefix="/api", tags=["campaigns"], responses=errors(*API_ERRORS))
_FINAL = ("completed", "cancelled")
_EVENT_INTERVAL = 1.0
_RATE_TTL = 1.0
Reader = Annotated[Actor, require(Permission.CAMPAIGNS_READ)]
Writer = Annotated[Actor, require(Permission.CAMPAIGNS_WRITE)]
Sender = Annotated[Actor, require(Permission.CAMPAIGNS_SEND)]
_ACTION = documented(openapi.CampaignOut, 409, 503)  # actions need Redis (503 without)


@router.get("/campaigns", **documented(openapi.CampaignList))
async def list_campaigns(
    actor: Reader,
    ctx: ContextDep,
    status: CampaignStatus | None = None,
    page_id: Id | None = None,
    q: Annotated[Line | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        rows = await campaigns.list_page(
            session,
            status=status,
            page_id=page_id,
            search=q,
            limit=limit,
            after_id=render.parse_cursor(cursor),
        )
        items = [render.campaign(c, campaigns.counts(c)) for c in rows]
        return {
            "items": items,
            "next_cursor": render.cursor(rows[-1].id) if len(rows) == limit else None,
        }


@router.post("/campaigns", **documented(openapi.CampaignOut, 409, status=201))
async def create_campaign(body: CampaignCreate, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        campaign = await campaigns.create(session, actor, body)
        return render.campaign(campaign, campaigns.counts(campaign))


class _Rates:
    """Each campaign's send rate over the last minute, counted at most once per _RATE_TTL
    seconds in this process, and once a first count exists, in the background: an answer
    uses the last count and never waits for the next (P7: counting a minute of sent
    deliveries takes longer than the rest of the answer, and at 100 polls a second every
    read queued behind it). GET and the event streams share it; the status and the counts
    are read fresh on every request."""

    def __init__(self) -> None:
        self._rates: dict[int, tuple[float, float]] = {}  # campaign id -> (counted at, rate)
        self._counting: dict[int, asyncio.Task[float]] = {}

    async def get(self, campaign_id: int, count: Callable[[], Awaitable[float]]) -> float:
        cached = self._rates.get(campaign_id)
        if cached is None:
            return await self._count(campaign_id, count)
        if time.monotonic() - cached[0] >= _RATE_TTL and campaign_id not in self._counting:
            task = asyncio.ensure_future(self._count(campaign_id, count))
            self._counting[campaign_id] = task
            task.add_done_callback(functools.partial(self._counted, campaign_id))
        return cached[1]

    async def _count(self, campaign_id: int, count: Callable[[], Awaitable[float]]) -> float:
        rate = await count()
        now = time.monotonic()
        if len(self._rates) > 1000:
            self._rates = {k: v for k, v in self._rates.items() if now - v[0] < _RATE_TTL}
        self._rates[campaign_id] = (now, rate)
        return rate

    def _counted(self, campaign_id: int, task: asyncio.Task[float]) -> None:
        self._counting.pop(campaign_id, None)
        _retrieve(task)  # a failed count is tried again by the next read


class _Coalesced:
    """Concurrent progress reads of one campaign share their database work (P7), without
    answering from the past: a read that arrives while one runs waits for the next one,
    which starts when the running one ends and answers every read that arrived meanwhile.
    So each answer is computed after its request arrived, as without sharing; at 100
    requests a second a campaign's progress is read about twice per read's duration
    instead of once per request."""

    def __init__(self) -> None:
        self._running: dict[int, asyncio.Task[dict[str, Any]]] = {}
        self._queued: dict[int, asyncio.Task[dict[str, Any]]] = {}

    async def read(
        self, campaign_id: int, compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        task = self._queued.get(campaign_id)
        if task is None:
            running = self._running.get(campaign_id)
            task = asyncio.ensure_future(self._run(campaign_id, running, compute))
            task.add_done_callback(_retrieve)
            (self._queued if running is not None else self._running)[campaign_id] = task
        # Shielded: a client that goes away cancels its wait, not the others' answer.
        return await asyncio.shield(task)

    async def _run(
        self,
        campaign_id: int,
        running: asyncio.Task[dict[str, Any]] | None,
        compute: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        this = asyncio.current_task()
        if running is not None:
            await asyncio.wait([running])
            del self._queued[campaign_id]
            self._running[campaign_id] = this  # type: ignore[assignment]
        try:
            return await compute()
        finally:
            if self._running.get(campaign_id) is this:
                del self._running[campaign_id]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # raised to the requests that wait; never "never retrieved"


class _Progress:
    """The progress readers of one app (one per AppContext, so two apps never share)."""

    def __init__(self) -> None:
        self.rates = _Rates()
        self.reads = _Coalesced()


_PROGRESS: weakref.WeakKeyDictionary[AppContext, _Progress] = weakref.WeakKeyDictionary()


def _progress(ctx: AppContext) -> _Progress:
    progress = _PROGRESS.get(ctx)
    if progress is None:
        progress = _PROGRESS[ctx] = _Progress()
    return progress


async def _with_progress(ctx: AppContext, campaign_id: int) -> dict[str, Any]:
    """The body of GET /api/campaigns/{id}, shared by concurrent reads (`_Coalesced`)."""
    return await _progress(ctx).reads.read(
        campaign_id, functools.partial(_read_progress, ctx, campaign_id)
    )


async def _count_rate(ctx: AppContext, campaign_id: int) -> float:
    async with ctx.db.reading() as session:
        return await campaigns.send_rate(session, campaign_id)


async def _read_progress(ctx: AppContext, campaign_id: int) -> dict[str, Any]:
    # The rate first: a first count has its own transaction (never one inside another,
    # which SQLite would answer with "database is locked").
    rate = await _progress(ctx).rates.get(
        campaign_id, functools.partial(_count_rate, ctx, campaign_id)
    )
    async with ctx.db.reading() as session:
        campaign, page_rate = await campaigns.get_with_page_rate(session, campaign_id)
        rate, until = await campaigns.pace(session, campaign, ctx.settings.unknown_grace, rate=rate)
        return render.campaign(campaign, campaigns.counts(campaign)) | render.progress(
            campaign, rate, page_rate, reconciling_until=until
        )


@router.get("/campaigns/{campaign_id}", **documented(openapi.CampaignProgressOut))
async def get_campaign(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """The campaign with its counts (O(1)), the send rate over the last minute (counted at
    most once a second per process) and an ETA."""
    return await _with_progress(ctx, campaign_id)


@router.get("/campaigns/{campaign_id}/events")
async def campaign_events(campaign_id: Id, actor: Reader, ctx: ContextDep) -> StreamingResponse:
    """Server-Sent Events: the same body as GET /api/campaigns/{id} whenever it changes,
    until the campaign is completed, cancelled or failed."""
    async with ctx.db.transaction() as session:
        await campaigns.get(session, campaign_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        idle = 0.0
        while True:
            body = await _with_progress(ctx, campaign_id)
            snapshot = json.dumps(body, sort_keys=True)
            if snapshot != last:
                last, idle = snapshot, 0.0
                yield f"event: progress\ndata: {snapshot}\n\n"
            elif idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            if body["status"] in _FINAL:
                return
            await asyncio.sleep(_EVENT_INTERVAL)
            idle += _EVENT_INTERVAL

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.patch("/campaigns/{campaign_id}", **documented(openapi.CampaignOut, 409))
async def update_campaign(
    campaign_id: Id, body: CampaignUpdate, actor: Writer, ctx: ContextDep
) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        campaign = await campaigns.update(session, actor, campaign_id, body)
        return render.campaign(campaign, campaigns.counts(campaign))


@router.delete("/campaigns/{campaign_id}", **documented(None, 409, status=204))
async def delete_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> None:
    async with ctx.db.transaction() as session:
        await campaigns.delete(session, actor, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/duplicate", **documented(openapi.CampaignOut, 409, status=201)
)
async def duplicate_campaign(campaign_id: Id, actor: Writer, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        campaign = await campaigns.duplicate(session, actor, campaign_id)
        return render.campaign(campaign, campaigns.counts(campaign))


@router.get("/campaigns/{campaign_id}/audience", **documented(openapi.PreviewOut))
async def campaign_audience(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    """Before sending: how many match, how many are eligible now, why the rest are not."""
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
        result = await audience.preview(session, campaign)
        message = None
        if result.sample is not None:
            sample = {"first_name": result.sample.first_name, "last_name": result.sample.last_name}
            message = content.to_message(
                await campaigns.effective_content(session, campaign), sample
            )
        return render.preview(result, message)


@router.get("/campaigns/{campaign_id}/audit", **documented(openapi.AuditList))
async def campaign_audit(campaign_id: Id, actor: Reader, ctx: ContextDep) -> dict[str, Any]:
    async with ctx.db.transaction() as session:
        await campaigns.get(session, campaign_id)
        rows = await audit.list_for(session, object_type="campaign", object_id=campaign_id)
        return {"items": [render.audit(r) for r in rows]}


@router.post(
    "/campaigns/{campaign_id}/start", **documented(openapi.CampaignOut, 409, 503, status=202)
)
async def start_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """Snapshot the audience and start sending; 503 (and nothing changed) when Redis is down."""
    campaign = await actions.start(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/schedule", **_ACTION)
async def schedule_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    """Start the campaign by itself at its `scheduled_at` (set it with PATCH first)."""
    campaign = await actions.schedule(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/pause", **_ACTION)
async def pause_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.pause(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/resume", **_ACTION)
async def resume_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.resume(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/cancel", **_ACTION)
async def cancel_campaign(campaign_id: Id, actor: Sender, ctx: ContextDep) -> dict[str, Any]:
    campaign = await actions.cancel(ctx, actor, campaign_id)
    return render.campaign(campaign, campaigns.counts(campaign))


@router.post("/campaigns/{campaign_id}/retry-failed", **documented(openapi.RetriedOut, 409, 503))
async def retry_failed(
    campaign_id: Id,
    actor: Sender,
    ctx: ContextDep,
    kind: Annotated[list[Line] | None, Query(max_length=20)] = None,
    code: Annotated[list[Int32] | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Send failed deliveries again; `?kind=retry&code=2` narrows which."""
    campaign, moved = await actions.retry_failed(ctx, actor, campaign_id, kinds=kind, codes=code)
    return render.campaign(campaign, campaigns.counts(campaign)) | {"retried": moved}
