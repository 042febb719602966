"""The sending worker: BullMQ job handlers, heartbeats, the periodic sweep, graceful shutdown.

A `chunk` job claims its due pending deliveries in the database, re-checks each contact,
takes a slot from the Page's limiter for every send, sends through the shared Graph client
with the delivery id as `metadata`, and writes every outcome in one bulk update. What it
claimed but did not send goes back to `pending` (attempt refunded) before the job ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bullmq import Worker as BullWorker
from bullmq.custom_errors import DelayedError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.errors import ServiceUnavailable
from pagecast.graph import (
    DEFAULT_THROTTLE_SECONDS,
    BatchMessage,
    ErrorKind,
    GraphClient,
    GraphError,
    PageCredentials,
    SendResult,
    code_text,
    is_spam_warning,
    revokes_token,
)
from pagecast.models import (
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    Page,
    utcnow,
)
from pagecast.priority_gate import PriorityGate
from pagecast.queue import (
    HEARTBEAT_PREFIX,
    JOB_CHUNK,
    JOB_PLAN,
    JOB_SCHEDULE,
    JOB_SNAPSHOT,
    JOB_WEBHOOK,
    QUEUE_NAME,
    WEBHOOK_QUEUE_NAME,
    Queue,
)
from pagecast.ratelimit import LATE_AFTER, Grant, PageLimiter, default_burst
from pagecast.schemas import Content
from pagecast.security import Vault
from pagecast.services import (
    audience,
    breaker,
    campaigns,
    content,
    deliveries,
    pacing,
    pages,
    reconcile,
    retries,
    sending,
    snapshots,
)
from pagecast.settings import Settings
from pagecast.webhook_runner import Reactions
from pagecast.webhook_runner import run as run_webhook_events
from pagecast.webhook_runner import run_pending as run_pending_webhook_events

__all__ = ["SendingWorker", "WorkerConfig", "build"]

logger = logging.getLogger(__name__)

# A limiter wait up to this long is slept inside the job; longer waits (a throttled Page)
# delay the whole job instead, so it does not hold a worker slot.
_MAX_INLINE_WAIT = 2.0
# Chunks of one Page that claim and send at once in a worker: two, so that the next is
# claimed and waiting for the Page's slots when one has sent its last.
_CHUNKS_PER_PAGE = 2
# A chunk asks the limiter for its next slots this long before they free, and the limiter
# grants slots that free within _GRANT_LEAD: the request is built meanwhile and leaves as
# its slots open, not a Redis round trip and a build later (which the Page's window would
# count as lost time at every turn of it).
_ASK_AHEAD = 0.015
_GRANT_LEAD = 0.03
# A campaign's chain of plan jobs marks itself alive for the sweep (which plans a campaign
# again only when its chain ended or stalled); a plan job waits at most _PLAN_MAX_DELAY.
_PLAN_ALIVE_PREFIX = "pagecast:plan-alive:"
_PLAN_ALIVE_TTL = 30
_PLAN_MAX_DELAY = 5.0
_BATCH_SPAN = 0.2
_DB_PATIENCE = 300.0  # seconds a worker keeps retrying a result write while the database is down
# A 613 without a regain estimate is Graph's per-second limit: the Page pauses one window
# (services/retries.py, PER_SECOND_PAUSE) and every worker lowers the Page's rate to 70 % of
# what was running, for ten minutes.
# Webhook jobs processed at once per worker (each is a few short transactions).
_WEBHOOK_JOBS = 4
_RATE_CUT = 0.7
_RATE_CAP_TTL = 600
_RATE_CAP_PREFIX = "pagecast:rl-cap:"
# Redis failing under a chunk that holds claimed deliveries: record what was sent, put the
# rest back, and try the job again this much later.
_REDIS_DOWN = (RedisError, OSError, ServiceUnavailable)
_REDIS_RETRY = 5.0


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int
    chunk_size: int
    max_attempts: int
    retry_base: float
    retry_cap: float
    heartbeat_ttl: int
    shutdown_grace: float
    breaker_consecutive: int
    breaker_ratio: float
    breaker_window: int
    max_schedule_lateness: float = 3600.0
    # Messages per Send request (1: one request each; up to 50: one Graph batch request).
    send_batch: int = 1
    sweep_seconds: float = 15.0
    # Webhook events still unprocessed this long after arrival are retried by the sweep.
    webhook_retry_after: float = 30.0
    # Seconds an `unknown` delivery waits for its echo before it is reconciled.
    unknown_grace: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int | None = None) -> WorkerConfig:
        return cls(
            concurrency=concurrency or settings.worker_concurrency,
            chunk_size=settings.chunk_size,
            max_attempts=settings.max_attempts,
            retry_base=settings.retry_base_seconds,
            retry_cap=settings.retry_cap_seconds,
            heartbeat_ttl=settings.worker_heartbeat_ttl,
            shutdown_grace=settings.shutdown_grace_seconds,
            breaker_consecutive=settings.breaker_consecutive_bad,
            breaker_ratio=settings.breaker_failure_ratio,
            breaker_window=settings.breaker_window,
            max_schedule_lateness=settings.max_schedule_lateness,
            send_batch=settings.send_batch_size,
            sweep_seconds=settings.sweep_seconds,
            webhook_retry_after=settings.webhook_retry_seconds,
            unknown_grace=settings.unknown_grace,
        )


class _InFlight:
    """Messages in flight in one worker (`worker_concurrency`), taken a request's worth at
    a time: one for a single send, the whole batch for a batch request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def take(self, n: int) -> int:
        """Wait until `n` (at most the limit) are free and take them; returns how many."""
        n = min(n, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        return n

    async def give_back(self, n: int) -> None:
        async with self._changed:
            self.used -= n
            self._changed.notify_all()


class _Stop(Exception):
    """The chunk must stop sending: the Page stopped, the campaign paused, or shutdown."""


class SendingWorker:
    def __init__(
        self,
        *,
        db: Database,
        vault: Vault,
        graph: GraphClient,
        queue: Queue,
        limiter: PageLimiter,
        config: WorkerConfig,
        app_secret: str | None = None,
    ) -> None:
        self.db, self.vault, self.graph, self.queue, self.limiter = db, vault, graph, queue, limiter
        self.config = config
        self.app_secret = app_secret
        # Profile lookups, opt-out confirmations and plans of resumed campaigns that follow
        # webhook events.
        self.reactions = Reactions(
            graph=graph, vault=vault, app_secret=app_secret, replan=self._replan
        )
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = asyncio.Event()
        self._in_flight = _InFlight(config.concurrency)
        # Consecutive bad requests per campaign as answers arrive, so the breaker can stop
        # sends mid-chunk; the campaign row keeps the durable count.
        self._bad_streak: dict[int, int] = {}
        self._last_progress: dict[int, tuple[int, ...]] = {}
        # A Page's chunks that may hold claims at once in this worker (`_chunk`), and the
        # Page of each campaign seen (it never changes).
        self._page_gates: dict[int, PriorityGate] = {}
        self._page_of: dict[int, int] = {}
        self._started_at = utcnow().isoformat()
        self._bull: BullWorker | None = None
        self._bull_webhooks: BullWorker | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, install_signals: bool = True) -> None:
        """Process jobs until SIGTERM/SIGINT (or `stopping` is set), then shut down gracefully."""
        await self.queue.redis()
        self._bull = BullWorker(
            QUEUE_NAME,
            self.process,
            {
                "connection": self.queue.target.connection_kwargs(),
                # Room for several Pages' chunks at once: a chunk that waits for its Page's
                # limiter holds a slot, not a send.
                "concurrency": max(8, 4 * -(-self.config.concurrency // self.config.chunk_size)),
                "lockDuration": 30_000,
                "stalledInterval": 15_000,
                "drainDelay": 1,
                "autorun": False,
            },
        )
        # Webhook events on their own queue and job slots (queue.WEBHOOK_QUEUE_NAME).
        self._bull_webhooks = BullWorker(
            WEBHOOK_QUEUE_NAME,
            self.process,
            {
                "connection": self.queue.target.connection_kwargs(),
                "concurrency": _WEBHOOK_JOBS,
                "lockDuration": 30_000,
                "stalledInterval": 15_000,
                "drainDelay": 1,
                "autorun": False,
            },
        )
        for bull in (self._bull, self._bull_webhooks):
            bull.on("failed", lambda job, err: logger.warning("job %s failed (%s)", job.id, err))
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
        # Alive before the first claim: other workers' sweeps treat claims of a worker without
        # a heartbeat as lost.
        await self._beat()
        logger.info("worker %s started (concurrency %d)", self.id, self.config.concurrency)
        runner = asyncio.create_task(self._bull.run())
        helpers = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._bull_webhooks.run()),
        ]
        await self.stopping.wait()
        logger.info("worker %s stopping: finishing in-flight sends", self.id)
        try:
            await asyncio.wait_for(
                asyncio.gather(self._bull.close(), self._bull_webhooks.close()),
                timeout=self.config.shutdown_grace,
            )
        except TimeoutError:
            logger.warning("worker %s: grace period over, forcing close", self.id)
            for bull in (self._bull, self._bull_webhooks):
                try:  # bounded too: with Redis gone, even a forced close can wait forever
                    await asyncio.wait_for(bull.close(force=True), timeout=5)
                except Exception:
                    logger.warning("worker %s: the queue did not close", self.id, exc_info=True)
        for task in (runner, *helpers):
            task.cancel()
        await asyncio.gather(runner, *helpers, return_exceptions=True)
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        try:
            await (await self.queue.redis()).delete(HEARTBEAT_PREFIX + self.id)
        except Exception:
            logger.debug("could not remove the heartbeat", exc_info=True)
        logger.info("worker %s shut down", self.id)

    async def _beat(self) -> None:
        beat = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started_at,
            "last_heartbeat": utcnow().isoformat(),
            "in_flight": self._in_flight.used,
        }
        redis = await self.queue.redis()
        await redis.set(HEARTBEAT_PREFIX + self.id, json.dumps(beat), ex=self.config.heartbeat_ttl)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.config.heartbeat_ttl / 3))
            try:
                await self._beat()
            except Exception:
                logger.warning("heartbeat failed; trying again", exc_info=True)

    async def _sweep(self) -> None:
        """Backstop: every sending campaign has a plan job (deduplicated by its id), and due
        scheduled campaigns start even if their delayed job was lost."""
        while True:
            try:
                async with self.db.transaction() as session:
                    rows = list(
                        await session.execute(
                            select(
                                Campaign.id,
                                Campaign.priority,
                                Campaign.page_id,
                                Campaign.n_pending,
                                Campaign.n_sending,
                                Campaign.n_sent,
                            ).where(Campaign.status == CampaignStatus.SENDING)
                        )
                    )
                    due = await sending.due_schedules(session, utcnow())
                    # No progress is expected while the queue is paused or the Page throttled.
                    watching = not await (await self.queue.bull()).isPaused()
                    stalled = {
                        campaign_id
                        for campaign_id, _, page_id, *progress in rows
                        if watching
                        and self._last_progress.get(campaign_id) == tuple(progress)
                        and progress[0] > 0
                        and await self.limiter.throttled_for(page_id) <= 0
                        and await deliveries.has_due_pending(session, campaign_id, utcnow())
                    }
                redis = self.queue.lazy_redis()
                for campaign_id, priority, _page_id, *progress in rows:
                    self._last_progress[campaign_id] = tuple(progress)
                    # A campaign with due work that did not move since the last sweep has lost
                    # its jobs (or they are stuck): plan it again under new job ids. One
                    # whose plan jobs go on needs nothing (a second chain would queue twice
                    # its share of chunks).
                    round_ = int(time.time()) if campaign_id in stalled else 0
                    if round_:
                        logger.warning(
                            "campaign %d made no progress; planning it again", campaign_id
                        )
                    elif await redis.exists(_PLAN_ALIVE_PREFIX + str(campaign_id)):
                        continue
                    await self.queue.enqueue_plan(
                        campaign_id, priority=priority.value, round_=round_
                    )
                if due:
                    await self._start_due(due)
                await self._recover_lost_claims()
                await self._reconcile_unknown()
                await run_pending_webhook_events(
                    self.db, older_than=self.config.webhook_retry_after, reactions=self.reactions
                )
            except Exception:
                logger.warning(
                    "sweep failed; trying again in %.0f s", self.config.sweep_seconds, exc_info=True
                )
            await asyncio.sleep(self.config.sweep_seconds)

    # ------------------------------------------------------------------ jobs

    async def process(self, job: Any, token: str) -> Any:
        if job.name == JOB_PLAN:
            data = job.data
            return await self._plan(
                int(data["campaign_id"]),
                int(data["after_id"]),
                int(data.get("round", 0)),
                None if data.get("since") is None else int(data["since"]),
                int(data.get("step", 0)),
            )
        if job.name == JOB_SCHEDULE:
            return await self._start_due([int(job.data["campaign_id"])])
        if job.name == JOB_SNAPSHOT:
            return await self._snapshot(int(job.data["campaign_id"]), int(job.data["upto"]))
        if job.name == JOB_CHUNK:
            data = job.data
            return await self._chunk(
                job, token, int(data["campaign_id"]), int(data["first_id"]), int(data["last_id"])
            )
        if job.name == JOB_WEBHOOK:
            ids = [int(i) for i in job.data["event_ids"]]
            return await run_webhook_events(self.db, ids, self.reactions)
        raise ValueError(f"unknown job {job.name!r}")

    async def _replan(self, campaign_id: int, priority: str) -> None:
        await self.queue.enqueue_plan(campaign_id, priority=priority)

    async def _recover_lost_claims(self) -> None:
        """Deliveries claimed by a worker whose heartbeat expired (it died) become `unknown`."""
        redis = await self.queue.redis()
        live = {
            key.removeprefix(HEARTBEAT_PREFIX)
            async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*")
        }
        live.add(self.id)
        async with self.db.transaction() as session:
            moved = await deliveries.lost_claims(session, live, utcnow())
            for campaign_id in moved:
                await sending.finish_if_done(session, campaign_id)
        for campaign_id, count in moved.items():
            if not count:
                continue  # their echoes had arrived: they are sent
            logger.warning(
                "campaign %d: %d deliveries claimed by a dead worker are now unknown",
                campaign_id,
                count,
            )

    async def _reconcile_unknown(self) -> None:
        """Decide `unknown` deliveries past their grace period (services/reconcile.py) and
        complete or re-plan their campaigns."""
        async with self.db.transaction() as session:
            done = await reconcile.reconcile(
                session, utcnow(), timedelta(seconds=self.config.unknown_grace)
            )
            for campaign_id in done.campaigns:
                await sending.finish_if_done(session, campaign_id)
            resend = {
                campaign_id: priority
                for campaign_id, priority in await session.execute(
                    select(Campaign.id, Campaign.priority).where(
                        Campaign.id.in_(list(done.resent)),
                        Campaign.status == CampaignStatus.SENDING,
                    )
                )
            }
        for campaign_id, count in done.failed.items():
            logger.warning(
                "campaign %d: %d unknown deliveries could not be proven and failed (ambiguous)",
                campaign_id,
                count,
            )
        for campaign_id, priority in resend.items():
            logger.info(
                "campaign %d: %d unknown deliveries proven never sent; sending them once more",
                campaign_id,
                done.resent[campaign_id],
            )
            await self.queue.enqueue_plan(
                campaign_id, priority=priority.value, round_=int(time.time())
            )

    async def _start_due(self, campaign_ids: Sequence[int]) -> str:
        """Start the given scheduled campaigns whose time has come (or flag them missed)."""
        started = []
        for campaign_id in campaign_ids:
            async with self.db.transaction() as session:
                campaign = await sending.start_scheduled(
                    session,
                    campaign_id,
                    now=utcnow(),
                    max_lateness_s=self.config.max_schedule_lateness,
                )
            if campaign is not None:
                await self.queue.enqueue_plan(campaign.id, priority=campaign.priority.value)
                logger.info(
                    "campaign %d started on schedule (%d deliveries)",
                    campaign.id,
                    campaign.n_pending,
                )
                started.append(campaign.id)
        return f"started {started}"

    async def _snapshot(self, campaign_id: int, upto: int) -> str:
        """Insert the rest of a large audience, one slice per transaction (snapshots.insert_slice);
        a restarted job goes on from the last slice written."""
        async with self.db.transaction() as session:
            after = await snapshots.resume_point(session, campaign_id)
        while after < upto:
            async with self.db.transaction() as session:
                after = await snapshots.insert_slice(session, campaign_id, after=after, upto=upto)
        async with self.db.transaction() as session:
            await snapshots.finish(session, campaign_id)
            await sending.finish_if_done(session, campaign_id)
        await self.queue.snapshot_finished(campaign_id)
        return f"snapshot of campaign {campaign_id} complete"

    async def _plan(
        self,
        campaign_id: int,
        after_id: int,
        round_: int = 0,
        since: int | None = None,
        step: int = 0,
    ) -> str:
        """Queue the next `plan_ahead` chunks of pending deliveries after `after_id`, once
        the chunks planned before them (deliveries in (since, after_id]) are mostly under
        way, and plan again about when half of these should be."""
        async with self.db.transaction() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status is not CampaignStatus.SENDING:
                return "not sending"
            rate = await self._capped(
                campaign.page_id, await pacing.effective_rate(session, campaign)
            )
            chunk_size = pacing.chunk_for(rate, self.config.chunk_size)
            ahead = pacing.plan_ahead(rate, chunk_size)
            priority = campaign.priority.value
            queued = 0
            if since is not None:
                queued = await deliveries.count_queued(
                    session, campaign_id, after_id=since, upto=after_id, now=utcnow()
                )
            ranges: list[tuple[int, int]] = []
            if 2 * queued <= ahead * chunk_size:
                ranges = await deliveries.pending_ranges(
                    session,
                    campaign_id,
                    after_id=after_id,
                    chunk_size=chunk_size,
                    max_chunks=ahead,
                )
                if not ranges:
                    await sending.finish_if_done(session, campaign_id)
        redis = self.queue.lazy_redis()
        if 2 * queued > ahead * chunk_size:
            # The Page (or the workers) has not caught up with what was queued: look again
            # when about half of it should be under way.
            await redis.set(_PLAN_ALIVE_PREFIX + str(campaign_id), "1", ex=_PLAN_ALIVE_TTL)
            await self.queue.enqueue_plan(
                campaign_id,
                after_id=after_id,
                since=since,
                priority=priority,
                delay_s=min(_PLAN_MAX_DELAY, max(0.1, queued / rate / 2)),
                round_=round_,
                step=step + 1,
            )
            return f"{queued} deliveries still queued"
        await self.queue.enqueue_chunks(campaign_id, ranges, priority=priority, round_=round_)
        last = ranges[-1][1] if ranges else after_id
        if len(ranges) < ahead and await self.queue.snapshotting(campaign_id):
            # More of the audience is still being inserted: look again shortly (a new job id,
            # since this one is still active).
            await redis.set(_PLAN_ALIVE_PREFIX + str(campaign_id), "1", ex=_PLAN_ALIVE_TTL)
            await self.queue.enqueue_plan(
                campaign_id,
                after_id=last,
                since=after_id if ranges else since,
                priority=priority,
                delay_s=0.5,
                round_=round_ + 1,
            )
        elif len(ranges) == ahead:
            await redis.set(_PLAN_ALIVE_PREFIX + str(campaign_id), "1", ex=_PLAN_ALIVE_TTL)
            await self.queue.enqueue_plan(
                campaign_id,
                after_id=last,
                since=after_id,
                priority=priority,
                delay_s=min(_PLAN_MAX_DELAY, ahead * chunk_size / rate / 2),
                round_=round_,
            )
        else:  # everything pending is queued: the sweep plans again if work comes back
            await redis.delete(_PLAN_ALIVE_PREFIX + str(campaign_id))
        logger.info(
            "campaign %d: planned %d chunks after delivery %d", campaign_id, len(ranges), after_id
        )
        return f"{len(ranges)} chunks"

    async def _chunk(
        self, job: Any, token: str, campaign_id: int, first_id: int, last_id: int
    ) -> str:
        """Claim the chunk's due deliveries and send them as the Page's limiter allows.

        At most `_CHUNKS_PER_PAGE` chunks of one Page claim and send at once in a worker;
        the others wait unclaimed. A claim is a promise to send soon: deliveries claimed
        while their Page's slots go to other chunks would wait in `sending`, and a worker
        that died then would leave them to reconciliation instead of back in the queue.
        """
        page_id = self._page_of.get(campaign_id)
        if page_id is None:
            async with self.db.transaction() as session:
                page_id = await session.scalar(
                    select(Campaign.page_id).where(Campaign.id == campaign_id)
                )
            if page_id is None:
                return "not sending"
            self._page_of[campaign_id] = page_id
        gate = self._page_gates.setdefault(page_id, PriorityGate(_CHUNKS_PER_PAGE))
        # The job's queue priority decides who claims next (a high-priority campaign's
        # chunk goes before the normal chunks already waiting here).
        priority = int(getattr(job, "priority", 0) or 0)
        await gate.acquire(priority)
        held = True

        def let_next_claim() -> None:
            nonlocal held
            if held:
                held = False
                gate.release(priority)

        try:
            return await self._claim_and_send(
                job, token, campaign_id, first_id, last_id, let_next_claim
            )
        finally:
            let_next_claim()

    async def _claim_and_send(
        self,
        job: Any,
        token: str,
        campaign_id: int,
        first_id: int,
        last_id: int,
        let_next_claim: Callable[[], None],
    ) -> str:
        now = utcnow()
        async with self.db.transaction() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status is not CampaignStatus.SENDING:
                return "not sending"
            if campaign.bad_streak == 0:  # a resume cleared the breaker
                self._bad_streak.pop(campaign_id, None)
            claimed = await deliveries.claim(
                session, campaign_id, first_id, last_id, worker_id=self.id, now=now
            )
            if not claimed:
                await self._schedule_retry(session, campaign, first_id, last_id)
                await sending.finish_if_done(session, campaign_id)
                return "nothing due"
            page = await session.get(Page, campaign.page_id)
            assert page is not None
            message = await campaigns.effective_content(session, campaign)
            token_, page_secret = pages.credentials(self.vault, page)
        creds = PageCredentials(token_, page_secret or self.app_secret)
        configured = pacing.rate_within(page.send_rate, campaign.send_rate)
        rate = await self._capped(page.id, configured)
        delay_job_for = 0.0
        outcomes: list[deliveries.Outcome] = []
        sends: list[deliveries.Claimed] = []
        for item in claimed:
            verdict = self._precheck(campaign, item.recipient, now)
            if verdict is None:
                sends.append(item)
            else:
                outcomes.append(dataclasses.replace(verdict, delivery_id=item.delivery_id))
        tasks: list[asyncio.Task[list[deliveries.Outcome]]] = []
        released: list[int] = []
        halt = asyncio.Event()  # set by a send whose answer throttled or stopped the Page
        last_check = time.monotonic()
        index = 0
        while index < len(sends):
            # At most a fifth of a second of the rate per batch, so a slow Page is still paced
            # in small steps (and pause acts between them).
            batch = max(1, min(self.config.send_batch, int(rate * _BATCH_SPAN)))
            burst = max(default_burst(rate), batch)
            if time.monotonic() - last_check > 1.0:  # pause and cancel act within a second
                last_check = time.monotonic()
                if not await self._still_sending(campaign_id):
                    halt.set()
            if self._bad_streak.get(campaign_id, 0) >= self.config.breaker_consecutive:
                halt.set()
            if halt.is_set() or self.stopping.is_set():
                released = [i.delivery_id for i in sends[index:]]
                break
            if campaigns.expired(campaign, utcnow()):
                outcomes += [
                    deliveries.Outcome(
                        i.delivery_id, DeliveryStatus.EXPIRED, reason="expired", refund_attempt=True
                    )
                    for i in sends[index:]
                ]
                break
            # Room in flight first, then the Page's slots, so that what the limiter grants
            # goes on the wire as its slots open (a grant that waited here could land in
            # Graph's next second with the slots granted after it). The limiter grants a
            # whole batch at once, up to _GRANT_LEAD ahead, or says when it can.
            want = await self._in_flight.take(min(batch, len(sends) - index))
            try:
                grant = await self.limiter.take(
                    page.id, rate, want, burst=burst, least=want, lead=_GRANT_LEAD
                )
            except _REDIS_DOWN as exc:
                logger.warning(
                    "campaign %d: Redis failed under the limiter (%s); %d deliveries go back",
                    campaign_id,
                    exc,
                    len(sends) - index,
                )
                grant = Grant(0, _REDIS_RETRY)
            granted, wait = grant.granted, grant.wait
            if granted < want:
                await self._in_flight.give_back(want - granted)
            if not granted and wait <= _MAX_INLINE_WAIT:
                # Ask again a little before the slots free, so they are granted with a lead;
                # a shorter wait is a throttle's last moments (no lead for those).
                await asyncio.sleep(wait - _ASK_AHEAD if wait > _GRANT_LEAD else wait)
                rate = await self._capped(page.id, configured)  # another worker saw a 613
                continue  # and look at pause, cancel and shutdown again
            if not granted:
                released = [i.delivery_id for i in sends[index:]]
                delay_job_for = wait
                break
            group = sends[index : index + granted]
            index += granted
            tasks.append(
                asyncio.create_task(
                    self._send(
                        creds,
                        campaign,
                        message,
                        group,
                        halt,
                        rate=rate,
                        grant=grant,
                        leaves_at=time.monotonic() + wait,
                    )
                )
            )
        # Everything this chunk sends is on its way: the Page's next chunk may claim while
        # these answers come in and their results are written.
        let_next_claim()
        sent_outcomes = [o for answers in await asyncio.gather(*tasks) for o in answers]
        outcomes += sent_outcomes
        outcomes += [
            deliveries.Outcome(i, DeliveryStatus.PENDING, refund_attempt=True) for i in released
        ]
        regain = [
            o.retry_after or DEFAULT_THROTTLE_SECONDS
            for o in sent_outcomes
            if o.error_kind == ErrorKind.THROTTLE.value
        ]
        if regain:
            delay_job_for = max(delay_job_for, *regain)
        await self._finish_chunk(job, token, campaign, page, claimed, outcomes, first_id, last_id)
        if delay_job_for or (released and self.stopping.is_set()):
            await job.moveToDelayed(int((time.time() + delay_job_for) * 1000), token)
            raise DelayedError()
        return f"{len(sent_outcomes)} sent or tried, {len(released)} released"

    def _precheck(
        self, campaign: Campaign, person: deliveries.Recipient, now: datetime
    ) -> deliveries.Outcome | None:
        """Re-check at send time what may have changed since the snapshot (invariant 7)."""
        if campaigns.expired(campaign, now):
            return deliveries.Outcome(
                0, DeliveryStatus.EXPIRED, reason="expired", refund_attempt=True
            )
        reason = audience.excluded_now(person, campaign.messaging_type, now)
        if reason is not None:
            return deliveries.Outcome(0, DeliveryStatus.SKIPPED, reason=reason, refund_attempt=True)
        return None

    async def _still_sending(self, campaign_id: int) -> bool:
        try:
            async with self.db.transaction() as session:
                status = await session.scalar(
                    select(Campaign.status).where(Campaign.id == campaign_id)
                )
        except (DBAPIError, OSError):
            # Database unreachable mid-chunk: keep going; the results wait for it (_until_written).
            return True
        return status is CampaignStatus.SENDING

    async def _send(
        self,
        creds: PageCredentials,
        campaign: Campaign,
        message: Content,
        group: Sequence[deliveries.Claimed],
        halt: asyncio.Event,
        *,
        rate: float,
        grant: Grant,
        leaves_at: float,
    ) -> list[deliveries.Outcome]:
        """Send `group`, its in-flight room and limiter slots (`grant`, whose slots start at
        `leaves_at` on the monotonic clock) already taken: one request for one message, one
        Graph batch request for several, written no earlier than `leaves_at`. Each message
        gets its own outcome; a failure of the whole request (transport, token) is the
        answer for each message."""
        answers: Sequence[SendResult | GraphError]
        started = time.perf_counter()
        redate: asyncio.Task[None] | None = None
        try:
            batch = [
                BatchMessage(
                    psid=item.recipient.psid,
                    message=content.to_message(
                        message,
                        {
                            "first_name": item.recipient.first_name,
                            "last_name": item.recipient.last_name,
                        },
                    ),
                    messaging_type=campaign.messaging_type.value,
                    tag=campaign.tag,
                    metadata=str(item.delivery_id),
                )
                for item in group
            ]

            def sent() -> None:
                # Written late after the grant (a busy event loop), or a batch: the limiter's
                # window must count these calls from when Graph got them.
                nonlocal redate, started
                started = time.perf_counter()  # Graph's latency counts from here, not the hold
                late = time.monotonic() - leaves_at > LATE_AFTER
                if redate is None and (len(group) > 1 or late):
                    redate = asyncio.create_task(self._left(campaign.page_id, grant))

            if len(batch) == 1:
                one = batch[0]
                answers = [
                    await self.graph.send_message(
                        creds,
                        psid=one.psid,
                        message=one.message,
                        messaging_type=one.messaging_type,
                        tag=one.tag,
                        metadata=one.metadata,
                        on_sent=sent,
                        not_before=leaves_at,
                    )
                ]
            else:
                answers = await self.graph.send_batch(
                    creds, batch, on_sent=sent, not_before=leaves_at
                )
        except GraphError as exc:
            answers = [exc] * len(group)
        finally:
            await self._in_flight.give_back(len(group))
            if redate is not None:
                await redate
        latency = time.perf_counter() - started
        answered = utcnow()  # when Facebook accepted what it accepted (as close as we know)
        outcomes = [
            await self._outcome(
                campaign, item, answer, halt, rate=rate, latency=latency, answered=answered
            )
            for item, answer in zip(group, answers, strict=True)
        ]
        usage = max(
            (a.usage.max_percent for a in answers if isinstance(a, SendResult) and a.usage.present),
            default=0.0,
        )
        if usage >= 90:
            try:
                await self.limiter.note_usage(campaign.page_id, usage)
            except _REDIS_DOWN:  # the send's result matters more than the slowdown
                logger.warning("page %d: could not note usage, Redis failed", campaign.page_id)
        return outcomes

    async def _outcome(
        self,
        campaign: Campaign,
        item: deliveries.Claimed,
        answer: SendResult | GraphError,
        halt: asyncio.Event,
        *,
        rate: float,
        latency: float,
        answered: datetime,
    ) -> deliveries.Outcome:
        """One message's answer as its delivery's outcome; an error also acts on the Page and
        on the campaign's breaker."""
        if isinstance(answer, SendResult):
            self._bad_streak[campaign.id] = 0
            return deliveries.Outcome(
                item.delivery_id,
                DeliveryStatus.SENT,
                message_id=answer.message_id,
                sent_at=answered,
                latency=latency,
            )
        if answer.kind in (ErrorKind.THROTTLE, ErrorKind.STOP_PAGE):
            halt.set()
        if answer.per_second_limit:
            await self._slow_page(campaign.page_id, rate)
        if answer.kind is ErrorKind.BAD_REQUEST:
            self._bad_streak[campaign.id] = self._bad_streak.get(campaign.id, 0) + 1
        return dataclasses.replace(self._failure(item, answer), latency=latency)

    async def _left(self, page_id: int, grant: Grant) -> None:
        try:
            await self.limiter.left(page_id, grant)
        except _REDIS_DOWN:  # the 20 ms the window allows for lateness is all there is
            logger.warning("page %d: could not re-date a late grant, Redis failed", page_id)

    async def _capped(self, page_id: int, rate: float) -> float:
        """`rate`, or lower while a recent 613 has capped the Page's rate (`_slow_page`)."""
        try:
            cap = await self.queue.lazy_redis().get(_RATE_CAP_PREFIX + str(page_id))
        except _REDIS_DOWN:
            return rate  # the limiter fails too, and puts the chunk back
        return rate if cap is None else min(rate, float(cap))

    async def _slow_page(self, page_id: int, rate: float) -> None:
        """Lower the Page's rate for every worker, at most once a second (one burst of 613s
        is one cut), and pause the Page for every worker for the rest of Graph's window."""
        redis = self.queue.lazy_redis()
        lowered = max(1.0, rate * _RATE_CUT)
        try:
            if not await redis.set(f"{_RATE_CAP_PREFIX}{page_id}:cut", "1", nx=True, px=1000):
                return
            current = await redis.get(_RATE_CAP_PREFIX + str(page_id))
            if current is not None:  # a chunk that started before the last cut
                lowered = min(lowered, max(1.0, float(current) * _RATE_CUT))
            await redis.set(_RATE_CAP_PREFIX + str(page_id), f"{lowered:.3f}", ex=_RATE_CAP_TTL)
            await self.limiter.throttle(page_id, retries.PER_SECOND_PAUSE, "Graph error 613")
        except _REDIS_DOWN:
            return  # the Page's throttle (or the next 613) slows it down
        logger.warning(
            "page %d: Graph per-second limit (613); rate lowered to %.1f/s", page_id, lowered
        )

    def _failure(self, item: deliveries.Claimed, exc: GraphError) -> deliveries.Outcome:
        """Turn a classified Graph error into the delivery's next state (services/retries.py)."""
        failure = retries.Failure(
            kind=exc.kind.value,
            code=exc.code,
            subcode=exc.subcode,
            message=exc.message,
            fbtrace_id=exc.fbtrace_id,
            regain_seconds=exc.regain_seconds,
            per_second_limit=exc.per_second_limit,
        )
        policy = retries.RetryPolicy(
            self.config.max_attempts, self.config.retry_base, self.config.retry_cap
        )
        return retries.after_failure(item.delivery_id, item.attempts, failure, policy, now=utcnow())

    async def _finish_chunk(
        self,
        job: Any,
        token: str,
        campaign: Campaign,
        page: Page,
        claimed: Sequence[deliveries.Claimed],
        outcomes: list[deliveries.Outcome],
        first_id: int,
        last_id: int,
    ) -> None:
        now = utcnow()
        contact_of = {c.delivery_id: c.contact_id for c in claimed}
        throttles = [o for o in outcomes if o.error_kind == ErrorKind.THROTTLE.value]
        stops = [o for o in outcomes if o.error_kind == ErrorKind.STOP_PAGE.value]
        if throttles:
            regain = max(o.retry_after or DEFAULT_THROTTLE_SECONDS for o in throttles)
            try:
                await self.limiter.throttle(
                    page.id, regain, f"Graph error {throttles[0].error_code}"
                )
            except _REDIS_DOWN:  # the results must still be written
                logger.warning("page %d: could not throttle, Redis failed", page.id)

        async def write() -> None:
            nonlocal outcomes
            async with self.db.transaction() as session:
                status = await session.scalar(
                    select(Campaign.status).where(Campaign.id == campaign.id)
                )
                if status is CampaignStatus.CANCELLED:
                    # Cancelled while this chunk held them: what it did not send ends cancelled too.
                    outcomes = [
                        dataclasses.replace(o, status=DeliveryStatus.CANCELLED, reason="cancelled")
                        if o.status is DeliveryStatus.PENDING
                        else o
                        for o in outcomes
                    ]
                # Contacts before deliveries before the campaign row: the order webhook
                # batches take them in too (record locks the people first).
                await deliveries.record(session, campaign.id, outcomes, worker_id=self.id, now=now)
                unreachable = [
                    contact_of[o.delivery_id]
                    for o in outcomes
                    if o.reason == "recipient_unreachable"
                ]
                await deliveries.mark_unreachable(session, unreachable, now)
                if stops:
                    code = stops[0]
                    status = pages.stopped_status(revokes_token(code.error_code))
                    reason = f"{code.error_message} (code {code_text(code.error_code, code.error_subcode)})"
                    await sending.stop_page(session, page.id, status, reason)
                    logger.warning("page %d stopped: %s", page.id, reason)
                await self._breaker(session, campaign.id, outcomes)
                if not (throttles or stops or self.stopping.is_set()):
                    await self._schedule_retry(session, campaign, first_id, last_id)
                await sending.finish_if_done(session, campaign.id)

        # The messages are out: their results must land even if the database blips.
        await self._until_written(write)
        logger.info(
            "campaign %d: chunk %d-%d done (%s)",
            campaign.id,
            first_id,
            last_id,
            ", ".join(f"{s.value} {n}" for s, n in sorted(_count(outcomes).items())),
        )
        try:
            await self.queue.record_metrics(
                page.fb_page_id,
                latencies=[o.latency for o in outcomes if o.latency is not None],
                outcomes={k.value: n for k, n in _count(outcomes).items()},
                throttled=bool(throttles),
            )
        except Exception:
            logger.debug("metrics not recorded", exc_info=True)

    async def _until_written(self, write: Callable[[], Awaitable[None]]) -> None:
        """Run a result write, retrying with backoff while the database is unreachable."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                await write()
                return
            except (DBAPIError, OSError) as exc:
                if isinstance(exc, DBAPIError) and _is_conflict(exc):
                    # A deadlock victim or a serialisation failure: rolled back, run it again.
                    logger.info("result write conflicted (%s); writing it again", exc.orig)
                    await asyncio.sleep(random.random() * 0.1)
                    continue
                if (
                    isinstance(exc, DBAPIError)
                    and not exc.connection_invalidated
                    and not _is_disconnect(exc)
                ):
                    raise
                if waited > _DB_PATIENCE:
                    raise
                logger.warning(
                    "database unavailable (%s); retrying the result write in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 8.0)

    async def _breaker(
        self, session: Any, campaign_id: int, outcomes: Sequence[deliveries.Outcome]
    ) -> None:
        """Pause the campaign when Facebook warned it looks like spam, or when its requests
        keep being refused (services/breaker.py); the pause is audited."""
        warned = next((o for o in outcomes if is_spam_warning(o.error_code, o.error_subcode)), None)
        if warned is not None:
            # Its deliveries are back to pending with the attempt refunded (a throttle):
            # a resume sends them.
            reason = await breaker.stop(
                session,
                campaign_id,
                "Facebook warned that this campaign's messages could be seen as spam "
                f"(Graph error 613/2018338): {warned.error_message}. Check the content and "
                "audience, then resume.",
            )
        else:
            reason = await breaker.check(
                session,
                campaign_id,
                outcomes,
                consecutive=self.config.breaker_consecutive,
                ratio=self.config.breaker_ratio,
                window=self.config.breaker_window,
            )
        if reason:
            logger.warning("campaign %d paused: %s", campaign_id, reason)

    async def _schedule_retry(
        self, session: Any, campaign: Campaign, first_id: int, last_id: int
    ) -> None:
        due = await retries.next_retry_due(session, campaign.id, first_id, last_id)
        if due is not None:
            delay = max(0.0, (due - utcnow()).total_seconds())
            try:
                await self.queue.enqueue_chunks(
                    campaign.id,
                    [(first_id, last_id)],
                    priority=campaign.priority.value,
                    delay_s=delay + 0.05,
                    round_=int(due.timestamp() * 1000),
                )
            except _REDIS_DOWN:  # the periodic sweep re-plans the pending deliveries
                logger.warning("campaign %d: retry round not enqueued, Redis failed", campaign.id)


def _is_conflict(exc: DBAPIError) -> bool:
    """PostgreSQL's deadlock_detected (40P01) and serialization_failure (40001)."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    text = str(exc.orig).lower()
    return code in ("40P01", "40001") or "deadlock detected" in text


def _is_disconnect(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(
        word in text
        for word in (
            "connect",
            "closed",
            "terminat",
            "shut",
            "refused",
            "reset",
            "starting up",
            "recovery",
        )
    )


def build(ctx: AppContext, *, concurrency: int | None = None) -> SendingWorker:
    """A worker on the context's database, Graph client and queue."""
    settings = ctx.settings
    return SendingWorker(
        db=ctx.db,
        vault=ctx.vault,
        graph=ctx.graph,
        queue=ctx.queue,
        limiter=ctx.limiter,
        config=WorkerConfig.from_settings(settings, concurrency=concurrency),
        app_secret=settings.app_secret.get_secret_value() if settings.app_secret else None,
    )


def _count(outcomes: Sequence[deliveries.Outcome]) -> dict[DeliveryStatus, int]:
    result: dict[DeliveryStatus, int] = {}
    for outcome in outcomes:
        result[outcome.status] = result.get(outcome.status, 0) + 1
    return result
