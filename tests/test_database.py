"""The database object itself: its PostgreSQL pool and its read sessions."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from factories import postgresql_only
from pagecast import db as db_module
from pagecast.db import Database


async def test_a_read_session_commits_each_statement_on_postgresql(db: Database) -> None:
    """`reading()` runs no BEGIN on PostgreSQL: each statement is its own transaction, so
    `now()` (the transaction's start) moves between two statements; in `transaction()` it
    does not. On SQLite it is a transaction."""

    async def two_nows(session: object) -> tuple[object, object]:
        first = await session.scalar(text("SELECT now()"))  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        second = await session.scalar(text("SELECT now()"))  # type: ignore[attr-defined]
        return first, second

    if db.dialect == "sqlite":
        async with db.reading() as session:
            assert session.in_transaction()
            assert await session.scalar(text("SELECT 1")) == 1
        return
    async with db.transaction() as session:
        first, second = await two_nows(session)
        assert first == second
    async with db.reading() as session:
        first, second = await two_nows(session)
        assert first != second


@postgresql_only
async def test_a_pooled_connection_is_pinged_only_after_it_sat_idle(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection the server dropped while it sat in the pool is replaced before use once it
    has been idle for `PING_AFTER_IDLE_S`; one in steady use is not pinged, so a drop is then
    seen by the transaction that uses it (and the pool starts afresh)."""

    async def backend_pid(database: Database) -> int:
        async with database.transaction() as session:
            return int(await session.scalar(text("SELECT pg_backend_pid()")))

    async def terminate(pid: int) -> None:
        async with admin.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(0.2)  # the backend is gone

    admin = Database(database_url)
    database = Database(database_url)
    try:
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
        first = await backend_pid(database)
        await terminate(first)
        second = await backend_pid(database)  # pinged, found dead, replaced: no error
        assert second != first

        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 3600.0)
        assert await backend_pid(database) == second  # the same connection, in use again
        await terminate(second)
        with pytest.raises(DBAPIError):
            await backend_pid(database)  # not pinged: the transaction meets the drop
        assert await backend_pid(database) not in (first, second)  # then a new connection
    finally:
        await database.close()
        await admin.close()
