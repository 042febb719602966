"""What one Graph answer means for its delivery (`failure`: the rule is services/retries.py),
and what an error does to the Page (the 613 slow-down) and to the campaign's breaker streak
(`outcome`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime

from pagecast.graph import DEFAULT_THROTTLE_SECONDS, ErrorKind, GraphError, SendResult
from pagecast.models import DeliveryStatus
from pagecast.services import deliveries, retries
from pagecast.worker.state import Env

__all__ = ["failure", "outcome", "regain_after"]


async def outcome(
    env: Env,
    campaign_id: int,
    page_id: int,
    item: deliveries.Claimed,
    answer: SendResult | GraphError,
    halt: asyncio.Event,
    *,
    parts: int,
    rate: float,
    latency: float,
    answered: datetime,
) -> deliveries.Outcome:
    """One message's answer as its delivery's outcome; an error also acts on the Page and
    on the campaign's breaker. A sequence's message (of `parts`) that more follow, once
    accepted, leaves the delivery `sending` with one more of its parts sent."""
    bad_streak = env.state.bad_streak
    if isinstance(answer, SendResult):
        bad_streak[campaign_id] = 0
        if item.parts_sent + 1 < parts:
            return deliveries.Outcome(
                item.delivery_id,
                DeliveryStatus.SENDING,
                parts_sent=item.parts_sent + 1,
                latency=latency,
            )
        return deliveries.Outcome(
            item.delivery_id,
            DeliveryStatus.SENT,
            message_id=answer.message_id,
            sent_at=answered,
            latency=latency,
            parts_sent=parts,
        )
    if answer.kind in (ErrorKind.THROTTLE, ErrorKind.STOP_PAGE):
        halt.set()
    if answer.per_second_limit:
        await env.limiter.slow_down(page_id, rate)
    if answer.kind is ErrorKind.BAD_REQUEST:
        bad_streak[campaign_id] = bad_streak.get(campaign_id, 0) + 1
    # What the sequence's earlier messages achieved stays recorded, whatever the write of
    # the last round's progress (deliveries.note_parts) came to.
    return dataclasses.replace(
        failure(env, item, answer), latency=latency, parts_sent=item.parts_sent or None
    )


def failure(env: Env, item: deliveries.Claimed, exc: GraphError) -> deliveries.Outcome:
    """The delivery's next state after a classified Graph error: the rule is
    `services/retries.py` (docs/design.md invariant 5); this hands it the error's meaning."""
    said = retries.Failure(
        kind=exc.kind.value,
        code=exc.code,
        subcode=exc.subcode,
        message=exc.message,
        fbtrace_id=exc.fbtrace_id,
        regain_seconds=exc.regain_seconds,
        per_second_limit=exc.per_second_limit,
    )
    config = env.config
    policy = retries.RetryPolicy(config.max_attempts, config.retry_base, config.retry_cap)
    return retries.after_failure(item.delivery_id, item.attempts, said, policy, now=env.clock.now())


def regain_after(outcomes: Sequence[deliveries.Outcome]) -> float:
    """How long the Page must be left alone after the throttled answers among `outcomes`
    (0 when none was throttled): the longest regain estimate, Graph's default where an
    answer gave none."""
    return max(
        (
            o.retry_after or DEFAULT_THROTTLE_SECONDS
            for o in outcomes
            if o.error_kind == ErrorKind.THROTTLE.value
        ),
        default=0.0,
    )
