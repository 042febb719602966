"""The data directory is 0700 and the database (with its -wal and -shm), the secret key and
the setup token are 0600 under the usual umask 022 (issue 17, item 14: they were 0644 in a
0755 directory). Real files: a real SQLite database in WAL mode, migrated and written."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pagecast.db import Database
from pagecast.settings import Settings
from pagecast.web.dashboard import setup_token


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _start(data: Path) -> dict[str, int]:
    """What a first `pagecast serve` does to the data directory; the modes while it runs."""
    settings = Settings(data_dir=data)  # SQLite in the data dir, key generated there
    settings.resolved_secret_key()
    setup_token.issue(data)
    db = Database(settings.resolved_database_url())
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS probe (x)"))
            await session.execute(text("INSERT INTO probe VALUES (1)"))
        # While a connection is open, the WAL and the shared-memory file exist.
        return {p.name: mode(p) for p in [data, *data.iterdir()]}
    finally:
        await db.close()


async def test_a_new_data_directory_and_its_files_are_private(
    tmp_path: Path, umask_022: None
) -> None:
    modes = await _start(tmp_path / "data")
    assert {"pagecast.db-wal", "pagecast.db-shm"} <= set(modes), sorted(modes)
    assert modes == {
        "data": 0o700,
        "pagecast.db": 0o600,
        "pagecast.db-wal": 0o600,
        "pagecast.db-shm": 0o600,
        "secret.key": 0o600,
        "setup-token": 0o600,
    }


async def test_files_an_earlier_version_left_readable_are_tightened(
    tmp_path: Path, umask_022: None
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    database = data / "pagecast.db"
    connection = sqlite3.connect(database)  # 0644 under umask 022, as before
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE scratch (x)")
    connection.commit()
    for name in ("secret.key", "setup-token"):
        (data / name).write_text("old")
    assert mode(data) == 0o755 and mode(database) == 0o644
    assert mode(data / "pagecast.db-wal") == 0o644 and mode(data / "secret.key") == 0o644
    try:
        modes = await _start(data)
    finally:
        connection.close()
    assert modes["data"] == 0o700
    assert {name: m for name, m in modes.items() if name != "data"} == {
        "pagecast.db": 0o600,
        "pagecast.db-wal": 0o600,
        "pagecast.db-shm": 0o600,
        "secret.key": 0o600,
        "setup-token": 0o600,
    }
