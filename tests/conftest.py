"""Shared fixtures: real SQLite and PostgreSQL, the app over ASGI, the Graph simulator.

Every test that takes `db` (directly or through `client`/`api`) runs on both backends. The
PostgreSQL variants are skipped, with the reason, when no server answers; under `CI=true`
they fail instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from factories import SECRET_KEY, clean, create_user
from pagecast.db import Database, downgrade, upgrade
from pagecast.models import Role
from pagecast.security import Vault
from pagecast.settings import Settings, normalise_database_url
from pagecast.web.app import create_app

PG_URL = os.environ.get(
    "PAGECAST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pagecast_test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Every process a test starts (serve, worker, the CLI, the simulator) inherits this
# environment: with PYTHONDONTWRITEBYTECODE set (as some machines do), each would compile every
# module it imports again, seconds a process; without it, the first caches the bytecode.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One event loop for the whole run: engines and pools are bound to the loop that made them
    # (pytest-asyncio issue #934: the fixture default alone does not move tests onto it).
    for item in items:
        if isinstance(item, pytest.Function) and asyncio.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


async def _ensure_pg_database(url: str) -> None:
    """Create the test database on the server if it does not exist yet."""
    import asyncpg

    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
        timeout=5,
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


def _postgres_or_skip(url: str) -> str:
    try:
        asyncio.run(_ensure_pg_database(url))
    except Exception as exc:
        reason = f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)} is not reachable ({exc})"
        if IN_CI:
            pytest.fail(
                f"{reason}; CI=true requires it. Start it or set PAGECAST_TEST_DATABASE_URL."
            )
        pytest.skip(f"{reason}: PostgreSQL variants skipped")
    return normalise_database_url(url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'pagecast.db'}"
    return _postgres_or_skip(PG_URL)


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database, once per backend: down to base, then up to head."""
    db = Database(database_url)
    await downgrade(db, "base")
    await upgrade(db, "head")
    yield db
    await db.close()


@pytest.fixture
async def db(database: Database) -> Database:
    """The backend's database, emptied before the test."""
    await clean(database)
    return database


REDIS_TEST_URL = os.environ.get("PAGECAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


async def _ping(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis (a dedicated db index); without one, the embedded Redis (not in CI)."""
    try:
        asyncio.run(_ping(REDIS_TEST_URL))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_TEST_URL} is not reachable ({exc}); CI=true requires it.")
        from pagecast.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
        url = asyncio.run(embedded.start())
        yield url
        asyncio.run(embedded.stop())
        return
    yield REDIS_TEST_URL


@pytest.fixture
async def redis_url(redis_server_url: str) -> str:
    """A Redis URL whose database was flushed for this test."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    return redis_server_url


@pytest.fixture(scope="session")
def simulator() -> Iterator[Any]:
    """The Graph API simulator on a loopback port, for the whole run (reset per test by users)."""
    from pagecast.simulator.server import SimulatorServer

    with SimulatorServer(seed=1) as server:
        yield server


@pytest.fixture
async def sim(simulator: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the simulator's control plane, on a freshly reset simulator."""
    async with httpx.AsyncClient(base_url=simulator.url, timeout=10) as client:
        response = await client.post("/__sim/reset")
        assert response.status_code == 200, response.text
        yield client


@pytest.fixture
def settings(database_url: str, tmp_path: Path, simulator: Any, redis_url: str) -> Settings:
    # `redis_url`: flushed for the test (the login limit counts attempts there).
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        secret_key=SECRET_KEY,
        graph_api_url=simulator.url,
        graph_read_timeout=5.0,
    )


@pytest.fixture
def vault() -> Vault:
    return Vault(SECRET_KEY.encode())


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[Any]:
    application = create_app(settings, database=db)
    yield application
    await application.state.context.close()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of the app (in-process ASGI)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pagecast.test"
    ) as c:
        yield c


ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def api(app: Any, db: Database) -> AsyncIterator[ApiFactory]:
    """`await api(Role.MANAGER)`: a client authenticated with a new user's API token."""
    opened: list[httpx.AsyncClient] = []

    async def make(role: Role = Role.ADMIN, **kwargs: Any) -> httpx.AsyncClient:
        _, raw = await create_user(
            db, role, email=kwargs.pop("email", f"{role.value}{len(opened)}@example.com"), **kwargs
        )
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pagecast.test",
            headers={"Authorization": f"Bearer {raw}"},
        )
        opened.append(c)
        return c

    yield make
    for c in opened:
        await c.aclose()
