"""Facebook Login's server side in the Graph client (dialog URL, code exchange, long-lived
token, `/me/accounts`, `/me/permissions`, `debug_token`) against the simulator, and its
secrets kept out of every error and log line."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import pytest_asyncio
from graph_support import PAGE_ID, TOKEN, VERSION, Sim

from pagecast.graph import (
    LOGIN_SCOPES,
    ErrorKind,
    GraphClient,
    GraphError,
    OAuthProblem,
    PageCredentials,
    make_http_client,
)

APP_SECRET = "login-app-secret-91c"
USER_TOKEN = "EAAU-user-token-5e"
REDIRECT = "http://127.0.0.1:9/pages/connect/callback"
STATE = "session-bound-state-1"
OTHER_PAGE, OTHER_TOKEN = "2234567890123456", "EAAG-other-page"
THIRD_PAGE, THIRD_TOKEN = "3234567890123456", "EAAG-third-page"
PSID = "6543210987654321"


async def _app_id(sim: Sim) -> str:
    """Give the simulator's app a secret; its id."""
    answer = await sim.post("app", {"app_secret": APP_SECRET})
    app_id: str = answer["app_id"]
    return app_id


async def _dialog(sim: Sim, app_id: str, redirect_uri: str = REDIRECT) -> dict[str, str]:
    """Open the dialog URL the client builds, as a browser would; the redirect's query."""
    url = sim.graph.oauth_dialog_url(sim.url, app_id, redirect_uri, STATE, LOGIN_SCOPES)
    response = await sim.control.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def _code(sim: Sim, app_id: str, **consent: Any) -> str:
    await sim.post("oauth", {"user_token": USER_TOKEN, **consent})
    back = await _dialog(sim, app_id)
    assert back["state"] == STATE
    return back["code"]


def test_the_dialog_url_asks_for_a_code_with_the_scopes() -> None:
    graph = GraphClient(make_http_client("http://127.0.0.1:1"), version="v25.0")
    url = graph.oauth_dialog_url(
        "https://www.facebook.com/", "1234", "https://pc.example/cb?x=1", "s t", LOGIN_SCOPES
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "www.facebook.com",
        "/v25.0/dialog/oauth",
    )
    assert dict(parse_qsl(parts.query)) == {
        "client_id": "1234",
        "redirect_uri": "https://pc.example/cb?x=1",
        "state": "s t",
        "scope": ",".join(LOGIN_SCOPES),
        "response_type": "code",
    }


async def test_connect_with_facebook_from_code_to_page_tokens(sim: Sim) -> None:
    app_id = await _app_id(sim)
    await sim.page()
    await sim.users({"psid": PSID})
    code = await _code(sim, app_id, user_id="5150")
    short = await sim.graph.exchange_code(app_id, APP_SECRET, REDIRECT, code)
    assert (short.access_token, short.token_type, short.expires_in) == (USER_TOKEN, "bearer", 3600)
    assert USER_TOKEN not in repr(short)
    long = await sim.graph.long_lived_user_token(app_id, APP_SECRET, short.access_token)
    assert long.access_token != USER_TOKEN and long.expires_in == 60 * 86400
    granted = await sim.graph.permissions(long.access_token)
    assert set(LOGIN_SCOPES) <= set(granted.granted) and granted.declined == ()
    assert granted.missing(LOGIN_SCOPES) == ()
    pages = await sim.graph.user_pages(long.access_token)
    assert [(p.id, p.name, p.access_token) for p in pages] == [(PAGE_ID, "Acme Store", TOKEN)]
    assert "MESSAGING" in pages[0].tasks and TOKEN not in repr(pages)
    assert pages[0].access_token is not None
    sent = await sim.graph.send_message(
        PageCredentials(pages[0].access_token), psid=PSID, message={"text": "hi"}
    )
    assert sent.message_id
    info = await sim.graph.debug_token(app_id, APP_SECRET, long.access_token)
    assert (info.is_valid, info.type, info.user_id, info.app_id) == (True, "USER", "5150", app_id)
    assert info.expires_at is not None and info.expires_at > datetime.now(UTC)
    assert {g.scope: g.target_ids for g in info.granular_scopes}["pages_messaging"] == (PAGE_ID,)


