"""The login limit shared by the dashboard's login form and `POST /api/auth/login`.

Attempts are counted per client address and per email, `limit` in a fixed window of
`window` seconds that starts at a key's first attempt. An attempt is counted *before* the
password is checked (`reserve`, one atomic step), and given back when it succeeds
(`refund`): forty concurrent guesses get five checks, not forty. The count lives where every
web process sees it: Redis when Redis is configured, else the database (`login_attempts`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from fastapi import FastAPI, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.context import AppContext
from pagecast.db import Database
from pagecast.errors import ServiceUnavailable
from pagecast.models import LoginAttempt, utcnow

__all__ = ["DatabaseLoginLimit", "LoginLimit", "RedisLoginLimit", "keys_for", "limit_of"]

# KEYS: the counters. ARGV: limit, window in ms. Returns 0 (counted) or the ms to wait.
# A refused attempt counts nowhere: it cannot stretch a window or lock out one key for another.
_RESERVE = """
local wait = 0
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[1]) then
    wait = math.max(wait, redis.call('PTTL', key), 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 0
"""
_REFUND = """
for _, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n > 1 then redis.call('DECR', key) elseif n == 1 then redis.call('DEL', key) end
end
return 0
"""


class LoginLimit:
    """Counts login attempts; `reserve` before the password check, `refund` after success."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit, self.window = limit, window

    async def reserve(self, keys: Sequence[str]) -> int:
        """Count an attempt for every key and return 0, or, when a key has used up its limit,
        count nothing and return the seconds until it may try again."""
        raise NotImplementedError

    async def refund(self, keys: Sequence[str]) -> None:
        """Give back the attempt `reserve` counted (the login succeeded)."""
        raise NotImplementedError


class RedisLoginLimit(LoginLimit):
    def __init__(self, redis: Redis, limit: int, window: int) -> None:
        super().__init__(limit, window)
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)

    async def reserve(self, keys: Sequence[str]) -> int:
        try:
            wait_ms = await self._reserve(
                keys=[_redis_key(k) for k in keys], args=[self.limit, self.window * 1000]
            )
        except RedisError as exc:
            raise _unavailable() from exc
        return math.ceil(int(wait_ms) / 1000)

    async def refund(self, keys: Sequence[str]) -> None:
        try:
            await self._refund(keys=[_redis_key(k) for k in keys])
        except RedisError as exc:
            raise _unavailable() from exc


class _Refused(Exception):
    def __init__(self, wait: int) -> None:
        self.wait = wait


class DatabaseLoginLimit(LoginLimit):
    """The counters in `login_attempts`: one upsert per key in one transaction, rolled back
    when a key is over its limit. On PostgreSQL the upsert locks the key's row until the
    transaction ends, so concurrent attempts of several processes count one after another;
    on SQLite writers take turns anyway."""

    def __init__(
        self,
        db: Database,
        limit: int,
        window: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(limit, window)
        self._db, self._clock = db, clock
        self._pruned_at = -math.inf

    async def reserve(self, keys: Sequence[str]) -> int:
        now = self._clock()
        try:
            async with self._db.transaction() as session:
                waits = [
                    await self._count(session, key, now) for key in sorted(map(_stored_key, keys))
                ]
                if any(waits):
                    raise _Refused(max(waits))  # rolls the counts back
        except _Refused as refused:
            return refused.wait
        finally:
            await self._prune(now)
        return 0

    async def refund(self, keys: Sequence[str]) -> None:
        now = self._clock()
        async with self._db.transaction() as session:
            for key in sorted(map(_stored_key, keys)):
                row = await session.get(LoginAttempt, key, with_for_update=True)
                if row is not None and row.window_ends_at > now and row.count > 0:
                    row.count -= 1

    async def _count(self, session: AsyncSession, key: str, now: datetime) -> int:
        column = LoginAttempt.__table__.c
        at = literal(now, column.window_ends_at.type)
        ends = literal(now + timedelta(seconds=self.window), column.window_ends_at.type)
        expired = column.window_ends_at <= at
        insert = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(LoginAttempt)
            .values(key=key, count=1, window_ends_at=ends)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "count": case((expired, 1), else_=column.count + 1),
                    "window_ends_at": case((expired, ends), else_=column.window_ends_at),
                },
            )
            .returning(column.count, column.window_ends_at)
        )
        count: int
        window_ends_at: datetime
        count, window_ends_at = (await session.execute(statement)).one()
        if count <= self.limit:
            return 0
        # A concurrent attempt may have opened the window after `now` was read: never more
        # than one window.
        wait = math.ceil((window_ends_at - now).total_seconds())
        return max(1, min(wait, math.ceil(self.window)))

    async def _prune(self, now: datetime) -> None:
        """Delete counters whose window ended, at most once a minute per process; rows another
        transaction holds are skipped (PostgreSQL), so this never waits for a login."""
        if time.monotonic() - self._pruned_at < 60:
            return
        self._pruned_at = time.monotonic()
        ended = (
            select(LoginAttempt.key)
            .where(LoginAttempt.window_ends_at <= now)
            .with_for_update(skip_locked=True)
        )
        async with self._db.transaction() as session:
            await session.execute(delete(LoginAttempt).where(LoginAttempt.key.in_(ended)))


def _stored_key(key: str) -> str:
    # Hashed: the store holds no email addresses.
    return hashlib.sha256(key.encode()).hexdigest()


def _redis_key(key: str) -> str:
    return "pagecast:login:" + _stored_key(key)


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Logins are counted in Redis, which does not answer; try again in a minute."
    )


def limit_of(app: FastAPI) -> LoginLimit:
    """The app's login limit (created on first use): in Redis when there is one."""
    limit: LoginLimit | None = getattr(app.state, "login_limit", None)
    if limit is None:
        ctx: AppContext = app.state.context
        count, window = ctx.settings.login_attempt_limit, ctx.settings.login_attempt_window
        if ctx.redis_url is not None:
            limit = RedisLoginLimit(ctx.queue.lazy_redis(), count, window)
        else:
            limit = DatabaseLoginLimit(ctx.db, count, window)
        app.state.login_limit = limit
    return limit


def keys_for(request: Request, email: str) -> tuple[str, str]:
    """Attempts count per client address and per email address."""
    client = request.client.host if request.client else "unknown"
    return f"ip:{client}", f"email:{email.strip().lower()}"
