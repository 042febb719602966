"""Per-Page rate limits: sliding 1 s windows and rolling 24 h business-use-case budgets
(docs/simulator.md, "Rate limits and usage headers").

All work per call is O(1) amortised: windows are deques trimmed from the left, and the 24 h
budget keeps one bucket per second. The regain time of a throttled budget is computed once
per change of the budget and cached.
"""

from __future__ import annotations

import json
import math
from collections import deque

__all__ = ["PageLimiter", "RollingWindow", "usage_header_value"]

DAY = 86400.0


class RollingWindow:
    """Calls over the last `span` seconds, counted in one-second buckets."""

    __slots__ = ("_buckets", "_cache", "span", "used")

    def __init__(self, span: float = DAY) -> None:
        self.span = span
        self.used = 0
        self._buckets: deque[list[int]] = deque()
        self._cache: tuple[int, int, float] | None = None

    def expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] + self.span <= now:
            self.used -= buckets.popleft()[1]

    def add(self, now: float, n: int = 1) -> None:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += n
        else:
            buckets.append([second, n])
        self.used += n

    def regain_at(self, now: float, capacity: int) -> float:
        """When `used` falls below `capacity` as the oldest calls leave the window."""
        if capacity <= 0:
            return now + 60.0  # no budget at all: always a minute away
        excess = self.used - capacity + 1
        if excess <= 0:
            return now
        key = (self.used, len(self._buckets))
        if self._cache is not None and self._cache[:2] == key:
            return self._cache[2]
        removed = 0
        at = now
        for second, count in self._buckets:
            removed += count
            if removed >= excess:
                at = second + self.span
                break
        self._cache = (key[0], key[1], at)
        return at


class PageLimiter:
    """The limits of one Page: per-second classes, the messenger and pages budgets."""

    __slots__ = (
        "_all",
        "inbox",
        "inbox_degraded_until",
        "max_per_second",
        "messenger",
        "pages",
        "penalty_until",
        "per_second",
        "windows",
    )

    def __init__(self) -> None:
        self.per_second = {"text": 300, "av": 10, "conversations": 2}
        self.windows: dict[str, deque[float]] = {k: deque() for k in self.per_second}
        self.messenger = RollingWindow()
        self.pages = RollingWindow()
        self.penalty_until = {"messenger": 0.0, "pages": 0.0}
        self._all: deque[float] = deque()
        self.max_per_second = 0
        self.inbox = RollingWindow(span=10.0)  # accepted sends, for the Inbox degradation
        self.inbox_degraded_until = 0.0

    def note_send(self, now: float, per_second: float, window: float, cooldown: float) -> None:
        """Count one accepted send; above `per_second` on average over `window` seconds the
        Page's Inbox degrades until `cooldown` seconds after the last such send."""
        inbox = self.inbox
        inbox.span = window
        inbox.expire(now)
        inbox.add(now)
        if inbox.used > per_second * window:
            self.inbox_degraded_until = now + cooldown

    def note_call(self, now: float) -> None:
        """Track every Graph call on this Page for `max_calls_per_second`."""
        window = self._all
        window.append(now)
        edge = now - 1.0
        while window and window[0] <= edge:
            window.popleft()
        if len(window) > self.max_per_second:
            self.max_per_second = len(window)

    def take_second(self, cls: str, now: float) -> bool:
        """Admit one call of `cls` into its 1 s window; False when the window is full."""
        window = self.windows.setdefault(cls, deque())
        edge = now - 1.0
        while window and window[0] <= edge:
            window.popleft()
        if len(window) >= self.per_second.get(cls, 300):
            return False
        window.append(now)
        return True

    def bucket(self, name: str) -> RollingWindow:
        return self.messenger if name == "messenger" else self.pages

    def throttled_minutes(self, name: str, capacity: int, now: float) -> int:
        """Minutes until the budget admits calls again, 0 when it admits them now."""
        window = self.bucket(name)
        window.expire(now)
        natural = window.regain_at(now, capacity)
        until = max(natural, self.penalty_until[name])
        if until <= now:
            return 0
        return max(1, math.ceil((until - now) / 60.0))

    def penalise(self, name: str, capacity: int, now: float, minutes: float) -> None:
        window = self.bucket(name)
        natural = window.regain_at(now, capacity)
        self.penalty_until[name] = max(self.penalty_until[name], natural, now) + minutes * 60.0

    def usage(
        self,
        name: str,
        capacity: int,
        *,
        time_fraction: float,
        cputime_fraction: float,
        regain_minutes: int,
    ) -> dict[str, int | str]:
        used = self.bucket(name).used
        call_count = round(100.0 * used / capacity) if capacity > 0 else 100
        if regain_minutes:
            call_count = max(call_count, 100)
        return {
            "type": name,
            "call_count": call_count,
            "total_cputime": round(call_count * cputime_fraction),
            "total_time": round(call_count * time_fraction),
            "estimated_time_to_regain_access": regain_minutes,
        }


def usage_header_value(page_id: str, usage: dict[str, int | str]) -> str:
    """`x-business-use-case-usage` JSON: no spaces, keyed by the Page id, a list per id."""
    return json.dumps({page_id: [usage]}, separators=(",", ":"))
