"""A limiter that logs every grant with the server's clock, and a client loop to hammer it.

Run as a script (`python pacing.py URL PAGE RATE BURST CLIENTS START END`) it is one of the
separate OS processes of the pacing test and prints how many slots it got.
"""

from __future__ import annotations

import asyncio
import sys
import time

import redis.asyncio as aioredis

from pagecast.ratelimit import PageLimiter

__all__ = ["LoggingLimiter", "hammer", "max_in_window"]

_GRANTED = "return {room, 0, string.format('%d', now)}"


class LoggingLimiter(PageLimiter):
    """The production script plus one RPUSH of the server time of each grant."""

    assert _GRANTED in PageLimiter._reserve_source
    _reserve_source = PageLimiter._reserve_source.replace(
        _GRANTED, "redis.call('RPUSH', KEYS[1] .. ':log', string.format('%d', now)) " + _GRANTED
    )


async def hammer(
    limiter: PageLimiter, page_id: int, rate: float, burst: int, start: float, end: float
) -> int:
    """Reserve slots as fast as allowed between the epoch times `start` and `end`."""
    await asyncio.sleep(max(0.0, start - time.time()))
    granted = 0
    while time.time() < end:
        wait = await limiter.reserve(page_id, rate, burst=burst)
        if wait:
            await asyncio.sleep(wait)
        else:
            granted += 1
    return granted


def max_in_window(times_us: list[int], window_us: int = 1_000_000) -> int:
    """The most grants in any half-open window [t, t + window) of the sorted times."""
    times = sorted(times_us)
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_us:
            first += 1
        best = max(best, last - first + 1)
    return best


async def _main(
    url: str, page: int, rate: float, burst: int, clients: int, start: float, end: float
) -> None:
    client = aioredis.Redis.from_url(url, socket_timeout=None)
    limiter = LoggingLimiter(client)
    counts = await asyncio.gather(
        *(hammer(limiter, page, rate, burst, start, end) for _ in range(clients))
    )
    await client.aclose()
    print(sum(counts))


if __name__ == "__main__":
    url, page, rate, burst, clients, start, end = sys.argv[1:8]
    asyncio.run(
        _main(url, int(page), float(rate), int(burst), int(clients), float(start), float(end))
    )
