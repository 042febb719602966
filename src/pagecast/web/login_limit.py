"""Failed-login throttling shared by the dashboard's login form and `POST /api/auth/login`."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from fastapi import FastAPI, Request

__all__ = ["LoginLimiter", "keys_for", "limiter_of"]


class LoginLimiter:
    """Failed logins per client address and per email: `limit` in `window` seconds.

    In process memory, which covers `pagecast serve`; several web processes each count their
    own (a reverse proxy's limit is the place for a shared one).
    """

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures[key]
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = time.monotonic()
        waits = [
            int(seen[0] + self.window - now) + 1
            for key in keys
            if len(seen := self._recent(key, now)) >= self.limit
        ]
        return max(waits, default=0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


def limiter_of(app: FastAPI) -> LoginLimiter:
    """The app's limiter, created on first use."""
    if not hasattr(app.state, "login_limiter"):
        app.state.login_limiter = LoginLimiter()
    return app.state.login_limiter  # type: ignore[no-any-return]


def keys_for(request: Request, email: str) -> tuple[str, str]:
    """Failures count per client address and per email address."""
    client = request.client.host if request.client else "unknown"
    return f"ip:{client}", f"email:{email.strip().lower()}"
