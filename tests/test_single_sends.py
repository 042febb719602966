"""One request per message (the default): the worker takes every free place in flight and as
many of the Page's slots as the schedule has in one limiter call, and still sends each
message in its own request; a grant shared by several requests is re-dated in the Page's
window once, when the last of them is written."""

from __future__ import annotations

import asyncio

import pytest

from pagecast.ratelimit import Grant
from pagecast.worker.send import SharedGrant
from pagecast.worker.state import InFlight


async def test_taking_what_is_free_takes_up_to_n_and_waits_only_when_nothing_is() -> None:
    room = InFlight(5)
    assert await room.take_free(3) == 3
    assert await room.take_free(10) == 2  # only two were left
    waiting = asyncio.create_task(room.take_free(4))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing free: it waits
    await room.give_back(3)
    assert await asyncio.wait_for(waiting, 5) == 3 and room.used == 5


@pytest.mark.parametrize(
    ("granted", "requests", "last_out_after_due", "redates_at"),
    [
        (3, 3, 0.0, 3),  # several calls on one grant: re-dated when the last one is out
        (1, 1, 0.004, None),  # one call out within LATE_AFTER of its slot keeps its date
        (1, 1, 0.006, 1),  # one call that left late is re-dated
        (50, 1, 0.0, 1),  # a Graph batch: one request, several calls
    ],
)
def test_a_shared_grant_is_re_dated_once_after_its_last_request(
    granted: int, requests: int, last_out_after_due: float, redates_at: int | None
) -> None:
    due = 1000.0
    shared = SharedGrant(Grant(granted, 0.0, "1"), requests, due=due)
    answers = [
        shared.written(due + (last_out_after_due if i == requests else 0.0))
        for i in range(1, requests + 1)
    ]
    assert answers == [i == redates_at for i in range(1, requests + 1)]


@pytest.mark.parametrize(
    ("outcomes", "redates_at"),
    [
        (["written", "unsent", "written"], 3),  # one failed before its write: the others count
        (["unsent", "written", "unsent"], 3),
        (["unsent", "unsent", "unsent"], None),  # nothing left: nothing to re-date
    ],
)
def test_a_request_that_failed_before_its_write_still_settles_the_shared_grant(
    outcomes: list[str], redates_at: int | None
) -> None:
    shared = SharedGrant(Grant(3, 0.0, "1"), 3, due=1000.0)
    answers = [
        shared.written(1000.0) if what == "written" else shared.unsent() for what in outcomes
    ]
    assert answers == [i == redates_at for i in range(1, 4)]
