"""`GET /api/audit` (issue 22): filters, keyset pages stable under inserts, CSV, bad input,
who may read it, and that nothing in Pagecast edits or deletes an entry."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from factories import ADMIN_ACTOR, table_counts
from pagecast.db import Database
from pagecast.models import AuditLog, Role
from pagecast.permissions import Actor
from pagecast.services import audit

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _actor(name: str, user_id: int | None = None) -> Actor:
    return Actor(user_id=user_id, name=name, role=Role.ADMIN, permissions=ADMIN_ACTOR.permissions)


async def _seed(
    db: Database, entries: list[tuple[str, str, str, int | None]], *, at: datetime | None = None
) -> list[int]:
    """Entries (actor, action, object type, object id), one minute apart from `at`."""
    ids = []
    async with db.transaction() as session:
        for i, (who, action, kind, object_id) in enumerate(entries):
            row = await audit.record(
                session,
                _actor(who),
                action,
                object_type=kind,
                object_id=object_id,
                details={"n": i},
            )
            if at is not None:
                await session.execute(
                    update(AuditLog)
                    .where(AuditLog.id == row.id)
                    .values(at=at + timedelta(minutes=i))
                )
            ids.append(row.id)
    return ids


async def _ids(admin: httpx.AsyncClient, **params: Any) -> list[int]:
    answer = await admin.get("/api/audit", params=params)
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()["items"]]


@pytest.fixture
async def admin(api: Any) -> httpx.AsyncClient:
    return await api(Role.ADMIN, email="boss@example.com")


async def test_each_filter_picks_its_entries_newest_first(
    admin: httpx.AsyncClient, db: Database
) -> None:
    a, b, c, d, e = await _seed(
        db,
        [
            ("ann@example.com", "campaign.created", "campaign", 7),
            ("bob@example.com", "campaign.started", "campaign", 7),
            ("ann@example.com", "campaign_x.weird", "campaign", 8),
            ("bob@example.com", "user.role_changed", "user", 3),
            ("cli", "page.updated", "page", 7),
        ],
        at=T0,
    )
    assert await _ids(admin, actor="ann@example.com") == [c, a]
    assert await _ids(admin, actor="ANN@example.com ") == [c, a]  # any case
    assert await _ids(admin, action="campaign.started") == [b]
    # A prefix ends with "." or "*"; "_" in it is a character, not a wildcard.
    assert await _ids(admin, action="campaign.") == [b, a]
    assert await _ids(admin, action="campaign.*") == [b, a]
    assert await _ids(admin, action="campaign*") == [c, b, a]
    assert await _ids(admin, object_type="campaign", object_id=7) == [b, a]
    assert await _ids(admin, object_id=7) == [e, b, a]
    since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3))
    assert await _ids(admin, since=since, until=until.isoformat()) == [c, b]
    # The same moment in another zone.
    manila = (T0 + timedelta(minutes=1)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Manila"))
    assert await _ids(admin, since=manila.isoformat(), action="campaign.") == [b]
    assert await _ids(admin, actor="cli", action="page.updated", object_type="page") == [e]
    # No filter: everything, newest first (the seeded entries are the newest).
    assert (await _ids(admin))[:5] == [e, d, c, b, a]


async def test_actor_by_user_id_finds_their_entries_and_deleting_the_user_keeps_them(
    admin: httpx.AsyncClient, db: Database
) -> None:
    made = await admin.post(
        "/api/users",
        json={"email": "leaver@example.com", "role": "manager", "password": "long enough pw"},
    )
    user_id = made.json()["id"]
    async with db.transaction() as session:
        mine = await audit.record(
            session,
            _actor("leaver@example.com", user_id),
            "campaign.created",
            object_type="campaign",
            object_id=1,
        )
    assert await _ids(admin, actor=str(user_id)) == [mine.id]
    assert (await admin.delete(f"/api/users/{user_id}")).status_code == 204
    kept = (await admin.get("/api/audit", params={"actor": "leaver@example.com"})).json()
    entry = next(e for e in kept["items"] if e["id"] == mine.id)
    assert entry["actor"] == "leaver@example.com" and entry["actor_id"] is None
    deleted = (await admin.get("/api/audit", params={"action": "user.deleted"})).json()
    assert deleted["items"][0]["object_id"] == user_id
    assert deleted["items"][0]["details"]["email"] == "leaver@example.com"


async def test_cursor_pages_walk_every_entry_once_while_entries_are_written(
    admin: httpx.AsyncClient, db: Database
) -> None:
    seeded = await _seed(
        db, [("ann@example.com", "contact.updated", "contact", i) for i in range(8)]
    )
    seen: list[int] = []
    cursor = None
    for round_ in range(10):
        params: dict[str, Any] = {"action": "contact.updated", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await admin.get("/api/audit", params=params)).json()
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        # Newer entries arrive between the pages: they belong to a later walk, not this one.
        await _seed(db, [("bob@example.com", "contact.updated", "contact", 100 + round_)])
        if cursor is None:
            break
    assert seen == sorted(seeded, reverse=True)  # no duplicate, no gap, newest first
    assert len(seen) == 8


async def test_limit_bounds_a_page_and_the_last_page_has_no_cursor(
    admin: httpx.AsyncClient, db: Database
) -> None:
    await _seed(db, [("ann@example.com", "page.updated", "page", i) for i in range(3)])
    one = (await admin.get("/api/audit", params={"action": "page.updated", "limit": 2})).json()
    assert len(one["items"]) == 2 and one["next_cursor"]
    two = (
        await admin.get(
            "/api/audit",
            params={"action": "page.updated", "limit": 2, "cursor": one["next_cursor"]},
        )
    ).json()
    assert len(two["items"]) == 1 and two["next_cursor"] is None


async def test_csv_has_the_header_every_matching_row_and_keeps_formulas_text(
    admin: httpx.AsyncClient, db: Database
) -> None:
    await _seed(db, [('=HYPERLINK("http://evil")', "auth.login_failed", "user", None)])
    ids = await _seed(
        db, [("ann@example.com", "campaign.created", "campaign", i) for i in range(3)]
    )
    for how in ({"headers": {"accept": "text/csv"}}, {"params": {"format": "csv"}}):
        params = {"action": "campaign.created"} | dict(how.get("params", {}))
        answer = await admin.get("/api/audit", params=params, headers=how.get("headers"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert rows[0] == [
            "id",
            "at",
            "actor",
            "actor_id",
            "action",
            "object_type",
            "object_id",
            "change",
            "details",
        ]
        assert [int(r[0]) for r in rows[1:]] == sorted(ids, reverse=True)
        assert {r[4] for r in rows[1:]} == {"campaign.created"}
        assert rows[1][7] == "n: 2"
    failed = await admin.get("/api/audit?format=csv&action=auth.login_failed")
    rows = list(csv.reader(io.StringIO(failed.text)))
    assert rows[1][2] == '\'=HYPERLINK("http://evil")'


async def test_csv_streams_more_rows_than_one_batch(
    admin: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pagecast.services import audit_list

    monkeypatch.setattr(audit_list, "_BATCH", 4)
    await _seed(db, [("ann@example.com", "contact.updated", "contact", i) for i in range(10)])
    answer = await admin.get("/api/audit?format=csv&action=contact.updated")
    ids = [int(r[0]) for r in list(csv.reader(io.StringIO(answer.text)))[1:]]
    assert len(ids) == 10 and ids == sorted(set(ids), reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"actor": "99999999999999999999"}, "actor"),
        ({"action": "campaign started"}, "action"),
        ({"action": "."}, "action"),
        ({"action": "Campaign.<script>"}, "action"),
        ({"object_type": "camp-aign!"}, "object_type"),
        ({"object_id": "abc"}, "object_id"),
        ({"object_id": "0"}, "object_id"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-01T09:00:00"}, "since"),
        ({"until": "2026-11-01"}, "until"),
        # Valid ISO 8601, but past the last (or before the first) moment UTC can hold.
        ({"since": "9999-12-31T23:00:00-14:00"}, "since"),
        ({"until": "0001-01-01T00:00:00+14:00"}, "until"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "aWQ6NQ"}, "cursor"),  # another list's cursor ("id:5")
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"format": "xml"}, "format"),
        ({"format": "csv", "cursor": "junk"}, "cursor"),
    ],
)
async def test_bad_filters_are_a_422_naming_the_field_and_change_nothing(
    admin: httpx.AsyncClient, db: Database, params: dict[str, str], field: str
) -> None:
    before = await table_counts(db)
    answer = await admin.get("/api/audit", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert field in error["message"]
    assert await table_counts(db) == before


async def test_only_admins_read_the_audit_log(api: Any, client: httpx.AsyncClient) -> None:
    for role in (Role.VIEWER, Role.MANAGER):
        other = await api(role)
        assert (await other.get("/api/audit")).status_code == 403
        assert (await other.get("/api/audit?format=csv")).status_code == 403
    assert (await client.get("/api/audit")).status_code == 401


async def test_no_route_changes_or_deletes_an_entry(admin: httpx.AsyncClient, db: Database) -> None:
    (entry,) = await _seed(db, [("ann@example.com", "campaign.created", "campaign", 1)])
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert (await admin.request(method, "/api/audit", json={})).status_code == 405
        answer = await admin.request(method, f"/api/audit/{entry}", json={})
        assert answer.status_code in (404, 405), (method, answer.status_code)
    kept = (await admin.get("/api/audit", params={"actor": "ann@example.com"})).json()
    assert [e["id"] for e in kept["items"]] == [entry]
    assert kept["items"][0]["details"] == {"n": 0}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "9999-12-31T23:00"}, "since"),  # past year 9999 in UTC, from Pago Pago
        ({"until": "0001-01-01T00:00"}, "until"),  # (only when the page reads UTC - 11 h)
        ({"until": "9999-12-31T23:00:00-14:00"}, "until"),
    ],
)
async def test_the_audit_page_names_a_time_it_cannot_read_and_answers_422(
    client: httpx.AsyncClient, db: Database, params: dict[str, str], field: str
) -> None:
    from factories import create_user

    await create_user(db, Role.ADMIN, email="far@example.com", password="far away password")
    signed = await client.post(
        "/api/auth/login", json={"email": "far@example.com", "password": "far away password"}
    )
    assert signed.status_code == 200
    zone = await client.patch(
        "/api/me",
        json={"timezone": "Pacific/Pago_Pago"},
        headers={"x-csrf-token": signed.json()["csrf_token"]},
    )
    assert zone.status_code == 200, zone.text
    for path in ("/audit", "/audit.csv"):
        answer = await client.get(path, params=params)
        assert answer.status_code == 422, (path, answer.status_code)
        assert f"{field}:" in answer.text
