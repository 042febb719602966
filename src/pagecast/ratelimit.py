"""Per-Page send limits shared by every worker (docs/design.md invariant 6).

Each Page has one Redis hash holding a GCRA schedule (the "theoretical arrival time" of the
next send) and an optional throttle. One Lua script per call reserves a slot with the Redis
server's own clock, so every worker on every machine shares one schedule and one clock:

- `reserve` grants a slot now (returns 0) or says how long to wait, without taking a slot,
  so a caller that puts its whole job back does not leak capacity; `take` grants several,
  and with a lead, slots that free within it, dated when they free;
- `throttle` stops the Page for everyone until a deadline (Graph throttling errors);
- `note_usage` turns `X-Business-Use-Case-Usage` at or above 90 % into a short throttle
  (the policy is in docs/redis.md);
- `slow_down` answers Graph's per-second limit (a 613 without a regain estimate): the Page
  pauses one window and its rate is capped for every worker, which `capped` applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from typing import Any, ClassVar, NamedTuple, cast

import redis.asyncio as aioredis

from pagecast.queue import REDIS_DOWN
from pagecast.services import pacing
from pagecast.services.retries import PER_SECOND_PAUSE

__all__ = [
    "LATE_AFTER",
    "USAGE_PAUSE_AT_90",
    "USAGE_PAUSE_AT_100",
    "USAGE_SLOWDOWN_FROM",
    "Grant",
    "PageLimiter",
    "default_burst",
    "usage_pause",
    "window_cap",
]

logger = logging.getLogger(__name__)

USAGE_SLOWDOWN_FROM = 90.0
# A 613 without a regain estimate is Graph's per-second limit: the Page pauses one window
# (services/retries.py's PER_SECOND_PAUSE, the time its deliveries wait too) and every
# worker lowers the Page's rate to 70 % of what was running, for ten minutes.
_RATE_CUT = 0.7
_RATE_CAP_TTL = 600
_RATE_CAP_PREFIX = "pagecast:rl-cap:"
USAGE_PAUSE_AT_90 = 1.0
USAGE_PAUSE_AT_100 = 30.0
# Keep a Page's hash an hour after its last send or throttle, so `state` has something to show.
_KEEP_MS = 3_600_000
_LATENESS_S = 0.02
# The log of grants looks back one second and the 20 ms a grant may take to reach Graph.
_WINDOW_US = 1_000_000 + round(_LATENESS_S * 1_000_000)
# A grant whose calls leave later than this after it was made is re-dated (`PageLimiter.left`);
# a grant of several calls (a Graph batch) always is: its lateness plus the time Graph takes
# to take in its calls could pass the 20 ms the log allows, and it would overshoot by a batch.
LATE_AFTER = 0.005
# A grant dated ahead (`PageLimiter.take`'s lead) is a promise to wait: keep it short.
_MAX_LEAD_S = 0.1

# KEYS[1] the Page's hash, KEYS[2] its log of recent grants (a sorted set scored by time).
# ARGV: interval in µs, burst, slots wanted, rate (for `state`), keep_ms, window cap, window
# in µs, the fewest slots worth granting (the schedule must have room for that many; the
# window cap may still cut a grant below it, so a window can fill to its cap), lead in µs
# (slots free within it are granted now, dated when they free). Returns {granted, wait_us,
# at}: nothing and how long to wait, or the slots and how long until they start (0 without
# a lead); `at` names the grant's entries in the log for `_LEFT`. Times are µs since the
# epoch from the server's TIME, stored as decimal strings ("%.3f": Lua 5.1 would print a
# bare number with 14 digits and lose µs).
#
# The GCRA schedule paces the sends and its burst lets a late caller use the slot it
# missed; the log caps what any sliding window of 1.02 s holds, so neither that burst nor
# a batch's slots arriving together can push Graph's busiest second above the rate (Graph
# counts in a sliding window, and answers 613 above it).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local cap = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local least = tonumber(ARGV[8])
local lead = tonumber(ARGV[9])
local state = redis.call('HMGET', KEYS[1], 'tat', 'until')
local until_ = tonumber(state[2]) or 0
if until_ > now then
  return {0, math.ceil(until_ - now)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[2])
-- The slots as they stand at `at` (now, or a moment ahead with a lead): the schedule's room
-- and the window's free places. Every entry in the log counts, even one dated ahead of
-- `at` by an earlier lead. At 1.8e15 µs a double is exact to 0.25 µs only: work with the
-- (small) lead of the schedule over `at`, and allow 1 µs of rounding.
local function slots(at)
  local tat = tonumber(state[1]) or at
  if tat < at then tat = at end
  local ahead = tat - at
  local room = math.floor((burst * interval - ahead + 1) / interval)
  local left = used - redis.call('ZCOUNT', KEYS[2], '-inf', at - window)
  return tat, ahead, room, cap - left
end
local at = now
local tat, ahead, room, free = slots(at)
if room < least or free <= 0 then
  local wait = 1
  if room < least then wait = ahead + least * interval - burst * interval end
  if free <= 0 then
    -- the grant whose leaving the window frees a slot
    local edge = redis.call('ZRANGE', KEYS[2], used - cap, used - cap, 'WITHSCORES')
    local window_wait = tonumber(edge[2]) + window - now
    if window_wait > wait then wait = window_wait end
  end
  wait = math.ceil(wait)
  if wait > lead then
    return {0, wait}
  end
  at = now + wait
  tat, ahead, room, free = slots(at)
  if room < least or free <= 0 then
    return {0, wait}
  end
end
if room > wanted then room = wanted end
if room > free then room = free end
-- `_LEFT` finds a grant's entries by their time: a grant for the same moment as another
-- (two callers waiting for the same slots to free) is dated a microsecond later.
while redis.call('ZCOUNT', KEYS[2], at, at) > 0 do at = at + 1 end
local entries = {}
for i = 1, room do
  entries[2 * i - 1] = at
  entries[2 * i] = string.format('%.3f', tat + i * interval)
end
redis.call('ZADD', KEYS[2], unpack(entries))
redis.call('PEXPIRE', KEYS[2], math.ceil((at - now + window) / 1000) + 1000)
tat = tat + room * interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'rate', ARGV[4], 'burst', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + tonumber(ARGV[5]))
return {room, at - now, string.format('%d', at)}
"""

