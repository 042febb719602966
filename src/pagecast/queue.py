"""The sending queue: BullMQ on Redis, connected on first use.

Jobs carry ids, never recipients or content (docs/design.md invariant 1): a `chunk` job names a
campaign and a range of delivery ids; a `plan` job enqueues a campaign's chunks a page at
a time, so a million-contact campaign starts sending before its last chunk is queued. Job
ids are deterministic, so a double click or a replay enqueues nothing twice; the claim in
the database, not the queue, decides what is sent.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from bullmq import Queue as BullQueue
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from pagecast.errors import ServiceUnavailable
from pagecast.jobs import (
    JOB_CHUNK,
    JOB_PLAN,
    JOB_SCHEDULE,
    JOB_SNAPSHOT,
    JOB_WEBHOOK,
    ChunkJob,
    PlanJob,
    ScheduleJob,
    SnapshotJob,
    WebhookJob,
)
from pagecast.redis_url import RedisTarget, unreachable_message

__all__ = [
    "HEARTBEAT_PREFIX",
    "JOB_CHUNK",
    "JOB_PLAN",
    "JOB_SCHEDULE",
    "JOB_SNAPSHOT",
    "JOB_WEBHOOK",
    "LATENCY_BUCKETS",
    "METRICS_PREFIX",
    "PLAN_ALIVE_PREFIX",
    "PRIORITIES",
    "QUEUE_NAME",
    "REDIS_DOWN",
    "WEBHOOK_QUEUE_NAME",
    "Queue",
    "bull_client_name",
    "chunk_job_id",
]

# What Redis failing looks like to a caller: redis-py's errors, the socket's, or the
# ServiceUnavailable that `Queue.redis()` raises when PING fails.
REDIS_DOWN = (RedisError, OSError, ServiceUnavailable)
QUEUE_NAME = "pagecast"
# Webhook events have a queue of their own: at hundreds of echoes a second they must never
# take the job slots that chunk jobs need (one queue starved the sends to a crawl).
WEBHOOK_QUEUE_NAME = "pagecast-webhooks"
# Set while a campaign's audience is still being snapshotted in slices: its plan jobs keep
# polling for the rows still to come instead of ending.
SNAPSHOT_PREFIX = "pagecast:snapshot:"
_SNAPSHOT_TTL = 3600
# A worker's heartbeat: a JSON object under this prefix and the worker's id, expiring unless
# renewed; the sweep treats the claims of a worker without one as lost.
HEARTBEAT_PREFIX = "pagecast:worker:"
# A campaign's chain of plan jobs marks itself alive for the sweep (which plans a campaign
# again only when its chain ended or stalled).
PLAN_ALIVE_PREFIX = "pagecast:plan-alive:"
_PLAN_ALIVE_TTL = 30
METRICS_PREFIX = "pagecast:metrics:"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# BullMQ: 1 is the highest priority. Every job gets one, so all go through the same list.
PRIORITIES = {"high": 1, "normal": 5, "low": 10}
_KEEP_FAILED = {"count": 1000}
_WARN_EVERY = 60.0

logger = logging.getLogger(__name__)


# bullmq's default key prefix, which Pagecast's queues use (and Bull Board must be told).
BULL_PREFIX = "bull"


def bull_client_name(queue_name: str, worker_name: str) -> str:
    """The Redis connection name by which Node's BullMQ (`Queue.getWorkers()`, Bull Board)
    recognises a worker of `queue_name` called `worker_name` (worker/bull.py)."""
    encoded = base64.b64encode(queue_name.encode()).decode()
    return f"{BULL_PREFIX}:{encoded}:w:{worker_name}"


def chunk_job_id(campaign_id: int, first_id: int, last_id: int, round_: int = 0) -> str:
    """The job id of a chunk; `round_` > 0 for a retry round of the same range."""
    suffix = f"-r{round_}" if round_ else ""
    return f"c{campaign_id}-{first_id}-{last_id}{suffix}"


class Queue:
    """Enqueues sending jobs. Nothing connects until the first call that needs Redis."""

    def __init__(self, target: RedisTarget) -> None:
        self.target = target
        self._redis: aioredis.Redis | None = None
        self._queue: BullQueue | None = None
        self._webhooks: BullQueue | None = None
        self._last_warning = 0.0
        self._connected = False

    def lazy_redis(self) -> aioredis.Redis:
        """The shared client without a check; redis-py connects on its first command."""
        if self._redis is None:
            self._redis = aioredis.Redis(
                **self.target.connection_kwargs(),
                decode_responses=True,
                # One quick retry: a down Redis must answer a start with 503 at once, not
                # after redis-py's default backoff (bullmq's own connections keep theirs).
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            )
        return self._redis

    async def redis(self) -> aioredis.Redis:
        """The shared connection (created on first use), checked with PING."""
        self.lazy_redis()
        assert self._redis is not None
        try:
            # redis-py types each command for its sync and asyncio clients at once.
            await cast("Awaitable[bool]", self._redis.ping())
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            self._warn(exc)
            self._connected = False
            raise ServiceUnavailable(unreachable_message(self.target, exc)) from exc
        if not self._connected:
            self._connected = True
            logger.info("connected to Redis at %s", self.target.where)
        return self._redis

    def _warn(self, exc: BaseException) -> None:
        # At most one warning a minute, without a stack trace: Redis being down is a
        # state, not a new event on every request.
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning("%s", unreachable_message(self.target, exc))

    async def bull(self) -> BullQueue:
        if self._queue is None:
            await self.redis()
            # A dict, not our client: bullmq then makes connections of its own (docs/redis.md).
            self._queue = BullQueue(QUEUE_NAME, {"connection": self.target.connection_kwargs()})
        else:
            await self.redis()
        return self._queue

    async def bull_webhooks(self) -> BullQueue:
        await self.redis()
        if self._webhooks is None:
            self._webhooks = BullQueue(
                WEBHOOK_QUEUE_NAME, {"connection": self.target.connection_kwargs()}
            )
        return self._webhooks

    async def enqueue_plan(
        self,
        campaign_id: int,
        *,
        after_id: int = 0,
        since: int | None = None,
        priority: str = "normal",
        delay_s: float = 0,
        round_: int = 0,
        step: int = 0,
        due_after: int | None = None,
        due_upto: int | None = None,
    ) -> None:
        """Plan a campaign's chunks after delivery `after_id`; `round_` > 0 gives every job of
        this plan new ids, for re-planning a campaign whose earlier jobs are stuck or gone.

        With `since`, the chunks planned last, of deliveries in (since, after_id], must be
        mostly under way before more are queued; `step` names each later look at the same
        point (a job cannot re-add its own id while it runs).
        """
        queue = await self.bull()
        suffix = (f"-r{round_}" if round_ else "") + (f"-w{step}" if step else "")
        job = PlanJob(
            campaign_id,
            after_id=after_id,
            round=round_,
            since=since,
            step=step,
            due_after=due_after,
            due_upto=due_upto,
        )
        await queue.add(
            JOB_PLAN,
            job.to_data(),
            {
                "jobId": f"p{campaign_id}-{after_id}{suffix}",
                "priority": PRIORITIES[priority],
                "delay": int(delay_s * 1000),
                "removeOnComplete": True,
                "removeOnFail": _KEEP_FAILED,
                "attempts": 5,
                "backoff": {"type": "exponential", "delay": 1000},
            },
        )

    async def enqueue_snapshot(
        self, campaign_id: int, *, after: int, upto: int, priority: str = "normal"
    ) -> None:
        """Snapshot the rest of a large audience (contact ids in (after, upto]) in the worker."""
        redis = await self.redis()
        await redis.set(SNAPSHOT_PREFIX + str(campaign_id), str(upto), ex=_SNAPSHOT_TTL)
        queue = await self.bull()
        await queue.add(
            JOB_SNAPSHOT,
            SnapshotJob(campaign_id, after=after, upto=upto).to_data(),
            {
                "jobId": f"snap{campaign_id}",
                "priority": PRIORITIES[priority],
                "removeOnComplete": True,
                "removeOnFail": _KEEP_FAILED,
                "attempts": 10,
                "backoff": {"type": "exponential", "delay": 1000},
            },
        )

    async def snapshotting(self, campaign_id: int) -> bool:
        """Whether the campaign's audience is still being snapshotted."""
        return bool(await (await self.redis()).exists(SNAPSHOT_PREFIX + str(campaign_id)))

    async def snapshot_finished(self, campaign_id: int) -> None:
        await (await self.redis()).delete(SNAPSHOT_PREFIX + str(campaign_id))

    async def enqueue_schedule(
        self, campaign_id: int, *, at_epoch: float, priority: str = "normal"
    ) -> None:
        """A delayed job that starts a scheduled campaign (the worker's sweep is the backstop)."""
        queue = await self.bull()
        await queue.add(
            JOB_SCHEDULE,
            ScheduleJob(campaign_id).to_data(),
            {
                "jobId": f"s{campaign_id}-{int(at_epoch)}",
                "priority": PRIORITIES[priority],
                "delay": max(0, int((at_epoch - time.time()) * 1000)),
                "removeOnComplete": True,
                "removeOnFail": _KEEP_FAILED,
            },
        )

    async def enqueue_chunks(
        self,
        campaign_id: int,
        ranges: Sequence[tuple[int, int]],
        *,
        priority: str = "normal",
        delay_s: float = 0,
        round_: int = 0,
    ) -> None:
        """Add one chunk job per (first_id, last_id) range, in one round trip."""
        if not ranges:
            return
        queue = await self.bull()
        await queue.addBulk(
            [
                {
                    "name": JOB_CHUNK,
                    "data": ChunkJob(campaign_id, first, last).to_data(),
                    "opts": {
                        "jobId": chunk_job_id(campaign_id, first, last, round_),
                        "priority": PRIORITIES[priority],
                        "delay": int(delay_s * 1000),
                        # Removed when done, so a later retry round may reuse the range.
                        "removeOnComplete": True,
                        "removeOnFail": _KEEP_FAILED,
                        "attempts": 3,
                        "backoff": {"type": "exponential", "delay": 2000},
                    },
                }
                for first, last in ranges
            ]
        )

    async def enqueue_webhook(self, event_ids: Sequence[int]) -> None:
        """Process stored webhook events (ids of `webhook_events` rows) in the worker."""
        if not event_ids:
            return
        queue = await self.bull_webhooks()
        ids = sorted(event_ids)
        await queue.add(
            JOB_WEBHOOK,
            WebhookJob(tuple(ids)).to_data(),
            {
                "jobId": f"w{ids[0]}-{ids[-1]}-{len(ids)}",
                "removeOnComplete": True,
                "removeOnFail": _KEEP_FAILED,
                "attempts": 3,
                "backoff": {"type": "exponential", "delay": 1000},
            },
        )

    async def plan_alive(self, campaign_id: int) -> bool:
        """Whether the campaign's chain of plan jobs marked itself alive lately."""
        return bool(await self.lazy_redis().exists(PLAN_ALIVE_PREFIX + str(campaign_id)))

    async def mark_plan_alive(self, campaign_id: int, *, waits_s: float = 0.0) -> None:
        """The campaign's plan chain goes on (for the next `_PLAN_ALIVE_TTL` seconds, after
        its next job's delay `waits_s`)."""
        ttl = _PLAN_ALIVE_TTL + math.ceil(waits_s)
        await self.lazy_redis().set(PLAN_ALIVE_PREFIX + str(campaign_id), "1", ex=ttl)

    async def plan_ended(self, campaign_id: int) -> None:
        """The campaign's plan chain ended: the sweep plans it again if work comes back."""
        await self.lazy_redis().delete(PLAN_ALIVE_PREFIX + str(campaign_id))

    async def write_heartbeat(self, worker_id: str, beat: Mapping[str, Any], ttl: int) -> None:
        """Store a worker's heartbeat (a JSON object), expiring after `ttl` seconds."""
        redis = await self.redis()
        await redis.set(HEARTBEAT_PREFIX + worker_id, json.dumps(beat), ex=ttl)

    async def delete_heartbeat(self, worker_id: str) -> None:
        await (await self.redis()).delete(HEARTBEAT_PREFIX + worker_id)

    async def live_worker_ids(self) -> set[str]:
        """The ids of the workers whose heartbeat has not expired."""
        redis = await self.redis()
        return {
            key.removeprefix(HEARTBEAT_PREFIX)
            async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*")
        }

    async def live_workers(self) -> list[dict[str, Any]]:
        """The heartbeats of the live workers, by id."""
        redis = await self.redis()
        keys = [key async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=1000)]
        beats = await redis.mget(keys) if keys else []
        return sorted((json.loads(b) for b in beats if b), key=lambda w: str(w["id"]))

    async def counts(self) -> dict[str, int]:
        """Jobs of the sending queue by state."""
        return await _counts(await self.bull())

    async def retry_failed_jobs(self) -> None:
        """Run the sending queue's failed jobs again (the admin queue page's Retry failed)."""
        await (await self.bull()).retryJobs({"state": "failed"})

    async def webhook_counts(self) -> dict[str, int]:
        """Jobs of the webhook queue by state."""
        return await _counts(await self.bull_webhooks())

    async def waiting(self) -> int:
        counts = await self.counts()
        return counts.get("waiting", 0) + counts.get("prioritized", 0) + counts.get("delayed", 0)

    async def record_metrics(
        self, page: str, *, latencies: Sequence[float], outcomes: Mapping[str, int], throttled: bool
    ) -> None:
        """Add one chunk's Send API latencies, outcomes and throttle to the shared metrics."""
        redis = await self.redis()
        pipe = redis.pipeline(transaction=False)
        # A batch's messages share one latency: one increment per bucket, not per message.
        buckets = Counter(
            next((b for b in LATENCY_BUCKETS if seconds <= b), "+Inf") for seconds in latencies
        )
        for bucket, count in buckets.items():
            pipe.hincrby(METRICS_PREFIX + "latency", f"le_{bucket}", count)
        if latencies:
            pipe.hincrbyfloat(METRICS_PREFIX + "latency", "sum", sum(latencies))
            pipe.hincrby(METRICS_PREFIX + "latency", "count", len(latencies))
        for outcome, count in outcomes.items():
            pipe.hincrby(METRICS_PREFIX + "sends", f"{page}:{outcome}", count)
        if throttled:
            pipe.hincrby(METRICS_PREFIX + "throttles", page, 1)
        await pipe.execute()

    async def metrics(self) -> dict[str, dict[str, str]]:
        """The shared send metrics `record_metrics` adds to: `latency` (`le_<bound>`, `sum`,
        `count`), `sends` (`<page>:<outcome>` -> count) and `throttles` (page -> count)."""
        redis = await self.redis()
        pipe = redis.pipeline(transaction=False)
        names = ("latency", "sends", "throttles")
        for name in names:
            pipe.hgetall(METRICS_PREFIX + name)
        return dict(zip(names, await pipe.execute(), strict=True))

    async def close(self) -> None:
        for queue in (self._queue, self._webhooks):
            if queue is not None:
                await queue.close()
        self._queue = self._webhooks = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


async def _counts(queue: BullQueue) -> dict[str, int]:
    counts: dict[str, Any] = await queue.getJobCounts(
        "waiting", "active", "delayed", "prioritized", "completed", "failed", "paused"
    )
    return {name: int(value) for name, value in counts.items()}
