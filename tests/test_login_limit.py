"""The login limit (issue 17, item 1): counted before the password check, so concurrent
guesses cannot outrun it; shared by every web process, in Redis or in the database."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from factories import app_client, create_user
from pagecast.db import Database
from pagecast.models import Role, utcnow
from pagecast.security import PASSWORDS
from pagecast.settings import Settings
from pagecast.web.app import create_app
from pagecast.web.login_limit import DatabaseLoginLimit, RedisLoginLimit, limit_of

EMAIL, RIGHT = "target@example.com", "the right password"


@pytest.fixture(params=["redis", "database"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def apps(
    store: str, settings: Settings, db: Database, database_url: str
) -> AsyncIterator[list[Any]]:
    """Two apps, as two web processes: their own database connections, one Redis (or none)."""
    if store == "database":
        settings = settings.model_copy(update={"redis_url": None})
    second_db = Database(database_url)
    made = [create_app(settings, database=db), create_app(settings, database=second_db)]
    yield made
    for app in made:
        await app.state.context.close()
    await second_db.close()


async def _login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": EMAIL, "password": password})


async def test_forty_concurrent_guesses_get_five_checks_and_the_right_one_is_refused(
    apps: list[Any], db: Database, store: str
) -> None:
    await create_user(db, Role.VIEWER, email=EMAIL, password=RIGHT)
    assert isinstance(
        limit_of(apps[0]), RedisLoginLimit if store == "redis" else DatabaseLoginLimit
    )
    checks = PASSWORDS.checks
    async with app_client(apps[0]) as client:
        answers = await asyncio.gather(
            *(_login(client, RIGHT if n == 24 else f"guess {n}") for n in range(40))
        )
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] + statuses[401] <= 5, statuses
    assert statuses[429] >= 35, statuses
    assert PASSWORDS.checks - checks <= 5
    right = answers[24]
    if right.status_code != 429:  # only if it was among the first five to be counted
        assert right.status_code == 200 and statuses[401] <= 4
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["retry-after"]) <= 300


async def test_two_web_processes_share_the_count(apps: list[Any], db: Database, store: str) -> None:
    await create_user(db, Role.VIEWER, email=EMAIL, password=RIGHT)
    first, second = app_client(apps[0]), app_client(apps[1])
    async with first, second:
        for client in (first, second, first, second, first):
            assert (await _login(client, "wrong")).status_code == 401
        refused = await _login(second, RIGHT)
    assert refused.status_code == 429, f"{store}: the second process counted on its own"
    assert int(refused.headers["retry-after"]) > 0


async def test_a_right_password_gives_its_attempt_back(apps: list[Any], db: Database) -> None:
    await create_user(db, Role.VIEWER, email=EMAIL, password=RIGHT)
    async with app_client(apps[0]) as client:
        for _ in range(4):
            assert (await _login(client, "wrong")).status_code == 401
        for _ in range(3):  # each is counted, then given back
            assert (await _login(client, RIGHT)).status_code == 200
        assert (await _login(client, "wrong")).status_code == 401
        assert (await _login(client, RIGHT)).status_code == 429


async def test_the_dashboard_form_answers_429_with_retry_after(
    apps: list[Any], db: Database
) -> None:
    await create_user(db, Role.VIEWER, email=EMAIL, password=RIGHT)
    form = {"email": EMAIL, "password": "wrong", "next": "/campaigns"}
    async with app_client(apps[0]) as client:
        for _ in range(5):
            assert (await client.post("/login", data=form)).status_code == 401
        refused = await client.post("/login", data=form | {"password": RIGHT})
    assert refused.status_code == 429
    assert "Too many login attempts" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 300


async def test_database_counts_start_again_when_the_window_ends(db: Database) -> None:
    now = [utcnow()]
    limit = DatabaseLoginLimit(db, limit=2, window=60, clock=lambda: now[0])
    keys = ("ip:192.0.2.1", "email:a@example.com")
    assert await limit.reserve(keys) == 0
    assert await limit.reserve(("ip:192.0.2.1", "email:b@example.com")) == 0
    assert await limit.reserve(keys) == 60  # the address used both
    assert await limit.reserve(("ip:192.0.2.2", "email:a@example.com")) == 0  # refused: uncounted
    now[0] += timedelta(seconds=45)
    assert await limit.reserve(keys) == 15
    now[0] += timedelta(seconds=15)
    assert await limit.reserve(keys) == 0
    await limit.refund(keys)
    assert [await limit.reserve(keys) for _ in range(3)] == [0, 0, 60]


async def test_an_overlong_password_on_the_form_is_refused_before_any_check(
    client: httpx.AsyncClient,
) -> None:
    checks = PASSWORDS.checks
    form = {"email": EMAIL, "password": "x" * 1_000_001, "next": "/campaigns"}
    answer = await client.post("/login", data=form)
    assert answer.status_code == 422 and "1,000 at most" in answer.text
    assert PASSWORDS.checks == checks