# KEYS[1] a Page's log of grants; ARGV[1] the time of one grant (its entries' score). The
# grant's calls leave only now: score its entries now, so the window counts them from when
# Graph can see them. Returns how many entries moved (0 when they already left the log).
_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #members == 0 then return 0 end
local entries = {}
for i, member in ipairs(members) do
  entries[2 * i - 1] = now
  entries[2 * i] = member
end
redis.call('ZADD', KEYS[1], 'XX', unpack(entries))
return #members
"""

# ARGV: seconds (as µs), reason, keep_ms. Keeps the later deadline; returns µs left.
_THROTTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wanted = now + tonumber(ARGV[1])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
if wanted > until_ then
  until_ = wanted
  redis.call('HSET', KEYS[1], 'until', string.format('%.3f', until_), 'reason', ARGV[2])
end
local ttl = redis.call('PTTL', KEYS[1])
local keep = math.ceil((until_ - now) / 1000) + tonumber(ARGV[3])
if ttl < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return math.ceil(until_ - now)
"""

# Returns {now, tat, until, reason, rate, burst} as strings (false when unset).
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tat', 'until', 'reason', 'rate', 'burst')
return {string.format('%d', now), s[1], s[2], s[3], s[4], s[5]}
"""


class Grant(NamedTuple):
    """What `PageLimiter.take` gave: `granted` slots, to use `wait` seconds from now (0
    unless the caller allowed a lead); or none, and `wait` seconds until some are free.

    `at` is the grant's time on the Redis server's clock (µs, as text; empty when nothing was
    granted); `PageLimiter.left` re-dates the grant by it.
    """

    granted: int
    wait: float
    at: str = ""


def window_cap(rate_per_s: float) -> int:
    """The most grants the log of a Page (its last 1.02 s) may hold: the rate, at least 1
    (`pacing.window_cap`, the one rule, which the review's duration uses too).

    Graph counts the calls that arrive in any sliding second. A grant reaches Graph a little
    after it is made, by a delay that varies by a few milliseconds on a busy machine (a
    batch's operations all arrive together, however their slots were spread). Whatever
    arrives within one second was granted within one second and 20 ms (`_LATENESS_S`), so
    a cap on that longer window keeps every arrival second at or under the rate, whether
    the grants came one at a time or a batch at once. At full use a Page gets its rate less
    2 % (300/s: 294/s).
    """
    return pacing.window_cap(rate_per_s)


def default_burst(rate_per_s: float) -> int:
    """The burst that absorbs 20 ms of lateness in the callers' sleeps (at least 2).

    With a burst of 1 the schedule restarts from "now" whenever the next caller arrives even
    a millisecond after its slot, and that millisecond is lost: at 100/s with asyncio clients
    we measured 87 % of the rate. A small burst lets a late caller use the slot it missed.
    """
    return max(2, math.ceil(rate_per_s * _LATENESS_S))


def usage_pause(percent: float) -> float:
    """Seconds to pause a Page whose Graph usage header says `percent`.

    Nothing below 90 %; from 1 s at 90 % rising linearly to 30 s at 100 % and above.
    """
    if percent < USAGE_SLOWDOWN_FROM:
        return 0.0
    share = min(1.0, (percent - USAGE_SLOWDOWN_FROM) / (100.0 - USAGE_SLOWDOWN_FROM))
    return USAGE_PAUSE_AT_90 + share * (USAGE_PAUSE_AT_100 - USAGE_PAUSE_AT_90)


class PageLimiter:
    """Send slots per Page, shared through Redis by every worker process.

    Works with clients made with or without `decode_responses`, on Redis 6.2 and later.
    """

    _reserve_source: ClassVar[str] = _RESERVE

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "pagecast:rl") -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(self._reserve_source)
        self._throttle = redis.register_script(_THROTTLE)
        self._peek = redis.register_script(_PEEK)
        self._left = redis.register_script(_LEFT)

    def key(self, page_id: int) -> str:
        """The Redis hash that holds `page_id`'s schedule and throttle."""
        return f"{self._prefix}:{page_id}"

    def _log(self, page_id: int) -> str:
        return self.key(page_id) + ":w"

    async def reserve(self, page_id: int, rate_per_s: float, *, burst: int | None = None) -> float:
        """Take one send slot: 0 when the send may go now, else seconds to wait (nothing taken).

        While the Page is throttled the wait is at least the throttle's remaining time. Any
        sliding window of 1.02 s holds at most `window_cap(rate_per_s)` grants (never more
        than the rate, whatever the burst); `burst` defaults to `default_burst(rate_per_s)`.
        """
        granted, wait = await self.reserve_many(page_id, rate_per_s, 1, burst=burst)
        return 0.0 if granted else wait

    async def reserve_many(
        self,
        page_id: int,
        rate_per_s: float,
        n: int,
        *,
        burst: int | None = None,
        least: int = 1,
    ) -> tuple[int, float]:
        """Take up to `n` slots at once: `(granted, wait)`, as `take` without the grant's time."""
        grant = await self.take(page_id, rate_per_s, n, burst=burst, least=least)
        return grant.granted, grant.wait

    async def take(
        self,
        page_id: int,
        rate_per_s: float,
        n: int,
        *,
        burst: int | None = None,
        least: int = 1,
        lead: float = 0.0,
    ) -> Grant:
        """Take up to `n` slots at once (at most `burst` when the Page is idle).

        `granted` slots may be used now; when none are, `wait` is the seconds until some are.
        With `least`, nothing is granted until the schedule has room for that many (capped at
        `n` and `burst`), so a batch sender gets whole batches instead of a slot at a time;
        only the one-second window cap can grant fewer, when that is all the window has left.

        With a `lead` (seconds), slots that free within it are granted now, dated when they
        free: `wait` then says when, and the caller must not let the calls leave before
        (it builds its request meanwhile, so the call leaves as its slots open instead of
        that long after). The window counts them from then, or from when `left` says.
        """
        if not rate_per_s > 0 or not math.isfinite(rate_per_s):
            raise ValueError(f"rate_per_s must be a positive number, not {rate_per_s!r}")
        if burst is None:
            burst = default_burst(rate_per_s)
        if burst < 1 or n < 1 or least < 1:
            raise ValueError(
                f"burst, n and least must be at least 1, not {burst!r}, {n!r} and {least!r}"
            )
        if not 0 <= lead <= _MAX_LEAD_S:
            raise ValueError(f"lead must be between 0 and {_MAX_LEAD_S} s, not {lead!r}")
        interval_us = 1_000_000.0 / rate_per_s
        answer = await self._reserve(
            keys=[self.key(page_id), self._log(page_id)],
            args=[
                repr(interval_us),
                burst,
                n,
                repr(float(rate_per_s)),
                _KEEP_MS,
                window_cap(rate_per_s),
                _WINDOW_US,
                min(least, n, burst),
                round(lead * 1_000_000),
            ],
        )
        at = _text(answer[2]) if len(answer) > 2 else None
        return Grant(int(answer[0]), int(answer[1]) / 1_000_000, at or "")

    async def left(self, page_id: int, grant: Grant) -> int:
        """The grant's calls leave only now (the caller was held up after the grant for more
        than `LATE_AFTER`): count them in the Page's one-second window from now.

        A call that reached Graph later than its grant could otherwise land in the same Graph
        second as calls granted a second after it. Returns how many slots were re-dated.
        """
        if not grant.at:
            return 0
        return int(await self._left(keys=[self._log(page_id)], args=[grant.at]))

    async def throttle(self, page_id: int, seconds: float, reason: str) -> float:
        """Stop sends to the Page for every worker for `seconds` (the later deadline wins).

        Returns the seconds the Page is now throttled for.
        """
        left_us = await self._throttle(
            keys=[self.key(page_id)],
            args=[max(0, math.ceil(seconds * 1_000_000)), reason, _KEEP_MS],
        )
        return max(0, int(left_us)) / 1_000_000

    async def note_usage(self, page_id: int, percent: float) -> float:
        """Apply a Graph usage header: at 90 % or more, throttle the Page (see `usage_pause`).

        Returns the pause applied (0 below 90 %).
        """
        pause = usage_pause(percent)
        if pause <= 0:
            return 0.0
        await self.throttle(page_id, pause, f"usage {percent:.0f}%")
        return pause

    async def capped(self, page_id: int, rate: float) -> float:
        """`rate`, or lower while a recent 613 has capped the Page's rate (`slow_down`)."""
        try:
            cap = await self._redis.get(_RATE_CAP_PREFIX + str(page_id))
        except REDIS_DOWN:
            return rate  # the limiter fails too, and puts the chunk back
        return rate if cap is None else min(rate, float(cap))

    async def slow_down(self, page_id: int, rate: float) -> None:
        """Lower the Page's rate for every worker, at most once a second (one burst of 613s
        is one cut), and pause the Page for every worker for the rest of Graph's window."""
        redis = self._redis
        lowered = max(1.0, rate * _RATE_CUT)
        try:
            if not await redis.set(f"{_RATE_CAP_PREFIX}{page_id}:cut", "1", nx=True, px=1000):
                return
            current = await redis.get(_RATE_CAP_PREFIX + str(page_id))
            if current is not None:  # a chunk that started before the last cut
                lowered = min(lowered, max(1.0, float(current) * _RATE_CUT))
            await redis.set(_RATE_CAP_PREFIX + str(page_id), f"{lowered:.3f}", ex=_RATE_CAP_TTL)
            await self.throttle(page_id, PER_SECOND_PAUSE, "Graph error 613")
        except REDIS_DOWN:
            return  # the Page's throttle (or the next 613) slows it down
        logger.warning(
            "page %d: Graph per-second limit (613); rate lowered to %.1f/s", page_id, lowered
        )

    async def clear_throttle(self, page_id: int) -> None:
        """Lift a throttle early (an operator's decision; the schedule is kept)."""
        # redis-py types each command for its sync and asyncio clients at once.
        await cast("Awaitable[int]", self._redis.hdel(self.key(page_id), "until", "reason"))

    async def throttled_for(self, page_id: int) -> float:
        """Seconds left on the Page's throttle, 0 when it is not throttled."""
        return float((await self.state(page_id))["throttled_for"])

    async def state(self, page_id: int) -> dict[str, Any]:
        """The Page's limiter state for health endpoints and metrics.

        Keys: `page_id`, `rate` (per second, as last reserved; None if unknown), `burst`,
        `throttled_for` (seconds), `throttled_until` (epoch seconds or None), `reason`,
        `next_slot_in` (seconds until a slot is free, ignoring the throttle).
        """
        now_s, tat_s, until_s, reason, rate_s, burst_s = (
            _text(v) for v in await self._peek(keys=[self.key(page_id)], args=[])
        )
        now = float(now_s or 0)
        tat = float(tat_s) if tat_s else None
        until = float(until_s) if until_s else None
        rate = float(rate_s) if rate_s else None
        burst = int(burst_s) if burst_s else 1
        throttled = until is not None and until > now
        next_slot = 0.0
        if tat is not None and rate:
            next_slot = max(0.0, tat - (burst - 1) * 1_000_000 / rate - now) / 1_000_000
        return {
            "page_id": page_id,
            "rate": rate,
            "burst": burst,
            "throttled_for": (until - now) / 1_000_000 if throttled and until else 0.0,
            "throttled_until": until / 1_000_000 if throttled and until else None,
            "reason": reason if throttled else None,
            "next_slot_in": next_slot,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
