"""Connect with Facebook against the simulator through the real Graph client: the API's
`POST /api/pages/connect-facebook`, the dashboard's flow (button, dialog, callback, picking
Pages) over HTTP, and every refusal (docs/dashboard.md, "Connecting a Page")."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from factories import SIM_TOKEN, create_user, session_cookie, sim_page, table_counts
from pagecast.db import Database
from pagecast.errors import InvalidInput
from pagecast.graph import LOGIN_SCOPES
from pagecast.models import FacebookLogin, LoginSession, Page, Role, utcnow
from pagecast.security import Vault
from pagecast.services import facebook_connect
from pagecast.settings import Settings
from pagecast.web.deps import SESSION_COOKIE
from processes import PAGECAST, clean_env

APP_ID = "1517776481860111"  # the simulator's app
APP_SECRET = "connect-app-secret-3f"
USER_TOKEN = "EAAU-connect-user-1"
OTHER_PAGE = "2002"
CALLBACK = "/pages/connect/facebook/callback"


@pytest.fixture
def settings(settings: Settings, simulator: Any) -> Settings:
    return settings.model_copy(
        update={
            "app_id": APP_ID,
            "app_secret": SecretStr(APP_SECRET),
            "facebook_web_url": simulator.url,
        }
    )


async def _sim_app(sim: httpx.AsyncClient, *pages: tuple[str, str, str]) -> None:
    """The simulator's app with our secret, and its Pages (id, name, token)."""
    assert (await sim.post("/__sim/app", json={"app_secret": APP_SECRET})).status_code == 200
    await sim_page(sim)
    for page_id, name, token in pages:
        await sim_page(sim, page_id=page_id, name=name, token=token)
    # A new Page of the simulator is subscribed to everything: start unsubscribed, so that a
    # test sees what connecting subscribed.
    gone = await sim.delete("/1001/subscribed_apps", params={"access_token": SIM_TOKEN})
    assert gone.status_code == 200, gone.text
    assert await _subscribed(sim) == []


async def _consent(sim: httpx.AsyncClient, **choice: Any) -> None:
    answer = await sim.post("/__sim/oauth", json={"user_token": USER_TOKEN, **choice})
    assert answer.status_code == 200, answer.text


async def _user_token(sim: httpx.AsyncClient, **choice: Any) -> str:
    """A user token as a script gets one: the dialog, then the code exchange."""
    await _consent(sim, **choice)
    redirect = "http://script.example/cb"
    dialog = await sim.get(
        "/dialog/oauth",
        params={"client_id": APP_ID, "redirect_uri": redirect, "scope": ",".join(LOGIN_SCOPES)},
    )
    code = dict(parse_qsl(urlsplit(dialog.headers["location"]).query))["code"]
    exchanged = await sim.get(
        "/oauth/access_token",
        params={
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "redirect_uri": redirect,
            "code": code,
        },
    )
    token: str = exchanged.json()["access_token"]
    return token


async def _subscribed(sim: httpx.AsyncClient, page_id: str = "1001") -> list[str]:
    answer = await sim.get(f"/{page_id}/subscribed_apps", params={"access_token": SIM_TOKEN})
    apps = answer.json()["data"]
    return list(apps[0]["subscribed_fields"]) if apps else []


async def _pages(db: Database) -> list[Page]:
    async with db.transaction() as session:
        return list(await session.scalars(select(Page).order_by(Page.id)))


# --------------------------------------------------------------------------- the API


