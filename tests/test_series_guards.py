"""Issue 20, what guards a series' promise and its runs: a run of a "never twice" series keeps
its deliveries, deleting a series needs what creating one needs and cancels its runs not
started, a Page with a series is not deleted from under it, and two runs' snapshots take the
series in turn."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from factories import create_user, postgresql_only
from pagecast.db import Database
from pagecast.models import Campaign, Delivery, Role
from pagecast.permissions import Actor
from pagecast.services import sending
from pagecast.settings import Settings
from pagecast.worker import sweep as sweep_steps
from pagecast.worker.series import made_elsewhere
from test_sending import (
    add_people,
    admin,
    app_client,
    engine_app,
    manager,
    sending_settings,
    setup_page,
)
from test_series_runs import new_series, next_run, run_once, sweep_at

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here


async def test_a_sent_run_of_a_never_twice_series_is_kept_until_the_series_ends(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    series = await new_series(manager, page_id)
    after = await run_once(manager, sending_settings, db, series["id"])
    run_id = after["runs"][0]["campaign_id"]
    refused = await manager.delete(f"/api/campaigns/{run_id}")
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert f"series {series['id']}" in message and "message those people again" in message
    assert f"/api/series/{series['id']}/end" in message
    assert (await manager.get(f"/api/campaigns/{run_id}")).status_code == 200
    # Once the series has ended, no later run can be misled by it.
    assert (await manager.post(f"/api/series/{series['id']}/end")).status_code == 200
    assert (await manager.delete(f"/api/campaigns/{run_id}")).status_code == 204


async def test_a_run_of_a_once_per_run_series_can_be_deleted(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    series = await new_series(manager, page_id, mode="once_per_run")
    after = await run_once(manager, sending_settings, db, series["id"])
    run_id = after["runs"][0]["campaign_id"]
    assert (await manager.delete(f"/api/campaigns/{run_id}")).status_code == 204


async def test_deleting_a_series_needs_send_and_cancels_its_runs_not_started(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    engine_app: Any,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    series = await new_series(manager, page_id)
    # Its run is found two hours late (Pagecast was down): made, scheduled and missed.
    await sweep_at(sending_settings, db, next_run(series) + timedelta(hours=2))
    [missed] = (await manager.get(f"/api/series/{series['id']}")).json()["runs"]
    assert missed["missed"] and missed["status"] == "scheduled"
    _, editor_token = await create_user(
        db, Role.MANAGER, email="editor@example.com", can_send=False
    )
    async with app_client(engine_app, editor_token) as editor:
        assert (await editor.delete(f"/api/series/{series['id']}")).status_code == 403
    assert (await manager.get(f"/api/series/{series['id']}")).status_code == 200
    assert (await manager.delete(f"/api/series/{series['id']}")).status_code == 204
    kept = (await manager.get(f"/api/campaigns/{missed['campaign_id']}")).json()
    assert kept["status"] == "cancelled" and kept["series_id"] is None, kept
    # Nobody can start it by hand any more.
    started = await manager.post(f"/api/campaigns/{missed['campaign_id']}/start")
    assert started.status_code == 409


async def test_a_page_with_a_series_is_refused_then_disconnected_once_it_ended(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
) -> None:
    page_id = await setup_page(admin, sim)
    series = await new_series(manager, page_id)
    refused = await admin.delete(f"/api/pages/{page_id}")
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert f"series {series['id']} ('Welcome'), active" in message
    assert f"/api/series/{series['id']}/end" in message
    # Nor can the series be moved to another Page (docs/api.md).
    moved = await manager.patch(f"/api/series/{series['id']}", json={"page_id": page_id + 1})
    assert moved.status_code == 422 and "page_id" in moved.text, moved.text
    assert (await manager.post(f"/api/series/{series['id']}/end")).status_code == 200
    # An ended series is history, as a campaign is: the Page is disconnected, not deleted.
    gone = await admin.delete(f"/api/pages/{page_id}")
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected"
    assert (await manager.get(f"/api/series/{series['id']}")).status_code == 200


async def _waiting_on_a_lock(db: Database, task: asyncio.Task[Any]) -> bool:
    """Wait until `task` ended or some transaction waits for a row lock; which one."""
    for _ in range(1000):
        if task.done():
            return False
        async with db.reading() as session:
            waiting = await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        if waiting:
            return True
        await asyncio.sleep(0.01)  # polling a condition, bounded (10 s)
    raise AssertionError("the second start neither ended nor waited")


@postgresql_only
async def test_two_runs_started_at_once_take_the_series_in_turn(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 3)
    series = await new_series(manager, page_id)
    # Two runs missed while Pagecast was down, each then started by hand at the same time.
    await sweep_at(sending_settings, db, next_run(series) + timedelta(hours=2))
    body = (await manager.get(f"/api/series/{series['id']}")).json()
    await sweep_at(sending_settings, db, next_run(body) + timedelta(hours=2))
    body = (await manager.get(f"/api/series/{series['id']}")).json()
    second, first = (run["campaign_id"] for run in body["runs"])

    async def start_second() -> None:
        async with db.transaction() as session:
            await sending.start(session, Actor.system(), second)

    async with db.transaction() as session:
        await sending.start(session, Actor.system(), first)  # not committed yet
        task = asyncio.create_task(start_second())
        waited = await _waiting_on_a_lock(db, task)
    await asyncio.gather(task, return_exceptions=True)
    assert waited, "the second run's snapshot did not wait for the first's"
    async with db.reading() as session:
        taken = dict(
            list(
                await session.execute(
                    select(Delivery.campaign_id, func.count())
                    .where(Delivery.campaign_id.in_([first, second]))
                    .group_by(Delivery.campaign_id)
                )
            )
        )
        statuses = {c.id: c.status.value for c in await session.scalars(select(Campaign))}
    assert taken == {first: 3}, (taken, statuses)


async def test_only_the_unique_run_is_taken_for_another_workers_run(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    series = await new_series(manager, page_id)
    after = await run_once(manager, sending_settings, db, series["id"])
    run_at = datetime.fromisoformat(after["runs"][0]["run_at"])

    async def insert(**fields: Any) -> IntegrityError:
        row = {"name": "copy", "page_id": page_id, "content": {"text": "x"}} | fields
        try:
            async with db.transaction() as session:
                session.add(Campaign(audience={"type": "all"}, **row))
        except IntegrityError as exc:
            return exc
        raise AssertionError(f"{fields} was stored")

    assert made_elsewhere(await insert(series_id=series["id"], run_at=run_at))
    assert not made_elsewhere(await insert(series_id=series["id"] + 1000, run_at=run_at))


async def test_a_failing_sweep_step_does_not_keep_the_series_runs_from_being_made(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    series = await new_series(manager, page_id)

    async def broken(env: object) -> None:
        raise RuntimeError("the lost claims step broke")

    # A fault in a step of the sweep before the series step (not in sending): it still runs.
    monkeypatch.setattr(sweep_steps, "recover_lost_claims", broken)
    await sweep_at(sending_settings, db, next_run(series) + timedelta(seconds=5))
    runs = (await manager.get(f"/api/series/{series['id']}")).json()["runs"]
    assert [run["status"] for run in runs] == ["sending"], runs
    assert "sweep: broken failed" in caplog.text and "the lost claims step broke" in caplog.text
