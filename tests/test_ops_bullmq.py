"""Node's BullMQ (what Bull Board runs on) reads Pagecast's queues, jobs and running workers,
and a job it adds is processed by a Pagecast worker.

The Node side is tests/bullmq_node/pagecast_queues.js with the `bullmq` package of
tests/bullmq_node/package-lock.json, installed by `npm ci` when missing. Without `node` the
test is skipped, except under CI=true where it fails.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagecast.db import Database
from pagecast.queue import QUEUE_NAME, WEBHOOK_QUEUE_NAME, bull_client_name
from pagecast.settings import Settings
from test_sending import (  # noqa: F401  (fixtures)
    RunningWorker,
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    outbox,
    sending_settings,
    setup_page,
    wait_for,
)

NODE_DIR = Path(__file__).parent / "bullmq_node"
# As tests/conftest.py reads it: `from conftest import` picks whichever conftest (tests/dashboard,
# tests/simulator, ...) a whole-suite run imported last.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it.")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node() -> str:
    """`node`, with tests/bullmq_node's packages installed."""
    found, npm = shutil.which("node"), shutil.which("npm")
    if found is None or npm is None:
        _missing("node and npm are missing: apt-get install nodejs npm")
    assert found is not None and npm is not None
    if not (NODE_DIR / "node_modules" / "bullmq" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            timeout=300,
        )
        if done.returncode != 0:
            _missing(f"npm ci in {NODE_DIR} failed: {done.stderr.decode()[-500:]}")
    return found


async def _bullmq(node: str, redis_url: str, *args: str) -> Any:
    """Run the Node script without blocking the event loop the Pagecast worker runs on."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "pagecast_queues.js"),
        redis_url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_node_bullmq_reads_pagecast_queues_and_its_job_is_processed(
    node: str,
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
    sending_settings: Settings,  # noqa: F811
    db: Database,
) -> None:
    redis_url = sending_settings.redis_url
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 5)
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202

    # No worker runs yet: Node sees the jobs starting queued (a plan, maybe a first chunk).
    seen = await _bullmq(node, redis_url, "read")
    jobs = seen["sending"]["jobs"]
    assert seen["sending"]["counts"]["prioritized"] == len(jobs) >= 1, seen
    assert {j["data"]["campaign_id"] for j in jobs} == {campaign_id}
    assert {j["name"] for j in jobs} <= {"plan", "chunk"} and "plan" in {j["name"] for j in jobs}

    # Node removes the jobs Pagecast queued and adds a plan job of its own for the campaign.
    await _bullmq(node, redis_url, "drain")
    added = await _bullmq(
        node, redis_url, "add", "plan", json.dumps({"campaign_id": campaign_id, "after_id": 0})
    )

    async with RunningWorker(sending_settings, db) as running:
        # Node lists the named connections of the whole Redis server (CLIENT LIST): other
        # runs' workers may be there too, so look for this one's.
        ours = {
            "sending": {
                "name": QUEUE_NAME,
                "rawname": bull_client_name(QUEUE_NAME, running.worker.id),
            },
            "webhooks": {
                "name": WEBHOOK_QUEUE_NAME,
                "rawname": bull_client_name(WEBHOOK_QUEUE_NAME, running.worker.id),
            },
        }
        deadline = time.monotonic() + 30
        while True:  # the worker names its connections as it starts
            seen = await _bullmq(node, redis_url, "read")
            if all(ours[q] in seen[q]["workers"] for q in ours):
                break
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.2)
        for queue, worker in ours.items():  # one connection each, not one per pooled one
            assert seen[queue]["workers"].count(worker) == 1, seen
        done = await wait_for(manager, campaign_id, {"completed"})
        deadline = time.monotonic() + 30
        while (state := await _bullmq(node, redis_url, "state", added["id"]))["state"] not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
    assert state == {"state": "completed", "failedReason": None}
    assert done["counts"]["sent"] == 5 and len(await outbox(sim)) == 5


def test_a_bullmq_without_the_naming_step_fails_at_import_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """worker/bull.py replaces bullmq's private `Worker._ensure_client_names`: a bullmq
    without it (another version) must not run workers that Bull Board silently misses."""
    import bullmq

    import pagecast.worker.bull as bull_module

    monkeypatch.delattr(bullmq.Worker, "_ensure_client_names")
    try:
        with pytest.raises(ImportError, match=r"_ensure_client_names.*uv\.lock"):
            importlib.reload(bull_module)
    finally:
        monkeypatch.undo()
        importlib.reload(bull_module)
