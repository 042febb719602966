"""What happens to a delivery after Graph refused its send (docs/graph-errors.md).

`after_failure` is the rule for one delivery: a transient error is tried again after a
backoff until `max_attempts`, a throttled or stopped Page puts it back with its attempt
refunded, an unreachable person fails it, a closed window skips it, an answer never seen
leaves it `unknown` for reconciliation, and a refused request fails it.

The functions take what the error meant as a `Failure` (the worker builds it from a
`graph.GraphError`: services import no Graph code), the clock and the random source, so the
rules are tested by tables of cases without a worker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Delivery, DeliveryStatus
from pagecast.services.deliveries import Outcome

__all__ = [
    "PER_SECOND_PAUSE",
    "Failure",
    "RetryPolicy",
    "after_failure",
    "backoff_seconds",
    "next_retry_due",
]

# Graph's per-second limit (a 613 without a regain estimate, graph.errors.is_per_second_limit)
# frees its calls in the next second: the Page pauses this long, not a throttle's minute.
PER_SECOND_PAUSE = 1.0

# The error kinds (the values of graph.ErrorKind) as stored on deliveries.
_RETRY = "retry"
_THROTTLE = "throttle"
_STOP_PAGE = "stop_page"
_RECIPIENT_UNREACHABLE = "recipient_unreachable"
_OUTSIDE_WINDOW = "outside_window"
_AMBIGUOUS = "ambiguous"
_BAD_REQUEST = "bad_request"


@dataclass(frozen=True)
class Failure:
    """A Graph error as the services see it: its kind (a `graph.ErrorKind` value), what
    Graph said, and what the Page must wait (`regain_seconds` for a throttle;
    `per_second_limit` for Graph's per-second 613)."""

    kind: str
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    fbtrace_id: str | None = None
    regain_seconds: float | None = None
    per_second_limit: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a transient failure is tried again (the `max_attempts`,
    `retry_base_seconds` and `retry_cap_seconds` settings)."""

    max_attempts: int
    base: float
    cap: float


def backoff_seconds(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter on the upper half: base·2^(attempt-1), capped;
    `rand` returns a number in [0, 1)."""
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + rand() * ceiling / 2


def after_failure(
    delivery_id: int,
    attempts: int,
    failure: Failure,
    policy: RetryPolicy,
    *,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Outcome:
    """The next state of a delivery whose send (its `attempts`-th) failed with `failure`."""
    said: dict[str, Any] = dict(
        error_code=failure.code,
        error_subcode=failure.subcode,
        error_kind=failure.kind,
        error_message=failure.message,
        fbtrace_id=failure.fbtrace_id,
    )
    kind = failure.kind
    if kind == _RETRY:
        if attempts >= policy.max_attempts:
            return Outcome(delivery_id, DeliveryStatus.FAILED, reason="retries_exhausted", **said)
        wait = backoff_seconds(attempts, policy.base, policy.cap, rand)
        return Outcome(
            delivery_id,
            DeliveryStatus.PENDING,
            reason="retrying",
            next_attempt_at=now + timedelta(seconds=wait),
            **said,
        )
    if kind in (_THROTTLE, _STOP_PAGE):
        return Outcome(
            delivery_id,
            DeliveryStatus.PENDING,
            reason=kind,
            refund_attempt=True,
            retry_after=PER_SECOND_PAUSE if failure.per_second_limit else failure.regain_seconds,
            **said,
        )
    if kind == _RECIPIENT_UNREACHABLE:
        return Outcome(delivery_id, DeliveryStatus.FAILED, reason="recipient_unreachable", **said)
    if kind == _OUTSIDE_WINDOW:
        return Outcome(delivery_id, DeliveryStatus.SKIPPED, reason="outside_window", **said)
    if kind == _AMBIGUOUS:
        return Outcome(delivery_id, DeliveryStatus.UNKNOWN, reason="ambiguous", **said)
    return Outcome(delivery_id, DeliveryStatus.FAILED, reason=_BAD_REQUEST, **said)


async def next_retry_due(
    session: AsyncSession, campaign_id: int, first_id: int, last_id: int
) -> datetime | None:
    """When the earliest retry waiting in a chunk (deliveries `first_id`..`last_id`) is due,
    or None when none waits."""
    return await session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.campaign_id == campaign_id,
            Delivery.id.between(first_id, last_id),
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at.is_not(None),
        )
    )
