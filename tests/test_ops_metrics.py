"""`/metrics` after a real campaign, checked by Prometheus's own `promtool check metrics`,
and the example alert rules of docs/prometheus-alerts.yml checked by `promtool check rules`.

promtool comes from Debian's `prometheus` package (.ci/run installs it under CI=true);
without it the checks are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagecast import actions
from pagecast.cli.base import cli_actor
from pagecast.db import Database
from pagecast.settings import Settings
from test_sending import (  # noqa: F401  (fixtures)
    PAGE,
    RunningWorker,
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    sending_settings,
    setup_page,
    wait_for,
)

RULES = Path(__file__).parent.parent / "docs" / "prometheus-alerts.yml"
# As tests/conftest.py reads it: `from conftest import` picks whichever conftest (tests/dashboard,
# tests/simulator, ...) a whole-suite run imported last.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ALERT_TESTS = Path(__file__).parent / "ops_prometheus_alerts_test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing: apt-get install prometheus (.ci/run installs it)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires it.")
        pytest.skip(reason)
    return found


def _check(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_promtool(), "check", *args], input=stdin, capture_output=True, timeout=60
    )


async def test_metrics_after_a_real_campaign_pass_promtool(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    _promtool()
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 10)
    campaign_id = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{campaign_id}/start")
    async with RunningWorker(sending_settings, db) as running:
        await wait_for(manager, campaign_id, {"completed"})
        response = await admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    checked = _check("metrics", stdin=response.content)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    text = response.text
    for family in re.findall(r"^# TYPE (\S+) ", text, flags=re.M):
        assert f"# HELP {family} " in text, family
    # Every family the example alert rules read is one this answer has.
    families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    assert set(re.findall(r"\bpagecast_[a-z_]+", RULES.read_text())) <= families
    assert f'pagecast_deliveries{{page="{PAGE}",status="sent"}} 10.0' in text
    assert f'pagecast_sends_total{{outcome="sent",page="{PAGE}"}} 10.0' in text
    assert 'pagecast_send_latency_seconds_bucket{le="+Inf"} 10.0' in text
    assert "pagecast_send_latency_seconds_count 10.0" in text
    assert f'pagecast_page_status{{page="{PAGE}",status="active"}} 1.0' in text
    assert f'pagecast_page_status{{page="{PAGE}",status="token_invalid"}} 0.0' in text
    assert 'pagecast_campaigns{status="completed"} 1.0' in text
    assert f'pagecast_campaigns_paused_by_breaker{{page="{PAGE}"}} 0.0' in text
    assert "pagecast_workers 1.0" in text
    assert f'pagecast_worker_heartbeat_age_seconds{{worker="{running.worker.id}"}}' in text
    assert 'pagecast_queue_jobs{queue="webhooks",state="waiting"} 0.0' in text


def test_example_alert_rules_pass_promtool() -> None:
    checked = _check("rules", str(RULES))
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    # And they fire on series as /metrics exports them (a worker that stops beating, ...).
    tested = subprocess.run(
        [_promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, timeout=60
    )
    assert tested.returncode == 0, (tested.stdout + tested.stderr).decode()
    rules = RULES.read_text()
    for alert in (
        "TokenInvalid",
        "PausedByBreaker",
        "BacklogGrowing",
        "NoWorkerHeartbeat",
        "ApprovalWaitingLong",
    ):
        assert f"alert: Pagecast{alert}" in rules or alert in rules, alert


async def test_metrics_count_only_the_campaigns_the_breaker_paused(
    engine_app: Any,  # noqa: F811
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim, send_rate=50)
    await add_people(sim, manager, page_id, 40)
    await sim.post(
        "/__sim/script",
        json={
            "match": {"path": "messages"},
            "responses": [{"code": 100, "message": "Invalid parameter", "times": 1000}],
        },
    )
    refused = await new_campaign(manager, page_id)
    await manager.post(f"/api/campaigns/{refused}/start")
    async with RunningWorker(sending_settings, db):
        assert "Circuit breaker" in (await wait_for(manager, refused, {"paused"}))["status_reason"]
    # A second campaign a person pauses (no worker runs, so it is still sending then).
    held = await new_campaign(manager, page_id, name="Held")
    await manager.post(f"/api/campaigns/{held}/start")
    assert (await manager.post(f"/api/campaigns/{held}/pause")).status_code == 200
    # A third one an operator pauses with `pagecast campaigns pause` (an actor without a
    # user id, as the system's).
    by_cli = await new_campaign(manager, page_id, name="Held from the CLI")
    await manager.post(f"/api/campaigns/{by_cli}/start")
    await actions.pause(engine_app.state.context, cli_actor(), by_cli)
    text = (await admin.get("/metrics")).text
    assert 'pagecast_campaigns{status="paused"} 3.0' in text
    assert f'pagecast_campaigns_paused_by_breaker{{page="{PAGE}"}} 1.0' in text
