"""Refusals and warnings before a send (issue 19, "Compose" and "Review"): an audience tag that
no contact of the Page has is saved with a warning listing the Page's tags; a start that
would reach nobody is a 409 naming why, with the excluded counts, and the campaign stays a
draft (API, scheduled start, CLI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from factories import ADMIN_ACTOR, SECRET_KEY, connected_page, table_counts
from pagecast.db import Database
from pagecast.models import AuditLog, Campaign, CampaignStatus, Role, utcnow
from pagecast.schemas import CampaignCreate
from pagecast.security import Vault
from pagecast.services import campaigns, sending

PAGECAST = str(Path(sys.executable).parent / "pagecast")
NO_ONE = {
    "opted_out": 0,
    "unreachable": 0,
    "window_unknown": 0,
    "outside_window": 0,
    "frequency_cap": 0,
}


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


async def add(manager: httpx.AsyncClient, page: int, psid: str, **fields: Any) -> None:
    answer = await manager.post(f"/api/pages/{page}/contacts", json={"psid": psid} | fields)
    assert answer.status_code == 201, answer.text


def hours_ago(hours: float) -> str:
    return (utcnow() - timedelta(hours=hours)).isoformat()


def draft(page: int, **overrides: Any) -> dict[str, Any]:
    return {"name": "Launch", "page_id": page, "content": {"text": "Hi"}} | overrides


# ------------------------------------------------------------------ unknown tags


async def test_a_tag_no_contact_has_is_saved_with_a_warning_listing_the_known_tags(
    manager: httpx.AsyncClient, page_id: int, db: Database, vault: Vault
) -> None:
    await add(manager, page_id, "1", tags=["vip"], last_inbound_at=hours_ago(1))
    await add(manager, page_id, "2", tags=["regular", "vip"])
    other = await connected_page(db, vault, fb_page_id="2002", name="Other Page")
    await add(manager, other.id, "3", tags=["churned"])  # another Page's tag is not known here
    audience = {"type": "tags", "include": ["vipp", "vip"], "exclude": ["churned"]}
    created = await manager.post("/api/campaigns", json=draft(page_id, audience=audience))
    assert created.status_code == 201, created.text
    body = created.json()
    # saved as asked (with the default match, any of the included tags)
    assert body["status"] == "draft" and body["audience"] == audience | {"match": "any"}
    assert body["warnings"] == [
        {
            "code": "unknown_tags",
            "field": "audience.include",
            "message": "No contact of this Page has the tag 'vipp'. Known tags: regular, vip.",
            "tags": ["vipp"],
            "known_tags": ["regular", "vip"],
        },
        {
            "code": "unknown_tags",
            "field": "audience.exclude",
            "message": "No contact of this Page has the tag 'churned'. Known tags: regular, vip.",
            "tags": ["churned"],
            "known_tags": ["regular", "vip"],
        },
    ]
    fixed = await manager.patch(
        f"/api/campaigns/{body['id']}", json={"audience": {"type": "tags", "include": ["vip"]}}
    )
    assert fixed.status_code == 200 and fixed.json()["warnings"] == []
    broken = await manager.patch(
        f"/api/campaigns/{body['id']}",
        json={"audience": {"type": "tags", "include": ["VIP", "newsletter"]}},
    )
    assert broken.status_code == 200
    [warning] = broken.json()["warnings"]
    assert warning["field"] == "audience.include" and warning["tags"] == ["VIP", "newsletter"]
    assert warning["message"].startswith(
        "No contact of this Page has the tags 'VIP', 'newsletter'."
    )
    # A change elsewhere answers the audience's warnings as they stand.
    renamed = await manager.patch(f"/api/campaigns/{body['id']}", json={"name": "Renamed"})
    assert [w["tags"] for w in renamed.json()["warnings"]] == [["VIP", "newsletter"]]


async def test_no_warning_for_known_tags_or_an_audience_without_tags(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await add(manager, page_id, "1", tags=["vip"])
    for audience in (
        {"type": "tags", "include": ["vip"], "exclude": ["vip"]},
        {"type": "all"},
    ):
        created = await manager.post("/api/campaigns", json=draft(page_id, audience=audience))
        assert created.status_code == 201 and created.json()["warnings"] == [], created.text


async def test_a_page_without_tags_says_so(manager: httpx.AsyncClient, page_id: int) -> None:
    await add(manager, page_id, "1")
    audience = {"type": "tags", "include": ["vip"]}
    created = await manager.post("/api/campaigns", json=draft(page_id, audience=audience))
    [warning] = created.json()["warnings"]
    assert warning["known_tags"] == []
    assert warning["message"] == (
        "No contact of this Page has the tag 'vip': no contact of the Page has any tag yet."
    )


async def test_a_refused_save_with_an_unknown_tag_changes_nothing(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    before = await table_counts(db)
    audience = {"type": "tags", "include": ["vipp"]}
    refused = await manager.post(
        "/api/campaigns", json=draft(page_id, audience=audience, send_rate=500)
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "send_rate"
    assert await table_counts(db) == before


# ------------------------------------------------------------------ nobody eligible


async def test_a_start_with_nobody_eligible_is_a_409_with_the_excluded_and_changes_nothing(
    manager: httpx.AsyncClient, page_id: int, db: Database, app: Any
) -> None:
    await add(manager, page_id, "1", last_inbound_at=hours_ago(30))
    await add(manager, page_id, "2", last_inbound_at=hours_ago(31))
    await add(manager, page_id, "3", last_inbound_at=hours_ago(1), opted_out=True)
    await add(manager, page_id, "4")
    campaign = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    before = await table_counts(db)
    refused = await manager.post(f"/api/campaigns/{campaign['id']}/start")
    assert refused.status_code == 409
    assert refused.json() == {
        "error": {
            "code": "no_eligible_people",
            "message": (
                f"Campaign {campaign['id']} has no eligible people: its audience matches 4 "
                "contacts of Page Acme Store, but none can be messaged now: 1 opted out, 1 "
                "with no known message to the Page, 2 outside the 24-hour messaging window. "
                "Nothing was sent and it stays a draft; change the audience, or start it once "
                "people have messaged the Page (GET /api/campaigns/"
                f"{campaign['id']}/audience shows who it reaches)."
            ),
            "field": "audience",
            "excluded": {
                "opted_out": 1,
                "unreachable": 0,
                "window_unknown": 1,
                "outside_window": 2,
                "frequency_cap": 0,
            },
        }
    }
    assert await table_counts(db) == before  # no delivery, no audit line
    after = (await manager.get(f"/api/campaigns/{campaign['id']}")).json()
    assert after["status"] == "draft" and after["started_at"] is None
    assert after["counts"]["total"] == 0
    queued = await app.state.context.queue.counts()
    assert not any(queued.values()), queued  # nothing enqueued
    # Once someone can be messaged, the same campaign starts.
    await add(manager, page_id, "5", last_inbound_at=hours_ago(1))
    started = await manager.post(f"/api/campaigns/{campaign['id']}/start")
    assert started.status_code == 202, started.text
    assert started.json()["counts"]["pending"] == 1 and started.json()["counts"]["skipped"] == 4


async def test_a_tag_that_matches_nobody_is_refused_at_start(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await add(manager, page_id, "1", tags=["vip"], last_inbound_at=hours_ago(1))
    audience = {"type": "tags", "include": ["vipp"]}
    campaign = (await manager.post("/api/campaigns", json=draft(page_id, audience=audience))).json()
    refused = await manager.post(f"/api/campaigns/{campaign['id']}/start")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "no_eligible_people" and error["excluded"] == NO_ONE
    assert "its audience matches no contact of Page Acme Store." in error["message"]


async def test_a_message_tag_campaign_names_its_seven_day_window(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    await add(manager, page_id, "1", last_inbound_at=hours_ago(8 * 24))
    body = draft(page_id, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    campaign = (await manager.post("/api/campaigns", json=body)).json()
    refused = await manager.post(f"/api/campaigns/{campaign['id']}/start")
    assert refused.status_code == 409
    assert (
        "1 contact of Page Acme Store, but none can be messaged now: 1 outside the 7-day"
        in (refused.json()["error"]["message"])
    )


async def test_a_scheduled_campaign_with_nobody_eligible_stays_scheduled_with_the_reason(
    db: Database, page_id: int
) -> None:
    now = utcnow()
    async with db.transaction() as session:
        campaign = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(
                name="Later",
                page_id=page_id,
                content={"text": "Hi"},
                scheduled_at=now + timedelta(minutes=5),
            ),
        )
        await sending.schedule(session, ADMIN_ACTOR, campaign.id, now=now)
    async with db.transaction() as session:
        due = now + timedelta(minutes=5, seconds=1)
        started = await sending.start_scheduled(session, campaign.id, now=due, max_lateness_s=300)
    assert started is None
    async with db.transaction() as session:
        row = await session.get(Campaign, campaign.id)
        assert row is not None and row.status is CampaignStatus.SCHEDULED
        assert row.n_total == 0 and row.started_at is None
        assert row.status_reason is not None
        assert row.status_reason.startswith(
            f"Scheduled start failed: Campaign {campaign.id} has no eligible people: its "
            "audience matches no contact of Page Acme Store. Nothing was sent and it stays "
            "scheduled;"
        )
        actions = await session.scalars(select(AuditLog.action))
        assert "campaign.started" not in set(actions)


def test_the_cli_refuses_a_start_with_nobody_eligible(
    tmp_path: Path, redis_server_url: str
) -> None:
    data = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {
        "PAGECAST_DATA_DIR": str(data),
        "PAGECAST_SECRET_KEY": SECRET_KEY,
        "REDIS_URL": redis_server_url,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PAGECAST, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    assert cli("db", "upgrade").returncode == 0

    async def a_draft() -> int:
        db = Database(f"sqlite+aiosqlite:///{data / 'pagecast.db'}")
        try:
            page = await connected_page(db, Vault(SECRET_KEY.encode()))
            async with db.transaction() as session:
                created = await campaigns.create(
                    session,
                    ADMIN_ACTOR,
                    CampaignCreate(name="Nobody", page_id=page.id, content={"text": "Hi"}),
                )
                return created.id
        finally:
            await db.close()

    campaign_id = asyncio.run(a_draft())
    result = cli("campaigns", "start", str(campaign_id))
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(
        f"Error: Campaign {campaign_id} has no eligible people: its audience matches no contact"
    )
    listed = cli("campaigns", "list")
    header, row = listed.stdout.strip().splitlines()
    assert header.startswith("ID\tSTATUS\tPAGE\tNAME")
    assert row.split("\t")[:4] == [str(campaign_id), "draft", "1", "Nobody"]
