"""What every job handler of one worker process is handed (`Env`): the connections and
clients, the config, the clock, and the state the process's jobs share (`WorkerState`)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pagecast.db import Database
from pagecast.graph import GraphClient
from pagecast.models import utcnow
from pagecast.priority_gate import PriorityGate
from pagecast.queue import Queue
from pagecast.ratelimit import PageLimiter
from pagecast.security import Vault
from pagecast.webhook_runner import Reactions
from pagecast.worker.config import WorkerConfig

__all__ = ["Clock", "Env", "InFlight", "WorkerState"]


class Clock:
    """The time as the worker decides with it: now (for the database), the epoch (job
    delays, round numbers), a monotonic clock (how often to look again) and sleep. Tests
    may hand the worker another. The wire timing of a send (when a grant's calls may leave,
    Graph's latency) stays on the real monotonic clock the Graph client and limiter share."""

    # The longest a job waits (a queue delay, in real seconds) for a time on this clock
    # before it looks again: a plan chain waiting for the next zone's due time. 60 s made
    # the retry and side-by-side tests of tests/test_sending.py 4-8 times slower (one
    # failed); why was not found in time. 5 s is the wait from before.
    longest_wait: float = 5.0

    def now(self) -> datetime:
        return utcnow()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class InFlight:
    """Messages in flight in one worker (`worker_concurrency`): the whole batch for a batch
    request; for single sends, as many as are free (each still its own request)."""

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

    async def take_free(self, n: int) -> int:
        """Wait until one is free, then take as many as are free, up to `n`; returns how many."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.used < self.limit)
            taken = min(n, self.limit - self.used)
            self.used += taken
        return taken

    async def give_back(self, n: int) -> None:
        async with self._changed:
            self.used -= n
            self._changed.notify_all()


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerState:
    """The state one worker process's jobs share."""

    in_flight: InFlight
    id: str = field(default_factory=_worker_id)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: str = field(default_factory=lambda: utcnow().isoformat())
    # Consecutive bad requests per campaign as answers arrive, so the breaker can stop
    # sends mid-chunk; the campaign row keeps the durable count.
    bad_streak: dict[int, int] = field(default_factory=dict)
    # Each sending campaign's counts at the last sweep (a campaign that did not move is stalled).
    last_progress: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # When this worker last looked whether a campaign's `campaign.progress` event was due
    # (results.py): the database is asked at most once per PROGRESS_EVERY per campaign.
    progress_looked: dict[int, datetime] = field(default_factory=dict)
    # A Page's chunks that may hold claims at once in this worker (chunk.py), and the
    # Page of each campaign seen (it never changes).
    page_gates: dict[int, PriorityGate] = field(default_factory=dict)
    page_of: dict[int, int] = field(default_factory=dict)


@dataclass
class Env:
    """What a job handler works with."""

    db: Database
    vault: Vault
    graph: GraphClient
    queue: Queue
    limiter: PageLimiter
    config: WorkerConfig
    app_secret: str | None
    # Profile lookups, opt-out confirmations and plans of resumed campaigns that follow
    # webhook events.
    reactions: Reactions
    state: WorkerState
    clock: Clock
