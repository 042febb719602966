"""PostgreSQL restarted mid-campaign: the worker backs off, resumes, and loses nothing.

Runs its own PostgreSQL cluster (initdb in a temporary directory, a free loopback port), so
restarting it disturbs nobody else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from factories import app_client, create_user, postgresql_only
from pagecast.db import Database, upgrade
from pagecast.models import Role
from pagecast.settings import Settings
from pagecast.web.app import create_app
from test_sending import RunningWorker, add_people, new_campaign, outbox, setup_page, wait_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _bin(name: str) -> str | None:
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{part}'" for part in command)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnPostgres:
    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("initdb/pg_ctl not installed")
        self.pg_ctl = pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="pagecast-pg-"))
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres([initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        subprocess.run(
            _as_postgres(
                [
                    self.pg_ctl,
                    "-D",
                    str(self.dir / "data"),
                    "-o",
                    options,
                    "-w",
                    "-l",
                    str(self.dir / "log"),
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        server = OwnPostgres()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        if IN_CI:
            pytest.fail(f"cannot start a private PostgreSQL for this test: {exc}")
        pytest.skip(f"cannot start a private PostgreSQL (initdb/pg_ctl): {exc}")
    yield server
    server.destroy()


@postgresql_only
async def test_postgres_restart_mid_campaign_loses_nothing(
    own_postgres: OwnPostgres,
    settings: Settings,
    redis_url: str,
    sim: httpx.AsyncClient,
    database_url: str,
) -> None:
    db = Database(own_postgres.url)
    await upgrade(db)
    configured = settings.model_copy(
        update={
            "database_url": own_postgres.url,
            "redis_url": redis_url,
            "retry_base_seconds": 0.05,
            "chunk_size": 20,
        }
    )
    app = create_app(configured, database=db)
    _, admin_token = await create_user(db, Role.ADMIN, email="a@example.com")
    _, manager_token = await create_user(db, Role.MANAGER, email="m@example.com")

    async with app_client(app, admin_token) as admin, app_client(app, manager_token) as manager:
        page_id = await setup_page(admin, sim, send_rate=40)
        psids = await add_people(sim, manager, page_id, 160)
        campaign_id = await new_campaign(manager, page_id)
        assert (await manager.post(f"/api/campaigns/{campaign_id}/start")).status_code == 202
        async with RunningWorker(configured, db):
            await asyncio.sleep(1.5)  # sending at 40/s: about a third is out
            await asyncio.to_thread(own_postgres.stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(own_postgres.start)
            done: dict[str, Any] = await wait_for(manager, campaign_id, {"completed"}, timeout=90)
    sent = await outbox(sim)
    assert sorted(m["psid"] for m in sent) == sorted(psids)  # each exactly once
    assert done["counts"]["sent"] == 160 and done["counts"]["sending"] == 0
    await app.state.context.close()
    await db.close()
