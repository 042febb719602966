"""Connect with Facebook, the run's edges: Facebook is called after the commit, the Pages
connected by default, a run's user token erased once abandoned, one callback per state (even
racing), ids out of range, picking from another session or without the CSRF token, and
tokens kept out of the HTML and the log (tests/test_connect_facebook.py has the flow)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from factories import SIM_TOKEN, create_user, postgresql_only, session_cookie
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.models import FacebookLogin, LoginSession, Page, Role, utcnow
from pagecast.security import Vault
from pagecast.services import facebook_connect
from pagecast.worker import build
from pagecast.worker.state import Clock
from pagecast.worker.sweep import sweep
from test_connect_facebook import (  # the flow's helpers and its app settings
    OTHER_PAGE,
    Browser,
    _browser,
    _cli,
    _consent,
    _pages,
    _sim_app,
    _user_token,
    browser,
    settings,
)

__all__ = ["browser", "settings"]  # fixtures, used by name

BETA = (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page")


class _Ahead(Clock):
    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return utcnow() + self.ahead


class _SeesCommitted:
    """The app's Facebook, noting at each webhook subscription whether another connection
    already sees the Page stored (it does only once the transaction has committed)."""

    def __init__(self, inner: Any, db: Database, seen: list[bool]) -> None:
        self._inner, self._db, self.seen = inner, db, seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def subscribe(self, page_token: str, fb_page_id: str) -> str | None:
        async with self._db.reading() as session:
            found = await session.scalar(select(Page.id).where(Page.fb_page_id == fb_page_id))
        self.seen.append(found is not None)
        result: str | None = await self._inner.subscribe(page_token, fb_page_id)
        return result


def _watch_subscriptions(app: Any, db: Database, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    ctx, seen = app.state.context, []
    make = ctx.facebook_login
    monkeypatch.setattr(ctx, "facebook_login", lambda: _SeesCommitted(make(), db, seen))
    return seen


async def _to_pick(browser: Browser) -> str:
    """Through the dialog to the pick page; its path."""
    callback = await browser.dialog(await browser.to_facebook())
    answer = await browser.client.get(callback)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


async def _run(db: Database) -> FacebookLogin:
    async with db.reading() as session:
        run = await session.scalar(select(FacebookLogin))
    assert run is not None
    return run


# --------------------------------------------------------------------------- Facebook after the commit


async def test_the_api_subscribes_webhooks_only_after_the_pages_are_committed(
    app: Any, api: Any, sim: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _sim_app(sim, BETA)
    seen = _watch_subscriptions(app, db, monkeypatch)
    admin = await api(Role.ADMIN)
    answer = await admin.post(
        "/api/pages/connect-facebook", json={"user_access_token": await _user_token(sim)}
    )
    assert answer.status_code == 200, answer.text
    assert [p["subscribed"] for p in answer.json()["pages"]] == [True, True]
    assert seen == [True, True]


async def test_the_dashboard_subscribes_webhooks_only_after_the_pages_are_committed(
    app: Any,
    browser: Browser,
    sim: httpx.AsyncClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    seen = _watch_subscriptions(app, db, monkeypatch)
    pick = await _to_pick(browser)
    result = await browser.client.post(pick, data={"csrf_token": browser.csrf, "page_id": "1001"})
    assert result.status_code == 200, result.text
    assert seen == [True]


# --------------------------------------------------------------------------- page_ids omitted


async def test_without_page_ids_only_pages_not_yet_connected_are_connected(
    api: Any, sim: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await _sim_app(sim, BETA)
    admin = await api(Role.ADMIN)
    # 1001 was connected with another token (say a system user's): it is left alone.
    pasted = await admin.post("/api/pages", json={"access_token": SIM_TOKEN})
    assert pasted.status_code == 201
    async with db.transaction() as session:
        page = await session.get(Page, pasted.json()["id"])
        assert page is not None
        page.access_token_encrypted = vault.encrypt("EAAG-system-user-token")
    token = await _user_token(sim)
    answer = await admin.post("/api/pages/connect-facebook", json={"user_access_token": token})
    assert answer.status_code == 200, answer.text
    assert [(p["fb_page_id"], p["result"]) for p in answer.json()["pages"]] == [
        (OTHER_PAGE, "connected")
    ]
    kept = {p.fb_page_id: vault.decrypt(p.access_token_encrypted) for p in await _pages(db)}
    assert kept["1001"] == "EAAG-system-user-token"
    # All connected now: omitting page_ids replaces nothing and says how to.
    again = await admin.post("/api/pages/connect-facebook", json={"user_access_token": token})
    assert again.status_code == 422, again.text
    error = again.json()["error"]
    assert error["field"] == "page_ids" and "connected already" in error["message"]
    assert "Acme Store (1001)" in error["message"]
    named = await admin.post(
        "/api/pages/connect-facebook", json={"user_access_token": token, "page_ids": ["1001"]}
    )
    assert [p["result"] for p in named.json()["pages"]] == ["token_replaced"]


async def test_the_cli_reads_the_token_from_its_environment_variable(
    sim: httpx.AsyncClient, simulator: Any, tmp_path: Path
) -> None:
    await _sim_app(sim)
    token = await _user_token(sim)
    done = await asyncio.to_thread(
        _cli,
        tmp_path / "data",
        simulator,
        "connect-facebook",
        PAGECAST_FACEBOOK_USER_TOKEN=token,
    )
    assert done.returncode == 0, done.stderr
    assert "Acme Store (1001): connected as Page 1, webhooks subscribed." in done.stdout
    again = await asyncio.to_thread(
        _cli,
        tmp_path / "data",
        simulator,
        "connect-facebook",
        PAGECAST_FACEBOOK_USER_TOKEN=token,
    )
    assert again.returncode == 1 and "connected already" in again.stderr
    assert token not in done.stdout + done.stderr + again.stderr


# --------------------------------------------------------------------------- abandoned runs


async def test_the_sweep_erases_the_user_token_of_an_abandoned_run(
    app: Any, browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    await _to_pick(browser)
    assert (await _run(db)).user_token_encrypted is not None
    ttl = facebook_connect.CHOOSE_TTL
    await sweep(build(app.state.context, clock=_Ahead(ttl - timedelta(minutes=1))).env)
    assert (await _run(db)).user_token_encrypted is not None  # still within its time
    await sweep(build(app.state.context, clock=_Ahead(ttl + timedelta(seconds=1))).env)
    assert (await _run(db)).user_token_encrypted is None


async def test_opening_an_expired_run_erases_its_user_token(
    browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    pick = await _to_pick(browser)
    async with db.transaction() as session:
        run = await session.scalar(select(FacebookLogin))
        assert run is not None
        run.expires_at = utcnow() - timedelta(seconds=1)
    answer = await browser.client.get(pick)
    assert answer.status_code == 409 and "expired" in answer.text
    assert (await _run(db)).user_token_encrypted is None
    again = await browser.client.get(pick)  # still said to be expired, not unknown
    assert again.status_code == 409 and "expired" in again.text


# --------------------------------------------------------------------------- one callback per state


async def _started(db: Database) -> tuple[int, str]:
    user, _ = await create_user(db, Role.ADMIN)
    await session_cookie(db, user)
    async with db.transaction() as session:
        session_id = int(await session.scalar(select(func.max(LoginSession.id))) or 0)
        state = await facebook_connect.start(
            session, session_id=session_id, user_id=user.id, redirect_uri="http://x/cb"
        )
    return session_id, state


async def test_a_claim_gives_the_run_time_for_facebooks_exchange(db: Database) -> None:
    session_id, state = await _started(db)
    late = utcnow() + facebook_connect.STATE_TTL - timedelta(seconds=5)
    async with db.transaction() as session:
        login = await facebook_connect.claim(session, session_id=session_id, state=state, now=late)
    assert login.expires_at == late + facebook_connect.STATE_TTL


@postgresql_only
async def test_two_callbacks_racing_with_one_state_claim_it_once(db: Database) -> None:
    session_id, state = await _started(db)

    async def second() -> None:
        async with db.transaction() as session:
            await facebook_connect.claim(session, session_id=session_id, state=state)

    async with db.session() as first, first.begin():
        await facebook_connect.claim(first, session_id=session_id, state=state)
        racing = asyncio.create_task(second())
        # Wait until the second callback waits for the first's row lock.
        async with asyncio.timeout(10):
            while True:
                async with db.reading() as probe:
                    waiting = await probe.scalar(
                        text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    )
                if waiting or racing.done():
                    break
                await asyncio.sleep(0.01)
    with pytest.raises(InvalidInput, match="already used"):
        await racing


# --------------------------------------------------------------------------- the pick page


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_run_id_out_of_range_is_not_found_not_a_500(
    browser: Browser, sim: httpx.AsyncClient, method: str
) -> None:
    answer = await browser.client.request(
        method,
        "/pages/connect/facebook/99999999999",
        data={"csrf_token": browser.csrf, "page_id": "1001"} if method == "POST" else None,
    )
    # As for every dashboard id out of range (schemas.Id): no such page.
    assert answer.status_code == 404, answer.text
    assert "no such page" in answer.text


async def test_picking_from_another_session_is_refused(
    app: Any, browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    pick = await _to_pick(browser)
    other = await _browser(app, db, sim, "other@example.com")
    try:
        shown = await other.client.get(pick)
        posted = await other.client.post(pick, data={"csrf_token": other.csrf, "page_id": "1001"})
    finally:
        await other.client.aclose()
    assert shown.status_code == 409 and "not open for you" in shown.text
    assert posted.status_code == 409 and "not open for you" in posted.text
    assert await _pages(db) == []


async def test_picking_without_the_csrf_token_is_refused(
    browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    pick = await _to_pick(browser)
    answer = await browser.client.post(pick, data={"page_id": "1001"})
    assert answer.status_code == 403
    assert await _pages(db) == []
    assert (await _run(db)).finished_at is None


async def test_no_token_reaches_the_html_or_the_log(
    browser: Browser,
    sim: httpx.AsyncClient,
    db: Database,
    vault: Vault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _sim_app(sim, BETA)
    await _consent(sim)
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # from here on, only the flow's requests and Pagecast's own lines
    dialog = await browser.to_facebook()
    callback = await browser.dialog(dialog)
    chosen = await browser.client.get(callback)
    pick = chosen.headers["location"]
    long_lived = vault.decrypt((await _run(db)).user_token_encrypted or "")
    shown = await browser.client.get(pick)
    result = await browser.client.post(
        pick, data={"csrf_token": browser.csrf, "page_id": ["1001", OTHER_PAGE]}
    )
    assert result.status_code == 200, result.text
    assert "Beta Bikes" in shown.text and 'id="result-1001"' in result.text
    assert caplog.records  # the log was captured
    secrets = {"long-lived": long_lived, "page": SIM_TOKEN, "other page": BETA[2]}
    for name, secret in secrets.items():
        assert secret not in shown.text + result.text, name
        assert secret not in caplog.text, name
