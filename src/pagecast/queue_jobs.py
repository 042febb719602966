"""One job at a time in either queue: list jobs by state with their data and failure reason,
retry a failed job, remove a job. The queue page and `/api/admin/queue/jobs` use it.

Job payloads are ids (docs/redis.md), so showing a job's data shows no personal data.
"""

from __future__ import annotations

from typing import Any

from bullmq import Job
from bullmq import Queue as BullQueue

from pagecast.errors import InvalidInput, InvalidState, NotFound
from pagecast.queue import Queue

__all__ = ["QUEUES", "STATES", "list_jobs", "remove", "retry"]

# The names the API and dashboard use for Pagecast's two queues.
QUEUES = ("sending", "webhooks")
STATES = ("waiting", "prioritized", "paused", "active", "delayed", "completed", "failed")


async def _bull(queue: Queue, name: str) -> BullQueue:
    if name == "sending":
        return await queue.bull()
    if name == "webhooks":
        return await queue.bull_webhooks()
    raise InvalidInput(f"Unknown queue {name!r}: use sending or webhooks.", field="queue")


def _shown(job: Job, state: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": state,
        "data": job.data,
        "reason": job.failedReason or None,
        "attempts": job.attemptsMade,
        "timestamp": job.timestamp,
        "finished_on": job.finishedOn or None,
    }


async def list_jobs(
    queue: Queue, name: str, state: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest `limit` jobs of queue `name` in `state`."""
    if state not in STATES:
        raise InvalidInput(f"Unknown job state {state!r}: use {', '.join(STATES)}.", field="state")
    bull = await _bull(queue, name)
    return [_shown(job, state) for job in await bull.getJobs([state], 0, limit - 1)]


async def _job(queue: Queue, name: str, job_id: str) -> tuple[BullQueue, Job, str]:
    """The job and its state. A job is one that a state of the queue holds: an id like
    `meta`, `id` or `wait` names one of the queue's own keys (bull:<queue>:meta, ...),
    which must never be read or removed as a job."""
    bull = await _bull(queue, name)
    state = await bull.getJobState(job_id)
    job = await Job.fromId(bull, job_id) if state != "unknown" else None
    if job is None:
        raise NotFound(
            f"No job {job_id!r} in the {name} queue: it finished and was forgotten, or was "
            "removed. Reload the list of jobs."
        )
    return bull, job, state


async def retry(queue: Queue, name: str, job_id: str) -> dict[str, Any]:
    """Run a failed job again (back to waiting, attempts counted from 0)."""
    bull, job, state = await _job(queue, name, job_id)
    if state != "failed":
        raise InvalidState(f"Job {job_id!r} is {state}; only a failed job can be retried.")
    await job.retry("failed", {"resetAttemptsMade": True})
    return _shown(job, await bull.getJobState(job_id))


async def remove(queue: Queue, name: str, job_id: str) -> None:
    """Remove a job that no worker is running."""
    _, job, state = await _job(queue, name, job_id)
    if state == "active":
        raise InvalidState(
            f"Job {job_id!r} is running; wait until it finishes (or fails), then remove it."
        )
    try:
        await job.remove()
    except Exception as exc:  # bullmq: "locked by another worker"
        raise InvalidState(f"Job {job_id!r} could not be removed: {exc}") from exc
