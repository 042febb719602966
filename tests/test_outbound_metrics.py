"""`/metrics` counts outbound webhook deliveries by status and endpoints on and off (issue
22), with HELP, and the answer passes `promtool check metrics`."""

from __future__ import annotations

import re
from typing import Any

from pagecast.models import Role
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
