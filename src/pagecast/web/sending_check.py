"""Whether sending works right now (Redis answers), for the dashboard's banner on every page.

A page view must not cost a Redis round trip, nor wait long for a Redis that hangs: the
answer is kept CHECK_EVERY_S seconds per process, a check gives up after CHECK_TIMEOUT_S,
and while one check runs the other requests use the last answer (only the first ever waits
for it). The reason is the one a refused Start gives (`Queue.redis`, `unreachable_message`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import Request

from pagecast.context import AppContext
from pagecast.errors import PagecastError
from pagecast.queue import REDIS_DOWN

__all__ = ["CHECK_EVERY_S", "CHECK_TIMEOUT_S", "SendingCheck", "sending_check"]

CHECK_EVERY_S = 5.0
CHECK_TIMEOUT_S = 1.0


class SendingCheck:
    """The last answer to "can campaigns be sent?" (None: yes; else the reason why not)."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        every: float = CHECK_EVERY_S,
        timeout: float = CHECK_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._every = every
        self._timeout = timeout
        self._clock = clock
        self._problem: str | None = None
        self._checked_at: float | None = None
        self._running: asyncio.Future[str | None] | None = None

    async def problem(self) -> str | None:
        if self._checked_at is not None and self._clock() - self._checked_at < self._every:
            return self._problem
        if self._running is None:
            self._running = asyncio.ensure_future(self._check())
        elif self._checked_at is not None:
            return self._problem  # another request is asking Redis: the last answer meanwhile
        # Shielded: a request that goes away does not cancel the check the others wait for.
        return await asyncio.shield(self._running)

    async def _check(self) -> str | None:
        try:
            problem = await self._ask()
            self._problem, self._checked_at = problem, self._clock()
            return problem
        finally:
            self._running = None

    async def _ask(self) -> str | None:
        try:
            # `queue` itself refuses when no Redis is configured.
            await asyncio.wait_for(self._ctx.queue.redis(), self._timeout)
        except PagecastError as exc:
            return exc.message
        except TimeoutError:
            where = self._ctx.queue.target.where
            return (
                f"Redis at {where} did not answer within {self._timeout:g} s. Check that it "
                "is running and not overloaded."
            )
        except REDIS_DOWN as exc:
            return f"Redis does not answer ({type(exc).__name__}: {exc})."
        return None


def sending_check(request: Request) -> SendingCheck:
    """The app's check (made on first use, kept on `app.state` like the token cache)."""
    check: SendingCheck | None = getattr(request.app.state, "sending_check", None)
    if check is None:
        check = request.app.state.sending_check = SendingCheck(request.app.state.context)
    return check
