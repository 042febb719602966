"""The worker process: BullMQ workers on both queues, signals, the heartbeat loop, the
sweep loop, the outbound webhooks loop (worker/outbound.py), graceful shutdown, and a burst
mode that returns once the queues are drained.

Every job goes through `registry.dispatch` to the handler of its name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.graph import GraphClient
from pagecast.queue import QUEUE_NAME, WEBHOOK_QUEUE_NAME, Queue
from pagecast.ratelimit import PageLimiter
from pagecast.security import Vault
from pagecast.webhook_runner import Reactions
from pagecast.worker.bull import NamedWorker
from pagecast.worker.config import WorkerConfig
from pagecast.worker.outbound import deliver_forever
from pagecast.worker.registry import dispatch
from pagecast.worker.state import Clock, Env, InFlight, WorkerState
from pagecast.worker.sweep import sweep, sweep_forever

__all__ = ["SendingWorker", "build"]

logger = logging.getLogger(__name__)

# Webhook jobs processed at once per worker (each is a few short transactions).
_WEBHOOK_JOBS = 4
# Job states that mean a queue still has work for a burst run to wait for.
_UNFINISHED = ("waiting", "prioritized", "delayed", "active")
_BURST_POLL = 0.05


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
        clock: Clock | None = None,
    ) -> None:
        self.env = Env(
            db=db,
            vault=vault,
            graph=graph,
            queue=queue,
            limiter=limiter,
            config=config,
            app_secret=app_secret,
            reactions=Reactions(
                graph=graph, vault=vault, app_secret=app_secret, replan=self._replan
            ),
            state=WorkerState(InFlight(config.concurrency)),
            clock=clock or Clock(),
        )
        self._bull: NamedWorker | None = None
        self._bull_webhooks: NamedWorker | None = None

    @property
    def config(self) -> WorkerConfig:
        return self.env.config

    @config.setter
    def config(self, config: WorkerConfig) -> None:
        self.env.config = config

    @property
    def id(self) -> str:
        return self.env.state.id

    @property
    def stopping(self) -> asyncio.Event:
        """Set it to stop the worker gracefully (SIGTERM and SIGINT do)."""
        return self.env.state.stopping

    async def process(self, job: Any, token: str) -> Any:
        return await dispatch(self.env, job, token)

    async def _replan(self, campaign_id: int, priority: str) -> None:
        await self.env.queue.enqueue_plan(campaign_id, priority=priority)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, install_signals: bool = True, burst: bool = False) -> None:
        """Process jobs until SIGTERM/SIGINT (or `stopping` is set), then shut down gracefully.

        With `burst`, sweep once, then return as soon as both queues hold no job waiting,
        delayed or active (or `stopping` is set): what a test runs to completion.
        """
        config, queue = self.config, self.env.queue
        await queue.redis()
        self._bull = NamedWorker(
            QUEUE_NAME,
            self.process,
            {
                "connection": queue.target.connection_kwargs(),
                # Room for several Pages' chunks at once: a chunk that waits for its Page's
                # limiter holds a slot, not a send.
                "concurrency": max(8, 4 * -(-config.concurrency // config.chunk_size)),
                "lockDuration": 30_000,
                "stalledInterval": 15_000,
                "drainDelay": 1,
                "autorun": False,
            },
            name=self.id,
        )
        # Webhook events on their own queue and job slots (queue.WEBHOOK_QUEUE_NAME).
        self._bull_webhooks = NamedWorker(
            WEBHOOK_QUEUE_NAME,
            self.process,
            {
                "connection": queue.target.connection_kwargs(),
                "concurrency": _WEBHOOK_JOBS,
                "lockDuration": 30_000,
                "stalledInterval": 15_000,
                "drainDelay": 1,
                "autorun": False,
            },
            name=self.id,
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
        logger.info("worker %s started (concurrency %d)", self.id, config.concurrency)
        if burst:
            await sweep(self.env)
        runner = asyncio.create_task(self._bull.run())
        helpers = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._bull_webhooks.run()),
        ]
        if not burst:
            helpers.append(asyncio.create_task(sweep_forever(self.env)))
            # Issue 22: outbound webhook deliveries, claimed in the database (no queue job).
            helpers.append(asyncio.create_task(deliver_forever(self.env)))
        await (self._drained() if burst else self.stopping.wait())
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
            await self.env.queue.delete_heartbeat(self.id)
        except Exception:
            logger.debug("could not remove the heartbeat", exc_info=True)
        logger.info("worker %s shut down", self.id)

    async def _drained(self) -> None:
        """Return when both queues looked empty twice in a row (a job ending enqueues its
        successors before it completes), or when `stopping` is set."""
        queue, empty_looks = self.env.queue, 0
        while empty_looks < 2:
            try:
                await asyncio.wait_for(self.stopping.wait(), _BURST_POLL)
                return
            except TimeoutError:
                pass
            counts = [await queue.counts(), await queue.webhook_counts()]
            busy = sum(c.get(state, 0) for c in counts for state in _UNFINISHED)
            empty_looks = empty_looks + 1 if busy == 0 else 0

    async def _beat(self) -> None:
        state = self.env.state
        beat = {
            "id": state.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": state.started_at,
            "last_heartbeat": self.env.clock.now().isoformat(),
            "in_flight": state.in_flight.used,
        }
        await self.env.queue.write_heartbeat(state.id, beat, self.config.heartbeat_ttl)

    async def _heartbeat(self) -> None:
        while True:
            await self.env.clock.sleep(max(1.0, self.config.heartbeat_ttl / 3))
            try:
                await self._beat()
            except Exception:
                logger.warning("heartbeat failed; trying again", exc_info=True)


def build(
    ctx: AppContext, *, concurrency: int | None = None, clock: Clock | None = None
) -> SendingWorker:
    """A worker on the context's database, Graph client and queue (and `clock`, for tests)."""
    settings = ctx.settings
    return SendingWorker(
        db=ctx.db,
        vault=ctx.vault,
        graph=ctx.graph,
        queue=ctx.queue,
        limiter=ctx.limiter,
        config=WorkerConfig.from_settings(settings, concurrency=concurrency),
        app_secret=settings.app_secret.get_secret_value() if settings.app_secret else None,
        clock=clock,
    )
