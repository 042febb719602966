"""Webhook setup help: the callback URL, the verify token (admins only), the fields to
subscribe, the app secret, and whether events arrived recently."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from factories import SECRET_KEY, app_client, connected_page, create_user
from pagecast.db import Database
from pagecast.models import Role, WebhookEvent, utcnow
from pagecast.security import Vault
from pagecast.services import webhooks
from pagecast.settings import Settings
from pagecast.web.app import create_app
from test_webhooks import APP_SECRET, PAGE, VERIFY_TOKEN, envelope, inbound, receipt

FIELDS = [
    "messages",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "messaging_policy_enforcement",  # Pagecast acts on it (docs/webhooks.md)
]
PAGECAST = str(Path(sys.executable).parent / "pagecast")


@pytest.fixture
def setup_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "app_secret": SecretStr(APP_SECRET),
            "webhook_verify_token": SecretStr(VERIFY_TOKEN),
            "public_url": "https://pagecast.example.com/",
        }
    )


@pytest.fixture
async def configured(setup_settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(setup_settings, database=db)
    yield application
    await application.state.context.close()


async def as_role(app: Any, db: Database, role: Role) -> httpx.AsyncClient:
    _, raw = await create_user(db, role, email=f"{role.value}-setup@example.com")
    return app_client(app, raw)


async def stored_events(db: Database) -> None:
    """Two messages and a read receipt now, and a message two days ago."""
    async with db.transaction() as session:
        await webhooks.store(
            session, envelope(inbound("801", "hi", "m_s1"), inbound("802", "yo", "m_s2"))
        )
        await webhooks.store(session, envelope(receipt("read", "801", 1_700_000_000_000)))
        old = await webhooks.store(session, envelope(inbound("803", "old", "m_s3")))
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == old[0].id)
            .values(received_at=utcnow() - timedelta(days=2))
        )


async def test_admins_get_the_verify_token_and_everything_to_enter_on_facebook(
    configured: Any, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    await stored_events(db)
    async with await as_role(configured, db, Role.ADMIN) as admin:
        response = await admin.get(f"/api/pages/{page.id}/webhook")
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["callback_url"] == "https://pagecast.example.com/webhooks/messenger"
    assert got["callback_url_from"] == "PAGECAST_PUBLIC_URL"
    assert (got["verify_token_set"], got["verify_token"]) == (True, VERIFY_TOKEN)
    assert (got["app_secret_set"], got["app_secret_from"]) == (True, "PAGECAST_APP_SECRET")
    assert got["fields"] == FIELDS
    assert got["events"]["last_24h"] == {"message": 2, "read": 1}
    assert got["events"]["receiving"] is True
    assert got["events"]["last_received_at"].endswith("Z")
    assert got["warnings"] == []
    assert APP_SECRET not in response.text


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MANAGER])
async def test_others_learn_only_whether_the_verify_token_is_set(
    configured: Any, db: Database, vault: Vault, role: Role
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    async with await as_role(configured, db, role) as client:
        response = await client.get(f"/api/pages/{page.id}/webhook")
    assert response.status_code == 200
    got = response.json()
    assert (got["verify_token_set"], got["verify_token"]) == (True, None)
    assert VERIFY_TOKEN not in response.text and APP_SECRET not in response.text
    assert got["callback_url"] == "https://pagecast.example.com/webhooks/messenger"


async def test_without_settings_or_events_it_says_what_is_missing(
    app: Any, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    async with await as_role(app, db, Role.ADMIN) as admin:
        got = (await admin.get(f"/api/pages/{page.id}/webhook")).json()
        assert (await admin.get("/api/pages/987654/webhook")).status_code == 404
    assert got["callback_url"] == "http://pagecast.test/webhooks/messenger"
    assert got["callback_url_from"] == "request"
    assert (got["verify_token_set"], got["verify_token"], got["app_secret_set"]) == (
        False,
        None,
        False,
    )
    assert got["events"] == {"last_received_at": None, "last_24h": {}, "receiving": False}
    warnings = " ".join(got["warnings"])
    for phrase in (
        "PAGECAST_PUBLIC_URL is not set",
        "only calls https",
        "PAGECAST_WEBHOOK_VERIFY_TOKEN is not set",
        "PAGECAST_APP_SECRET",
        "has arrived yet",
    ):
        assert phrase in warnings, phrase


async def test_a_page_with_its_own_app_secret_says_so(app: Any, db: Database, vault: Vault) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    async with db.transaction() as session:
        from pagecast.models import Page

        await session.execute(
            update(Page).where(Page.id == page.id).values(app_secret_encrypted=vault.encrypt("own"))
        )
    async with await as_role(app, db, Role.VIEWER) as viewer:
        got = (await viewer.get(f"/api/pages/{page.id}/webhook")).json()
    assert (got["app_secret_set"], got["app_secret_from"]) == (True, "page")


async def test_cli_webhook_prints_the_setup(
    db: Database, vault: Vault, database_url: str, tmp_path: Path
) -> None:
    page = await connected_page(db, vault, fb_page_id=PAGE)
    await stored_events(db)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGECAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    } | {
        "PAGECAST_DATA_DIR": str(tmp_path / "data"),
        "PAGECAST_DATABASE_URL": database_url,
        "PAGECAST_SECRET_KEY": SECRET_KEY,
        "PAGECAST_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
        "PAGECAST_PUBLIC_URL": "https://hooks.example.org",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [PAGECAST, "pages", "webhook", str(page.id)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "https://hooks.example.org/webhooks/messenger" in out
    assert VERIFY_TOKEN in out and ", ".join(FIELDS) in out
    assert "message 2, read 1" in out and "App secret:    not set" in out
    assert "PAGECAST_APP_SECRET" in result.stderr  # the warning says what to do
