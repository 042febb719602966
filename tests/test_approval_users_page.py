"""Two-person approval (issue 22) on the Users page: a viewer is never shown as able to
approve, and saving a viewer's row keeps the approve flag an admin set (for a later role)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from factories import create_user, session_cookie
from pagecast.db import Database
from pagecast.models import Role, User
from pagecast.web.deps import SESSION_COOKIE
from test_sending import engine_app, sending_settings  # noqa: F401  (fixtures)


async def test_the_users_page_never_shows_a_viewer_as_able_to_approve(
    engine_app: Any,  # noqa: F811
    db: Database,
) -> None:
    boss, _ = await create_user(db, Role.ADMIN, email="boss@example.com")
    watcher, _ = await create_user(db, Role.VIEWER, email="watcher@example.com")
    checker, _ = await create_user(db, Role.MANAGER, email="checker@example.com")
    cookie = await session_cookie(db, boss)
    csrf = engine_app.state.context.vault.csrf_token(cookie)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    ) as browser:
        page = (await browser.get("/users")).text
        rows: dict[str, str] = {}  # the Users table comes before the tokens' table
        for email, row in re.findall(r"<td>([^<]+@example\.com)</td>(.*?)</tr>", page, re.S):
            rows.setdefault(email, row)
        assert 'aria-label="watcher@example.com can approve"' not in rows["watcher@example.com"]
        assert "no (viewer)" in rows["watcher@example.com"]
        assert re.search(r'aria-label="checker@example.com can approve" checked', page)

        # The viewer's row saved as shown (role and flags unchanged) keeps can_approve, so a
        # promotion to manager later gives the permission back as before.
        hidden = re.findall(
            rf'<input type="hidden" name="(\w+)" value="on" form="user-{watcher.id}"', page
        )
        saved = await browser.post(
            f"/users/{watcher.id}",
            data={"csrf_token": csrf, "role": "viewer", "is_active": "on", "can_send": "on"}
            | dict.fromkeys(hidden, "on"),
        )
        assert saved.status_code in (302, 303), saved.text[:300]
    async with db.transaction() as session:
        row = await session.get(User, watcher.id)
        assert row is not None and row.can_approve is True
    _ = checker
