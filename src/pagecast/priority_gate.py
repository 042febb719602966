"""`PriorityGate`: the slots of a Page's chunks in a worker, most urgent first.

A worker lets at most two chunks of one Page claim and send at once (worker/chunk.py); the
others wait for a slot. With a first-come semaphore a chunk of a high-priority campaign
waited behind every chunk of a large normal campaign of the same Page that the worker had
already taken from the queue (all of them: a worker has more job slots than a Page has
chunks queued), so the queue's priority was lost at the Page's door. Here a slot goes to
the most urgent waiter, and no less urgent chunk takes one while a more urgent chunk
holds or waits for one: the urgent campaign gets the Page's whole rate, and the others
go on after it (docs/sending.md, "Scheduling, priority, expiry").
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter

__all__ = ["PriorityGate"]


class PriorityGate:
    """At most `slots` holders at once, by priority number (BullMQ's order: 1 is the most
    urgent). A chunk takes a slot only when no more urgent chunk holds one or waits, and
    no chunk of its own priority waits before it; a cancelled waiter gives up its place (or
    the slot it had just been given)."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._held: Counter[int] = Counter()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def _may_take(self, priority: int) -> bool:
        return self._free > 0 and all(p >= priority for p, n in self._held.items() if n)

    def _best_waiter(self) -> tuple[int, asyncio.Future[None]] | None:
        while self._waiters and self._waiters[0][2].done():  # cancelled while waiting
            heapq.heappop(self._waiters)
        return (self._waiters[0][0], self._waiters[0][2]) if self._waiters else None

    def _take(self, priority: int) -> None:
        self._free -= 1
        self._held[priority] += 1

    async def acquire(self, priority: int) -> None:
        best = self._best_waiter()
        if self._may_take(priority) and (best is None or best[0] > priority):
            self._take(priority)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if not future.cancelled():  # the slot was handed over as the wait was cancelled
                self.release(priority)
            raise

    def release(self, priority: int) -> None:
        self._free += 1
        self._held[priority] -= 1
        while (best := self._best_waiter()) is not None and self._may_take(best[0]):
            heapq.heappop(self._waiters)
            self._take(best[0])
            best[1].set_result(None)
