"""Pacing arithmetic: the rate a campaign sends at, how many deliveries a chunk holds and
how many chunks a campaign keeps queued (docs/sending.md, "Pacing").

The limiter (pagecast/ratelimit.py) spaces the sends; these numbers decide what it is asked
for and how the work is cut before it.
"""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, Page, utcnow
from pagecast.services import deliveries, due_plan, snapshots

__all__ = [
    "CHUNK_MOST",
    "CHUNK_SPAN_S",
    "PLAN_AHEAD_S",
    "PLAN_MOST",
    "chunk_for",
    "effective_rate",
    "first_chunks",
    "plan_ahead",
    "rate_within",
    "sendable_rate",
    "window_cap",
]

# A campaign keeps this many seconds of its rate queued as chunks (`plan_ahead`), at most
# PLAN_MOST chunks.
PLAN_AHEAD_S = 2.0
PLAN_MOST = 500
# A chunk holds about this many seconds of its campaign's rate (`chunk_for`), at most
# CHUNK_MOST deliveries.
CHUNK_SPAN_S = 1.0
CHUNK_MOST = 500


def rate_within(page_rate: float, campaign_rate: float | None) -> float:
    """The rate a campaign sends at: its own (when set), within its Page's."""
    return min(page_rate, campaign_rate or page_rate)


def window_cap(rate_per_s: float) -> int:
    """The most grants the Page's limiter lets any sliding 1.02 s hold: the rate, at least 1
    (pagecast/ratelimit.py explains the window; below 2/s this is less than the rate)."""
    return max(1, math.floor(rate_per_s))


def sendable_rate(rate_per_s: float) -> float:
    """Messages a second a Page's limiter really allows at `rate_per_s`: the rate, or its
    one-second cap where that is lower (1.5/s sends 1 a second)."""
    return min(rate_per_s, float(window_cap(rate_per_s)))


def chunk_for(rate_per_s: float, least: int) -> int:
    """Deliveries per chunk for a campaign sending at `rate_per_s`: about a second of its
    rate, at least `least` (the `chunk_size` setting) and at most CHUNK_MOST (or `least`).

    A chunk job costs two transactions whatever its size, so a fast campaign sends larger
    chunks (a third less worker CPU a message at 500 than at 100, docs/performance.md); a
    worker lets two chunks of a Page claim at once, so what waits claimed stays near two
    seconds of the Page's rate.
    """
    return max(least, min(CHUNK_MOST, math.floor(rate_per_s * CHUNK_SPAN_S)))


def plan_ahead(rate_per_s: float, chunk_size: int) -> int:
    """How many chunks of a campaign the queue holds at once: PLAN_AHEAD_S seconds of its
    rate, at least 2 and at most PLAN_MOST.

    The queue is first in, first out: a campaign that queued all its chunks at once would
    hold every worker slot until it finished, and the campaigns of other Pages, each with
    its own limit to fill, would wait behind it. A few seconds of each campaign at a time
    keeps every Page's sends going side by side.
    """
    return max(2, min(PLAN_MOST, math.ceil(rate_per_s * PLAN_AHEAD_S / chunk_size)))


async def effective_rate(session: AsyncSession, campaign: Campaign) -> float:
    """`rate_within` the campaign's Page's rate, read from the database."""
    page_rate = float(
        await session.scalar(select(Page.send_rate).where(Page.id == campaign.page_id)) or 1.0
    )
    return rate_within(page_rate, campaign.send_rate)


async def first_chunks(
    session: AsyncSession, campaign: Campaign, *, chunk_size: int
) -> list[tuple[int, int]]:
    """The first chunks of the deliveries the start wrote (at most `plan_ahead` of them,
    `chunk_for` the campaign's rate with `chunk_size` the least), for the start to enqueue
    itself: the first send then waits for no `plan` job (P4)."""
    rate = await effective_rate(session, campaign)
    chunk = chunk_for(rate, chunk_size)
    return await deliveries.pending_ranges(
        session,
        campaign.id,
        after_id=0,
        chunk_size=chunk,
        max_chunks=max(1, min(plan_ahead(rate, chunk), snapshots.SNAPSHOT_FIRST // chunk)),
        # Those due at the start (each person's local time: services/due_times.py).
        due=due_plan.due_now(campaign.started_at or utcnow()),
    )
