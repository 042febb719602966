"""Audience sync from the Conversations API: paging, names and windows, pacing, token errors,
one sync at a time, and the CLI.

The real Graph client talks to the simulator; syncs started through the API run as
background tasks of the app's context on the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from factories import ADMIN_ACTOR, SECRET_KEY, SIM_TOKEN, sim_page, table_counts
from pagecast.db import Database
from pagecast.errors import InvalidState
from pagecast.models import Contact, PageSync, Role, SyncState
from pagecast.services import page_syncs

PAGE = "1001"
PAGECAST = str(Path(sys.executable).parent / "pagecast")


async def connect(api: Any, sim: httpx.AsyncClient, role: Role = Role.ADMIN) -> tuple[Any, int]:
    await sim_page(sim, page_id=PAGE)
    admin = await api(Role.ADMIN)
    response = await admin.post("/api/pages", json={"access_token": SIM_TOKEN})
    assert response.status_code == 201, response.text
    return admin, int(response.json()["id"])


async def sim_now(sim: httpx.AsyncClient) -> int:
    return int((await sim.get("/__sim/clock")).json()["now"])


async def people(sim: httpx.AsyncClient, count: int, *, newest: int) -> dict[str, int]:
    """`count` people who each wrote once, 20 s apart; their PSID -> message time (s)."""
    times = {str(20_000 + i): newest - 20 * i for i in range(count)}
    body = [
        {
            "page_id": PAGE,
            "psid": psid,
            "first_name": f"Ann{psid}",
            "last_name": "Lee Smith",
            "last_user_action": at,
        }
        for psid, at in times.items()
    ]
    response = await sim.post("/__sim/users", json=body)
    assert response.json() == {"created": count}, response.text
    return times


async def page_reply(sim: httpx.AsyncClient, psid: str) -> None:
    """The Page writes to the person: the thread's updated_time moves, their window does not."""
    response = await sim.post(
        "/v25.0/me/messages",
        headers={"Authorization": f"Bearer {SIM_TOKEN}"},
        json={
            "recipient": {"id": psid},
            "message": {"text": "Thanks!"},
            "messaging_type": "RESPONSE",
        },
    )
    assert response.status_code == 200, response.text


async def finished(client: httpx.AsyncClient, page_id: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = (await client.get(f"/api/pages/{page_id}/sync")).json()
        if not report["running"]:
            return report  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"sync still running: {report}"
        await asyncio.sleep(0.2)


async def contacts_by_psid(db: Database) -> dict[str, Contact]:
    async with db.transaction() as session:
        return {c.psid: c for c in await session.scalars(select(Contact))}


def conversation_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["path"].endswith("/conversations")]


