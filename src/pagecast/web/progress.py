"""Campaign progress reads (`GET /api/campaigns/{id}` and its event stream): concurrent reads
of one campaign share their database work, and the send rate is counted at most once a
second per process, in the background once a first count exists (P7, docs/performance.md);
an A/B campaign's experiment report at most once per REPORT_TTL seconds (`Reports`).
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pagecast.context import AppContext
from pagecast.models import Campaign, utcnow
from pagecast.services import campaigns, due_plan, engagement, experiments, retry_rule
from pagecast.web import render

__all__ = ["RATE_TTL", "REPORT_TTL", "Coalesced", "Rates", "Reports", "read"]

RATE_TTL = 1.0
REPORT_TTL = 5.0


class Rates:
    """Each campaign's send rate over the last minute, counted at most once per RATE_TTL
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
        if time.monotonic() - cached[0] >= RATE_TTL and campaign_id not in self._counting:
            task = asyncio.ensure_future(self._count(campaign_id, count))
            self._counting[campaign_id] = task
            task.add_done_callback(functools.partial(self._counted, campaign_id))
        return cached[1]

    async def _count(self, campaign_id: int, count: Callable[[], Awaitable[float]]) -> float:
        rate = await count()
        now = time.monotonic()
        if len(self._rates) > 1000:
            self._rates = {k: v for k, v in self._rates.items() if now - v[0] < RATE_TTL}
        self._rates[campaign_id] = (now, rate)
        return rate

    def _counted(self, campaign_id: int, task: asyncio.Task[float]) -> None:
        self._counting.pop(campaign_id, None)
        _retrieve(task)  # a failed count is tried again by the next read


class Reports:
    """Each A/B campaign's experiment report (services/experiments.py `report`: a GROUP BY
    over its deliveries), computed at most once per REPORT_TTL seconds in this process: GET
    and every event stream's tick share it. A change of the campaign's status or of its
    experiment's state or winner computes it again at once, so a decision or a hand pick
    shows on the next read; only the counts may be REPORT_TTL old."""

    def __init__(self) -> None:
        # campaign id -> (computed at, what it was computed for, the report)
        self._reports: dict[int, tuple[float, tuple[Any, ...], dict[str, Any] | None]] = {}

    async def get(
        self,
        campaign: Campaign,
        compute: Callable[[], Awaitable[dict[str, Any] | None]],
    ) -> dict[str, Any] | None:
        now = time.monotonic()
        key = (campaign.status, campaign.experiment_state, campaign.winner)
        cached = self._reports.get(campaign.id)
        if cached is not None and cached[1] == key and now - cached[0] < REPORT_TTL:
            return cached[2]
        report = await compute()
        if len(self._reports) > 1000:
            self._reports = {k: v for k, v in self._reports.items() if now - v[0] < REPORT_TTL}
        self._reports[campaign.id] = (now, key, report)
        return report


class Coalesced:
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
        # This coroutine runs as the task `read` created for it.
        this = cast("asyncio.Task[dict[str, Any]]", asyncio.current_task())
        if running is not None:
            await asyncio.wait([running])
            del self._queued[campaign_id]
            self._running[campaign_id] = this
        try:
            return await compute()
        finally:
            if self._running.get(campaign_id) is this:
                del self._running[campaign_id]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # raised to the requests that wait; never "never retrieved"


class _Readers:
    """The progress readers of one app (one per AppContext, so two apps never share)."""

    def __init__(self) -> None:
        self.rates = Rates()
        self.reads = Coalesced()
        self.reports = Reports()


_READERS: weakref.WeakKeyDictionary[AppContext, _Readers] = weakref.WeakKeyDictionary()


def _readers(ctx: AppContext) -> _Readers:
    progress = _READERS.get(ctx)
    if progress is None:
        progress = _READERS[ctx] = _Readers()
    return progress


async def read(ctx: AppContext, campaign_id: int) -> dict[str, Any]:
    """The body of GET /api/campaigns/{id}, shared by concurrent reads (`Coalesced`)."""
    return await _readers(ctx).reads.read(
        campaign_id, functools.partial(_read_progress, ctx, campaign_id)
    )


async def _count_rate(ctx: AppContext, campaign_id: int) -> float:
    async with ctx.db.reading() as session:
        return await campaigns.send_rate(session, campaign_id)


async def _read_progress(ctx: AppContext, campaign_id: int) -> dict[str, Any]:
    # The rate first: a first count has its own transaction (never one inside another,
    # which SQLite would answer with "database is locked").
    rate = await _readers(ctx).rates.get(
        campaign_id, functools.partial(_count_rate, ctx, campaign_id)
    )
    async with ctx.db.reading() as session:
        campaign, page_rate = await campaigns.get_with_page_rate(session, campaign_id)
        rate, until = await campaigns.pace(session, campaign, ctx.settings.unknown_grace, rate=rate)
        engaged = await engagement.counts(session, campaign_id)  # issue 20: clicks, replies
        waiting, next_at = await due_plan.count_waiting(session, campaign, utcnow())
        body = (
            render.campaign(campaign, campaigns.counts(campaign))
            | render.progress(campaign, rate, page_rate, reconciling_until=until)
            | {"engagement": engaged}
            | {"waiting": render.waiting(waiting, next_at, campaign.last_due_at)}
            # Issue 21: the "Retry N failed" button's N, by the rule retry-failed applies.
            | {"retryable_failed": await retry_rule.count(session, campaign_id)}
        )
        if campaign.variants:  # an A/B campaign: results by variant, the decision
            body["experiment"] = await _readers(ctx).reports.get(
                campaign, functools.partial(experiments.report, session, campaign)
            )
        return body