async def test_a_declined_permission_is_reported_and_its_page_token_cannot_send(
    sim: Sim,
) -> None:
    app_id = await _app_id(sim)
    await sim.page()
    await sim.users({"psid": PSID})
    code = await _code(sim, app_id, decline=["pages_messaging"])
    token = (await sim.graph.exchange_code(app_id, APP_SECRET, REDIRECT, code)).access_token
    permissions = await sim.graph.permissions(token)
    assert permissions.declined == ("pages_messaging",)
    assert permissions.missing(LOGIN_SCOPES) == ("pages_messaging",)
    info = await sim.graph.debug_token(app_id, APP_SECRET, token)
    assert "pages_messaging" not in info.scopes
    (page,) = await sim.graph.user_pages(token)
    assert page.access_token is not None and page.access_token != TOKEN
    with pytest.raises(GraphError) as refused:
        await sim.graph.send_message(
            PageCredentials(page.access_token), psid=PSID, message={"text": "hi"}
        )
    assert refused.value.code == 200


async def test_a_reused_code_is_code_used(sim: Sim) -> None:
    app_id = await _app_id(sim)
    await sim.page()
    code = await _code(sim, app_id)
    await sim.graph.exchange_code(app_id, APP_SECRET, REDIRECT, code)
    with pytest.raises(GraphError) as info:
        await sim.graph.exchange_code(app_id, APP_SECRET, REDIRECT, code)
    error = info.value
    assert error.oauth_problem is OAuthProblem.CODE_USED
    assert (error.kind, error.code, error.subcode) == (ErrorKind.BAD_REQUEST, 100, 36009)
    for text in (str(error), repr(error)):
        assert APP_SECRET not in text and code not in text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"app_secret": "not-the-secret"}, OAuthProblem.APP_SECRET_INVALID),
        ({"app_id": "999"}, OAuthProblem.APP_ID_INVALID),
        ({"redirect_uri": REDIRECT + "/other"}, OAuthProblem.REDIRECT_URI_MISMATCH),
        ({"code": "AQ-never-given"}, OAuthProblem.CODE_INVALID),
    ],
)
async def test_each_refused_exchange_names_its_problem(
    sim: Sim, change: dict[str, str], problem: OAuthProblem
) -> None:
    app_id = await _app_id(sim)
    await sim.page()
    code = await _code(sim, app_id)
    args = {
        "app_id": app_id,
        "app_secret": APP_SECRET,
        "redirect_uri": REDIRECT,
        "code": code,
        **change,
    }
    with pytest.raises(GraphError) as info:
        await sim.graph.exchange_code(**args)
    assert info.value.oauth_problem is problem
    assert info.value.kind is ErrorKind.BAD_REQUEST  # not "retry", whatever the code
    assert APP_SECRET not in str(info.value) and code not in str(info.value)


async def test_user_pages_follows_every_page_of_accounts(sim: Sim) -> None:
    app_id = await _app_id(sim)
    for page_id, token in ((PAGE_ID, TOKEN), (OTHER_PAGE, OTHER_TOKEN), (THIRD_PAGE, THIRD_TOKEN)):
        await sim.page(page_id, token=token)
    code = await _code(sim, app_id)
    token = (await sim.graph.exchange_code(app_id, APP_SECRET, REDIRECT, code)).access_token
    pages = await sim.graph.user_pages(token, limit=2)
    assert [(p.id, p.access_token) for p in pages] == [
        (PAGE_ID, TOKEN),
        (OTHER_PAGE, OTHER_TOKEN),
        (THIRD_PAGE, THIRD_TOKEN),
    ]
    calls = (await sim.get("calls"))["calls"]
    assert sum(c["path"].endswith("/me/accounts") for c in calls) == 2


