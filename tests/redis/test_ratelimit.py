"""The per-Page limiter: exact pacing across clients and processes, shared throttles."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pacing import LoggingLimiter, hammer, max_in_window

from pagecast.ratelimit import Grant, PageLimiter, default_burst, usage_pause, window_cap

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("batch", "lead"),
    [(1, 0.0), (10, 0.03)],
    ids=["one-slot-at-a-time", "batches-granted-ahead"],
)
async def test_pacing_holds_across_clients_and_processes(
    machine_redis: aioredis.Redis, machine_redis_url: str, batch: int, lead: float
) -> None:
    rate, seconds, page = 100.0, 3.0, 42 + batch
    burst = default_burst(rate)
    start = time.time() + 1.0  # time for the child interpreters to start
    end = start + seconds
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "pacing.py"),
            machine_redis_url,
            str(page),
            str(rate),
            str(burst),
            "3",
            repr(start),
            repr(end),
            str(batch),
            repr(lead),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    limiter = LoggingLimiter(machine_redis)
    local = await asyncio.gather(
        *(hammer(limiter, page, rate, burst, start, end, batch=batch, lead=lead) for _ in range(4))
    )
    remote = [int((await child.communicate())[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    # Every process got slots; one slot at a time, every client did. (Ten clients share
    # about thirty batches: one of them may draw none.)
    assert all(remote) and sum(local), (local, remote)
    assert batch > 1 or all(local), local

    times = [int(t) for t in await machine_redis.lrange(limiter.key(page) + ":log", 0, -1)]
    assert len(times) == sum(local) + sum(remote)
    # The invariant, strictly: never more than the rate in any one-second window (the burst
    # included), with 20 ms of slots kept free for the callers' jitter; a slot granted ahead
    # counts from the moment it was granted for.
    busiest = max_in_window(times)
    assert busiest <= window_cap(rate) <= rate, busiest
    # The achieved rate, loosely (a busy 2-core machine can starve all clients at once).
    achieved = (len(times) - 1) / ((max(times) - min(times)) / 1e6)
    print(f"pacing: {len(times)} grants, achieved {achieved:.1f}/s, busiest 1 s window {busiest}")
    assert 0.90 * rate <= achieved <= rate * 1.001 + max(burst, batch) / seconds


async def test_a_wait_does_not_take_a_slot(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.reserve(1, 1.0, burst=1) == 0
    waits = [await limiter.reserve(1, 1.0, burst=1) for _ in range(20)]
    # Each refused call reports the same next slot: refusals do not push it back.
    assert all(0.9 < w <= 1.02 for w in waits), waits  # the window: 1 s and 20 ms
    assert max(waits) - min(waits) < 0.1


async def test_burst_of_one_at_a_high_rate(limiter_redis: aioredis.Redis) -> None:
    # Server times in µs are near 1.8e15, where doubles step by 0.25 µs: a slot must still
    # be granted exactly once per interval.
    limiter = PageLimiter(limiter_redis)
    for page in range(60, 80):  # a busy machine may pause between the two calls: try again
        started = time.perf_counter()
        assert await limiter.reserve_many(page, 300.0, 1, burst=1) == (1, 0.0)
        granted, wait = await limiter.reserve_many(page, 300.0, 1, burst=1)
        elapsed = time.perf_counter() - started
        if elapsed < 0.001:
            break
    else:
        pytest.fail("never got two calls within 1 ms of each other")
    assert granted == 0 and 1 / 300 - elapsed <= wait + 1e-6 and wait <= 1 / 300


async def test_burst_allows_that_many_at_once_then_paces(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    got = [await limiter.reserve(7, 5.0, burst=3) for _ in range(4)]
    assert got[:3] == [0, 0, 0]
    assert 0.1 < got[3] <= 0.2


async def test_a_burst_never_takes_a_second_above_the_rate(limiter_redis: aioredis.Redis) -> None:
    # GCRA alone would grant rate + burst in the second after an idle spell; the window
    # log refuses the slot that would make the busiest second exceed the rate.
    limiter = PageLimiter(limiter_redis)
    got = [await limiter.reserve(9, 2.0, burst=3) for _ in range(3)]
    assert got[:2] == [0, 0]
    assert 0.9 < got[2] <= 1.02  # the first grant must leave the window (1 s + 20 ms) first
    assert window_cap(300) == 300 and window_cap(40) == 40 and window_cap(0.5) == 1


async def test_reserve_many_grants_what_is_free(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.reserve_many(3, 10.0, 8, burst=5) == (5, 0.0)
    granted, wait = await limiter.reserve_many(3, 10.0, 8, burst=5)
    assert granted == 0 and 0.05 < wait <= 0.1
    await asyncio.sleep(wait + 0.15)
    granted, wait = await limiter.reserve_many(3, 10.0, 8, burst=5)
    assert granted in (2, 3) and wait == 0


async def test_reserve_many_with_least_grants_whole_batches(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.reserve_many(4, 10.0, 5, burst=5, least=5) == (5, 0.0)
    # Without `least` one slot would be free again after 0.1 s; a whole batch needs 0.5 s.
    granted, wait = await limiter.reserve_many(4, 10.0, 5, burst=5, least=5)
    assert granted == 0 and 0.45 < wait <= 0.5
    await asyncio.sleep(0.2)
    granted, wait = await limiter.reserve_many(4, 10.0, 5, burst=5, least=5)
    assert granted == 0 and 0.25 < wait <= 0.3  # still nothing: 2 slots are not a batch


async def test_batches_fill_the_window_to_its_cap_and_no_further(
    limiter_redis: aioredis.Redis,
) -> None:
    # Batches of 50 at 300/s: six whole batches fill the window's 300, and the next batch
    # waits for the first grants to leave the window (1 s and 20 ms after them), so a
    # batch granted late in one second cannot arrive beside the first of the next.
    limiter = PageLimiter(limiter_redis)
    grants: list[int] = []
    started = time.monotonic()
    while sum(grants) < window_cap(300):
        granted, wait = await limiter.reserve_many(6, 300.0, 50, burst=50, least=50)
        if granted:
            grants.append(granted)
        else:
            await asyncio.sleep(wait)
    assert grants == [50] * 6
    granted, wait = await limiter.reserve_many(6, 300.0, 50, burst=50, least=50)
    assert granted == 0 and wait >= 1.02 - (time.monotonic() - started) - 0.01


async def test_the_window_cap_cuts_a_batch_to_what_is_left(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.reserve_many(8, 300.0, 40, burst=1000) == (40, 0.0)
    # The schedule has room for whole batches (a burst of 1,000), the window only for 260.
    granted = [
        (await limiter.reserve_many(8, 300.0, 50, burst=1000, least=50))[0] for _ in range(6)
    ]
    assert granted == [50, 50, 50, 50, 50, 10]


async def test_a_late_grant_counts_in_the_window_from_when_it_left(
    limiter_redis: aioredis.Redis,
) -> None:
    # A batch that leaves its worker 0.4 s after its grant reaches Graph 0.4 s late, beside
    # whatever is granted a second after the grant: once re-dated by `left`, the window holds
    # the next batch back until a second after the batch actually left.
    limiter = PageLimiter(limiter_redis)
    grant = await limiter.take(11, 10.0, 10, burst=10, least=10)
    assert grant.granted == 10 and grant.at
    await asyncio.sleep(0.4)
    assert await limiter.left(11, grant) == 10
    await asyncio.sleep(0.7)  # 1.1 s after the grant, 0.7 s after the batch left
    late = await limiter.take(11, 10.0, 10, burst=10, least=10)
    assert late.granted == 0 and 0.25 < late.wait <= 0.33, late


async def test_slots_that_free_within_the_lead_are_granted_ahead_dated_when_they_free(
    limiter_redis: aioredis.Redis,
) -> None:
    # 20/s with a burst of 2: after two slots the schedule has the next one 50 ms later.
    limiter = PageLimiter(limiter_redis)
    first = await limiter.take(21, 20.0, 2, burst=2)
    assert first.granted == 2 and first.wait == 0
    ahead = await limiter.take(21, 20.0, 1, burst=2, lead=0.1)
    assert ahead.granted == 1 and 0 <= ahead.wait <= 0.05
    assert int(ahead.at) >= int(first.at) + 50_000 - 1  # when the schedule frees it
    # The Page's log counts the slot from then.
    log = await limiter_redis.zrange(limiter.key(21) + ":w", 0, -1, withscores=True)
    assert max(score for _, score in log) == int(ahead.at)
    # Beyond the lead nothing is granted, and the caller hears how long to wait.
    later = await limiter.take(21, 20.0, 2, burst=2, least=2, lead=0.01)
    assert later.granted == 0 and later.wait > 0.01


async def test_a_throttle_is_never_granted_ahead(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    await limiter.throttle(22, 0.05, "Graph error 613")
    grant = await limiter.take(22, 300.0, 10, lead=0.1)
    assert grant.granted == 0 and 0 < grant.wait <= 0.05


async def test_a_lead_beyond_a_tenth_of_a_second_is_refused(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    with pytest.raises(ValueError, match=r"lead must be between 0 and 0\.1 s, not 0\.5"):
        await limiter.take(23, 300.0, 10, lead=0.5)
    assert await limiter_redis.exists(limiter.key(23), limiter.key(23) + ":w") == 0


async def test_two_grants_for_the_same_moment_are_redated_each_by_its_own(
    limiter_redis: aioredis.Redis,
) -> None:
    # The window (10 at 10/s) is full of one grant; two callers ask just before it frees, and
    # both are granted slots that free at the same moment. Each must re-date only its own.
    limiter = PageLimiter(limiter_redis)
    assert (await limiter.take(24, 10.0, 10, burst=10, least=10)).granted == 10
    waiting = await limiter.take(24, 10.0, 1, burst=10)
    assert waiting.granted == 0
    await asyncio.sleep(max(0.0, waiting.wait - 0.06))
    a = await limiter.take(24, 10.0, 5, burst=10, lead=0.1)
    b = await limiter.take(24, 10.0, 5, burst=10, lead=0.1)
    assert a.granted == 5 and b.granted == 5
    assert a.at != b.at
    assert await limiter.left(24, a) == 5
    assert await limiter.left(24, b) == 5


async def test_a_grant_that_left_on_time_frees_the_window_a_second_later(
    limiter_redis: aioredis.Redis,
) -> None:
    # The same batch without `left`: the window is free again 1.02 s after the grant.
    limiter = PageLimiter(limiter_redis)
    assert (await limiter.take(12, 10.0, 10, burst=10, least=10)).granted == 10
    await asyncio.sleep(1.1)
    assert (await limiter.take(12, 10.0, 10, burst=10, least=10)).granted == 10


async def test_left_after_the_window_moved_on_changes_nothing(
    limiter_redis: aioredis.Redis,
) -> None:
    limiter = PageLimiter(limiter_redis)
    grant = await limiter.take(13, 10.0, 2, burst=2)
    await limiter_redis.delete(limiter.key(13) + ":w")  # the log expired
    assert await limiter.left(13, grant) == 0
    assert await limiter.left(13, Grant(0, 0.5)) == 0  # nothing was granted
    assert await limiter_redis.exists(limiter.key(13) + ":w") == 0


async def test_throttle_is_shared_by_every_client(limiter_redis: aioredis.Redis) -> None:
    pool = limiter_redis.connection_pool
    # A second client with its own connections, as another worker would have.
    other = aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
    )
    try:
        first, second = PageLimiter(limiter_redis), PageLimiter(other)
        assert 2.9 < await first.throttle(5, 3.0, "Graph error 613") <= 3.0
        assert 2.8 < await second.reserve(5, 300.0) <= 3.0
        assert 2.8 < await second.throttled_for(5) <= 3.0
        # The later deadline wins, whoever sets it.
        assert 2.8 < await second.throttle(5, 1.0, "usage 91%") <= 3.0
        state = await second.state(5)
        assert state["reason"] == "Graph error 613"
        assert state["throttled_until"] == pytest.approx(time.time() + 3.0, abs=0.5)
        assert 9.9 < await second.throttle(5, 10.0, "Graph error 4") <= 10.0
        assert (await first.state(5))["reason"] == "Graph error 4"
    finally:
        await other.aclose()


async def test_throttled_calls_take_no_slot(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    await limiter.throttle(9, 5.0, "Graph error 4")
    for _ in range(50):
        assert await limiter.reserve(9, 1.0, burst=1) > 4.0
    await limiter.clear_throttle(9)
    assert await limiter.throttled_for(9) == 0
    # At 1/s, fifty refused calls would have pushed the next slot 50 s away had they counted.
    assert await limiter.reserve(9, 1.0, burst=1) == 0


async def test_pages_are_independent(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.reserve(1, 1.0) == 0
    await limiter.throttle(1, 30.0, "Graph error 613")
    assert await limiter.reserve(1, 1.0) > 29
    assert await limiter.reserve(2, 1.0) == 0
    assert await limiter.throttled_for(2) == 0
    assert await PageLimiter(limiter_redis, prefix="other").reserve(1, 1.0) == 0


@pytest.mark.parametrize(
    ("percent", "pause"), [(0, 0.0), (89.9, 0.0), (90, 1.0), (95, 15.5), (100, 30.0), (250, 30.0)]
)
def test_usage_pause_policy(percent: float, pause: float) -> None:
    assert usage_pause(percent) == pytest.approx(pause)


async def test_note_usage_throttles_at_90_percent(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.note_usage(4, 85) == 0
    assert await limiter.throttled_for(4) == 0
    assert await limiter.note_usage(4, 95) == pytest.approx(15.5)
    state = await limiter.state(4)
    assert 15 < state["throttled_for"] <= 15.5
    assert state["reason"] == "usage 95%"


async def test_state_reports_rate_and_next_slot(limiter_redis: aioredis.Redis) -> None:
    limiter = PageLimiter(limiter_redis)
    assert await limiter.state(8) == {
        "page_id": 8,
        "rate": None,
        "burst": 1,
        "throttled_for": 0.0,
        "throttled_until": None,
        "reason": None,
        "next_slot_in": 0.0,
    }
    await limiter.reserve(8, 2.0, burst=1)
    state = await limiter.state(8)
    assert state["rate"] == 2.0 and state["throttled_until"] is None
    assert 0.4 < state["next_slot_in"] <= 0.5
    assert 3_500 < await limiter_redis.pttl(limiter.key(8)) <= 3_600_500


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
async def test_rate_must_be_positive(machine_redis: aioredis.Redis, bad: float) -> None:
    with pytest.raises(ValueError, match="rate_per_s must be a positive number"):
        await PageLimiter(machine_redis).reserve(1, bad)
