"""The worker's seams: typed job payloads (written by queue.py, read by the handlers), the
registry from job name to handler, and the database retry of result writes (db.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncpg import exceptions as pg_errors
from bullmq import Job
from sqlalchemy.exc import DBAPIError, OperationalError

from pagecast.db import is_conflict, is_disconnect, until_written
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
from pagecast.queue import Queue
from pagecast.redis_url import parse_redis_url
from pagecast.worker.registry import HANDLERS, UnknownJob, dispatch

PAYLOADS = [
    PlanJob(7),
    PlanJob(7, after_id=40, round=3, since=20, step=2),
    ChunkJob(7, 41, 60),
    ScheduleJob(7),
    SnapshotJob(7, after=100, upto=900),
    WebhookJob((3, 5, 8)),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_a_payload_reads_back_what_it_wrote(payload: Any) -> None:
    assert type(payload).from_data(payload.to_data()) == payload


def test_a_plan_job_written_before_the_step_field_reads_with_its_defaults() -> None:
    assert PlanJob.from_data({"campaign_id": "7", "after_id": "40"}) == PlanJob(7, after_id=40)


def test_every_job_name_has_a_handler_and_its_payload() -> None:
    names = {JOB_PLAN, JOB_CHUNK, JOB_SCHEDULE, JOB_SNAPSHOT, JOB_WEBHOOK}
    assert set(HANDLERS) == names
    assert all(name == handler.payload.NAME for name, handler in HANDLERS.items())


async def test_an_unknown_job_name_fails_clearly() -> None:
    class Stray:
        name, id, data = "resend-all", "x1", {"campaign_id": 1}

    with pytest.raises(UnknownJob, match=r"unknown job 'resend-all'.*chunk"):
        await dispatch(None, Stray(), "token")  # type: ignore[arg-type]


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    queue = Queue(parse_redis_url(redis_url))
    yield queue
    await queue.close()


async def _job(queue: Queue, job_id: str, *, webhooks: bool = False) -> Job:
    bull = await (queue.bull_webhooks() if webhooks else queue.bull())
    job = await Job.fromId(bull, job_id)
    assert job is not None, f"no job {job_id}"
    return job


async def test_the_queue_writes_each_payload_under_its_unchanged_job_id(queue: Queue) -> None:
    await queue.enqueue_plan(7, after_id=40, since=20, round_=3, step=2)
    await queue.enqueue_chunks(7, [(41, 60)], round_=2)
    await queue.enqueue_snapshot(7, after=100, upto=900)
    await queue.enqueue_schedule(7, at_epoch=2_000_000_000)
    await queue.enqueue_webhook([8, 3, 5])
    written = {
        "p7-40-r3-w2": PlanJob(7, after_id=40, round=3, since=20, step=2),
        "c7-41-60-r2": ChunkJob(7, 41, 60),
        "snap7": SnapshotJob(7, after=100, upto=900),
        "s7-2000000000": ScheduleJob(7),
    }
    for job_id, payload in written.items():
        job = await _job(queue, job_id)
        assert job.name == payload.NAME
        assert type(payload).from_data(job.data) == payload
    webhook = await _job(queue, "w3-8-3", webhooks=True)
    assert webhook.name == JOB_WEBHOOK and WebhookJob.from_data(webhook.data) == WebhookJob(
        (3, 5, 8)
    )


def _wrapped(error: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, error, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.ConnectionDoesNotExistError("gone"),
        pg_errors.AdminShutdownError("bye"),
        pg_errors.CannotConnectNowError("hold on"),
        ConnectionRefusedError(111, "nope"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lost_connection_is_a_disconnect_by_its_type(error: BaseException) -> None:
    assert is_disconnect(_wrapped(error)) and not is_conflict(_wrapped(error))


def test_an_error_that_only_mentions_a_connection_is_no_disconnect() -> None:
    error = pg_errors.UniqueViolationError("connection closed, terminated, refused")
    assert not is_disconnect(_wrapped(error))
    assert is_disconnect(_wrapped(error, invalidated=True))  # SQLAlchemy saw the connection die


@pytest.mark.parametrize(
    "error", [pg_errors.DeadlockDetectedError("x"), pg_errors.SerializationError("y")]
)
def test_deadlocks_and_serialisation_failures_are_conflicts(error: BaseException) -> None:
    assert is_conflict(_wrapped(error)) and not is_disconnect(_wrapped(error))


class _Script:
    """A write that fails with the given errors, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls, self.slept = list(errors), 0, []

    async def write(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_a_result_write_waits_out_a_database_restart_with_backoff() -> None:
    down = _wrapped(pg_errors.CannotConnectNowError("starting up"))
    script = _Script(down, OSError("refused"), down)
    await until_written(script.write, patience=300, sleep=script.sleep)
    assert script.calls == 4 and script.slept == [0.5, 1.0, 2.0]


async def test_a_result_write_runs_again_after_a_deadlock_at_once() -> None:
    script = _Script(_wrapped(pg_errors.DeadlockDetectedError("x")))
    await until_written(script.write, patience=300, sleep=script.sleep)
    assert script.calls == 2 and len(script.slept) == 1 and script.slept[0] < 0.1


async def test_a_result_write_gives_up_on_other_errors_and_after_its_patience() -> None:
    wrong = _Script(OperationalError("UPDATE", None, pg_errors.UniqueViolationError("dup")))
    with pytest.raises(OperationalError):
        await until_written(wrong.write, patience=300, sleep=wrong.sleep)
    assert wrong.calls == 1
    down = _wrapped(pg_errors.ConnectionDoesNotExistError("gone"))
    forever = _Script(*[down] * 10)
    with pytest.raises(DBAPIError):
        await until_written(forever.write, patience=3, sleep=forever.sleep)
    assert forever.slept == [0.5, 1.0, 2.0]  # 3.5 s waited > 3 s of patience