async def test_sync_of_2500_threads_pages_dedupes_and_keeps_the_pace(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin, page_id = await connect(api, sim)
    now = await sim_now(sim)
    times = await people(sim, 2_500, newest=now - 120)
    replied = [str(20_000 + i) for i in range(0, 2_500, 100)]  # 25 threads the Page answered
    for psid in replied:
        await page_reply(sim, psid)
    # Known before the sync: one with a newer message than the thread shows (from a webhook),
    # one with an older one and a name of its own (from an import).
    newer = datetime.fromtimestamp(now - 5, UTC)
    for body in (
        {"psid": "20001", "last_inbound_at": newer.isoformat()},
        {
            "psid": "20002",
            "first_name": "Annie",
            "last_inbound_at": datetime.fromtimestamp(now - 86_400, UTC).isoformat(),
        },
    ):
        assert (await admin.post(f"/api/pages/{page_id}/contacts", json=body)).status_code == 201

    started = await admin.post(f"/api/pages/{page_id}/sync")
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "running"
    report = await finished(admin, page_id)

    assert report["state"] == "completed", report
    assert report["error"] is None and report["finished_at"] is not None
    assert (report["threads_seen"], report["calls"]) == (2_500, 25)
    # 20001 gets a name, 20002 a newer message.
    assert (report["contacts_created"], report["contacts_updated"]) == (2_498, 2)
    rows = await contacts_by_psid(db)
    assert len(rows) == 2_500
    for psid, at in times.items():
        if psid in ("20001", "20002"):
            continue
        row = rows[psid]
        assert (row.first_name, row.last_name) == (f"Ann{psid}", "Lee Smith")
        # The person's own message, also where the Page wrote after it (not updated_time).
        assert row.last_inbound_at == datetime.fromtimestamp(at, UTC), psid
    assert rows["20001"].last_inbound_at == newer  # never moved back
    assert rows["20001"].first_name == "Ann20001"
    assert rows["20002"].first_name == "Annie"  # a stored name is kept
    assert rows["20002"].last_inbound_at == datetime.fromtimestamp(times["20002"], UTC)

    calls = conversation_calls(
        (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
    )
    assert len(calls) == 25 and all(c["status"] == 200 for c in calls)  # never a 613
    at = [c["time"] for c in calls]
    # At most 2 calls in any 1 s window: every third call is more than a second later.
    assert all(at[i + 2] - at[i] > 1.0 for i in range(len(at) - 2)), at

    # A second sync finds the same people: nothing new, nothing duplicated.
    assert (await admin.post(f"/api/pages/{page_id}/sync")).status_code == 202
    again = await finished(admin, page_id)
    assert (again["state"], again["threads_seen"], again["contacts_created"]) == (
        "completed",
        2_500,
        0,
    )
    assert again["contacts_updated"] == 0
    async with db.transaction() as session:
        assert await session.scalar(select(func.count(Contact.id))) == 2_500


async def test_a_revoked_token_stops_the_sync_records_the_error_and_marks_the_page(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin, page_id = await connect(api, sim)
    await people(sim, 1_000, newest=await sim_now(sim) - 60)
    assert (await admin.post(f"/api/pages/{page_id}/sync")).status_code == 202
    deadline = time.monotonic() + 30
    while (await admin.get(f"/api/pages/{page_id}/sync")).json()["threads_seen"] < 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    revoked = await sim.post(
        "/__sim/tokens/revoke", json={"access_token": SIM_TOKEN, "subcode": 460}
    )
    assert revoked.status_code == 200, revoked.text

    report = await finished(admin, page_id)
    assert report["state"] == "failed"
    assert "190/460" in report["error"] and "token_invalid" in report["error"]
    assert "PATCH /api/pages/" in report["error"]
    assert 200 <= report["threads_seen"] < 1_000  # what was synced before stays
    assert len(await contacts_by_psid(db)) == report["threads_seen"]
    page = (await admin.get(f"/api/pages/{page_id}")).json()
    assert page["status"] == "token_invalid" and "190/460" in page["status_reason"]
    calls = conversation_calls(
        (await sim.get("/__sim/calls", params={"page_id": PAGE})).json()["calls"]
    )
    assert [c["code"] for c in calls].count(190) == 1  # stopped at the first refusal
    # A Page with a dead token cannot be synced until it is reconnected, and nothing changes.
    before = await table_counts(db)
    refused = await admin.post(f"/api/pages/{page_id}/sync")
    assert refused.status_code == 409
    assert "token_invalid" in refused.json()["error"]["message"]
    assert await table_counts(db) == before


async def test_a_second_sync_while_one_runs_is_refused_with_how_to_follow_it(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin, page_id = await connect(api, sim)
    await people(sim, 300, newest=await sim_now(sim) - 60)
    first = await admin.post(f"/api/pages/{page_id}/sync")
    assert first.status_code == 202
    manager = await api(Role.MANAGER)
    second = await manager.post(f"/api/pages/{page_id}/sync")
    assert second.status_code == 409
    message = second.json()["error"]["message"]
    assert (
        f"sync {first.json()['id']} has been running since {first.json()['started_at']}" in message
    )
    assert f"GET /api/pages/{page_id}/sync" in message
    async with db.transaction() as session:  # the refusal recorded nothing
        assert await session.scalar(select(func.count(PageSync.id))) == 1
    viewer = await api(Role.VIEWER)
    assert (await viewer.post(f"/api/pages/{page_id}/sync")).status_code == 403
    assert (await viewer.get(f"/api/pages/{page_id}/sync")).json()["id"] == first.json()["id"]
    assert (await finished(admin, page_id))["state"] == "completed"


async def test_two_processes_starting_at_once_get_one_sync(
    db: Database, api: Any, sim: httpx.AsyncClient
) -> None:
    _, page_id = await connect(api, sim)

    async def start() -> PageSync:
        async with db.transaction() as session:
            return await page_syncs.start(session, ADMIN_ACTOR, page_id)

    results = await asyncio.gather(start(), start(), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["InvalidState", "PageSync"]
    assert any(isinstance(r, InvalidState) and "already being synced" in r.message for r in results)


async def test_a_sync_whose_process_died_is_reported_interrupted_and_blocks_nothing(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin, page_id = await connect(api, sim)
    dead_at = datetime.now(UTC) - timedelta(minutes=5)
    async with db.transaction() as session:
        session.add(
            PageSync(
                page_id=page_id,
                state=SyncState.RUNNING,
                started_by="crashed@example.com",
                started_at=dead_at - timedelta(minutes=1),
                heartbeat_at=dead_at,
                calls=3,
                threads_seen=300,
                contacts_created=300,
                contacts_updated=0,
            )
        )
    report = (await admin.get(f"/api/pages/{page_id}/sync")).json()
    assert (report["state"], report["running"], report["threads_seen"]) == (
        "interrupted",
        False,
        300,
    )
    assert "stopped" in report["error"]
    await people(sim, 10, newest=await sim_now(sim) - 60)
    assert (await admin.post(f"/api/pages/{page_id}/sync")).status_code == 202
    assert (await finished(admin, page_id))["state"] == "completed"


async def test_closing_the_app_interrupts_its_running_sync(
    app: Any, api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    admin, page_id = await connect(api, sim)
    await people(sim, 500, newest=await sim_now(sim) - 60)
    started = (await admin.post(f"/api/pages/{page_id}/sync")).json()
    await asyncio.sleep(0.3)
    await app.state.context.close()
    async with db.transaction() as session:
        row = await session.get(PageSync, started["id"])
    assert row is not None and row.state is SyncState.INTERRUPTED and row.finished_at is not None


async def test_cli_sync_shows_progress_and_refuses_while_one_runs(
    api: Any,
    sim: httpx.AsyncClient,
    db: Database,
    simulator: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    _, page_id = await connect(api, sim)
    await people(sim, 150, newest=await sim_now(sim) - 60)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    } | {
        "PAGECAST_DATA_DIR": str(tmp_path / "data"),
        "PAGECAST_DATABASE_URL": database_url,
        "PAGECAST_SECRET_KEY": SECRET_KEY,
        "PAGECAST_GRAPH_API_URL": simulator.url,
        "COLUMNS": "200",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PAGECAST, "pages", *args], capture_output=True, text=True, env=env, timeout=60
        )

    done = await asyncio.to_thread(cli, "sync", str(page_id))
    assert done.returncode == 0, done.stderr
    assert "Syncing Page" in done.stdout and "150 threads" in done.stdout
    assert "completed" in done.stdout and "150 contacts created" in done.stdout
    status = await asyncio.to_thread(cli, "sync", str(page_id), "--status")
    assert status.returncode == 0 and "completed" in status.stdout

    async with db.transaction() as session:  # another process is syncing right now
        await page_syncs.start(session, ADMIN_ACTOR, page_id)
    refused = await asyncio.to_thread(cli, "sync", str(page_id))
    assert refused.returncode == 1
    assert (
        "already being synced" in refused.stderr
        and f"pages sync {page_id} --status" in refused.stderr
    )


async def test_inbox_degradation_ends_the_sync_saying_why_and_leaves_the_page_alone(
    app: Any, api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    from pagecast.audience_sync import SyncOptions, SyncRunner

    admin, page_id = await connect(api, sim)
    await people(sim, 10, newest=await sim_now(sim) - 60)
    degraded = await sim.post("/__sim/limits", json={"page_id": PAGE, "inbox_degraded": True})
    assert degraded.json()["inbox_degraded"] is True
    ctx = app.state.context
    runner = SyncRunner(
        db,
        graph=ctx.graph,
        vault=ctx.vault,
        app_secret=None,
        options=SyncOptions(retries=2, retry_base_seconds=0.05),
    )
    sync = await runner.run_here(ADMIN_ACTOR, page_id)
    assert sync.state is SyncState.FAILED and sync.calls == 3
    assert sync.error is not None and "Gave up after 3 failed calls" in sync.error
    assert "Inbox degradation" in sync.error
    assert (await admin.get(f"/api/pages/{page_id}")).json()["status"] == "active"
    await sim.post("/__sim/limits", json={"page_id": PAGE, "inbox_degraded": False})
    assert (await runner.run_here(ADMIN_ACTOR, page_id)).state is SyncState.COMPLETED
