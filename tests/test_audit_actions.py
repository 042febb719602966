"""Each family of actions leaves an audit entry with its actor, object and change, driven
through the real API (issue 22): logins (ok and failed), logouts, tokens, users, Page
settings and tokens, contact imports, contact edits, campaigns. No entry holds a secret."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from factories import SIM_TOKEN, connected_page, create_user, import_contacts, sim_page
from pagecast.db import Database
from pagecast.models import Role, utcnow
from pagecast.security import Vault

PASSWORD = "correct horse battery"


@pytest.fixture
async def admin(api: Any) -> httpx.AsyncClient:
    return await api(Role.ADMIN, email="boss@example.com")


async def entries(admin: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await admin.get("/api/audit", params=params | {"limit": 500})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def one(admin: httpx.AsyncClient, action: str, **params: Any) -> dict[str, Any]:
    found = await entries(admin, action=action, **params)
    assert len(found) == 1, (action, found)
    return found[0]


async def all_details(db: Database) -> str:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT actor, action, details FROM audit_log"))
        return str(list(rows))


async def test_logins_failed_logins_and_logouts(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    user, _ = await create_user(db, Role.MANAGER, email="m@example.com", password=PASSWORD)
    wrong = await client.post(
        "/api/auth/login", json={"email": "M@example.com", "password": "hunter2-wrong"}
    )
    assert wrong.status_code == 401
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "hunter2-wrong"}
    )
    assert unknown.status_code == 401
    good = await client.post(
        "/api/auth/login", json={"email": "m@example.com", "password": PASSWORD}
    )
    assert good.status_code == 200
    out = await client.post("/api/auth/logout", headers={"x-csrf-token": good.json()["csrf_token"]})
    assert out.status_code == 204

    failed = await entries(admin, action="auth.login_failed")
    assert [
        (e["actor"], e["actor_id"], e["object_id"], e["details"]["reason"]) for e in failed
    ] == [
        ("nobody@example.com", None, None, "unknown email"),
        ("m@example.com", None, user.id, "wrong password"),
    ]
    assert all(e["details"]["ip"] for e in failed)  # the client's address, as the app saw it
    login = await one(admin, "auth.login")
    assert (login["actor"], login["actor_id"], login["object_type"], login["object_id"]) == (
        "m@example.com",
        user.id,
        "user",
        user.id,
    )
    assert login["details"]["via"] == "password" and login["details"]["session_id"]
    logout = await one(admin, "auth.logout")
    assert logout["actor"] == "m@example.com"
    assert logout["details"]["session_id"] == login["details"]["session_id"]
    # Filter by the email someone tried, by the user's id (their own actions).
    assert len(await entries(admin, actor="m@example.com")) == 3
    assert {e["action"] for e in await entries(admin, actor=str(user.id))} == {
        "auth.login",
        "auth.logout",
    }
    stored = await all_details(db)
    assert PASSWORD not in stored and "hunter2-wrong" not in stored


async def test_a_deactivated_user_logging_in_is_recorded_with_the_reason(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    user, _ = await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    assert (
        await admin.patch(f"/api/users/{user.id}", json={"is_active": False})
    ).status_code == 200
    refused = await client.post(
        "/api/auth/login", json={"email": "v@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401
    entry = await one(admin, "auth.login_failed")
    assert entry["details"]["reason"] == "user deactivated"


async def test_tokens_created_and_revoked_never_show_the_token(
    admin: httpx.AsyncClient, db: Database
) -> None:
    made = await admin.post("/api/tokens", json={"name": "zapier"})
    raw, token_id = made.json()["token"], made.json()["id"]
    assert (await admin.delete(f"/api/tokens/{token_id}")).status_code == 200
    created = await one(admin, "token.created", actor="boss@example.com")
    revoked = await one(admin, "token.revoked")
    assert created["details"] == {"token_id": token_id, "name": "zapier"}
    assert revoked["details"] == {"token_id": token_id, "name": "zapier"}
    assert revoked["actor"] == "boss@example.com"
    assert raw not in (await admin.get("/api/audit")).text
    assert raw not in await all_details(db)
    assert raw[8:] not in await all_details(db)


async def test_user_changes_each_have_their_action_and_change(
    admin: httpx.AsyncClient, db: Database
) -> None:
    made = await admin.post(
        "/api/users", json={"email": "kim@example.com", "role": "viewer", "password": PASSWORD}
    )
    kim = made.json()["id"]
    url = f"/api/users/{kim}"
    assert (await admin.patch(url, json={"role": "manager"})).status_code == 200
    assert (await admin.patch(url, json={"is_active": False})).status_code == 200
    assert (await admin.patch(url, json={"is_active": True, "can_send": False})).status_code == 200
    assert (await admin.patch(url, json={"password": "another long one"})).status_code == 200
    assert (await admin.delete(url)).status_code == 204

    trail = await entries(admin, object_type="user", object_id=kim)
    assert [e["action"] for e in trail] == [
        "user.deleted",
        "user.password_reset",
        "sessions.ended",
        "user.updated",
        "user.reactivated",
        "user.deactivated",
        "user.role_changed",
        "user.created",
    ]
    by_action = {e["action"]: e for e in trail}
    assert by_action["user.created"]["details"] == {"email": "kim@example.com", "role": "viewer"}
    assert by_action["user.role_changed"]["details"]["changes"] == {
        "role": {"from": "viewer", "to": "manager"}
    }
    assert by_action["user.deactivated"]["details"]["changes"] == {
        "is_active": {"from": True, "to": False}
    }
    assert by_action["user.updated"]["details"]["changes"] == {
        "can_send": {"from": True, "to": False}
    }
    assert by_action["user.password_reset"]["details"] == {
        "email": "kim@example.com",
        "password": "changed",
    }
    assert all(e["actor"] == "boss@example.com" for e in trail)
    stored = await all_details(db)
    assert PASSWORD not in stored and "another long one" not in stored


async def test_your_own_time_zone_is_a_settings_change_with_before_and_after(
    admin: httpx.AsyncClient,
) -> None:
    assert (await admin.patch("/api/me", json={"timezone": "Asia/Manila"})).status_code == 200
    entry = await one(admin, "user.updated", actor="boss@example.com")
    assert entry["details"]["changes"] == {"timezone": {"from": "UTC", "to": "Asia/Manila"}}


async def test_page_connect_settings_and_token_replace(
    admin: httpx.AsyncClient, sim: httpx.AsyncClient, db: Database
) -> None:
    await sim_page(sim, app_secret="appsecret-xyz")
    made = await admin.post(
        "/api/pages", json={"access_token": SIM_TOKEN, "app_secret": "appsecret-xyz"}
    )
    assert made.status_code == 201, made.text
    page_id = made.json()["id"]
    settings = {
        "timezone": "Asia/Manila",
        "send_rate": 12.5,
        "frequency_cap": {"messages": 2, "days": 7},
        "quiet_hours": {"start": "21:00", "end": "08:00"},
    }
    changed = await admin.patch(f"/api/pages/{page_id}", json=settings)
    assert changed.status_code == 200, changed.text
    replaced = await admin.patch(f"/api/pages/{page_id}", json={"access_token": SIM_TOKEN})
    assert replaced.status_code == 200, replaced.text

    trail = await entries(admin, object_type="page", object_id=page_id)
    assert [e["action"] for e in trail] == ["page.token_replaced", "page.updated", "page.connected"]
    changes = trail[1]["details"]["changes"]
    assert (
        changes["timezone"] == {"from": None, "to": "Asia/Manila"}
        or changes["timezone"]["to"] == "Asia/Manila"
    )
    assert changes["send_rate"] == {"from": 40.0, "to": 12.5}
    assert changes["frequency_cap"]["to"] == {"messages": 2, "days": 7}
    assert changes["quiet_hours"]["from"] is None
    assert trail[0]["details"]["replaced"] == ["access_token"]
    stored = await all_details(db) + (await admin.get("/api/audit?format=csv")).text
    for secret in (SIM_TOKEN, "appsecret-xyz"):
        assert secret not in stored


async def test_contact_imports_are_recorded_when_they_start_and_end(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    report = await import_contacts(admin, page.id, b"psid,first_name\n123,Ana\n456,Ben\n")
    trail = await entries(admin, action="contacts.", object_type="page", object_id=page.id)
    assert [e["action"] for e in trail] == ["contacts.imported", "contacts.import_started"]
    started, ended = trail[1], trail[0]
    assert started["details"]["import_id"] == ended["details"]["import_id"] == report["id"]
    assert ended["details"]["created"] == 2 and ended["details"]["state"] == "completed"
    assert started["actor"] == ended["actor"] == "boss@example.com"


async def test_contact_edits_opt_outs_bulk_actions_and_deletes(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    made = await admin.post(
        f"/api/pages/{page.id}/contacts", json={"psid": "777", "first_name": "Ana"}
    )
    contact = made.json()["id"]
    url = f"/api/contacts/{contact}"
    assert (await admin.patch(url, json={"first_name": "Anna", "tags": ["vip"]})).status_code == 200
    assert (await admin.patch(url, json={"opted_out": True})).status_code == 200
    assert (await admin.patch(url, json={"opted_out": False})).status_code == 200
    bulk = await admin.post(
        f"/api/pages/{page.id}/contacts/bulk", json={"action": "tag", "tag": "x", "ids": [contact]}
    )
    assert bulk.status_code == 200, bulk.text
    assert (await admin.delete(url)).status_code == 204

    trail = await entries(admin, object_type="contact", object_id=contact)
    assert [e["action"] for e in trail] == [
        "contact.deleted",
        "contact.opted_in",
        "contact.opted_out",
        "contact.updated",
        "contact.created",
    ]
    edit = trail[3]["details"]
    assert edit["changes"] == {
        "first_name": {"from": "Ana", "to": "Anna"},
        "tags": {"from": [], "to": ["vip"]},
    }
    assert edit["psid"] == "777" and edit["page_id"] == page.id
    assert trail[2]["details"]["changes"] == {"opted_out": {"from": False, "to": True}}
    tagged = await one(admin, "contacts.tag")
    assert (tagged["object_type"], tagged["object_id"]) == ("page", page.id)
    assert tagged["details"]["changed"] == 1


async def test_campaign_actions_with_before_and_after(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    body = {"name": "Autumn", "page_id": page.id, "content": {"text": "Hi!"}}
    campaign = (await admin.post("/api/campaigns", json=body)).json()["id"]
    url = f"/api/campaigns/{campaign}"
    patched = await admin.patch(
        url,
        json={
            "name": "Autumn sale",
            "content": {"text": "Hello!"},
            "scheduled_at": "2099-01-01T09:00:00Z",
        },
    )
    assert patched.status_code == 200, patched.text
    scheduled = await admin.post(f"{url}/schedule")
    assert scheduled.status_code == 200, scheduled.text
    copy = await admin.post(f"{url}/duplicate")
    assert copy.status_code in (200, 201), copy.text
    copy_id = copy.json()["id"]
    assert (await admin.delete(f"/api/campaigns/{copy_id}")).status_code == 204

    trail = await entries(admin, action="campaign.", object_type="campaign", object_id=campaign)
    actions = [e["action"] for e in trail]
    assert actions[-2:] == ["campaign.updated", "campaign.created"]
    assert "campaign.scheduled" in actions
    update = trail[actions.index("campaign.updated", len(actions) - 2)]["details"]
    assert update["changes"]["name"] == {"from": "Autumn", "to": "Autumn sale"}
    assert update["changes"]["content"] == {"changed": True}  # a message is named, not shown
    assert update["changes"]["scheduled_at"] == {"from": None, "to": "2099-01-01T09:00:00Z"}
    copies = await entries(admin, object_type="campaign", object_id=copy_id)
    assert [e["action"] for e in copies] == ["campaign.deleted", "campaign.duplicated"]
    assert copies[1]["details"] == {"from": campaign}
    assert all(e["actor"] == "boss@example.com" for e in trail + copies)


async def test_start_pause_resume_and_cancel_are_recorded(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    now = utcnow().isoformat()
    for psid in ("501", "502"):
        made = await admin.post(
            f"/api/pages/{page.id}/contacts", json={"psid": psid, "last_inbound_at": now}
        )
        assert made.status_code == 201, made.text
    body = {"name": "Flash", "page_id": page.id, "content": {"text": "Hi!"}}
    campaign = (await admin.post("/api/campaigns", json=body)).json()["id"]
    for action in ("start", "pause", "resume", "cancel"):
        answer = await admin.post(f"/api/campaigns/{campaign}/{action}")
        assert answer.status_code in (200, 202), (action, answer.text)
    trail = await entries(admin, object_type="campaign", object_id=campaign)
    assert [e["action"] for e in trail] == [
        "campaign.cancelled",
        "campaign.resumed",
        "campaign.paused",
        "campaign.started",
        "campaign.created",
    ]
    assert all(e["actor"] == "boss@example.com" for e in trail)


async def test_template_and_segment_updates_show_before_and_after(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    template = await admin.post(
        "/api/templates", json={"name": "Welcome", "content": {"text": "Hi"}}
    )
    assert template.status_code == 201, template.text
    tid = template.json()["id"]
    changed = await admin.patch(
        f"/api/templates/{tid}", json={"name": "Welcome back", "content": {"text": "Hello"}}
    )
    assert changed.status_code == 200, changed.text
    entry = await one(admin, "template.updated", object_id=tid)
    assert entry["details"]["changes"] == {
        "content": {"changed": True},
        "name": {"from": "Welcome", "to": "Welcome back"},
    }
    segment = await admin.post(
        f"/api/pages/{page.id}/segments", json={"name": "VIPs", "filter": {"tags_any": ["vip"]}}
    )
    assert segment.status_code == 201, segment.text
    sid = segment.json()["id"]
    renamed = await admin.patch(f"/api/segments/{sid}", json={"name": "Top VIPs"})
    assert renamed.status_code == 200, renamed.text
    entry = await one(admin, "segment.updated", object_id=sid)
    assert entry["details"]["changes"] == {"name": {"from": "VIPs", "to": "Top VIPs"}}


async def test_attempts_refused_by_the_login_limit_are_not_recorded(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    """The limit (5 in the window) bounds how many failures are written; the 429s after it
    are not, so guessing cannot grow the log without bound."""
    await create_user(db, Role.MANAGER, email="m@example.com", password=PASSWORD)
    statuses = [
        (
            await client.post(
                "/api/auth/login", json={"email": "m@example.com", "password": f"guess-{n}"}
            )
        ).status_code
        for n in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3
    assert len(await entries(admin, action="auth.login_failed")) == 5
    assert "guess-" not in await all_details(db)


async def test_queue_actions_are_recorded_with_the_operator(
    app: Any, admin: httpx.AsyncClient
) -> None:
    for action in ("pause", "resume", "retry-failed", "clean"):
        answer = await admin.post(f"/api/admin/queue/{action}")
        assert answer.status_code == 200, answer.text
    bull = await app.state.context.queue.bull()
    job = await bull.add("nightly-report", {"report": "weekly"})
    assert (await admin.delete(f"/api/admin/queue/jobs/sending/{job.id}")).status_code == 200
    assert (await admin.post("/api/admin/queue/nonsense")).status_code == 404

    trail = await entries(admin, action="queue.")
    assert [(e["action"], e["actor"], e["object_type"]) for e in trail] == [
        ("queue.job_removed", "boss@example.com", "queue"),
        ("queue.cleaned", "boss@example.com", "queue"),
        ("queue.retry_failed", "boss@example.com", "queue"),
        ("queue.resumed", "boss@example.com", "queue"),
        ("queue.paused", "boss@example.com", "queue"),
    ]
    assert trail[0]["details"] == {"queue": "sending", "job_id": str(job.id)}
    assert trail[1]["details"] == {"queue": "sending", "removed": 0}


async def test_an_import_ends_in_one_entry_even_when_its_process_was_taken_for_dead(
    admin: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    """An import whose process stopped heartbeating is ended by the next import's start
    (`system`); the process, only slow, finishing afterwards adds no second ending."""
    from dataclasses import replace
    from datetime import timedelta

    from factories import ADMIN_ACTOR
    from pagecast.models import ImportState
    from pagecast.services import import_jobs

    page = await connected_page(db, vault)
    t0 = utcnow()
    async with db.transaction() as session:
        slow = await import_jobs.start(
            session, ADMIN_ACTOR, page.id, file_name="a.csv", file_bytes=10, now=t0
        )
    later = t0 + import_jobs.STALE_AFTER + timedelta(seconds=1)
    async with db.transaction() as session:
        await import_jobs.start(
            session, ADMIN_ACTOR, page.id, file_name="b.csv", file_bytes=10, now=later
        )
    ann = replace(ADMIN_ACTOR, user_id=None, name="ann@example.com")  # who started it
    async with db.transaction() as session:  # the slow process, done at last
        await import_jobs.finish(session, ann, slow.id, ImportState.COMPLETED)
    ended = await entries(admin, action="contacts.imported")
    assert [(e["actor"], e["details"]["import_id"], e["details"]["state"]) for e in ended] == [
        ("system", slow.id, "interrupted")
    ]
