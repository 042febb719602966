"""Background jobs of one process, by the id of the row that records them.

The web process runs a few long jobs as asyncio tasks beside the requests (an audience sync
from Facebook, a contact import); their row in the database is the record every process
reads. This is the part they share: start a job under its id, wait for it, stop them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["Jobs"]


class Jobs:
    """The running background tasks of one kind, keyed by their row's id."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def start(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background as job `job_id` of this process."""
        task = asyncio.create_task(work, name=f"{self.kind}-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def wait(self, job_id: int) -> None:
        """Until job `job_id` of this process has ended (at once when it is not running here)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel every job and wait until each has recorded how it stopped."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
