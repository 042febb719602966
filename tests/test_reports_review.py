"""Issue 21, reports: cases found in review. A retry that sends an archived campaign again
puts it back in the list; a Page's days are UTC days whatever the database server's time
zone; a cancelled campaign's page does not say its failures can be sent again. On SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update

from factories import create_user, session_cookie
from pagecast.db import Database
from pagecast.models import CampaignStatus, Delivery, DeliveryStatus, Role, utcnow
from pagecast.services import page_overview, reports
from pagecast.web.deps import SESSION_COOKIE
from test_reports_api import seed


async def test_retrying_an_archived_campaign_puts_it_back_in_the_list(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.MANAGER)
    assert (await client.post(f"/api/campaigns/{campaign_id}/archive")).status_code == 200

    retried = await client.post(f"/api/campaigns/{campaign_id}/retry-failed")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    # Sending again: no longer finished, so no longer archived (the list shows work going on).
    assert body["status"] == "sending" and body["archived_at"] is None
    listed = [i["id"] for i in (await client.get("/api/campaigns")).json()["items"]]
    assert campaign_id in listed


async def test_a_retry_that_moves_nothing_leaves_an_archived_campaign_archived(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.MANAGER)
    assert (await client.post(f"/api/campaigns/{campaign_id}/archive")).status_code == 200
    narrowed = await client.post(f"/api/campaigns/{campaign_id}/retry-failed", params={"code": 999})
    assert narrowed.status_code == 200 and narrowed.json()["retried"] == 0
    assert narrowed.json()["status"] == "completed" and narrowed.json()["archived_at"]


async def test_the_overview_counts_utc_days_whatever_the_server_time_zone(
    db: Database, vault: Any
) -> None:
    campaign_id, page_id = await seed(db, vault)
    now = utcnow()
    # Yesterday at noon UTC is already today in Kiritimati (UTC+14).
    noon = datetime.combine(now.date() - timedelta(days=1), time(12), tzinfo=UTC)
    async with db.transaction() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.campaign_id == campaign_id, Delivery.sent_at.is_not(None))
            .values(sent_at=noon)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.FAILED)
            .values(updated_at=noon)
        )
    async with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            # A server whose time zone is not UTC (the session's TimeZone is the server's).
            await session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
        found = await page_overview.get(session, page_id, now=now)
    assert found.days[-2] == noon.date()
    assert (found.sent[-2], found.sent[-1]) == (2, 0)
    assert (found.failed[-2], found.failed[-1]) == (5, 0)


async def test_a_cancelled_campaign_does_not_say_its_failures_can_be_sent_again(
    app: Any, db: Database, vault: Any
) -> None:
    """Retry failed refuses a cancelled campaign (409), so its page does not offer it in words."""
    cancelled_id, _ = await seed(db, vault, status=CampaignStatus.CANCELLED)
    completed_id, _ = await seed(db, vault, name="Done", fb_page_id="1002")
    user, _ = await create_user(db, Role.MANAGER, email="m@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        for path in (f"/campaigns/{cancelled_id}", f"/campaigns/{cancelled_id}/reports"):
            answer = await client.get(path)
            assert answer.status_code == 200 and 'id="outcome-legend"' in answer.text
            assert 'id="retry-rule"' not in answer.text and "can be sent again" not in answer.text
        done = await client.get(f"/campaigns/{completed_id}/reports")
        assert 'id="retry-rule"' in done.text and "can be sent again" in done.text


async def test_the_chart_buckets_are_the_rule_of_each_row(db: Database, vault: Any) -> None:
    """Sends, deliveries and reads in 30 equal buckets from the first event to the last,
    the last one closed: counted by the database, as a loop over the rows would."""
    campaign_id, _ = await seed(db, vault)
    base = utcnow() - timedelta(hours=1)
    async with db.transaction() as session:
        for i in range(40):
            sent = base + timedelta(seconds=7 * i)
            session.add(
                Delivery(
                    campaign_id=campaign_id,
                    contact_id=10_000 + i,
                    status=DeliveryStatus.READ if i % 3 == 0 else DeliveryStatus.SENT,
                    attempts=1,
                    sent_at=sent,
                    delivered_at=sent + timedelta(seconds=2) if i % 2 == 0 else None,
                    read_at=sent + timedelta(seconds=100, milliseconds=250) if i % 3 == 0 else None,
                )
            )
    async with db.reading() as session:
        found = await reports.over_time(session, campaign_id)
        rows = (
            await session.execute(
                select(Delivery.sent_at, Delivery.delivered_at, Delivery.read_at).where(
                    Delivery.campaign_id == campaign_id, Delivery.sent_at.is_not(None)
                )
            )
        ).all()
    events = [[at for at in column if at is not None] for column in zip(*rows, strict=True)]
    start = min(min(times) for times in events if times)
    end = max(max(times) for times in events if times)
    width = max((end - start).total_seconds(), 1.0) / 30
    expected = []
    for times in events:
        counts = [0] * 30
        for at in times:
            counts[min(int((at - start).total_seconds() / width), 29)] += 1
        expected.append(counts)
    assert found is not None and found.starts[0] == start
    assert [found.sent, found.delivered, found.read] == expected
    assert sum(found.sent) == 42 and sum(found.delivered) == 20 and sum(found.read) == 15
