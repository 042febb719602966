"""The simulator's clock: every window, TTL, rate limit and webhook delay reads it.

`Clock` follows the wall clock plus an offset that `advance` moves forward, so rate limits
behave in real time while tests can still jump a day ahead. `ManualClock` stands still until
advanced, which makes per-second limits and windows exact in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "ManualClock", "format_graph_time"]


class Clock:
    """Wall-clock time (epoch seconds) plus an offset moved by `advance`."""

    def __init__(self, start: float | None = None) -> None:
        self._offset = 0.0 if start is None else start - time.time()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return time.time() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"The clock only moves forward; got {seconds} seconds.")
        self._offset += seconds
        self._notify()

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every `advance` (the webhook emitter re-checks due events)."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


class ManualClock(Clock):
    """A clock that stands still until `advance` is called."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"The clock only moves forward; got {seconds} seconds.")
        self._now += seconds
        self._notify()


def format_graph_time(ts: float) -> str:
    """Graph's time format: `2026-05-01T12:34:56+0000`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