async def test_tokens_that_are_not_valid_user_tokens(sim: Sim) -> None:
    app_id = await _app_id(sim)
    await sim.page()
    with pytest.raises(GraphError) as page_token:
        await sim.graph.permissions(TOKEN)
    assert page_token.value.oauth_problem is OAuthProblem.TOKEN_INVALID
    with pytest.raises(GraphError) as unknown:
        await sim.graph.long_lived_user_token(app_id, APP_SECRET, "EAAU-unknown")
    assert unknown.value.oauth_problem is OAuthProblem.TOKEN_INVALID
    assert unknown.value.kind is ErrorKind.BAD_REQUEST
    info = await sim.graph.debug_token(app_id, APP_SECRET, "EAAU-unknown")
    assert (info.is_valid, info.error_code) == (False, 190)
    with pytest.raises(GraphError) as wrong_app:
        await sim.graph.debug_token(app_id, "not-the-secret", TOKEN)
    assert wrong_app.value.code == 190


# ----------------------------------------------------------------------------- secrets


class _Silent:
    """A loopback server that reads requests and never answers them."""

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Silent:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            await reader.read()  # until the client goes away
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def silent() -> AsyncIterator[_Silent]:
    async with _Silent() as server:
        yield server


def _everything_about(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


async def test_a_failed_exchange_never_shows_the_secret_or_the_code(
    silent: _Silent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "AQ/secret+code=0b7 é"  # percent-encoded in the URL
    async with make_http_client(
        silent.url, connect_timeout=0.2, pool_timeout=0.2, read_timeout=30, max_connections=1
    ) as http:
        graph = GraphClient(http, version=VERSION)
        stuck = asyncio.create_task(graph.exchange_code("1", APP_SECRET, REDIRECT, code))
        await _until(lambda: silent.requests == 1)
        # No free connection: aiohttp's error names the URL, query and all.
        with pytest.raises(GraphError) as info:
            await graph.exchange_code("1", APP_SECRET, REDIRECT, code)
        assert "ConnectionTimeoutError" in str(info.value)
        assert "oauth/access_token?…" in str(info.value)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("pagecast")]
    for text in (_everything_about(info.value), *ours):
        assert APP_SECRET not in text and "0b7" not in text


async def test_login_errors_and_logs_never_show_secrets_or_tokens(
    mock_graph: Callable[[Callable[[httpx.Request], httpx.Response]], GraphClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[httpx.Request] = []

    def echo(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        message = f"Bad request {request.url.query.decode()} {request.headers.get('authorization')}"
        return httpx.Response(400, json={"error": {"message": message, "code": 100}})

    graph = mock_graph(echo)
    calls = [
        graph.exchange_code("1", APP_SECRET, REDIRECT, "AQ-code-1"),
        graph.long_lived_user_token("1", APP_SECRET, USER_TOKEN),
        graph.user_pages(USER_TOKEN, app_secret=APP_SECRET),
        graph.permissions(USER_TOKEN),
        graph.debug_token("1", APP_SECRET, USER_TOKEN),
    ]
    errors = []
    for call in calls:
        with pytest.raises(GraphError) as info:
            await call
        errors.append(info.value)
    # The secrets did reach the server (the echo had something to leak) ...
    assert any(APP_SECRET in str(r.url) for r in seen) and "AQ-code-1" in str(seen[0].url)
    # ... and the user token went in a header on the calls that allow it.
    assert seen[3].headers["authorization"] == f"Bearer {USER_TOKEN}"
    assert USER_TOKEN not in str(seen[3].url)
    assert "Authorization" not in seen[0].headers
    # Pagecast's own log lines (the stand-in's access log is Facebook's side of the wire).
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("pagecast")]
    for text in [*(_everything_about(e) for e in errors), *ours]:
        assert APP_SECRET not in text and USER_TOKEN not in text and "AQ-code-1" not in text
    assert sum("HTTP Request" in line for line in ours) == len(calls)
    assert all("kind=bad_request" in line for line in ours if "failed" in line)
