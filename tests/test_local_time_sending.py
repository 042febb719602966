"""Each person's local time, Page quiet hours and campaign send windows (issue 20), end to
end: API → snapshot (due times) → queue (real Redis) → worker with an injected clock →
Graph simulator, on SQLite and PostgreSQL. The worker's clock is moved forward; nothing
sleeps to wait for a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from factories import import_contacts, postgresql_only
from pagecast import timezones
from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.models import Campaign, DeliveryStatus, utcnow
from pagecast.services import deliveries, due_plan, snapshots
from pagecast.settings import Settings
from pagecast.worker import build
from pagecast.worker.state import Clock
from test_sending import (  # the sending engine's fixtures and helpers
    admin,
    deliveries_by_psid,
    engine_app,
    manager,
    new_campaign,
    outbox,
    sending_settings,
    setup_page,
    wait_for,
)

__all__ = ["admin", "engine_app", "manager", "sending_settings"]  # fixtures used here

PAGE = "1001"


class MovableClock(Clock):
    """The worker's clock, `ahead` of the real one; the test moves it forward (so a plan
    chain waiting for a due time looks again every 5 s)."""

    longest_wait = 5.0

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.ahead

    def time(self) -> float:
        return time.time() + self.ahead.total_seconds()


class ClockedWorker:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.clock = MovableClock()
        self.ctx = AppContext(settings, database=db)
        self.worker = build(self.ctx, clock=self.clock)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ClockedWorker:
        self.task = asyncio.create_task(self.worker.run(install_signals=False))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=30)
        await self.ctx.close()


@pytest.fixture
async def worker(sending_settings: Settings, db: Database) -> AsyncIterator[ClockedWorker]:
    async with ClockedWorker(sending_settings, db) as running:
        yield running


async def people(
    sim: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    page_id: int,
    rows: list[tuple[str, str, float]],
) -> None:
    """Contacts (psid, IANA zone or "", hours since their last message) in the simulator
    and, by a CSV import with a `timezone` column, in Pagecast."""
    users = [
        {"page_id": PAGE, "psid": p, "first_name": f"P{p}", "last_user_action": "now"}
        for p, _, _ in rows
    ]
    assert (await sim.post("/__sim/users", json=users)).status_code in (200, 201)
    csv = "psid,first_name,last_inbound_at,timezone\n" + "".join(
        f"{p},P{p},{(utcnow() - timedelta(hours=h)).isoformat()},{zone}\n" for p, zone, h in rows
    )
    report = await import_contacts(manager, page_id, csv.encode())
    assert report["imported"] == len(rows), report


async def sent_to(sim: httpx.AsyncClient) -> set[str]:
    return {m["psid"] for m in await outbox(sim)}


async def until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


async def test_people_in_three_zones_get_it_at_their_own_ten_oclock(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    worker: ClockedWorker,
) -> None:
    page_id = await setup_page(admin, sim)
    # Zones without summer time: Tokyo (UTC+9), Manila (UTC+8), Kolkata (UTC+5:30). The
    # wall time is 10 h ahead of UTC now, so Tokyo's comes in 1 h, Manila's in 2 h and
    # Kolkata's in 4.5 h. 2004 last wrote 20 h ago: inside the 24-hour window at the start,
    # outside it at their send time.
    await people(
        sim,
        manager,
        page_id,
        [
            ("2001", "Asia/Tokyo", 1),
            ("2002", "asia/manila", 1),
            ("2003", "Asia/Kolkata", 1),
            ("2004", "Asia/Kolkata", 20),
        ],
    )
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=10))
    campaign_id = await new_campaign(
        manager, page_id, local_send_at=wall.isoformat(timespec="minutes")
    )
    started = await manager.post(f"/api/campaigns/{campaign_id}/start")
    assert started.status_code == 202, started.text
    assert started.json()["counts"]["pending"] == 4

    due = {psid: d.due_at for psid, d in (await deliveries_by_psid(db, campaign_id)).items()}
    utc_wall = wall.replace(tzinfo=UTC)
    assert due == {
        "2001": utc_wall - timedelta(hours=9),
        "2002": utc_wall - timedelta(hours=8),
        "2003": utc_wall - timedelta(hours=5, minutes=30),
        "2004": utc_wall - timedelta(hours=5, minutes=30),
    }
    body = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["status"] == "sending" and body["local_send_at"] == wall.isoformat(
        timespec="minutes"
    )
    assert body["waiting"]["count"] == 4
    assert body["waiting"]["next_at"].startswith(due["2001"].strftime("%Y-%m-%dT%H:%M"))

    async def waiting_at(ahead: timedelta) -> int:
        async with db.transaction() as session:
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            return (await due_plan.count_waiting(session, campaign, utcnow() + ahead))[0]

    for ahead, expected, before, after in (
        (timedelta(hours=1, minutes=5), {"2001"}, 4, 3),
        (timedelta(hours=2, minutes=5), {"2001", "2002"}, 3, 2),
        (timedelta(hours=4, minutes=35), {"2001", "2002", "2003"}, 2, 0),
    ):
        # (The due times are whole minutes, up to a minute before the test's times.)
        assert await waiting_at(ahead - timedelta(minutes=10)) == before
        worker.clock.ahead = ahead

        async def arrived(expected: set[str] = expected) -> bool:
            return await sent_to(sim) == expected

        await until(arrived, f"{expected} by {ahead}")
        assert await waiting_at(ahead) == after

    done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 3 and done["counts"]["skipped"] == 1
    assert done["waiting"] is None
    rows = await deliveries_by_psid(db, campaign_id)
    # The window was checked at 2004's send time (24.5 h after their message), not at the start.
    assert rows["2004"].status is DeliveryStatus.SKIPPED
    assert rows["2004"].reason == "outside_window"
    assert len(await outbox(sim)) == 3  # one message each


async def test_quiet_hours_hold_a_plain_send_until_they_end(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    worker: ClockedWorker,
) -> None:
    page_id = await setup_page(admin, sim)
    now = utcnow()
    start, end = minute(now - timedelta(hours=1)), minute(now + timedelta(hours=1))
    quiet = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    changed = await admin.patch(f"/api/pages/{page_id}", json={"quiet_hours": quiet})
    assert changed.status_code == 200, changed.text
    assert changed.json()["quiet_hours"] == quiet
    # 3001 has no zone (the Page's: UTC, quiet now); 3002 is in Tokyo, where it is 9 h later.
    await people(sim, manager, page_id, [("3001", "", 1), ("3002", "Asia/Tokyo", 1)])
    campaign_id = await new_campaign(manager, page_id)
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202

    await until(lambda: _sent(sim, {"3002"}), "Tokyo is not in quiet hours")
    rows = await deliveries_by_psid(db, campaign_id)
    assert rows["3001"].due_at == end and rows["3001"].status is DeliveryStatus.PENDING
    assert rows["3002"].due_at is None
    assert (await manager.get(f"/api/campaigns/{campaign_id}")).json()["waiting"]["count"] == 1

    worker.clock.ahead = end - now + timedelta(seconds=5)
    await until(lambda: _sent(sim, {"3001", "3002"}), "3001 after the quiet hours")
    done = await wait_for(manager, campaign_id, {"completed"})
    assert done["counts"]["sent"] == 2


async def _sent(sim: httpx.AsyncClient, expected: set[str]) -> bool:
    return await sent_to(sim) == expected


async def test_a_send_window_holds_deliveries_until_it_opens(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    worker: ClockedWorker,
) -> None:
    page_id = await setup_page(admin, sim)
    await people(sim, manager, page_id, [("4001", "UTC", 1)])
    now = utcnow()
    # A window that opens 2 h from now (3 h when that is 23:xx), on that day only.
    opening = minute(now + timedelta(hours=2))
    if opening.hour == 23:
        opening = minute(now + timedelta(hours=3))
    window = {
        "days": [("mon", "tue", "wed", "thu", "fri", "sat", "sun")[opening.weekday()]],
        "start": f"{opening:%H:%M}",
        "end": "23:59",
    }
    campaign_id = await new_campaign(manager, page_id, send_window=window)
    got = (await manager.get(f"/api/campaigns/{campaign_id}")).json()
    assert got["send_window"] == window
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    rows = await deliveries_by_psid(db, campaign_id)
    assert rows["4001"].due_at == opening

    async with db.transaction() as session:  # a minute before it opens: nothing may be claimed
        early = opening - timedelta(minutes=1)
        assert not await deliveries.has_due_pending(session, campaign_id, early)
        assert await deliveries.has_due_pending(session, campaign_id, opening)
    assert await sent_to(sim) == set()
    worker.clock.ahead = opening - now + timedelta(seconds=1)
    await until(lambda: _sent(sim, {"4001"}), "sent when the window opened")
    assert (await wait_for(manager, campaign_id, {"completed"}))["counts"]["sent"] == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"local_send_at": "2026-12-07T10:00:00+08:00"}, "local_send_at", "has an offset"),
        ({"local_send_at": "next tuesday"}, "local_send_at", "is not a date and time"),
        ({"local_send_at": "2020-01-01T10:00"}, "local_send_at", "has passed in every"),
        (
            {"send_window": {"days": ["mon"], "start": "9am", "end": "18:00"}},
            "send_window.start",
            "HH:MM",
        ),
        (
            {"send_window": {"days": ["funday"], "start": "09:00", "end": "18:00"}},
            "send_window.days",
            "not a day",
        ),
        (
            {"send_window": {"days": ["mon"], "start": "18:00", "end": "09:00"}},
            "send_window.end",
            "not after",
        ),
        (
            {"send_window": {"days": [], "start": "09:00", "end": "18:00"}},
            "send_window.days",
            "at least one",
        ),
        ({"send_window": "weekdays"}, "send_window", "send {"),
    ],
)
async def test_bad_local_time_and_window_are_refused_naming_the_field(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    page_id = await setup_page(admin, sim)
    response = await manager.post(
        "/api/campaigns",
        json={"name": "x", "page_id": page_id, "content": {"text": "hi"}} | body,
    )
    assert response.status_code == 422, response.text
    text = response.text
    assert field in text and words in text, text


@pytest.mark.parametrize(
    ("quiet", "field", "words"),
    [
        ({"start": "25:00", "end": "08:00"}, "quiet_hours.start", "not a time of day"),
        ({"start": "21:00"}, "quiet_hours", "send {"),
        ({"start": "08:00", "end": "08:00"}, "quiet_hours", "the same time"),
    ],
)
async def test_bad_quiet_hours_are_refused_naming_the_field(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, quiet: Any, field: str, words: str
) -> None:
    page_id = await setup_page(admin, sim)
    response = await admin.patch(f"/api/pages/{page_id}", json={"quiet_hours": quiet})
    assert response.status_code == 422, response.text
    assert field in response.text and words in response.text, response.text
    cleared = await admin.patch(f"/api/pages/{page_id}", json={"quiet_hours": None})
    assert cleared.status_code == 200 and cleared.json()["quiet_hours"] is None


async def test_contacts_take_a_zone_by_csv_and_api_and_refuse_unknown_ones(
    admin: httpx.AsyncClient, manager: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    page_id = await setup_page(admin, sim)
    csv = "psid,timezone\n5001,europe/berlin\n5002,Berlin\n5003,\n"
    report = await import_contacts(manager, page_id, csv.encode())
    assert report["imported"] == 2, report
    (error,) = report["errors"]
    assert error["column"] == "timezone" and "Europe/Berlin" in error["reason"], error
    listed = (await manager.get(f"/api/pages/{page_id}/contacts")).json()["items"]
    assert {c["psid"]: c["timezone"] for c in listed} == {"5001": "Europe/Berlin", "5003": None}

    created = await manager.post(
        f"/api/pages/{page_id}/contacts", json={"psid": "5004", "timezone": "Mars/Base"}
    )
    assert created.status_code == 422 and "timezone" in created.text, created.text
    created = await manager.post(
        f"/api/pages/{page_id}/contacts",
        json={"psid": "5004", "timezone": "asia/manila", "utc_offset_minutes": 480},
    )
    assert created.status_code == 201, created.text
    assert created.json()["timezone"] == "Asia/Manila"
    changed = await manager.patch(
        f"/api/contacts/{created.json()['id']}", json={"utc_offset_minutes": 5000}
    )
    assert changed.status_code == 422 and "utc_offset_minutes" in changed.text


@postgresql_only
async def test_a_sliced_snapshot_gives_each_slice_its_zones_due_times(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    sending_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A large audience's rest is inserted by the worker's snapshot job, a slice at a time
    # (services/snapshots.py): each slice reads its own contacts' zones.
    monkeypatch.setattr(snapshots, "SNAPSHOT_FIRST", 2)
    monkeypatch.setattr(snapshots, "SNAPSHOT_SLICE", 2)
    page_id = await setup_page(admin, sim)
    zones = ["Asia/Tokyo", "Asia/Manila", "Asia/Kolkata", "Europe/Berlin", "", "Asia/Tokyo"]
    await people(sim, manager, page_id, [(str(6001 + i), z, 1) for i, z in enumerate(zones)])
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=20))
    campaign_id = await new_campaign(manager, page_id, local_send_at=wall.isoformat())
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    async with ClockedWorker(sending_settings, db):

        async def written() -> bool:
            return len(await deliveries_by_psid(db, campaign_id)) == len(zones)

        await until(written, "every slice written")
    rows = await deliveries_by_psid(db, campaign_id)
    utc_wall = wall.replace(tzinfo=UTC)
    for i, zone in enumerate(zones):
        offset = timezones.zone(zone or "UTC").utcoffset(wall) or timedelta(0)
        assert rows[str(6001 + i)].due_at == utc_wall - offset, zone
    async with db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.last_due_at == utc_wall  # the Page's zone (UTC) is the latest


async def test_a_zone_falling_due_during_a_pass_does_not_stall_the_plan_chain(
    admin: httpx.AsyncClient,
    manager: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: Database,
    worker: ClockedWorker,
) -> None:
    # A slow Page (20/s: chunks of 25, two planned at a time), Tokyo's people among twice as
    # many in Kolkata. Kolkata falls due while Tokyo's pass is still planning: its people in
    # the ranges that pass planned were not queued by it, and must not read as "still
    # queued" (the pass would say so for ever, and nobody in Kolkata would be sent to).
    page_id = await setup_page(admin, sim, send_rate=20)
    rows = [(str(8000 + i), "Asia/Tokyo" if i % 3 == 0 else "Asia/Kolkata", 1) for i in range(180)]
    await people(sim, manager, page_id, rows)
    wall = minute(utcnow().replace(tzinfo=None) + timedelta(hours=10))
    campaign_id = await new_campaign(manager, page_id, local_send_at=wall.isoformat())
    assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
    now = utcnow()
    worker.clock.ahead = wall.replace(tzinfo=UTC) - timedelta(hours=9) - now + timedelta(minutes=1)

    async def some_sent() -> bool:
        return len(await outbox(sim)) >= 5

    await until(some_sent, "Tokyo's first messages")
    assert len(await outbox(sim)) < 60  # Tokyo's pass is still under way
    worker.clock.ahead = wall.replace(tzinfo=UTC) - timedelta(hours=5) - now + timedelta(minutes=1)
    # Kolkata's 120 take 6 s at 20/s (9 s here); a stalled chain took 36 s to recover.
    moved = time.monotonic()
    done = await wait_for(manager, campaign_id, {"completed"}, timeout=60)
    took = time.monotonic() - moved
    assert took < 20, f"the plan chain stalled for {took:.0f} s"
    assert done["counts"]["sent"] == 180
    assert await sent_to(sim) == {p for p, _, _ in rows}
