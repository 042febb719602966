"""A limiter that logs every grant with the server's clock, and a client loop to hammer it.

Run as a script (`python pacing.py URL PAGE RATE BURST CLIENTS START END BATCH LEAD`) it is
one of the separate OS processes of the pacing test and prints how many slots it got.
"""

from __future__ import annotations

import asyncio
import sys
import time

import redis.asyncio as aioredis

from pagecast.ratelimit import PageLimiter

__all__ = ["LoggingLimiter", "hammer", "max_in_window"]

_GRANTED = "return {room, at - now, string.format('%d', at)}"


class LoggingLimiter(PageLimiter):
    """The production script plus an RPUSH of the server time each granted slot is for."""

    assert _GRANTED in PageLimiter._reserve_source
    _reserve_source = PageLimiter._reserve_source.replace(
        _GRANTED,
        "for i = 1, room do redis.call('RPUSH', KEYS[1] .. ':log', string.format('%d', at)) end "
        + _GRANTED,
    )


async def hammer(
    limiter: PageLimiter,
    page_id: int,
    rate: float,
    burst: int,
    start: float,
    end: float,
    *,
    batch: int = 1,
    lead: float = 0.0,
) -> int:
    """Take slots as fast as allowed between the epoch times `start` and `end`, `batch` at a
    time, as a worker does: with a `lead`, asking again a little before the slots free and
    waiting until a grant's slots start before asking for more."""
    await asyncio.sleep(max(0.0, start - time.time()))
    granted = 0
    while time.time() < end:
        grant = await limiter.take(
            page_id, rate, batch, burst=max(burst, batch), least=batch, lead=lead
        )
        if grant.granted:
            granted += grant.granted
            await asyncio.sleep(grant.wait)
        elif lead and grant.wait > lead:
            await asyncio.sleep(grant.wait - lead / 2)
        else:
            await asyncio.sleep(grant.wait)
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
    url: str,
    page: int,
    rate: float,
    burst: int,
    clients: int,
    start: float,
    end: float,
    batch: int,
    lead: float,
) -> None:
    client = aioredis.Redis.from_url(url, socket_timeout=None)
    limiter = LoggingLimiter(client)
    counts = await asyncio.gather(
        *(
            hammer(limiter, page, rate, burst, start, end, batch=batch, lead=lead)
            for _ in range(clients)
        )
    )
    await client.aclose()
    print(sum(counts))


if __name__ == "__main__":
    url, page, rate, burst, clients, start, end, batch, lead = sys.argv[1:10]
    asyncio.run(
        _main(
            url,
            int(page),
            float(rate),
            int(burst),
            int(clients),
            float(start),
            float(end),
            int(batch),
            float(lead),
        )
    )
