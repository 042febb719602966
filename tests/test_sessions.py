"""Login sessions live on the server (issue 17, item 6): logout, a password change and an
admin's "sign out everywhere" end them at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from factories import app_client, create_user
from pagecast.db import Database
from pagecast.models import LoginSession, Role
from pagecast.services import sessions
from pagecast.web.deps import SESSION_COOKIE

PASSWORD = "a good password"


async def _browser(app: Any, email: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """A client that logged in with its password, holding the cookie and the CSRF header."""
    client = app_client(app)
    answer = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["x-csrf-token"] = answer.json()["csrf_token"]
    return client


async def _works(client: httpx.AsyncClient) -> bool:
    status = (await client.get("/api/me")).status_code
    assert status in (200, 401)
    return status == 200


async def test_logout_ends_the_session_for_a_copy_of_its_cookie_too(app: Any, db: Database) -> None:
    await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    browser = await _browser(app, "v@example.com")
    stolen = app_client(app)
    stolen.cookies.set(SESSION_COOKIE, browser.cookies[SESSION_COOKIE])
    assert await _works(stolen)
    assert (await browser.post("/api/auth/logout")).status_code == 204
    assert not await _works(stolen)
    answer = await stolen.get("/api/me")
    assert answer.json()["error"]["message"] == "Your session has ended; log in again."
    await browser.aclose()
    await stolen.aclose()


async def test_an_admin_changing_a_password_ends_every_session_of_that_user(
    app: Any, api: Any, db: Database
) -> None:
    user, raw = await create_user(db, Role.MANAGER, email="m@example.com", password=PASSWORD)
    laptop, phone = await _browser(app, "m@example.com"), await _browser(app, "m@example.com")
    admin = await api(Role.ADMIN)
    answer = await admin.patch(f"/api/users/{user.id}", json={"password": "a new password"})
    assert answer.status_code == 200
    assert not await _works(laptop) and not await _works(phone)
    async with app_client(app, raw) as token:  # API tokens are not sessions: they stay
        assert (await token.get("/api/me")).status_code == 200
    assert (await _browser(app, "m@example.com", "a new password")).cookies
    await laptop.aclose()
    await phone.aclose()


async def test_changing_your_own_password_keeps_this_session_and_ends_the_others(
    app: Any, db: Database
) -> None:
    admin, _ = await create_user(db, Role.ADMIN, email="a@example.com", password=PASSWORD)
    here, elsewhere = await _browser(app, "a@example.com"), await _browser(app, "a@example.com")
    answer = await here.patch(f"/api/users/{admin.id}", json={"password": "a new password"})
    assert answer.status_code == 200
    assert await _works(here)
    assert not await _works(elsewhere)
    await here.aclose()
    await elsewhere.aclose()


async def test_an_admin_lists_and_ends_a_users_sessions(app: Any, api: Any, db: Database) -> None:
    user, _ = await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    first, second = await _browser(app, "v@example.com"), await _browser(app, "v@example.com")
    admin = await api(Role.ADMIN)
    listed = (await admin.get(f"/api/users/{user.id}/sessions")).json()["items"]
    assert len(listed) == 2 and {s["user_agent"] for s in listed} == {
        "python-httpx/" + httpx.__version__
    }
    assert "secret_hash" not in listed[0]
    ended = await admin.delete(f"/api/users/{user.id}/sessions")
    assert ended.json() == {"ended": 2}
    assert not await _works(first) and not await _works(second)
    assert (await admin.get(f"/api/users/{user.id}/sessions")).json()["items"] == []
    assert (await admin.delete("/api/users/987654/sessions")).status_code == 404
    audit = (await admin.get("/api/audit", params={"object_type": "user"})).json()["items"]
    assert any(a["action"] == "sessions.ended" for a in audit)
    await first.aclose()
    await second.aclose()


async def test_you_see_and_end_your_own_sessions_but_not_other_peoples(
    app: Any, db: Database
) -> None:
    await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    await create_user(db, Role.VIEWER, email="w@example.com", password=PASSWORD)
    mine, other = await _browser(app, "v@example.com"), await _browser(app, "v@example.com")
    theirs = await _browser(app, "w@example.com")
    items = (await mine.get("/api/sessions")).json()["items"]
    assert [s["current"] for s in items] == [False, True]  # newest first
    their_id = (await theirs.get("/api/sessions")).json()["items"][0]["id"]
    assert (await mine.delete(f"/api/sessions/{their_id}")).status_code == 404
    assert await _works(theirs)
    ended = await mine.delete(f"/api/sessions/{items[0]['id']}")
    assert ended.status_code == 200 and ended.json()["revoked_at"] is not None
    assert not await _works(other) and await _works(mine)
    for client in (mine, other, theirs):
        await client.aclose()


async def test_a_deactivated_user_is_signed_out(app: Any, api: Any, db: Database) -> None:
    user, _ = await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    browser = await _browser(app, "v@example.com")
    admin = await api(Role.ADMIN)
    assert (
        await admin.patch(f"/api/users/{user.id}", json={"is_active": False})
    ).status_code == 200
    assert not await _works(browser)
    await browser.aclose()


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "abc",
        "1",
        "1.",
        "0.x",
        "²." + "x" * 43,
        "99999999999999999999999.x",
        "4294967296." + "x" * 43,  # past the 32-bit id column of PostgreSQL
        "1.é",
        "1." + "x" * 200,
    ],
)
async def test_a_malformed_session_cookie_is_a_401(client: httpx.AsyncClient, cookie: str) -> None:
    # Raw bytes: the non-ASCII ones as a client may send them.
    answer = await client.get("/api/me", headers={"cookie": f"{SESSION_COOKIE}={cookie}".encode()})
    assert answer.status_code == 401


async def test_a_session_records_its_last_use_at_most_once_a_minute(
    app: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    browser = await _browser(app, "v@example.com")

    async def last_seen() -> Any:
        async with db.transaction() as session:
            return await session.scalar(select(LoginSession.last_seen_at))

    started = await last_seen()
    for _ in range(3):  # within the minute: reads only
        assert await _works(browser)
    assert await last_seen() == started
    monkeypatch.setattr(sessions, "LAST_SEEN_STEP", timedelta(0))
    assert await _works(browser)
    assert await last_seen() > started
    await browser.aclose()


async def test_an_expired_session_is_refused(app: Any, db: Database) -> None:
    from sqlalchemy import update

    from pagecast.models import utcnow

    await create_user(db, Role.VIEWER, email="v@example.com", password=PASSWORD)
    browser = await _browser(app, "v@example.com")
    async with db.transaction() as session:
        await session.execute(
            update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert not await _works(browser)
    await browser.aclose()
