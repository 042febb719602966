"""Issue 19, time zones: a user's and a Page's zone, times shown in it, schedules read in it,
and schedules in the past refused at Save (API, dashboard, services with an injected now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie, table_counts
from pagecast import timezones
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import Campaign, Role, User, utcnow
from pagecast.schemas import CampaignCreate, CampaignUpdate
from pagecast.security import Vault
from pagecast.services import campaigns
from pagecast.web.deps import SESSION_COOKIE

FUTURE = "2031-01-02T09:30:00+08:00"  # 01:30 UTC


@pytest.fixture
async def manager(api: Any) -> httpx.AsyncClient:
    return await api(Role.MANAGER)


@pytest.fixture
async def page_id(db: Database, vault: Vault) -> int:
    return (await connected_page(db, vault)).id


def draft(page: int, **overrides: Any) -> dict[str, Any]:
    return {"name": "Weekend sale", "page_id": page, "content": {"text": "Hi!"}} | overrides


# ------------------------------------------------------------------ a user's zone (API)


async def test_a_user_starts_in_utc_and_sets_a_zone_with_patch_me(
    manager: httpx.AsyncClient,
) -> None:
    assert (await manager.get("/api/me")).json()["timezone"] == "UTC"
    response = await manager.patch("/api/me", json={"timezone": "asia/MANILA"})
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Asia/Manila"  # the tz database's spelling
    assert "campaigns:write" in response.json()["permissions"]
    assert (await manager.get("/api/me")).json()["timezone"] == "Asia/Manila"


async def test_a_viewer_may_set_their_own_zone(api: Any) -> None:
    viewer = await api(Role.VIEWER)
    response = await viewer.patch("/api/me", json={"timezone": "Europe/Berlin"})
    assert response.status_code == 200 and response.json()["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("Mars/Olympus_Mons", "IANA time zone name"),
        ("Asia/Manilla", 'did you mean "Asia/Manila"'),
        ("", "is not a time zone"),
        ("../../etc/passwd", "is not a time zone"),
        ("x" * 500, "is not a time zone"),
        (None, "cannot be null"),
        (8, "string"),
    ],
)
async def test_an_unknown_zone_is_a_422_naming_the_field_and_changes_nothing(
    manager: httpx.AsyncClient, db: Database, value: Any, phrase: str
) -> None:
    await manager.patch("/api/me", json={"timezone": "Asia/Manila"})
    before = await table_counts(db)
    response = await manager.patch("/api/me", json={"timezone": value})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "timezone" and phrase in error["message"], error
    assert (await manager.get("/api/me")).json()["timezone"] == "Asia/Manila"
    assert await table_counts(db) == before


# ------------------------------------------------------------------ a Page's zone (API)


async def test_a_page_starts_in_utc_and_an_admin_sets_its_zone(
    api: Any, page_id: int, db: Database
) -> None:
    admin = await api(Role.ADMIN)
    assert (await admin.get(f"/api/pages/{page_id}")).json()["timezone"] == "UTC"
    changed = await admin.patch(f"/api/pages/{page_id}", json={"timezone": "America/New_York"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["timezone"] == "America/New_York"
    before = await table_counts(db)
    refused = await admin.patch(f"/api/pages/{page_id}", json={"timezone": "Eastern"})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "timezone"
    assert "IANA" in refused.json()["error"]["message"]
    assert (await admin.get(f"/api/pages/{page_id}")).json()["timezone"] == "America/New_York"
    assert await table_counts(db) == before


# ------------------------------------------------------------------ schedules (API)


async def test_a_schedule_with_an_offset_is_kept_as_that_instant_in_utc(
    manager: httpx.AsyncClient, page_id: int
) -> None:
    response = await manager.post("/api/campaigns", json=draft(page_id, scheduled_at=FUTURE))
    assert response.status_code == 201, response.text
    assert response.json()["scheduled_at"] == "2031-01-02T01:30:00Z"


async def test_a_time_without_an_offset_is_refused_not_guessed(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    created = (await manager.post("/api/campaigns", json=draft(page_id))).json()
    await manager.patch("/api/me", json={"timezone": "Asia/Manila"})  # not used to guess
    before = await table_counts(db)
    naive = "2031-01-02T09:30:00"
    for response in (
        await manager.post("/api/campaigns", json=draft(page_id, scheduled_at=naive)),
        await manager.patch(f"/api/campaigns/{created['id']}", json={"scheduled_at": naive}),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == "scheduled_at" and "offset" in error["message"], error
    assert await table_counts(db) == before


async def test_a_schedule_in_the_past_is_refused_at_save(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    before = await table_counts(db)
    response = await manager.post("/api/campaigns", json=draft(page_id, scheduled_at=past))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "scheduled_at" and "in the past" in error["message"], error
    assert await table_counts(db) == before

    created = (
        await manager.post("/api/campaigns", json=draft(page_id, scheduled_at=FUTURE))
    ).json()
    moved = await manager.patch(f"/api/campaigns/{created['id']}", json={"scheduled_at": past})
    assert moved.status_code == 422 and moved.json()["error"]["field"] == "scheduled_at"
    kept = (await manager.get(f"/api/campaigns/{created['id']}")).json()
    assert kept["scheduled_at"] == "2031-01-02T01:30:00Z"


async def test_a_draft_whose_time_passed_can_still_be_edited_and_unscheduled(
    manager: httpx.AsyncClient, page_id: int, db: Database
) -> None:
    created = (
        await manager.post("/api/campaigns", json=draft(page_id, scheduled_at=FUTURE))
    ).json()
    async with db.transaction() as session:
        row = await session.get(Campaign, created["id"])
        assert row is not None
        row.scheduled_at = utcnow() - timedelta(hours=1)
    url = f"/api/campaigns/{created['id']}"
    renamed = await manager.patch(url, json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text  # the stale time is not what changed
    cleared = await manager.patch(url, json={"scheduled_at": None})
    assert cleared.status_code == 200 and cleared.json()["scheduled_at"] is None


async def test_saving_follows_the_injected_now(db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault)
    now = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    at = now + timedelta(minutes=1)
    async with db.transaction() as session:
        data = CampaignCreate.model_validate(draft(page.id, scheduled_at=at.isoformat()))
        campaign = await campaigns.create(session, ADMIN_ACTOR, data, now=now)
        assert campaign.scheduled_at == at
        with pytest.raises(InvalidInput, match="in the past") as info:
            await campaigns.create(session, ADMIN_ACTOR, data, now=at)
        assert info.value.field == "scheduled_at"
        change = CampaignUpdate(scheduled_at=now + timedelta(hours=1))
        with pytest.raises(InvalidInput, match="in the past"):
            await campaigns.update(
                session, ADMIN_ACTOR, campaign.id, change, now=now + timedelta(hours=2)
            )
        # A copy made after the time leaves the schedule out; made before, keeps it.
        late = await campaigns.duplicate(session, ADMIN_ACTOR, campaign.id, now=at)
        early = await campaigns.duplicate(session, ADMIN_ACTOR, campaign.id, now=now)
        assert late.scheduled_at is None and early.scheduled_at == at


# ------------------------------------------------------------------ the zone module


def test_wall_clock_times_are_read_in_the_zone() -> None:
    manila = timezones.from_local(datetime(2031, 1, 2, 9, 30), "Asia/Manila")
    assert manila == datetime(2031, 1, 2, 1, 30, tzinfo=UTC)
    # The hour repeated when summer time ends: its first occurrence (still summer time).
    assert timezones.from_local(datetime(2031, 10, 26, 2, 30), "Europe/Berlin") == datetime(
        2031, 10, 26, 0, 30, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="does not exist in Europe/Berlin"):
        timezones.from_local(datetime(2031, 3, 30, 2, 30), "Europe/Berlin")
    assert timezones.label("Asia/Manila") == "Asia/Manila (UTC+08:00)"
    assert timezones.label("UTC") == "UTC"
    assert timezones.offset_text("America/St_Johns", datetime(2031, 1, 1, tzinfo=UTC)) == (
        "UTC-03:30"
    )


# ------------------------------------------------------------------ the dashboard (no browser)


async def _browser(app: Any, db: Database, zone: str) -> tuple[httpx.AsyncClient, str]:
    user, _ = await create_user(db, Role.MANAGER, email="tz@example.com")
    async with db.transaction() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.timezone = zone
    cookie = await session_cookie(db, user)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    )
    return client, app.state.context.vault.csrf_token(cookie)


def _form(csrf: str, page: int, **fields: str) -> dict[str, str]:
    base = {"csrf_token": csrf, "name": "Manila lunch", "page_id": str(page), "text": "Hi"}
    return base | fields


async def test_a_schedule_typed_in_manila_lands_at_the_utc_instant(
    app: Any, db: Database, page_id: int
) -> None:
    client, csrf = await _browser(app, db, "Asia/Manila")
    async with client:
        form = await client.get("/campaigns/new")
        assert "Asia/Manila (UTC+08:00)" in form.text
        saved = await client.post(
            "/campaigns/new", data=_form(csrf, page_id, scheduled_at="2031-01-02T09:30")
        )
        assert saved.status_code == 303, saved.text
        campaign_id = int(saved.headers["location"].rsplit("/", 1)[1])
        async with db.transaction() as session:
            row = await session.get(Campaign, campaign_id)
            assert row is not None
            assert row.scheduled_at == datetime(2031, 1, 2, 1, 30, tzinfo=UTC)
        detail = await client.get(f"/campaigns/{campaign_id}")
        assert (
            '<time datetime="2031-01-02T01:30:00Z" title="2031-01-02 01:30:00 UTC">'
            "2031-01-02 09:30:00 UTC+08:00</time>"
        ) in detail.text
        assert "Schedule for 2031-01-02 09:30 UTC+08:00" in detail.text
        edit = await client.get(f"/campaigns/{campaign_id}/edit")
        assert 'value="2031-01-02T09:30"' in edit.text  # shown back in Manila time


async def test_the_dashboard_refuses_a_past_schedule_beside_the_field(
    app: Any, db: Database, page_id: int
) -> None:
    client, csrf = await _browser(app, db, "Asia/Manila")
    before = await table_counts(db)
    async with client:
        past = (utcnow() - timedelta(hours=1)).astimezone(timezones.zone("Asia/Manila"))
        answer = await client.post(
            "/campaigns/new",
            data=_form(csrf, page_id, scheduled_at=past.strftime("%Y-%m-%dT%H:%M")),
        )
    assert answer.status_code == 422
    assert '<p class="field-error" id="err-scheduled_at">scheduled_at:' in answer.text
    assert "in the past" in answer.text
    assert '<nav aria-label="Main">' in answer.text  # the page keeps its navigation
    assert await table_counts(db) == before


async def test_a_time_the_clocks_skip_is_refused_beside_the_field(
    app: Any, db: Database, page_id: int
) -> None:
    client, csrf = await _browser(app, db, "Europe/Berlin")
    async with client:
        answer = await client.post(
            "/campaigns/new", data=_form(csrf, page_id, scheduled_at="2031-03-30T02:30")
        )
    assert answer.status_code == 422
    assert 'id="err-scheduled_at"' in answer.text and "does not exist in Europe/Berlin" in (
        answer.text
    )


async def test_the_settings_form_sets_the_zone_or_names_the_field(app: Any, db: Database) -> None:
    client, csrf = await _browser(app, db, "UTC")
    async with client:
        refused = await client.post(
            "/me/timezone", data={"csrf_token": csrf, "timezone": "Asia/Manilla"}
        )
        assert refused.status_code == 422
        assert 'id="err-timezone"' in refused.text and "did you mean" in refused.text
        assert (await client.get("/api/me")).json()["timezone"] == "UTC"
        saved = await client.post(
            "/me/timezone", data={"csrf_token": csrf, "timezone": "Asia/Manila"}
        )
        assert saved.status_code == 303
        assert (await client.get("/api/me")).json()["timezone"] == "Asia/Manila"
        sessions = await client.get("/users")
    # Every time on the page is in the zone, with UTC in its title.
    assert "UTC+08:00</time>" in sessions.text and ' UTC">' in sessions.text
    assert "Asia/Manila (UTC+08:00)" in sessions.text
