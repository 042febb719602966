"""From a BullMQ job's name to its handler: every job the worker runs, in one table.

A handler is `async (env, job, token, payload) -> str`, where `payload` is the job's data
read back as its typed payload (pagecast/jobs.py). A job of a name not in the table fails
with `UnknownJob` (BullMQ records it as failed), never silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pagecast.jobs import ChunkJob, PlanJob, ScheduleJob, SnapshotJob, WebhookJob
from pagecast.webhook_runner import run as run_webhook_events
from pagecast.worker.chunk import chunk
from pagecast.worker.plan import plan
from pagecast.worker.schedule import schedule
from pagecast.worker.snapshot import snapshot
from pagecast.worker.state import Env

__all__ = ["HANDLERS", "Handler", "UnknownJob", "dispatch"]


class UnknownJob(LookupError):
    """A job whose name no handler answers to (a newer or older producer, or a typo)."""


@dataclass(frozen=True)
class Handler:
    payload: Any  # the payload class: `from_data(job.data)` reads the job's data
    run: Callable[[Env, Any, str, Any], Awaitable[Any]]


async def webhook(env: Env, job: Any, token: str, payload: WebhookJob) -> Any:
    """Process stored webhook events (webhook_runner.py)."""
    return await run_webhook_events(env.db, list(payload.event_ids), env.reactions)


HANDLERS: Mapping[str, Handler] = {
    PlanJob.NAME: Handler(PlanJob, plan),
    ChunkJob.NAME: Handler(ChunkJob, chunk),
    ScheduleJob.NAME: Handler(ScheduleJob, schedule),
    SnapshotJob.NAME: Handler(SnapshotJob, snapshot),
    WebhookJob.NAME: Handler(WebhookJob, webhook),
}


async def dispatch(env: Env, job: Any, token: str) -> Any:
    """Run `job` with the handler of its name."""
    handler = HANDLERS.get(job.name)
    if handler is None:
        raise UnknownJob(
            f"unknown job {job.name!r} (id {job.id}): this worker runs {sorted(HANDLERS)}"
        )
    return await handler.run(env, job, token, handler.payload.from_data(job.data))