async def test_api_connects_the_pages_a_user_token_lists(
    api: Any, sim: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await _sim_app(sim, (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page"))
    admin = await api(Role.ADMIN)
    token = await _user_token(sim)
    answer = await admin.post(
        "/api/pages/connect-facebook", json={"user_access_token": token, "page_ids": ["1001"]}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(p["fb_page_id"], p["name"], p["result"], p["subscribed"]) for p in body["pages"]] == [
        ("1001", "Acme Store", "connected", True)
    ]
    assert body["missing"] == []
    assert [r["status"] for r in body["permissions"]] == ["granted"] * 4
    stored = await _pages(db)
    assert [p.fb_page_id for p in stored] == ["1001"]  # only the Page asked for
    assert vault.decrypt(stored[0].access_token_encrypted) == SIM_TOKEN
    assert SIM_TOKEN not in answer.text and token not in answer.text
    assert await _subscribed(sim) == [
        "messages",
        "messaging_postbacks",
        "message_deliveries",
        "message_reads",
        "message_echoes",
        "messaging_policy_enforcement",
    ]
    # The token was exchanged for a long-lived one before the Pages were listed.
    calls = (await sim.get("/__sim/calls")).json()
    calls = calls["calls"] if isinstance(calls, dict) else calls
    assert any("oauth/access_token" in c["path"] for c in calls)


async def test_api_without_page_ids_connects_every_page_listed(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim, (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page"))
    admin = await api(Role.ADMIN)
    answer = await admin.post(
        "/api/pages/connect-facebook", json={"user_access_token": await _user_token(sim)}
    )
    assert answer.status_code == 200, answer.text
    assert sorted(p.fb_page_id for p in await _pages(db)) == ["1001", OTHER_PAGE]


async def test_an_already_connected_page_gets_its_token_replaced_not_a_second_row(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    pasted = await admin.post("/api/pages", json={"access_token": SIM_TOKEN})
    assert pasted.status_code == 201
    await admin.delete(f"/api/pages/{pasted.json()['id']}")  # no campaign: forgotten
    again = await admin.post("/api/pages", json={"access_token": SIM_TOKEN})
    page_id = again.json()["id"]
    answer = await admin.post(
        "/api/pages/connect-facebook",
        json={"user_access_token": await _user_token(sim), "page_ids": ["1001"]},
    )
    assert answer.status_code == 200, answer.text
    assert [(p["page_id"], p["result"]) for p in answer.json()["pages"]] == [
        (page_id, "token_replaced")
    ]
    assert [p.id for p in await _pages(db)] == [page_id]


async def test_a_declined_permission_is_explained_with_what_it_stops(
    api: Any, sim: httpx.AsyncClient
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    token = await _user_token(sim, decline=["pages_messaging"])
    answer = await admin.post("/api/pages/connect-facebook", json={"user_access_token": token})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["missing"] == ["pages_messaging"]
    row = next(r for r in body["permissions"] if r["permission"] == "pages_messaging")
    assert row["status"] == "declined" and "nothing can be sent" in row["stops"]


async def test_without_pages_manage_metadata_the_page_is_connected_but_not_subscribed(
    api: Any, sim: httpx.AsyncClient
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    token = await _user_token(sim, decline=["pages_manage_metadata"])
    answer = await admin.post("/api/pages/connect-facebook", json={"user_access_token": token})
    assert answer.status_code == 200, answer.text
    page = answer.json()["pages"][0]
    assert (page["result"], page["subscribed"]) == ("connected", False)
    assert "pages_manage_metadata" in page["problem"] and "webhooks" in page["problem"]
    assert await _subscribed(sim) == []


async def test_a_page_the_user_does_not_manage_is_refused_and_nothing_is_stored(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim, (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page"))
    admin = await api(Role.ADMIN)
    token = await _user_token(sim, pages=["1001"])
    before = await table_counts(db)
    answer = await admin.post(
        "/api/pages/connect-facebook",
        json={"user_access_token": token, "page_ids": ["1001", OTHER_PAGE]},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "page_ids" and OTHER_PAGE in error["message"]
    assert "Acme Store (1001)" in error["message"]
    assert await table_counts(db) == before


async def test_without_pages_show_list_nothing_is_listed_and_that_is_explained(
    api: Any, sim: httpx.AsyncClient
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    token = await _user_token(sim, decline=["pages_show_list"])
    answer = await admin.post("/api/pages/connect-facebook", json={"user_access_token": token})
    assert answer.status_code == 422
    assert "pages_show_list" in answer.json()["error"]["message"]


async def test_a_token_facebook_refuses_is_a_502_naming_the_field(
    api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    before = await table_counts(db)
    answer = await admin.post(
        "/api/pages/connect-facebook", json={"user_access_token": "EAAU-not-a-token"}
    )
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["field"] == "user_access_token"
    assert "Traceback" not in answer.text
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "user_access_token"),
        ({"user_access_token": "EAAU x"}, "user_access_token"),
        ({"user_access_token": "EAAU", "page_ids": []}, "page_ids"),
        ({"user_access_token": "EAAU", "page_ids": ["Acme"]}, "page_ids[0]"),
    ],
)
async def test_bad_input_names_the_field(
    api: Any, sim: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    admin = await api(Role.ADMIN)
    answer = await admin.post("/api/pages/connect-facebook", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field


async def test_a_manager_may_not_connect_pages(api: Any, sim: httpx.AsyncClient) -> None:
    manager = await api(Role.MANAGER)
    answer = await manager.post("/api/pages/connect-facebook", json={"user_access_token": "EAAU"})
    assert answer.status_code == 403


async def test_without_the_app_settings_the_refusal_names_them(
    app: Any, api: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    app.state.context.settings = app.state.context.settings.model_copy(
        update={"app_id": None, "app_secret": None}
    )
    admin = await api(Role.ADMIN)
    answer = await admin.post("/api/pages/connect-facebook", json={"user_access_token": "EAAU"})
    assert answer.status_code == 503, answer.text
    message = answer.json()["error"]["message"]
    assert "PAGECAST_APP_ID and PAGECAST_APP_SECRET" in message


# --------------------------------------------------------------------------- the dashboard flow


class Browser:
    """A signed-in browser over ASGI that follows the Login dance by hand."""

    def __init__(self, client: httpx.AsyncClient, sim: httpx.AsyncClient, csrf: str) -> None:
        self.client, self.sim, self.csrf = client, sim, csrf

    async def to_facebook(self) -> str:
        """Press the button; the dialog's URL."""
        answer = await self.client.get("/pages/connect/facebook")
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]

    async def dialog(self, url: str) -> str:
        """Facebook's dialog answers at once: the callback path and query it redirects to."""
        answer = await self.sim.get(url)
        assert answer.status_code == 302, answer.text
        back = urlsplit(answer.headers["location"])
        assert back.path == CALLBACK
        return f"{back.path}?{back.query}"

    async def picked(self, answer: httpx.Response, *page_ids: str) -> httpx.Response:
        assert answer.status_code == 303, answer.text
        choose = answer.headers["location"]
        shown = await self.client.get(choose)
        assert shown.status_code == 200, shown.text
        return await self.client.post(
            choose, data={"csrf_token": self.csrf, "page_id": list(page_ids)}
        )


async def _browser(app: Any, db: Database, sim: httpx.AsyncClient, email: str) -> Browser:
    user, _ = await create_user(db, Role.ADMIN, email=email)
    cookie = await session_cookie(db, user)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://pagecast.test",
        cookies={SESSION_COOKIE: cookie},
    )
    return Browser(client, sim, app.state.context.vault.csrf_token(cookie))


@pytest.fixture
async def browser(app: Any, db: Database, sim: httpx.AsyncClient) -> Any:
    b = await _browser(app, db, sim, "admin@example.com")
    yield b
    await b.client.aclose()


async def test_dashboard_flow_from_button_to_connected_page(
    browser: Browser, sim: httpx.AsyncClient, db: Database, vault: Vault
) -> None:
    await _sim_app(sim, (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page"))
    await _consent(sim)
    dialog = await browser.to_facebook()
    parts = urlsplit(dialog)
    query = dict(parse_qsl(parts.query))
    assert parts.path.endswith("/dialog/oauth")
    assert query["client_id"] == APP_ID and query["scope"] == ",".join(LOGIN_SCOPES)
    assert query["redirect_uri"] == "http://pagecast.test" + CALLBACK
    callback = await browser.dialog(dialog)
    choose = await browser.client.get(callback)
    assert choose.status_code == 303
    listing = await browser.client.get(choose.headers["location"])
    assert "Acme Store" in listing.text and "Beta Bikes" in listing.text
    result = await browser.client.post(
        choose.headers["location"], data={"csrf_token": browser.csrf, "page_id": ["1001"]}
    )
    assert result.status_code == 200, result.text
    assert 'id="result-1001"' in result.text and "connected" in result.text
    assert 'id="missing-permissions"' not in result.text
    stored = await _pages(db)
    assert [(p.fb_page_id, vault.decrypt(p.access_token_encrypted)) for p in stored] == [
        ("1001", SIM_TOKEN)
    ]
    # The run is over: its user token is erased, and it cannot connect again.
    async with db.transaction() as session:
        run = await session.scalar(select(FacebookLogin))
        assert run is not None and run.user_token_encrypted is None
    again = await browser.client.post(
        choose.headers["location"], data={"csrf_token": browser.csrf, "page_id": ["1001"]}
    )
    assert again.status_code == 409


async def test_the_pick_page_marks_a_connected_page(
    browser: Browser, sim: httpx.AsyncClient, api: Any
) -> None:
    await _sim_app(sim)
    admin = await api(Role.ADMIN)
    assert (await admin.post("/api/pages", json={"access_token": SIM_TOKEN})).status_code == 201
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    choose = await browser.client.get(callback)
    listing = await browser.client.get(choose.headers["location"])
    assert re.search(r'id="choice-1001".*connected', listing.text, re.S)


async def test_cancelling_the_dialog_is_explained_and_connects_nothing(
    browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim, decline=["*"])
    callback = await browser.dialog(await browser.to_facebook())
    assert "error=access_denied" in callback
    answer = await browser.client.get(callback)
    assert answer.status_code == 422
    assert "Facebook Login was cancelled" in answer.text and "Traceback" not in answer.text
    assert await _pages(db) == []


async def test_a_declined_permission_is_explained_on_the_result(
    browser: Browser, sim: httpx.AsyncClient
) -> None:
    await _sim_app(sim)
    await _consent(sim, decline=["pages_messaging"])
    callback = await browser.dialog(await browser.to_facebook())
    result = await browser.picked(await browser.client.get(callback), "1001")
    assert result.status_code == 200
    assert 'id="missing-permissions"' in result.text
    assert "nothing can be sent" in result.text


async def test_a_callback_without_state_or_with_an_unknown_one_is_refused(
    browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    missing = await browser.client.get(CALLBACK, params={"code": code})
    assert missing.status_code == 422 and "has no state" in missing.text
    wrong = await browser.client.get(CALLBACK, params={"code": code, "state": "forged"})
    assert wrong.status_code == 422 and "not started from this sign-in" in wrong.text
    assert await _pages(db) == []


async def test_another_sessions_state_is_refused(
    browser: Browser, app: Any, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    other = await _browser(app, db, sim, "other@example.com")
    try:
        answer = await other.client.get(callback)
    finally:
        await other.client.aclose()
    assert answer.status_code == 422 and "not started from this sign-in" in answer.text
    # The state is still the first session's to use.
    assert (await browser.client.get(callback)).status_code == 303


async def test_a_replayed_callback_is_refused(browser: Browser, sim: httpx.AsyncClient) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    assert (await browser.client.get(callback)).status_code == 303
    replay = await browser.client.get(callback)
    assert replay.status_code == 422 and "already used" in replay.text


async def test_a_reused_or_unknown_code_is_refused_with_what_to_do(
    browser: Browser, sim: httpx.AsyncClient
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    first = await browser.dialog(await browser.to_facebook())
    assert (await browser.client.get(first)).status_code == 303
    used_code = dict(parse_qsl(urlsplit(first).query))["code"]
    second = await browser.dialog(await browser.to_facebook())
    state = dict(parse_qsl(urlsplit(second).query))["state"]
    reused = await browser.client.get(CALLBACK, params={"code": used_code, "state": state})
    assert reused.status_code == 502 and "already used" in reused.text
    third = await browser.dialog(await browser.to_facebook())
    state = dict(parse_qsl(urlsplit(third).query))["state"]
    unknown = await browser.client.get(CALLBACK, params={"code": "AQnope", "state": state})
    assert unknown.status_code == 502 and "does not know this code" in unknown.text


async def test_an_expired_code_is_refused(browser: Browser, sim: httpx.AsyncClient) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    await sim.post("/__sim/clock/advance", json={"seconds": 601})
    answer = await browser.client.get(callback)
    assert answer.status_code == 502 and "expired" in answer.text


async def test_an_expired_state_is_refused(db: Database) -> None:
    user, _ = await create_user(db, Role.ADMIN)
    await session_cookie(db, user)
    start = utcnow()
    async with db.transaction() as session:
        session_id = int(await session.scalar(select(func.max(LoginSession.id))) or 0)
        state = await facebook_connect.start(
            session, session_id=session_id, user_id=user.id, redirect_uri="http://x/cb", now=start
        )
    late = start + facebook_connect.STATE_TTL + timedelta(seconds=1)
    with pytest.raises(InvalidInput, match="expired"):
        async with db.transaction() as session:
            await facebook_connect.claim(session, session_id=session_id, state=state, now=late)
    # Just in time, it is accepted.
    async with db.transaction() as session:
        await facebook_connect.claim(
            session, session_id=session_id, state=state, now=late - timedelta(seconds=2)
        )


async def test_the_pick_page_expires(
    browser: Browser, sim: httpx.AsyncClient, db: Database
) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    choose = (await browser.client.get(callback)).headers["location"]
    async with db.transaction() as session:
        run = await session.scalar(select(FacebookLogin))
        assert run is not None
        run.expires_at = utcnow() - timedelta(seconds=1)
    answer = await browser.client.post(choose, data={"csrf_token": browser.csrf, "page_id": "1001"})
    assert answer.status_code == 409 and "expired" in answer.text
    assert await _pages(db) == []


async def test_picking_nothing_asks_again(browser: Browser, sim: httpx.AsyncClient) -> None:
    await _sim_app(sim)
    await _consent(sim)
    callback = await browser.dialog(await browser.to_facebook())
    choose = (await browser.client.get(callback)).headers["location"]
    answer = await browser.client.post(choose, data={"csrf_token": browser.csrf})
    assert answer.status_code == 422 and "Tick at least one Page" in answer.text
    assert 'id="choose-pages"' in answer.text


async def test_the_button_without_app_settings_says_which_setting(
    app: Any, browser: Browser, sim: httpx.AsyncClient
) -> None:
    app.state.context.settings = app.state.context.settings.model_copy(update={"app_id": None})
    listing = await browser.client.get("/pages")
    assert "PAGECAST_APP_ID" in listing.text and 'id="connect-facebook-button"' in listing.text
    answer = await browser.client.get("/pages/connect/facebook")
    assert answer.status_code == 503 and "needs PAGECAST_APP_ID:" in answer.text


def test_the_permissions_explained_are_the_ones_the_dialog_asks_for() -> None:
    assert tuple(facebook_connect.PERMISSIONS) == LOGIN_SCOPES


# --------------------------------------------------------------------------- the CLI


def _cli(
    data_dir: Path, simulator: Any, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = clean_env(
        {
            "PAGECAST_DATA_DIR": str(data_dir),
            "PAGECAST_SECRET_KEY": "cli-connect-key",
            "PAGECAST_GRAPH_API_URL": simulator.url,
            "PAGECAST_APP_ID": APP_ID,
            "PAGECAST_APP_SECRET": APP_SECRET,
        }
        | env
    )
    return subprocess.run(
        [str(PAGECAST), "pages", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


async def test_cli_connects_with_a_user_token_and_says_what_is_missing(
    sim: httpx.AsyncClient, simulator: Any, tmp_path: Path
) -> None:
    await _sim_app(sim, (OTHER_PAGE, "Beta Bikes", "EAAG-beta-page"))
    token = await _user_token(sim, decline=["pages_read_engagement"])
    data_dir = tmp_path / "data"
    done = await asyncio.to_thread(
        _cli, data_dir, simulator, "connect-facebook", "--user-token", token, "--page", "1001"
    )
    assert done.returncode == 0, done.stderr
    assert "Acme Store (1001): connected as Page 1, webhooks subscribed." in done.stdout
    assert "Beta Bikes" not in done.stdout
    assert "Missing pages_read_engagement (declined): Without pages_read_engagement" in done.stderr
    assert token not in done.stdout + done.stderr and SIM_TOKEN not in done.stdout
    listed = await asyncio.to_thread(_cli, data_dir, simulator, "list")
    # A header line, then the Page.
    assert listed.stdout.splitlines()[1].split("\t")[:3] == ["1", "1001", "Acme Store"]
    again = await asyncio.to_thread(
        _cli, data_dir, simulator, "connect-facebook", "--user-token", token, "--page", "1001"
    )
    assert "already Page 1; its token was replaced" in again.stdout
    stranger = await asyncio.to_thread(
        _cli, data_dir, simulator, "connect-facebook", "--user-token", token, "--page", "7"
    )
    assert stranger.returncode == 1 and "Page 7 is not one you manage" in stranger.stderr
    unset = await asyncio.to_thread(
        _cli,
        data_dir,
        simulator,
        "connect-facebook",
        "--user-token",
        token,
        PAGECAST_APP_SECRET="",
    )
    assert unset.returncode == 1 and "needs PAGECAST_APP_SECRET" in unset.stderr
