"""What one Graph answer means for its delivery: the retry rule (`failure`, with
`backoff_seconds`), and what an error does to the Page (throttle, 613 slow-down) and to the
campaign's breaker streak (`outcome`)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import datetime, timedelta

from pagecast.graph import ErrorKind, GraphError, SendResult
from pagecast.models import DeliveryStatus, utcnow
from pagecast.ratelimit import PER_SECOND_PAUSE
from pagecast.services import deliveries
from pagecast.worker.config import WorkerConfig
from pagecast.worker.state import Env

__all__ = ["backoff_seconds", "failure", "outcome", "per_second_limit"]


def per_second_limit(exc: GraphError) -> bool:
    return exc.code == 613 and exc.subcode is None and exc.usage.regain_seconds <= 0


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter on the upper half: base·2^(attempt-1), capped."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.random() * ceiling / 2


async def outcome(
    env: Env,
    campaign_id: int,
    page_id: int,
    item: deliveries.Claimed,
    answer: SendResult | GraphError,
    halt: asyncio.Event,
    *,
    rate: float,
    latency: float,
    answered: datetime,
) -> deliveries.Outcome:
    """One message's answer as its delivery's outcome; an error also acts on the Page and
    on the campaign's breaker."""
    bad_streak = env.state.bad_streak
    if isinstance(answer, SendResult):
        bad_streak[campaign_id] = 0
        return deliveries.Outcome(
            item.delivery_id,
            DeliveryStatus.SENT,
            message_id=answer.message_id,
            sent_at=answered,
            latency=latency,
        )
    if answer.kind in (ErrorKind.THROTTLE, ErrorKind.STOP_PAGE):
        halt.set()
    if per_second_limit(answer):
        await env.limiter.slow_down(page_id, rate)
    if answer.kind is ErrorKind.BAD_REQUEST:
        bad_streak[campaign_id] = bad_streak.get(campaign_id, 0) + 1
    return dataclasses.replace(failure(env.config, item, answer), latency=latency)


def failure(config: WorkerConfig, item: deliveries.Claimed, exc: GraphError) -> deliveries.Outcome:
    """Turn a classified Graph error into the delivery's next state (DESIGN.md invariant 5)."""
    base = dict(
        error_code=exc.code,
        error_subcode=exc.subcode,
        error_kind=exc.kind.value,
        error_message=exc.message,
        fbtrace_id=exc.fbtrace_id,
    )
    kind = exc.kind
    if kind is ErrorKind.RETRY:
        if item.attempts >= config.max_attempts:
            return deliveries.Outcome(
                item.delivery_id, DeliveryStatus.FAILED, reason="retries_exhausted", **base
            )
        wait = backoff_seconds(item.attempts, config.retry_base, config.retry_cap)
        return deliveries.Outcome(
            item.delivery_id,
            DeliveryStatus.PENDING,
            reason="retrying",
            next_attempt_at=utcnow() + timedelta(seconds=wait),
            **base,
        )
    if kind in (ErrorKind.THROTTLE, ErrorKind.STOP_PAGE):
        return deliveries.Outcome(
            item.delivery_id,
            DeliveryStatus.PENDING,
            reason=kind.value,
            refund_attempt=True,
            retry_after=PER_SECOND_PAUSE if per_second_limit(exc) else exc.regain_seconds,
            **base,
        )
    if kind is ErrorKind.RECIPIENT_UNREACHABLE:
        return deliveries.Outcome(
            item.delivery_id, DeliveryStatus.FAILED, reason="recipient_unreachable", **base
        )
    if kind is ErrorKind.OUTSIDE_WINDOW:
        return deliveries.Outcome(
            item.delivery_id, DeliveryStatus.SKIPPED, reason="outside_window", **base
        )
    if kind is ErrorKind.AMBIGUOUS:
        return deliveries.Outcome(
            item.delivery_id, DeliveryStatus.UNKNOWN, reason="ambiguous", **base
        )
    return deliveries.Outcome(item.delivery_id, DeliveryStatus.FAILED, reason="bad_request", **base)
