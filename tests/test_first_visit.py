"""What a first visit meets (issue 19): a favicon instead of a 404, a banner on every page
when sending is unavailable (Redis down) with the reason, and `serve --demo`'s data directory
(with its secret key) ignored by git."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from factories import ADMIN_ACTOR, connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.demo import DEMO_DATA_DIR
from pagecast.models import Role
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.deps import SESSION_COOKIE
from pagecast.web.sending_check import SendingCheck
from processes import CountingListener, free_port

ROOT = Path(__file__).resolve().parent.parent
BANNER = 'id="sending-unavailable"'


async def _signed_in(app: Any, db: Database, role: Role = Role.ADMIN) -> httpx.AsyncClient:
    user, _ = await create_user(db, role, email=f"{role.value}-visit@example.com")
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: await session_cookie(db, user)},
    )


async def test_the_favicon_answers_at_its_usual_path_and_is_linked(
    client: httpx.AsyncClient, app: Any, db: Database
) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    svg = await client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg")
    async with await _signed_in(app, db) as browser:
        page = await browser.get("/campaigns")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    assert '<link rel="icon"' in (await client.get("/login")).text


def test_the_demo_data_directory_is_ignored_by_git() -> None:
    git = shutil.which("git")
    inside = (
        subprocess.run(
            [git, "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if git
        else ""
    )
    if inside != "true":
        pytest.skip("not a git checkout")
    assert git is not None
    default_data_dir = Settings.model_fields["data_dir"].default
    # The directory itself (a trailing slash: it need not exist) and the secret key in it.
    for path in (
        f"{DEMO_DATA_DIR}/",
        str(DEMO_DATA_DIR / "secret.key"),
        str(DEMO_DATA_DIR / "demo-app-secret"),
        str(default_data_dir / "secret.key"),
    ):
        answer = subprocess.run(
            [git, "-C", str(ROOT), "check-ignore", "--no-index", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert answer.returncode == 0, f"{path} is not ignored by git: {answer.stderr}"


@pytest.fixture
async def down_app(settings: Settings, db: Database) -> AsyncIterator[Any]:
    """The app with Redis pointed at a closed loopback port."""
    closed = free_port()  # bound, then released: nothing listens there
    application = create_app(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed}/0"}), database=db
    )
    application.state.closed_port = closed
    yield application
    await application.state.context.close()


async def test_with_redis_down_every_page_renders_and_says_sending_is_unavailable(
    down_app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        draft = await campaigns.create(
            session,
            ADMIN_ACTOR,
            CampaignCreate(name="Spring", page_id=page.id, content={"text": "Hi"}),
        )
    reason = f"Redis at 127.0.0.1:{down_app.state.closed_port} is unreachable (Connection refused)"
    paths = [
        "/campaigns",
        "/campaigns/new",
        f"/campaigns/{draft.id}",
        f"/campaigns/{draft.id}/edit",
    ]
    paths += ["/contacts", "/pages", "/users", "/queue"]
    async with await _signed_in(down_app, db) as browser:
        for path in paths:
            answer = await browser.get(path)
            assert answer.status_code == 200, (path, answer.text[:300])
            banner = answer.text[answer.text.index(BANNER) :].split("</div>")[0]
            assert "Sending is unavailable" in banner and reason in banner, (path, banner)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=down_app), base_url="http://t"
    ) as stranger:
        login = await stranger.get("/login")
    assert login.status_code == 200 and BANNER not in login.text  # nothing for strangers


async def test_with_redis_up_there_is_no_banner(app: Any, db: Database) -> None:
    async with await _signed_in(app, db, Role.VIEWER) as browser:
        for path in ("/campaigns", "/contacts", "/pages"):
            answer = await browser.get(path)
            assert answer.status_code == 200 and BANNER not in answer.text, path


async def _deadline(condition: Any, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_check_is_cached_and_a_hanging_redis_costs_at_most_its_timeout(
    settings: Settings, db: Database
) -> None:
    hanging = CountingListener()  # accepts, never answers: PING hangs
    application = create_app(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{hanging.port}/0"}),
        database=db,
    )
    now = [1000.0]
    application.state.sending_check = SendingCheck(
        application.state.context, every=5.0, timeout=0.2, clock=lambda: now[0]
    )
    try:
        async with await _signed_in(application, db) as browser:
            for _ in range(5):
                answer = await browser.get("/campaigns")
                assert answer.status_code == 200
                assert "did not answer within 0.2 s" in answer.text
            await _deadline(lambda: hanging.accepted >= 1)
            assert hanging.accepted == 1  # five views within 5 s: one check
            now[0] += 5.1
            assert (await browser.get("/pages")).status_code == 200
            await _deadline(lambda: hanging.accepted >= 2)
            assert hanging.accepted == 2  # the answer expired: checked again
    finally:
        await application.state.context.close()
        hanging.close()


async def test_while_a_check_runs_other_requests_get_the_last_answer(
    settings: Settings, db: Database
) -> None:
    hanging = CountingListener()
    application = create_app(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{hanging.port}/0"}),
        database=db,
    )
    now = [0.0]
    check = SendingCheck(application.state.context, every=5.0, timeout=0.5, clock=lambda: now[0])
    try:
        first = await check.problem()  # nothing known yet: this one waits for the answer
        assert first is not None and "did not answer within 0.5 s" in first
        now[0] += 6
        running = asyncio.ensure_future(check.problem())  # asks Redis again (0.5 s)
        await _deadline(lambda: hanging.accepted >= 2)
        assert await check.problem() == first and not running.done()
        assert await running == first
    finally:
        await application.state.context.close()
        hanging.close()
