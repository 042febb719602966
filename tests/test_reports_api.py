"""Issue 21, reports: the retry rule (one rule for the Retry count and retry-failed), the
campaign report (counts, reasons, errors, rates, timings; CSV), the campaign list's columns,
filters and archive, and a Page's overview. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from factories import ADMIN_ACTOR, connected_page
from pagecast.db import Database
from pagecast.models import (
    AuditLog,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Role,
    utcnow,
)
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns, counters

# (status, reason, error kind, error code) of each seeded delivery, by PSID suffix.
FAILURES = {
    "exhausted": (DeliveryStatus.FAILED, "retries_exhausted", "retry", 2),
    "ambiguous": (DeliveryStatus.FAILED, "ambiguous", "ambiguous", None),
    "blocked": (DeliveryStatus.FAILED, "recipient_unreachable", "recipient_unreachable", 551),
    "refused": (DeliveryStatus.FAILED, "bad_request", "bad_request", 100),
    # A temporary error, but the person has been unreachable since (another campaign).
    "gone": (DeliveryStatus.FAILED, "retries_exhausted", "retry", 2),
    "sent": (DeliveryStatus.SENT, None, None, None),
    "read": (DeliveryStatus.READ, None, None, None),
    "skipped": (DeliveryStatus.SKIPPED, "outside_window", None, None),
}
CURABLE = {"exhausted", "ambiguous"}


async def seed(
    db: Database,
    vault: Any,
    *,
    status: CampaignStatus = CampaignStatus.COMPLETED,
    name: str = "Spring",
    fb_page_id: str = "1001",
) -> tuple[int, int]:
    """A campaign of the FAILURES deliveries, its counters moved as the engine does, on a
    new Page (`fb_page_id`)."""
    page = await connected_page(db, vault, fb_page_id=fb_page_id, name=f"Page {fb_page_id}")
    now = utcnow()
    async with db.transaction() as session:
        campaign = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name=name, page_id=page.id, content={"text": "Hi"}),
        )
        people = {
            key: Contact(
                page_id=page.id,
                psid=f"{campaign.id}-{key}",
                first_name=key,
                created_at=now,
                updated_at=now,
                unreachable_at=now if key == "gone" else None,
            )
            for key in FAILURES
        }
        session.add_all(people.values())
        await session.flush()
        for key, (state, reason, kind, code) in FAILURES.items():
            reached = state in (DeliveryStatus.SENT, DeliveryStatus.READ)
            session.add(
                Delivery(
                    campaign_id=campaign.id,
                    contact_id=people[key].id,
                    status=state,
                    reason=reason,
                    error_kind=kind,
                    error_code=code,
                    attempts=1,
                    sent_at=now - timedelta(seconds=10 if key == "sent" else 0)
                    if reached
                    else None,
                    read_at=now if key == "read" else None,
                )
            )
        await session.flush()
        moved: dict[DeliveryStatus, int] = {}
        for state, *_ in FAILURES.values():
            moved[state] = moved.get(state, 0) + 1
        await counters.shift(session, campaign.id, moved)
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign.id)
            .values(
                n_total=len(FAILURES),
                status=status,
                started_at=now - timedelta(minutes=2),
                completed_at=now if status is CampaignStatus.COMPLETED else None,
            )
        )
        return campaign.id, page.id


async def test_retry_count_and_retry_failed_follow_one_rule(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.MANAGER)
    progress = (await client.get(f"/api/campaigns/{campaign_id}")).json()
    assert progress["counts"]["failed"] == 5
    assert progress["retryable_failed"] == len(CURABLE)  # not the blocked, refused or gone
    report = (await client.get(f"/api/campaigns/{campaign_id}/report")).json()
    assert report["retryable_failed"] == len(CURABLE)

    retried = await client.post(f"/api/campaigns/{campaign_id}/retry-failed")
    assert retried.status_code == 200, retried.text
    assert retried.json()["retried"] == len(CURABLE)
    async with db.transaction() as session:
        rows = await session.execute(
            select(Contact.first_name, Delivery.status)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        now = {name: state for name, state in rows}
    assert {k for k, s in now.items() if s is DeliveryStatus.PENDING} == CURABLE
    assert all(now[k] is DeliveryStatus.FAILED for k in ("blocked", "refused", "gone"))
    after = (await client.get(f"/api/campaigns/{campaign_id}")).json()
    assert after["counts"]["failed"] == 3 and after["retryable_failed"] == 0


async def test_retry_failed_refuses_a_kind_a_retry_cannot_cure(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.MANAGER)
    answer = await client.post(
        f"/api/campaigns/{campaign_id}/retry-failed", params={"kind": "recipient_unreachable"}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "kind"
    assert "recipient_unreachable cannot be cured by a retry" in error["message"]
    body = (await client.get(f"/api/campaigns/{campaign_id}")).json()
    assert body["counts"]["failed"] == 5 and body["status"] == "completed"  # nothing changed


async def test_report_counts_reasons_errors_rates_and_timings(
    api: Any, db: Database, vault: Any
) -> None:
    campaign_id, page_id = await seed(db, vault)
    client = await api(Role.VIEWER)
    answer = await client.get(f"/api/campaigns/{campaign_id}/report")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["counts"]["total"] == 8 and body["counts"]["failed"] == 5
    reasons = {(r["status"], r["reason"]): r for r in body["reasons"]}
    assert reasons[("failed", "retries_exhausted")]["count"] == 2
    assert reasons[("skipped", "outside_window")]["words"] == "outside the 24-hour messaging window"
    codes = {e["code"]: e for e in body["errors"]}
    assert codes[551]["meaning"].startswith("This person cannot receive messages")
    assert codes[551]["what_to_do"]
    # Rates: delivered and read of the 2 sent; failed of the 7 attempted; skipped of 8.
    assert body["rates"] == {
        "delivered": 0.5,
        "read": 0.5,
        "failed": round(5 / 7, 4),
        "skipped": 0.125,
        "reached": 0.25,
    }
    timings = body["timings"]
    assert timings["started_at"] and timings["finished_at"] and timings["created_at"]
    assert 119 <= timings["duration_seconds"] <= 121
    assert timings["first_send_at"] < timings["last_send_at"]
    assert timings["sends_per_second"] == 0.2  # 2 sends over 10 s
    assert body["page_id"] == page_id


async def test_report_as_csv(api: Any, db: Database, vault: Any) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.VIEWER)
    answer = await client.get(
        f"/api/campaigns/{campaign_id}/report", headers={"Accept": "text/csv"}
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["section", "key", "words", "value"]
    assert ["count", "failed", "", "5"] in rows
    assert ["rate", "delivered", "", "0.5"] in rows
    assert any(r[:2] == ["error", "failed:551"] for r in rows)


async def test_report_of_a_missing_campaign_is_404(api: Any) -> None:
    client = await api(Role.VIEWER)
    answer = await client.get("/api/campaigns/999999/report")
    assert answer.status_code == 404 and "Campaign 999999 does not exist" in answer.text


async def test_list_filters_and_archive(api: Any, db: Database, vault: Any) -> None:
    done_id, page_id = await seed(db, vault, name="Autumn sale")
    draft_id, _ = await seed(
        db, vault, status=CampaignStatus.DRAFT, name="Winter draft", fb_page_id="1002"
    )
    client = await api(Role.MANAGER)

    listed = (await client.get("/api/campaigns")).json()["items"]
    row = next(i for i in listed if i["id"] == done_id)
    assert row["created_at"] and row["started_at"] and row["completed_at"]
    assert row["archived_at"] is None
    assert (row["counts"]["read"], row["counts"]["failed"]) == (1, 5)
    named = (await client.get("/api/campaigns", params={"q": "autumn"})).json()["items"]
    assert [i["id"] for i in named] == [done_id]
    drafts = (await client.get("/api/campaigns", params={"status": "draft"})).json()["items"]
    assert draft_id in [i["id"] for i in drafts] and done_id not in [i["id"] for i in drafts]
    by_page = (await client.get("/api/campaigns", params={"page_id": page_id})).json()["items"]
    assert [i["id"] for i in by_page] == [done_id]

    refused = await client.post(f"/api/campaigns/{draft_id}/archive")
    assert refused.status_code == 409 and "only completed or cancelled" in refused.text
    archived = await client.post(f"/api/campaigns/{done_id}/archive")
    assert archived.status_code == 200 and archived.json()["archived_at"]
    default = [i["id"] for i in (await client.get("/api/campaigns")).json()["items"]]
    assert done_id not in default and draft_id in default
    shown = (await client.get("/api/campaigns", params={"archived": "true"})).json()["items"]
    assert [i["id"] for i in shown] == [done_id]

    assert (await client.post(f"/api/campaigns/{done_id}/unarchive")).status_code == 200
    assert done_id in [i["id"] for i in (await client.get("/api/campaigns")).json()["items"]]
    async with db.transaction() as session:
        actions = list(
            await session.scalars(
                select(AuditLog.action)
                .where(AuditLog.object_type == "campaign", AuditLog.object_id == done_id)
                .order_by(AuditLog.id)
            )
        )
    assert actions[-2:] == ["campaign.archived", "campaign.unarchived"]

    assert (await client.delete(f"/api/campaigns/{draft_id}")).status_code == 204


async def test_a_viewer_cannot_archive(api: Any, db: Database, vault: Any) -> None:
    campaign_id, _ = await seed(db, vault)
    client = await api(Role.VIEWER)
    assert (await client.post(f"/api/campaigns/{campaign_id}/archive")).status_code == 403


async def test_page_overview(api: Any, db: Database, vault: Any) -> None:
    campaign_id, page_id = await seed(db, vault)
    now = utcnow()
    async with db.transaction() as session:
        session.add(
            Contact(
                page_id=page_id,
                psid="left",
                created_at=now,
                updated_at=now,
                opted_out_at=now - timedelta(days=3),
            )
        )
        session.add(
            Contact(
                page_id=page_id,
                psid="long-ago",
                created_at=now,
                updated_at=now,
                opted_out_at=now - timedelta(days=40),
            )
        )
    client = await api(Role.VIEWER)
    answer = await client.get(f"/api/pages/{page_id}/overview")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["days"]) == 30 and body["days"][-1]["day"] == now.date().isoformat()
    assert body["days"][-1]["sent"] == body["sent"] == 2
    assert body["days"][-1]["failed"] == body["failed"] == 5
    assert body["opt_outs"] == 1
    assert body["token"]["status"] == "active"
    assert body["throttle"] == {
        "throttled": False,
        "throttled_for_seconds": 0.0,
        "reason": None,
        "rate": None,
    }
    assert body["send_rate"] > 0 and campaign_id
    missing = await client.get("/api/pages/999999/overview")
    assert missing.status_code == 404
