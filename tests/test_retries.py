"""services/retries.py: what a delivery becomes after a Graph error, as tables of cases (no
worker, no database for the rule; the retry query runs on both test databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pagecast.db import Database
from pagecast.graph import ErrorKind
from pagecast.models import Delivery, DeliveryStatus
from pagecast.services import retries
from pagecast.services.retries import (
    Failure,
    RetryPolicy,
    after_failure,
    backoff_seconds,
    next_retry_due,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base=2.0, cap=60.0)

# kind, attempts, status, reason, refunded, retried later
_TABLE = [
    (ErrorKind.RETRY, 1, DeliveryStatus.PENDING, "retrying", False, True),
    (ErrorKind.RETRY, 2, DeliveryStatus.PENDING, "retrying", False, True),
    (ErrorKind.RETRY, 3, DeliveryStatus.FAILED, "retries_exhausted", False, False),
    (ErrorKind.RETRY, 4, DeliveryStatus.FAILED, "retries_exhausted", False, False),
    (ErrorKind.THROTTLE, 1, DeliveryStatus.PENDING, "throttle", True, False),
    (ErrorKind.THROTTLE, 3, DeliveryStatus.PENDING, "throttle", True, False),
    (ErrorKind.STOP_PAGE, 1, DeliveryStatus.PENDING, "stop_page", True, False),
    (ErrorKind.STOP_PAGE, 3, DeliveryStatus.PENDING, "stop_page", True, False),
    (
        ErrorKind.RECIPIENT_UNREACHABLE,
        1,
        DeliveryStatus.FAILED,
        "recipient_unreachable",
        False,
        False,
    ),
    (
        ErrorKind.RECIPIENT_UNREACHABLE,
        3,
        DeliveryStatus.FAILED,
        "recipient_unreachable",
        False,
        False,
    ),
    (ErrorKind.OUTSIDE_WINDOW, 1, DeliveryStatus.SKIPPED, "outside_window", False, False),
    (ErrorKind.OUTSIDE_WINDOW, 3, DeliveryStatus.SKIPPED, "outside_window", False, False),
    (ErrorKind.AMBIGUOUS, 1, DeliveryStatus.UNKNOWN, "ambiguous", False, False),
    (ErrorKind.AMBIGUOUS, 3, DeliveryStatus.UNKNOWN, "ambiguous", False, False),
    (ErrorKind.BAD_REQUEST, 1, DeliveryStatus.FAILED, "bad_request", False, False),
    (ErrorKind.BAD_REQUEST, 3, DeliveryStatus.FAILED, "bad_request", False, False),
]


def test_the_table_covers_every_error_kind() -> None:
    assert {row[0] for row in _TABLE} == set(ErrorKind)


@pytest.mark.parametrize(
    ("kind", "attempts", "status", "reason", "refunded", "later"),
    _TABLE,
    ids=[f"{row[0].value}-{row[1]}" for row in _TABLE],
)
def test_after_failure(
    kind: ErrorKind,
    attempts: int,
    status: DeliveryStatus,
    reason: str,
    refunded: bool,
    later: bool,
) -> None:
    failure = Failure(
        kind=kind.value, code=1, subcode=99, message="boom", fbtrace_id="Ab1", regain_seconds=None
    )
    outcome = after_failure(7, attempts, failure, POLICY, now=NOW, rand=lambda: 0.5)
    assert (outcome.delivery_id, outcome.status, outcome.reason) == (7, status, reason)
    assert outcome.refund_attempt is refunded
    # What Graph said is kept on the delivery, whatever became of it.
    assert (outcome.error_code, outcome.error_subcode, outcome.error_kind) == (1, 99, kind.value)
    assert (outcome.error_message, outcome.fbtrace_id) == ("boom", "Ab1")
    if later:
        # attempt n waits between half and all of base·2^(n-1): rand 0.5 is three quarters.
        ceiling = POLICY.base * 2 ** (attempts - 1)
        assert outcome.next_attempt_at == NOW + timedelta(seconds=ceiling * 0.75)
    else:
        assert outcome.next_attempt_at is None


@pytest.mark.parametrize(
    ("kind", "regain", "per_second", "retry_after"),
    [
        (ErrorKind.THROTTLE, 180.0, False, 180.0),  # the usage header's regain estimate
        (ErrorKind.THROTTLE, 60.0, True, retries.PER_SECOND_PAUSE),  # the per-second 613
        (ErrorKind.THROTTLE, None, False, None),  # the worker waits its default then
        (ErrorKind.STOP_PAGE, None, False, None),
    ],
)
def test_a_waiting_page_says_how_long(
    kind: ErrorKind, regain: float | None, per_second: bool, retry_after: float | None
) -> None:
    failure = Failure(kind=kind.value, code=613, regain_seconds=regain, per_second_limit=per_second)
    outcome = after_failure(1, 1, failure, POLICY, now=NOW)
    assert outcome.retry_after == retry_after
    assert retries.PER_SECOND_PAUSE == 1.0


@pytest.mark.parametrize(
    ("attempt", "rand", "seconds"),
    [
        (1, 0.0, 1.0),  # half of base
        (1, 0.999999, 2.0 - 0.000001),  # just under base
        (2, 0.0, 2.0),
        (3, 0.5, 6.0),  # 8 s ceiling: 4 + 2
        (0, 0.0, 1.0),  # attempt 0 counts as the first
        (10, 0.0, 30.0),  # capped: half the cap …
        (10, 0.999999, 60.0 - 0.00003),  # … up to the cap
    ],
)
def test_backoff_bounds(attempt: int, rand: float, seconds: float) -> None:
    assert backoff_seconds(attempt, 2.0, 60.0, lambda: rand) == pytest.approx(seconds, abs=1e-4)


def test_backoff_with_the_real_random_source_stays_within_its_bounds() -> None:
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            assert ceiling / 2 <= backoff_seconds(attempt, 2.0, 60.0) <= ceiling


async def test_next_retry_due_is_the_earliest_pending_retry_in_the_chunk(db: Database) -> None:
    soon, later = NOW + timedelta(seconds=5), NOW + timedelta(seconds=50)
    rows = [
        # id, campaign, status, next attempt
        (10, 1, DeliveryStatus.PENDING, later),
        (11, 1, DeliveryStatus.PENDING, soon),
        (12, 1, DeliveryStatus.PENDING, None),  # a first attempt, not a retry
        (13, 1, DeliveryStatus.FAILED, NOW),  # no longer pending
        (9, 1, DeliveryStatus.PENDING, NOW),  # before the chunk
        (21, 1, DeliveryStatus.PENDING, NOW),  # after it
        (14, 2, DeliveryStatus.PENDING, NOW),  # another campaign's
    ]
    async with db.transaction() as session:
        session.add_all(
            Delivery(id=i, campaign_id=c, contact_id=i, status=s, next_attempt_at=at)
            for i, c, s, at in rows
        )
    async with db.transaction() as session:
        assert await next_retry_due(session, 1, 10, 20) == soon
        assert await next_retry_due(session, 1, 12, 13) is None
        assert await next_retry_due(session, 3, 0, 100) is None
