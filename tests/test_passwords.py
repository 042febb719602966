"""Password checks (issue 17, items 2 and 7): argon2 runs beside the event loop, a few at a
time, and an unknown email costs a real check like a known one."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from factories import create_user
from pagecast.db import Database
from pagecast.models import Role
from pagecast.security import PASSWORDS
from pagecast.settings import Settings
from pagecast.web.app import create_app

PASSWORD = "the right password"


@pytest.fixture
async def roomy_app(settings: Settings, db: Database) -> AsyncIterator[Any]:
    """An app whose login limit stays out of the way (these tests log in many times), with
    one argon2 check at a time (each takes several cores: this machine has few)."""
    changes = {"login_attempt_limit": 1000, "password_hash_concurrency": 1}
    app = create_app(settings.model_copy(update=changes), database=db)
    yield app
    await app.state.context.close()


def _client(app: Any, address: str = "192.0.2.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://pagecast.test",
    )


def _one_check_seconds() -> float:
    hasher = PasswordHasher()
    stored = hasher.hash(PASSWORD)
    started = time.perf_counter()
    hasher.verify(stored, PASSWORD)
    return time.perf_counter() - started


async def test_ten_concurrent_logins_leave_the_event_loop_answering(
    roomy_app: Any, db: Database
) -> None:
    for n in range(10):
        await create_user(db, Role.VIEWER, email=f"u{n}@example.com", password=PASSWORD)
    one_check = _one_check_seconds()
    PASSWORDS.peak = 0
    done = asyncio.Event()
    gaps: list[float] = []
    health: list[int] = []

    async def watch_the_loop() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def poll_healthz() -> None:
        async with _client(roomy_app, "192.0.2.200") as client:
            while not done.is_set():
                health.append((await client.get("/healthz")).status_code)
                await asyncio.sleep(0.01)  # in process, an answer need not yield to the loop

    async def log_in(n: int) -> int:
        async with _client(roomy_app, f"192.0.2.{n + 1}") as client:
            body = {"email": f"u{n}@example.com", "password": PASSWORD}
            return (await client.post("/api/auth/login", json=body)).status_code

    assert await log_in(0) == 200  # connections and first-use set-up, before measuring
    watchers = [asyncio.create_task(watch_the_loop()), asyncio.create_task(poll_healthz())]
    started = time.perf_counter()
    statuses = await asyncio.gather(*(log_in(n) for n in range(10)))
    elapsed = time.perf_counter() - started
    done.set()
    await asyncio.gather(*watchers)
    assert statuses == [200] * 10
    # Ten checks, one at a time, take ten check-lengths. On the loop they would stall it for
    # all of that; beside it, the loop only stalls for the requests' own work and for the
    # CPU that argon2's threads take from it: well under a third of it.
    assert elapsed > 5 * one_check
    stalled = sum(gap for gap in gaps if gap > 0.02)
    assert stalled < 10 * one_check / 3, (stalled, one_check, sorted(gaps)[-5:])
    assert len(health) >= 10 and set(health) == {200}
    assert PASSWORDS.peak == 1


@pytest.mark.parametrize("who", ["unknown", "inactive", "no password"])
async def test_a_login_that_cannot_succeed_still_runs_one_real_check(
    roomy_app: Any, db: Database, api: Any, who: str
) -> None:
    user, _ = await create_user(
        db,
        Role.VIEWER,
        email="known@example.com",
        password=None if who == "no password" else PASSWORD,
    )
    if who == "inactive":
        admin = await api(Role.ADMIN)
        await admin.patch(f"/api/users/{user.id}", json={"is_active": False})
    email = "nobody@example.com" if who == "unknown" else "known@example.com"
    async with _client(roomy_app) as client:
        await client.post("/api/auth/login", json={"email": email, "password": "x" * 12})
        checks = PASSWORDS.checks
        answer = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "Wrong email or password."
    assert PASSWORDS.checks == checks + 1


async def test_an_unknown_email_takes_about_as_long_as_a_wrong_password(
    roomy_app: Any, db: Database
) -> None:
    await create_user(db, Role.VIEWER, email="known@example.com", password=PASSWORD)

    async def seconds(email: str) -> float:
        async with _client(roomy_app) as client:
            started = time.perf_counter()
            answer = await client.post(
                "/api/auth/login", json={"email": email, "password": "wrong!"}
            )
            assert answer.status_code == 401
            return time.perf_counter() - started

    await seconds("nobody@example.com")  # the dummy hash is made once, on first use
    known = statistics.median([await seconds("known@example.com") for _ in range(3)])
    unknown = statistics.median([await seconds("nobody@example.com") for _ in range(3)])
    # Before: 5 ms against 410 ms. A loose ratio: a busy machine moves both.
    assert unknown > known / 2, (unknown, known)
