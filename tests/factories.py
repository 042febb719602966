"""Test data builders: plain async functions with defaults and keyword overrides."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from pagecast.db import Database
from pagecast.models import Base, Page, Role, User
from pagecast.permissions import Actor
from pagecast.schemas import PageCreate, UserCreate
from pagecast.security import Vault
from pagecast.services import pages, sessions, tokens
from pagecast.services import users as users_service

ADMIN_ACTOR = Actor.system()


async def create_user(
    db: Database,
    role: Role,
    *,
    email: str | None = None,
    can_send: bool = True,
    can_approve: bool = True,
    password: str | None = None,
) -> tuple[User, str]:
    """A user of `role` and a fresh API token for it."""
    async with db.transaction() as session:
        user = await users_service.create(
            session,
            ADMIN_ACTOR,
            UserCreate(
                email=email or f"{role.value}@example.com",
                role=role,
                can_send=can_send,
                can_approve=can_approve,
                password=password,
            ),
        )
        _, raw = await tokens.create(session, ADMIN_ACTOR, user, "test")
    return user, raw


async def session_cookie(db: Database, user: User, *, days: int = 1) -> str:
    """The cookie of a new login session of `user` (as a browser that logged in holds)."""
    async with db.transaction() as session:
        row = await session.get(User, user.id)
        assert row is not None
        _, cookie = await sessions.start(session, row, days=days)
    return cookie


def app_client(app: Any, token: str | None = None) -> httpx.AsyncClient:
    """A client of the app in-process (ASGI), with an API token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pagecast.test", headers=headers
    )


# For tests where several processes write at once: PostgreSQL only, no SQLite variant.
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def engine_settings(settings: Any, redis_url: str, **overrides: Any) -> Any:
    """`settings` with Redis and the short retry delays that engine tests need."""
    fast = {
        "redis_url": redis_url,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.2,
        "chunk_size": 25,
        # An unknown delivery is reconciled a second after its attempt (tests that need it
        # also make the sweep fast).
        "unknown_grace": 1.0,
    }
    return settings.model_copy(update=fast | overrides)


SIM_TOKEN = "EAAGpagetoken1001"
SECRET_KEY = "test-secret-key-not-for-production"


async def sim_page(
    sim: httpx.AsyncClient,
    *,
    page_id: str = "1001",
    name: str = "Acme Store",
    token: str = SIM_TOKEN,
    app_secret: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"page_id": page_id, "name": name, "access_token": token}
    if app_secret:
        body["app_secret"] = app_secret
    response = await sim.post("/__sim/pages", json=body)
    assert response.status_code in (200, 201), response.text
    return body


async def connected_page(
    db: Database,
    vault: Vault,
    *,
    fb_page_id: str = "1001",
    name: str = "Acme Store",
    send_rate: float = 40.0,
) -> Page:
    """A Page row as if connected (no Graph call), for tests that don't exercise connecting."""

    async def owner(_token: str, _secret: str | None) -> pages.Owner:
        return pages.Owner(id=fb_page_id, name=name)

    async with db.transaction() as session:
        return await pages.connect(
            session,
            ADMIN_ACTOR,
            vault,
            PageCreate(access_token=f"token-{fb_page_id}"),
            verify=owner,
            default_send_rate=send_rate,
        )


async def clean(db: Database) -> None:
    """Empty every table (ids start again at 1 on PostgreSQL)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            await session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await session.execute(text(f"DELETE FROM {table}"))


async def table_counts(db: Database) -> dict[str, int]:
    """Rows per table: tests of bad input assert this is unchanged."""
    async with db.transaction() as session:
        return {
            t.name: int(
                (await session.execute(text(f"SELECT COUNT(*) FROM {t.name}"))).scalar_one()
            )
            for t in Base.metadata.sorted_tables
        }


async def import_contacts(
    client: httpx.AsyncClient, page_id: int, data: bytes, *, timeout: float = 120
) -> dict[str, Any]:
    """POST a CSV import (202, a background job) and wait until it has ended; its report."""
    import asyncio
    import time

    started = await client.post(
        f"/api/pages/{page_id}/contacts/import", content=data, headers={"content-type": "text/csv"}
    )
    assert started.status_code == 202, started.text
    job = started.json()
    deadline = time.monotonic() + timeout
    while job["running"]:
        assert time.monotonic() < deadline, f"import {job['id']} still running: {job}"
        await asyncio.sleep(0.02)
        answer = await client.get(f"/api/contacts/imports/{job['id']}")
        assert answer.status_code == 200, answer.text
        job = answer.json()
    return dict(job)
