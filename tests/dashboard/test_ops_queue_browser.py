"""The queue page in a real browser, against `pagecast serve`: a job Pagecast's worker
cannot run (added by another system, as from Node's BullMQ) is listed under failed with its
data and failure reason, retried (into the paused queue, so it stays there to be seen) and
removed; the webhooks queue has its own lists.

The tests run in file order and build on each other (one server per module).
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from bullmq import Queue as BullQueue
from dashboard_support import create_first_admin, new_page, screenshot
from playwright.sync_api import expect

from pagecast.queue import QUEUE_NAME

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def admin(browser: Any, server: Any) -> Any:
    page = new_page(browser, server)
    yield page
    page.context.close()


def _test_redis() -> str | None:
    """The server's Redis (tests/dashboard/conftest.py gives it the test Redis when it answers)."""
    import redis

    url = os.environ.get("PAGECAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        return None
    finally:
        client.close()
    return url


async def _add_failing_job(redis_url: str) -> str:
    """A job no Pagecast worker runs, once the server's worker has failed it."""
    queue = BullQueue(QUEUE_NAME, {"connection": redis_url})
    try:
        job = await queue.add("nightly-report", {"report": "weekly", "page": 42})
        deadline = time.monotonic() + 30
        while await queue.getJobState(job.id) != "failed":
            assert time.monotonic() < deadline, await queue.getJobState(job.id)
            await asyncio.sleep(0.05)
        return str(job.id)
    finally:
        await queue.close()


def test_a_job_the_worker_cannot_run_is_listed_retried_and_removed(admin: Any, server: Any) -> None:
    redis_url = _test_redis()
    if redis_url is None:
        pytest.skip("the server runs its embedded Redis: no test Redis to add a job to")
    create_first_admin(admin, server)
    # In a thread: Playwright's sync API runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        job_id = pool.submit(asyncio.run, _add_failing_job(redis_url)).result(timeout=60)
    row = admin.locator(f"#jobs tr.job[data-job-id='{job_id}']")
    admin.goto("/queue")  # failed jobs of the sending queue first
    expect(row.locator(".job-reason")).to_contain_text("unknown job 'nightly-report'")
    expect(row.locator(".job-data")).to_contain_text('"report": "weekly"')
    screenshot(admin, "queue-jobs")

    # Paused, the retried job waits where it can be seen.
    admin.click("form[action='/queue/pause'] button")
    admin.goto("/queue?queue=sending&state=failed")
    row.locator("button:has-text('Retry')").click()
    expect(admin.locator("#job-states a[aria-current=page]")).not_to_have_text("failed")
    expect(row).to_be_visible()
    expect(row.locator(".job-reason")).to_have_text("")
    row.locator("button:has-text('Remove')").click()
    expect(admin.locator("#jobs .empty")).to_be_visible()
    expect(row).to_have_count(0)
    admin.click("form[action='/queue/resume'] button")

    admin.click("#job-queues a[data-job-queue=webhooks]")
    expect(admin.locator("#job-queues a[aria-current=page]")).to_have_text("webhooks")
    expect(admin.locator("#jobs .empty")).to_contain_text("webhooks queue")
