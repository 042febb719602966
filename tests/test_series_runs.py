"""Issue 20: recurring series end to end. The worker's sweep, on an injected clock, makes each
run a campaign and starts it; the simulator receives the sends through the real Graph
client; "never twice" leaves out whoever an earlier run reached."""

from __future__ import annotations

import asyncio
import calendar
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from factories import create_user, postgresql_only, table_counts
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import Campaign, CampaignStatus, Role, Series, utcnow
from pagecast.services import snapshots
from pagecast.settings import Settings
from pagecast.worker import build
from pagecast.worker.series import run_due_series
from pagecast.worker.state import Clock
from pagecast.worker.sweep import sweep
from test_sending import (  # the sending engine's fixtures and helpers
    add_people,
    admin,
    app_client,
    drain,
    engine_app,
    manager,
    outbox,
    sending_settings,
    setup_page,
)

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here

EVERY_TEN_MINUTES = {"kind": "cron", "cron": "*/10 * * * *"}


class At(Clock):
    """The worker's clock, stopped at one time."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()


async def new_series(manager: httpx.AsyncClient, page_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Welcome",
        "page_id": page_id,
        "schedule": EVERY_TEN_MINUTES,
        "timezone": "Asia/Manila",
        "content": {"text": "Welcome {{first_name|there}}"},
    } | overrides
    response = await manager.post("/api/series", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def sweep_at(settings: Settings, db: Database, at: datetime) -> None:
    """One sweep of a worker whose clock says `at`."""
    ctx = AppContext(settings, database=db)
    try:
        await sweep(build(ctx, clock=At(at)).env)
    finally:
        await ctx.close()


def next_run(series: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(series["next_run_at"])


async def run_once(
    manager: httpx.AsyncClient, settings: Settings, db: Database, series_id: int
) -> dict[str, Any]:
    """Sweep at the series' next run (a few seconds after it), send what it started, and
    answer the series as it is then."""
    body = (await manager.get(f"/api/series/{series_id}")).json()
    await sweep_at(settings, db, next_run(body) + timedelta(seconds=5))
    await drain(settings, db)
    return dict((await manager.get(f"/api/series/{series_id}")).json())


async def test_a_run_is_a_campaign_started_at_its_time_and_sent(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    psids = await add_people(sim, manager, page_id, 3)
    series = await new_series(manager, page_id)
    assert series["status"] == "active" and series["mode"] == "never_twice"
    assert len(series["upcoming"]) == 5 and series["upcoming"][0] == series["next_run_at"]
    # Before its time, a sweep makes nothing.
    await sweep_at(sending_settings, db, next_run(series) - timedelta(seconds=1))
    assert (await manager.get(f"/api/series/{series['id']}")).json()["runs"] == []
    after = await run_once(manager, sending_settings, db, series["id"])
    [run] = after["runs"]
    assert run["run_at"] == series["next_run_at"] and run["status"] == "completed"
    assert run["counts"]["sent"] == 3 and not run["missed"]
    assert next_run(after) == next_run(series) + timedelta(minutes=10)
    campaign = (await manager.get(f"/api/campaigns/{run['campaign_id']}")).json()
    assert campaign["series_id"] == series["id"] and campaign["run_at"] == run["run_at"]
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(psids)
    assert sent[0]["message"]["text"] == f"Welcome P{sent[0]['psid']}"


async def test_never_twice_leaves_out_earlier_runs_people_and_takes_new_ones(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    first = await add_people(sim, manager, page_id, 3)
    series = await new_series(manager, page_id, mode="never_twice")
    await run_once(manager, sending_settings, db, series["id"])
    newcomers = await add_people(sim, manager, page_id, 2, start=100)
    after = await run_once(manager, sending_settings, db, series["id"])
    latest, earliest = after["runs"]
    assert earliest["counts"]["sent"] == 3
    assert latest["counts"]["total"] == 2 and latest["counts"]["sent"] == 2
    sent = [m["psid"] for m in await outbox(sim)]
    assert sorted(sent) == sorted(first + newcomers)  # nobody twice
    # A third run with nobody new reaches nobody and completes.
    third = await run_once(manager, sending_settings, db, series["id"])
    assert third["runs"][0]["counts"]["total"] == 0
    assert third["runs"][0]["status"] == "completed"
    assert len(await outbox(sim)) == 5


async def test_once_per_run_messages_everyone_again(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    first = await add_people(sim, manager, page_id, 3)
    series = await new_series(manager, page_id, mode="once_per_run")
    await run_once(manager, sending_settings, db, series["id"])
    newcomers = await add_people(sim, manager, page_id, 1, start=100)
    after = await run_once(manager, sending_settings, db, series["id"])
    assert [r["counts"]["sent"] for r in after["runs"]] == [4, 3]
    sent = [m["psid"] for m in await outbox(sim)]
    assert sorted(sent) == sorted(first * 2 + newcomers)


async def test_a_run_missed_while_down_is_not_sent_and_is_shown_missed(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    series = await new_series(manager, page_id)
    # Pagecast was down: the worker comes back two hours after the run's time.
    back = next_run(series) + timedelta(hours=2)
    await sweep_at(sending_settings, db, back)
    await drain(sending_settings, db)
    after = (await manager.get(f"/api/series/{series['id']}")).json()
    [run] = after["runs"]
    assert run["missed"] and run["status"] == "scheduled" and "Missed" in run["status_reason"]
    assert run["counts"]["total"] == 0
    assert await outbox(sim) == []
    # The series goes on: its next run is the schedule's next time after it came back.
    assert after["status"] == "active" and back < next_run(after) <= back + timedelta(minutes=10)


async def test_two_workers_make_one_campaign_per_run(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    series = await new_series(manager, page_id)
    at = next_run(series) + timedelta(seconds=1)
    one, two = AppContext(sending_settings, database=db), AppContext(sending_settings, database=db)
    try:
        started = await asyncio.gather(
            run_due_series(build(one, clock=At(at)).env),
            run_due_series(build(two, clock=At(at)).env),
        )
    finally:
        await one.close()
        await two.close()
    assert sorted(len(s) for s in started) == [0, 1]
    async with db.transaction() as session:
        runs = list(
            await session.scalars(select(Campaign).where(Campaign.series_id == series["id"]))
        )
    assert len(runs) == 1 and runs[0].status is CampaignStatus.SENDING
    # The database keeps it so even if both got past the series' lock.
    try:
        async with db.transaction() as session:
            copy = Campaign(
                name="copy",
                page_id=page_id,
                content={"text": "x"},
                audience={"type": "all"},
                series_id=series["id"],
                run_at=runs[0].run_at,
            )
            session.add(copy)
    except IntegrityError:
        pass
    else:
        raise AssertionError("a second campaign for the same run was stored")


async def test_pause_resume_and_end(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    series = await new_series(manager, page_id)
    paused = (await manager.post(f"/api/series/{series['id']}/pause")).json()
    assert paused["status"] == "paused" and paused["upcoming"] == []
    # Its time passes while paused: no run.
    await sweep_at(sending_settings, db, next_run(series) + timedelta(seconds=5))
    assert (await manager.get(f"/api/series/{series['id']}")).json()["runs"] == []
    resumed = (await manager.post(f"/api/series/{series['id']}/resume")).json()
    assert resumed["status"] == "active" and next_run(resumed) > utcnow()
    ended = (await manager.post(f"/api/series/{series['id']}/end")).json()
    assert ended["status"] == "ended" and ended["next_run_at"] is None and ended["ended_at"]
    await sweep_at(sending_settings, db, next_run(resumed) + timedelta(seconds=5))
    assert (await manager.get(f"/api/series/{series['id']}")).json()["runs"] == []
    again = await manager.post(f"/api/series/{series['id']}/resume")
    assert again.status_code == 409 and again.json()["error"]["field"] == "status"
    edit = await manager.patch(f"/api/series/{series['id']}", json={"name": "x"})
    assert edit.status_code == 409
    assert await outbox(sim) == []


async def test_a_series_can_be_changed_listed_and_deleted_keeping_its_runs(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    series = await new_series(manager, page_id)
    # Two weekdays at least two days away, so the first run comes well after the person's
    # 24-hour window has closed whatever day the suite runs on.
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    weekdays = sorted({(today + timedelta(days=ahead)).weekday() for ahead in (2, 5)})
    day_names = [calendar.day_name[day] for day in weekdays]
    changed = await manager.patch(
        f"/api/series/{series['id']}",
        json={
            "schedule": {
                "kind": "weekly",
                "days": [name[:3].lower() for name in day_names],
                "time": "08:15",
            },
            "timezone": "europe/berlin",
            "content": {"text": "Hello again"},
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (
        body["timezone"] == "Europe/Berlin" and body["campaign"]["content"]["text"] == "Hello again"
    )
    assert body["schedule_text"] == f"Every {', '.join(day_names)} at 08:15 (Europe/Berlin)"
    local = next_run(body).astimezone(ZoneInfo("Europe/Berlin"))
    assert local.weekday() in weekdays and (local.hour, local.minute) == (8, 15)
    assert local.date() >= today + timedelta(days=2)
    listed = (await manager.get("/api/series")).json()
    assert [s["id"] for s in listed["items"]] == [series["id"]]
    after = await run_once(manager, sending_settings, db, series["id"])
    campaign_id = after["runs"][0]["campaign_id"]
    assert (await manager.delete(f"/api/series/{series['id']}")).status_code == 204
    assert (await manager.get(f"/api/series/{series['id']}")).status_code == 404
    # That run came days later: its one person was outside the 24-hour window by then, so
    # the run was not sent and says why.
    assert after["runs"][0]["status"] == "cancelled"
    assert after["runs"][0]["status_reason"].startswith("Run not sent: Campaign")
    assert "stays" not in after["runs"][0]["status_reason"]
    kept = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert kept["series_id"] is None and kept["status"] == "cancelled"


async def test_bad_input_names_the_field_and_changes_nothing(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    base = {"name": "W", "page_id": page_id, "content": {"text": "Hi"}}
    before = await table_counts(db)
    cases = [
        ({"schedule": {"kind": "cron", "cron": "0 9 * *"}}, "schedule", "5"),
        ({"schedule": {"kind": "cron", "cron": "0 25 * * *"}}, "schedule", "Bad hour"),
        ({"schedule": {"kind": "daily", "time": "24:00"}}, "schedule", "HH:MM"),
        ({"schedule": {"kind": "weekly", "days": ["someday"], "time": "09:00"}}, "schedule", "day"),
        (
            {"schedule": {"kind": "daily", "time": "09:00"}, "timezone": "Nowhere/Town"},
            "timezone",
            "time zone",
        ),
        ({"schedule": {"kind": "daily", "time": "09:00"}, "mode": "sometimes"}, "mode", ""),
        ({"schedule": {"kind": "daily", "time": "09:00"}, "page_id": 999}, "", "Page"),
    ]
    for extra, field, words in cases:
        response = await manager.post("/api/series", json=base | extra)
        assert response.status_code in (404, 422), (extra, response.text)
        error = response.json()["error"]
        assert (error["field"] or "").startswith(field) and words in error["message"], (
            extra,
            error,
        )
    series = await new_series(manager, page_id)
    bad = await manager.patch(
        f"/api/series/{series['id']}", json={"schedule": {"kind": "cron", "cron": "x"}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("schedule"), bad.text
    assert (await manager.get("/api/series/2147483647")).status_code == 404
    after = await table_counts(db)
    assert after["series"] == before["series"] + 1


async def test_permissions_are_those_of_campaigns(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    engine_app: Any,
    sim: httpx.AsyncClient,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    series = await new_series(manager, page_id)
    _, viewer_token = await create_user(db, Role.VIEWER, email="viewer@example.com")
    _, editor_token = await create_user(
        db, Role.MANAGER, email="editor@example.com", can_send=False
    )
    body = {
        "name": "W",
        "page_id": page_id,
        "schedule": {"kind": "daily", "time": "09:00"},
        "content": {"text": "Hi"},
    }
    async with (
        app_client(engine_app, viewer_token) as viewer,
        app_client(engine_app, editor_token) as editor,
    ):
        assert (await viewer.get(f"/api/series/{series['id']}")).status_code == 200
        assert (await viewer.get("/api/series")).status_code == 200
        for who in (viewer, editor):
            assert (await who.post("/api/series", json=body)).status_code == 403
            for action in ("pause", "resume", "end"):
                assert (await who.post(f"/api/series/{series['id']}/{action}")).status_code == 403
            patch = await who.patch(f"/api/series/{series['id']}", json={"name": "x"})
            assert patch.status_code == 403
        assert (await viewer.delete(f"/api/series/{series['id']}")).status_code == 403
    async with db.transaction() as session:
        row = await session.get(Series, series["id"])
        assert row is not None and row.name == "Welcome" and row.status.value == "active"


async def test_a_run_that_cannot_be_made_says_why_and_the_series_goes_on(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
) -> None:
    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 1)
    template = await manager.post(
        "/api/templates", json={"name": "Hello", "content": {"text": "Hello"}}
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]
    series = await new_series(manager, page_id, content=None, template_id=template_id)
    assert (await manager.delete(f"/api/templates/{template_id}")).status_code == 204
    await sweep_at(sending_settings, db, next_run(series) + timedelta(seconds=5))
    after = (await manager.get(f"/api/series/{series['id']}")).json()
    assert after["runs"] == [] and after["status"] == "active"
    assert (
        after["status_reason"].startswith("The run of ")
        and "could not be made" in after["status_reason"]
    )
    assert f"Template {template_id} does not exist" in after["status_reason"]
    assert next_run(after) == next_run(series) + timedelta(minutes=10)
    assert await outbox(sim) == []


async def test_the_openapi_document_describes_the_series_routes(
    manager: httpx.AsyncClient,
) -> None:
    document = (await manager.get("/openapi.json")).json()
    for path in (
        "/api/series",
        "/api/series/{series_id}",
        "/api/series/{series_id}/pause",
        "/api/series/{series_id}/resume",
        "/api/series/{series_id}/end",
    ):
        assert path in document["paths"], path
    schemas = document["components"]["schemas"]
    assert {"SeriesCreate", "SeriesOut", "SeriesDetailOut", "CronSchedule"} <= set(schemas)
    assert "run_at" in schemas["CampaignOut"]["properties"]


@postgresql_only
async def test_a_missed_run_started_by_hand_in_slices_still_leaves_out_earlier_people(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    sending_settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A large audience on PostgreSQL is snapshotted in slices (services/snapshots.py): the
    # first slice's count and every slice leave out whoever an earlier run reached.
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 5)
    monkeypatch.setattr(snapshots, "SNAPSHOT_SLICE", 7)
    page_id = await setup_page(admin, sim, send_rate=300)
    first = await add_people(sim, manager, page_id, 12)
    series = await new_series(manager, page_id)
    after_one = await run_once(manager, sending_settings, db, series["id"])
    assert after_one["runs"][0]["counts"]["sent"] == 12
    newcomers = await add_people(sim, manager, page_id, 15, start=100)
    # The next run is missed (Pagecast was down); someone starts it by hand.
    await sweep_at(sending_settings, db, next_run(after_one) + timedelta(hours=2))
    missed = (await manager.get(f"/api/series/{series['id']}")).json()["runs"][0]
    assert missed["missed"]
    started = await manager.post(f"/api/campaigns/{missed['campaign_id']}/start")
    assert started.status_code == 202, started.text
    # Counted without the 12 of run 1 from the start, not only once the last slice is in.
    assert started.json()["counts"]["total"] == 15, started.json()["counts"]
    await drain(sending_settings, db)
    run = (await manager.get(f"/api/campaigns/{missed['campaign_id']}")).json()
    assert run["status"] == "completed", run
    assert run["counts"]["total"] == 15 and run["counts"]["sent"] == 15, run["counts"]
    sent = [m["psid"] for m in await outbox(sim)]
    assert sorted(sent) == sorted(first + newcomers)
