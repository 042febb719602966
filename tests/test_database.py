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


async def test_sqlite_reads_never_wait_for_a_writer(tmp_path: object) -> None:
    """A progress read on SQLite begins a deferred transaction: while a writer holds the
    database (a webhook batch, a result write), the read answers at once."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/reads.db", sqlite_busy_timeout_ms=5_000)
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        held = asyncio.Event()
        release = asyncio.Event()

        async def writer() -> None:
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                held.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await held.wait()
        try:
            async with asyncio.timeout(1.0):  # the writer holds on for as long as we like
                async with database.reading() as session:
                    assert await session.scalar(text("SELECT count(*) FROM t")) == 0
        finally:
            release.set()
            await task
    finally:
        await database.close()


async def test_sqlite_writers_of_one_process_queue_in_order_without_locked_errors(
    tmp_path: object,
) -> None:
    """Forty concurrent write transactions in one process, each holding the database for a
    moment: all commit, one after the other, in the order they asked (SQLite's own busy
    handler wakes waiting writers after sleeps of up to 100 ms, in no particular order)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/writers.db", sqlite_busy_timeout_ms=5_000)
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        inside = 0
        most = 0

        async def write(n: int) -> None:
            nonlocal inside, most
            async with database.transaction() as session:
                inside += 1
                most = max(most, inside)
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0.02)
                inside -= 1

        await asyncio.gather(*(write(n) for n in range(40)))
        async with database.reading() as session:
            order = list(await session.scalars(text("SELECT n FROM t ORDER BY rowid")))
        assert order == list(range(40))
        assert most == 1
    finally:
        await database.close()


async def test_a_sqlite_writer_waits_no_longer_than_the_busy_timeout(tmp_path: object) -> None:
    """A writer that waits for this process's other writers longer than the busy timeout
    gets the error SQLite gives (a nested transaction in one task would otherwise hang)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/busy.db", sqlite_busy_timeout_ms=200)
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
            with pytest.raises(DBAPIError, match="database is locked"):
                async with database.transaction() as inner:
                    await inner.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await database.close()


def test_sqlite_writers_queue_in_each_event_loop_that_uses_the_database(tmp_path: object) -> None:
    """The CLI runs one event loop after another on one `Database`: its writers' queue
    belongs to the loop of the moment (a lock bound to an earlier loop cannot be waited on)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/loops.db", sqlite_busy_timeout_ms=5_000)

    async def contended(first: int) -> None:
        async def write(n: int) -> None:
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0.01)

        if first == 0:
            async with database.transaction() as session:
                await session.execute(text("CREATE TABLE t (n INTEGER)"))
        await asyncio.gather(*(write(first + n) for n in range(5)))
        await database.close()

    asyncio.run(contended(0))
    asyncio.run(contended(5))

    async def count() -> int:
        async with database.reading() as session:
            total = int(await session.scalar(text("SELECT count(*) FROM t")))
        await database.close()
        return total

    assert asyncio.run(count()) == 10
