"""The webhook queue is counted beside the sending queue: in the health report, the queue
overview, `/metrics` and the dashboard's queue page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from factories import app_client, create_user, engine_settings, session_cookie
from pagecast.db import Database
from pagecast.models import Role
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.deps import SESSION_COOKIE


@pytest.fixture
async def queue_app(settings: Settings, redis_url: str, db: Database) -> AsyncIterator[Any]:
    application = create_app(engine_settings(settings, redis_url), database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def admin(queue_app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    user, raw = await create_user(db, Role.ADMIN, email="queues@example.com")
    async with app_client(queue_app, raw) as client:
        client.cookies.set(SESSION_COOKIE, await session_cookie(db, user))
        yield client


async def test_health_queue_overview_metrics_and_queue_page_count_webhook_jobs(
    queue_app: Any, admin: httpx.AsyncClient
) -> None:
    # Three batches of webhook events wait (no worker runs); no sending job does.
    queue = queue_app.state.context.queue
    for ids in ([1, 2], [3], [4, 5, 6]):
        await queue.enqueue_webhook(ids)
    health = (await admin.get("/api/admin/health")).json()
    assert health["webhook_queue"]["waiting"] == 3
    assert health["queue"]["waiting"] == 0
    overview = (await admin.get("/api/admin/queue")).json()
    assert overview["webhook_counts"]["waiting"] == 3 and overview["counts"]["waiting"] == 0
    metrics = (await admin.get("/metrics")).text
    assert 'pagecast_queue_jobs{queue="webhooks",state="waiting"} 3.0' in metrics
    assert 'pagecast_queue_jobs{queue="sending",state="waiting"} 0.0' in metrics
    html = (await admin.get("/queue")).text
    assert re.search(r'data-webhook-queue="waiting">3<', html), html
    assert re.search(r'data-queue="waiting">0<', html)
