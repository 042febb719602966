"""`/metrics` counts outbound webhook deliveries by status and endpoints on and off (issue
22), with HELP, and the answer passes `promtool check metrics`."""

from __future__ import annotations

import re
from typing import Any

import httpx

from factories import create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Role
from pagecast.web.deps import SESSION_COOKIE
from test_ops_metrics import _check, _promtool


async def test_metrics_count_outbound_deliveries_and_endpoints(api: Any) -> None:
    admin = await api(Role.ADMIN)
    body = {"url": "https://hooks.example.com/in", "events": ["campaign.started"]}
    first = (await admin.post("/api/webhooks", json=body)).json()
    second = (await admin.post("/api/webhooks", json=body)).json()
    for _ in range(2):
        assert (await admin.post(f"/api/webhooks/{first['id']}/ping")).status_code == 202
    await admin.patch(f"/api/webhooks/{second['id']}", json={"enabled": False})
    response = await admin.get("/metrics")
    assert response.status_code == 200, response.text
    text = response.text
    assert 'pagecast_outbound_webhook_deliveries{status="pending"} 2.0' in text
    assert 'pagecast_outbound_webhook_deliveries{status="failed"} 0.0' in text
    assert 'pagecast_webhook_endpoints{state="on"} 1.0' in text
    assert 'pagecast_webhook_endpoints{state="off"} 1.0' in text
    for family in re.findall(r"^# TYPE (\S+) ", text, flags=re.M):
        assert f"# HELP {family} " in text, family
    _promtool()
    checked = _check("metrics", stdin=response.content)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


async def test_the_queue_page_shows_outbound_deliveries_beside_the_queues(
    api: Any, app: Any, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    body = {"url": "https://hooks.example.com/in", "events": ["campaign.started"]}
    made = (await admin.post("/api/webhooks", json=body)).json()
    for _ in range(3):
        assert (await admin.post(f"/api/webhooks/{made['id']}/ping")).status_code == 202
    await admin.patch(f"/api/webhooks/{made['id']}", json={"enabled": False})
    user, _ = await create_user(db, Role.ADMIN, email="ops-seen@example.com")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: await session_cookie(db, user)},
    ) as browser:
        page = await browser.get("/queue")
    assert page.status_code == 200, page.text
    shown = dict(re.findall(r'data-outbound="([\w-]+)">(\d+)<', page.text))
    assert shown == {"pending": "3", "delivered": "0", "failed": "0", "endpoints-off": "1"}
    assert 'href="/outbound-webhooks"' in page.text
