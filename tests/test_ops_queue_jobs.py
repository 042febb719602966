"""One job at a time through `/api/admin/queue/jobs`: listed by queue and state with its data
and failure reason, a failed job retried, a job removed, bad input refused naming the field."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import quote

import httpx

from factories import app_client, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Role
from pagecast.settings import Settings
from pagecast.web.deps import SESSION_COOKIE
from test_sending import (  # noqa: F401  (fixtures)
    RunningWorker,
    admin,
    engine_app,
    manager,
    sending_settings,
)


async def _state(client: httpx.AsyncClient, job_id: str, state: str) -> dict[str, Any] | None:
    listed = (await client.get("/api/admin/queue/jobs", params={"state": state})).json()
    return next((j for j in listed["jobs"] if j["id"] == job_id), None)


async def test_a_failed_job_is_listed_retried_and_removed(
    engine_app: Any,  # noqa: F811
    admin: httpx.AsyncClient,  # noqa: F811
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    bull = await engine_app.state.context.queue.bull()
    job = await bull.add("nightly-report", {"report": "weekly"})
    async with RunningWorker(sending_settings, db):
        deadline = time.monotonic() + 30
        while (failed := await _state(admin, job.id, "failed")) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await admin.post("/api/admin/queue/pause")).status_code == 200
    assert failed["name"] == "nightly-report" and failed["data"] == {"report": "weekly"}
    assert "unknown job 'nightly-report'" in failed["reason"]

    retried = await admin.post(f"/api/admin/queue/jobs/sending/{job.id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["reason"] is None and retried.json()["state"] != "failed"
    assert await _state(admin, job.id, retried.json()["state"]) is not None
    again = await admin.post(f"/api/admin/queue/jobs/sending/{job.id}/retry")
    assert again.status_code == 409 and "only a failed job" in again.text

    assert (await admin.delete(f"/api/admin/queue/jobs/sending/{job.id}")).status_code == 200
    assert await _state(admin, job.id, retried.json()["state"]) is None
    gone = await admin.delete(f"/api/admin/queue/jobs/sending/{job.id}")
    assert gone.status_code == 404
    await admin.post("/api/admin/queue/resume")


async def test_an_unknown_queue_or_state_is_refused_naming_the_field(
    admin: httpx.AsyncClient,  # noqa: F811
) -> None:
    bad_state = await admin.get("/api/admin/queue/jobs", params={"state": "lost"})
    assert bad_state.status_code == 422
    assert bad_state.json()["error"]["field"] == "state" and "failed" in bad_state.text
    bad_queue = await admin.post("/api/admin/queue/jobs/emails/1/retry")
    assert bad_queue.status_code == 422
    assert bad_queue.json()["error"]["field"] == "queue" and "webhooks" in bad_queue.text


async def test_an_id_naming_one_of_the_queues_own_keys_is_no_job(
    engine_app: Any,  # noqa: F811
    admin: httpx.AsyncClient,  # noqa: F811
) -> None:
    """`meta`, `id`, `wait`, `events` are keys of the queue (bull:pagecast:<id>), not jobs: a
    404, and removing `meta` does not delete the queue's paused flag with it."""
    bull = await engine_app.state.context.queue.bull()
    await bull.add("nightly-report", {"report": "weekly"})  # the queue's keys exist
    assert (await admin.post("/api/admin/queue/pause")).status_code == 200
    for key in ("meta", "id", "wait", "events"):
        retried = await admin.post(f"/api/admin/queue/jobs/sending/{key}/retry")
        assert retried.status_code == 404 and f"No job '{key}'" in retried.text, retried.text
        removed = await admin.delete(f"/api/admin/queue/jobs/sending/{key}")
        assert removed.status_code == 404 and f"No job '{key}'" in removed.text, removed.text
    assert (await admin.get("/api/admin/queue")).json()["paused"] is True
    await admin.post("/api/admin/queue/resume")


async def test_a_job_id_with_url_characters_is_retried_and_removed_from_the_queue_page(
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    """Another system (Node's BullMQ, Bull Board) may add jobs with ids of its own: the queue
    page's forms and the API must still reach that job, `/`, `?`, `#`, `%` and spaces in its
    id included."""
    user, raw = await create_user(db, Role.ADMIN, email="queue-ids@example.com")
    bull = await engine_app.state.context.queue.bull()
    job_id = "reports/week?n=1#2 100%"
    await bull.add("nightly-report", {"report": "weekly"}, {"jobId": job_id})
    async with app_client(engine_app, raw) as client:
        client.cookies.set(SESSION_COOKIE, await session_cookie(db, user))
        html = (await client.get("/queue", params={"state": "waiting"})).text
        action = re.search(r'<form method="post" action="([^"]+)/remove"', html)
        assert action is not None, html
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert csrf is not None
        removed = await client.post(f"{action[1]}/remove", data={"csrf_token": csrf[1]})
        assert removed.status_code == 303, removed.text
        assert await bull.getJobState(job_id) == "unknown"
        await bull.add("nightly-report", {"report": "weekly"}, {"jobId": job_id})
        path = f"/api/admin/queue/jobs/sending/{quote(job_id, safe='')}"
        retried = await client.post(f"{path}/retry")
        assert retried.status_code == 409 and "is waiting" in retried.text, retried.text
        assert (await client.delete(path)).json() == {"ok": True, "queue": "sending", "id": job_id}
    assert await bull.getJobState(job_id) == "unknown"
