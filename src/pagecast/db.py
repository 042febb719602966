"""The database: one `Database` object owns the async engine and hands out sessions.

SQLite (the default) gets WAL, a busy timeout, foreign keys and `BEGIN IMMEDIATE`
transactions, so two writers queue up instead of failing with "database is locked". In one
process (`pagecast serve` runs the web app and a worker on one event loop) the writers
queue on an asyncio lock first, in arrival order, and only one at a time asks SQLite: SQLite's
own busy handler polls with growing sleeps (up to 100 ms), which under hundreds of webhook
events a second gave seconds-long waits and, past the busy timeout, "database is locked".
`reading()` begins a deferred transaction, which in WAL mode neither waits for the writer
nor holds it up (progress reads answer while a large send and its receipts are written).
PostgreSQL is used through asyncpg, from a pool that checks a connection before use only
when it sat idle (`PING_AFTER_IDLE_S`). Nothing connects until the first session is opened.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from asyncpg import exceptions as pg_errors
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pagecast.errors import ConfigError
from pagecast.private_files import prepare_sqlite

__all__ = [
    "PING_AFTER_IDLE_S",
    "Database",
    "downgrade",
    "is_conflict",
    "is_disconnect",
    "is_sqlite",
    "rowcount",
    "until_written",
    "upgrade",
]

logger = logging.getLogger(__name__)

# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out
# (a round trip), and replaced if the server has gone away meanwhile (a restart, an idle
# timeout). One in steady use is not: pinging every checkout (SQLAlchemy's pool_pre_ping)
# cost a round trip per transaction, 6-8 % of the web process's CPU at 100 progress reads a
# second. A server lost mid-use fails that transaction once; SQLAlchemy then discards the
# pool's connections, and callers retry as they do for any database error.
PING_AFTER_IDLE_S = 1.0


# An execution option of the SQLite engine that `reading()` uses: its transactions are
# deferred (BEGIN), not BEGIN IMMEDIATE.
_READ_ONLY = "pagecast_read_only"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    """Owns the engine (created on first use) and the session factory."""

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self._busy_timeout_ms = sqlite_busy_timeout_ms
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._reads: async_sessionmaker[AsyncSession] | None = None
        # SQLite: this process's writers, one at a time (created on first use, in the loop).
        self._writer: asyncio.Lock | None = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = _create_engine(self.url, self._busy_timeout_ms)
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
            # PostgreSQL: each statement commits on its own; SQLite: a deferred transaction.
            options = (
                {_READ_ONLY: True} if is_sqlite(self.url) else {"isolation_level": "AUTOCOMMIT"}
            )
            self._reads = async_sessionmaker(
                self._engine.execution_options(**options), expire_on_commit=False
            )
        return self._engine

    @property
    def dialect(self) -> str:
        return "sqlite" if is_sqlite(self.url) else "postgresql"

    def session(self) -> AsyncSession:
        """A new session; the caller owns its transaction (`async with db.session() as s, s.begin()`)."""
        self.engine  # noqa: B018 - creates the engine and the factory on first use
        assert self._sessions is not None
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        if not is_sqlite(self.url):
            async with self.session() as session, session.begin():
                yield session
            return
        async with self._writing(), self.session() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Wait for this process's other SQLite writers (at most the busy timeout, then the
        error SQLite itself would give)."""
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer_loop is not loop:
            # One per event loop: a lock waits on futures of the loop it was first used in.
            self._writer, self._writer_loop = asyncio.Lock(), loop
        try:
            async with asyncio.timeout(self._busy_timeout_ms / 1000):
                await self._writer.acquire()
        except TimeoutError:
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            ) from None
        try:
            yield
        finally:
            self._writer.release()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for a read whose statements need no common snapshot, such as one query:
        on PostgreSQL each statement commits on its own (no BEGIN and COMMIT round trips:
        0.9 -> 0.5 ms of CPU for a one-row read); on SQLite, a deferred transaction that
        never waits for a writer. Never write in it."""
        self.engine  # noqa: B018 - creates the engine and the factories on first use
        assert self._reads is not None
        async with self._reads() as session:
            if is_sqlite(self.url):
                async with session.begin():
                    yield session
            else:
                yield session

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None
            self._reads = None


# The server or the connection went away: asyncpg's connection errors (SQLSTATE class 08)
# and the server shutting down or starting up (57P01-57P03), and the socket's own errors.
_DISCONNECTS: tuple[type[BaseException], ...] = (
    OSError,
    pg_errors.PostgresConnectionError,
    pg_errors.AdminShutdownError,
    pg_errors.CrashShutdownError,
    pg_errors.CannotConnectNowError,
)
_DISCONNECT_STATES = ("57P01", "57P02", "57P03")
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back.
_CONFLICTS: tuple[type[BaseException], ...] = (
    pg_errors.DeadlockDetectedError,
    pg_errors.SerializationError,
)
_CONFLICT_STATES = ("40P01", "40001")


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc`, the driver's error it wraps, and the errors that caused that, in order."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. `session.execute` is typed as answering a
    `Result`; for those statements it is a `CursorResult`, which has the count."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def is_conflict(exc: BaseException) -> bool:
    """A deadlock victim or a serialisation failure (by the driver's error type or SQLSTATE)."""
    return any(isinstance(e, _CONFLICTS) or _sqlstate(e) in _CONFLICT_STATES for e in _causes(exc))


def is_disconnect(exc: BaseException) -> bool:
    """The database connection was lost or refused, or the server is shutting down or
    starting up: decided by the error's type (and SQLSTATE class), never its message."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return any(
        isinstance(e, _DISCONNECTS)
        or (
            (code := _sqlstate(e)) is not None
            and (code.startswith("08") or code in _DISCONNECT_STATES)
        )
        for e in _causes(exc)
    )


async def until_written(
    write: Callable[[], Awaitable[None]],
    *,
    patience: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run a write, again after a conflict, and with backoff while the database is
    unreachable (for at most `patience` seconds of waiting)."""
    delay, waited = 0.5, 0.0
    while True:
        try:
            await write()
            return
        except (DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and is_conflict(exc):
                # A deadlock victim or a serialisation failure: rolled back, run it again.
                logger.info("result write conflicted (%s); writing it again", exc.orig)
                await sleep(random.random() * 0.1)
                continue
            if isinstance(exc, DBAPIError) and not is_disconnect(exc):
                raise
            if waited > patience:
                raise
            logger.warning(
                "database unavailable (%s); retrying the result write in %.1f s",
                type(exc).__name__,
                delay,
            )
            await sleep(delay)
            waited += delay
            delay = min(delay * 2, 8.0)


def _create_engine(url: str, busy_timeout_ms: int) -> AsyncEngine:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"PAGECAST_DATABASE_URL is not a database URL ({exc}). Use "
            "postgresql://user:password@host:5432/db or sqlite:///path/to/pagecast.db."
        ) from exc
    if not is_sqlite(url):
        # LIFO: the connections in use stay the same few, the others idle (and get pinged).
        engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)
        _ping_when_idle(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        prepare_sqlite(Path(parsed.database))  # 0600, and so are its -wal and -shm
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start (the
        # pysqlite driver's own implicit BEGIN is DEFERRED, which fails rather than waits
        # when a reader later needs to write). See SQLAlchemy's aiosqlite dialect docs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["pagecast_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("pagecast_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # new, or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one if need be).
            raise DisconnectionError("the pooled connection failed its ping") from exc


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    from alembic import command

    async with db.engine.connect() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))
        await conn.commit()


async def downgrade(db: Database, revision: str = "base") -> None:
    from alembic import command

    async with db.engine.connect() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), revision))
        await conn.commit()
