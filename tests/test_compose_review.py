"""Issue 19, Compose, after review: the dashboard's "Upload once" checks its URL where the API
and CLI do and uploads only a form that is otherwise valid; the preview answers a posted
messaging type that is not one in words; two uploads of the same URL at once keep the first.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from factories import connected_page, create_user, postgresql_only, session_cookie, sim_page
from pagecast.db import Database
from pagecast.models import MessageAttachment, Page, Role
from pagecast.services import attachments
from pagecast.web.deps import SESSION_COOKIE

IMAGE = "https://cdn.example.com/poster.jpg"


@pytest.fixture
async def page(db: Database, vault: Any, sim: httpx.AsyncClient) -> Page:
    await sim_page(sim, token="token-1001")  # the Page connected_page stores, known to Facebook
    return await connected_page(db, vault)


@pytest.fixture
async def dashboard(app: Any, db: Database) -> Any:
    user, _ = await create_user(db, Role.MANAGER, email="composer@example.com")
    cookie = await session_cookie(db, user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    ) as client:
        csrf = app.state.context.vault.csrf_token(cookie)
        yield client, csrf


def _media_form(csrf: str, page: Page, url: str, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "name": "Poster",
        "page_id": str(page.id),
        "message_kind": "media",
        "attachment_type": "image",
        "attachment_url": url,
        "upload_once": "1",
    } | extra


async def _kept(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(MessageAttachment)) or 0)


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("javascript:alert(1)", "must be an https:// URL"),
        ("http://cdn.example.com/poster.jpg", "must be an https:// URL"),
        ("https://cdn.example.com/a\x00.jpg", "contains U+0000"),
    ],
)
async def test_upload_once_refuses_a_bad_url_in_words_before_facebook(
    dashboard: Any, db: Database, page: Page, url: str, phrase: str
) -> None:
    client, csrf = dashboard
    response = await client.post("/campaigns/new", data=_media_form(csrf, page, url))
    assert response.status_code == 422, response.text
    assert "content.attachment.url:" in response.text and phrase in response.text
    assert await _kept(db) == 0


async def test_upload_once_waits_for_the_rest_of_the_form(
    dashboard: Any, db: Database, page: Page
) -> None:
    client, csrf = dashboard
    refused = await client.post(
        "/campaigns/new", data=_media_form(csrf, page, IMAGE, send_rate="0")
    )
    assert refused.status_code == 422 and "send_rate" in refused.text
    assert await _kept(db) == 0  # nothing uploaded for a form Save refuses
    saved = await client.post("/campaigns/new", data=_media_form(csrf, page, IMAGE))
    assert saved.status_code == 303, saved.text
    assert await _kept(db) == 1


async def test_the_preview_names_a_messaging_type_that_is_not_one(
    dashboard: Any, page: Page
) -> None:
    client, csrf = dashboard
    form = {
        "csrf_token": csrf,
        "page_id": str(page.id),
        "text": "Hi",
        "messaging_type": "BOGUS",
    }
    response = await client.post("/campaigns/preview", data=form)
    assert response.status_code == 200, response.text
    assert 'data-problem="messaging_type"' in response.text
    assert "messaging_type:" in response.text and "MESSAGE_TAG" in response.text


@postgresql_only  # SQLite runs one writer at a time: the two cannot overlap
async def test_two_uploads_of_the_same_url_at_once_keep_the_first(db: Database, page: Page) -> None:

    async def waiting_on_the_index() -> bool:
        async with db.transaction() as session:
            found = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        return bool(found)

    async def second() -> str:
        async with db.transaction() as session:
            return await attachments.remember(session, page.id, "image", IMAGE, "222")

    async with db.transaction() as session:
        first = await attachments.remember(session, page.id, "image", IMAGE, "111")
        other = asyncio.create_task(second())  # finds nothing yet, and waits on the index
        async with asyncio.timeout(10):
            while not await waiting_on_the_index():
                assert not other.done(), other
                await asyncio.sleep(0.01)
    # The first committed: the second's insert failed on the unique index and read it back.
    assert (first, await other) == ("111", "111")
    async with db.transaction() as session:
        rows = list(await session.scalars(select(MessageAttachment)))
    assert [(r.url, r.attachment_id) for r in rows] == [(IMAGE, "111")]
