"""One Send request: a message alone, or a Graph batch of several, written when its limiter
slots open; each message's answer becomes its delivery's outcome (outcome.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from pagecast.graph import BatchMessage, GraphError, PageCredentials, SendResult
from pagecast.message_schema import Content
from pagecast.models import Campaign
from pagecast.queue import REDIS_DOWN
from pagecast.ratelimit import LATE_AFTER, Grant
from pagecast.services import content, deliveries, echoes
from pagecast.worker.outcome import outcome
from pagecast.worker.state import Env

__all__ = ["send"]

logger = logging.getLogger(__name__)


class SharedGrant:
    """A limiter grant and the requests that use its slots: one Graph batch, or several
    single sends. Once each of its requests is written or has failed before it could be,
    its calls are re-dated in the Page's window (`PageLimiter.left`) if any was written and
    the grant covers several calls (Graph takes them in over a moment) or the latest write
    came more than `LATE_AFTER` after `due`.

    `due` (monotonic) is when the slots start counted from the moment the worker *asked*
    for them: the grant was made no earlier, so a worker that read Redis's answer late
    (a busy event loop) still finds its calls late, though each waited only until its own
    hold (`leaves_at`: when the answer was read, plus the grant's wait) was over.
    """

    def __init__(self, grant: Grant, requests: int, due: float) -> None:
        self.grant = grant
        self._pending = requests
        self._several = grant.granted > 1
        self._due = due
        self._latest: float | None = None

    def written(self, at: float) -> bool:
        """One request is out at `at` (monotonic); whether the caller must now re-date."""
        self._latest = at if self._latest is None else max(self._latest, at)
        return self._settle()

    def unsent(self) -> bool:
        """One request failed before it was written; whether the caller must now re-date."""
        return self._settle()

    def _settle(self) -> bool:
        self._pending -= 1
        if self._pending or self._latest is None:
            return False
        return self._several or self._latest - self._due > LATE_AFTER


async def send(
    env: Env,
    creds: PageCredentials,
    campaign: Campaign,
    messages: Sequence[Content],
    group: Sequence[deliveries.Claimed],
    halt: asyncio.Event,
    *,
    rate: float,
    grant: SharedGrant,
    leaves_at: float,
    by_variant: Mapping[str, Sequence[Content]] | None = None,
) -> list[deliveries.Outcome]:
    """Send `group`, its in-flight room and limiter slots (`grant`, whose slots start at
    `leaves_at` on the monotonic clock) already taken: one request for one message, one
    Graph batch request for several, written no earlier than `leaves_at`. Each delivery
    gets the next message of `messages` (of its A/B variant's in `by_variant`, when it has
    one) it has not had (`Claimed.parts_sent`) and its own
    outcome; a failure of the whole request (transport, token) is the answer for each."""
    answers: Sequence[SendResult | GraphError]
    started = time.perf_counter()
    redate: asyncio.Task[None] | None = None
    written = False
    try:
        batch = [
            BatchMessage(
                psid=item.recipient.psid,
                message=content.to_message(
                    ((by_variant or {}).get(item.variant or "") or messages)[item.parts_sent],
                    {
                        "first_name": item.recipient.first_name,
                        "last_name": item.recipient.last_name,
                    },
                ),
                messaging_type=campaign.messaging_type.value,
                tag=campaign.tag,
                metadata=echoes.metadata(item.delivery_id, item.parts_sent, len(messages)),
            )
            for item in group
        ]

        def sent() -> None:
            # Written late after the grant (a busy event loop), or several calls on one
            # grant: the limiter's window must count them from when Graph got them.
            nonlocal redate, started, written
            started = time.perf_counter()  # Graph's latency counts from here, not the hold
            written = True
            if redate is None and grant.written(time.monotonic()):
                redate = asyncio.create_task(_left(env, campaign.page_id, grant.grant))

        if len(batch) == 1:
            one = batch[0]
            answers = [
                await env.graph.send_message(
                    creds,
                    psid=one.psid,
                    message=one.message,
                    messaging_type=one.messaging_type,
                    tag=one.tag,
                    metadata=one.metadata,
                    on_sent=sent,
                    not_before=leaves_at,
                )
            ]
        else:
            answers = await env.graph.send_batch(creds, batch, on_sent=sent, not_before=leaves_at)
    except GraphError as exc:
        answers = [exc] * len(group)
    finally:
        await env.state.in_flight.give_back(len(group))
        if not written and grant.unsent():  # the grant's other requests are out
            redate = asyncio.create_task(_left(env, campaign.page_id, grant.grant))
        if redate is not None:
            await redate
    latency = time.perf_counter() - started
    answered = env.clock.now()  # when Facebook accepted what it accepted (as close as we know)
    outcomes = [
        await outcome(
            env,
            campaign.id,
            campaign.page_id,
            item,
            answer,
            halt,
            parts=len(messages),
            rate=rate,
            latency=latency,
            answered=answered,
        )
        for item, answer in zip(group, answers, strict=True)
    ]
    usage = max(
        (a.usage.max_percent for a in answers if isinstance(a, SendResult) and a.usage.present),
        default=0.0,
    )
    if usage >= 90:
        try:
            await env.limiter.note_usage(campaign.page_id, usage)
        except REDIS_DOWN:  # the send's result matters more than the slowdown
            logger.warning("page %d: could not note usage, Redis failed", campaign.page_id)
    return outcomes


async def _left(env: Env, page_id: int, grant: Grant) -> None:
    try:
        await env.limiter.left(page_id, grant)
    except REDIS_DOWN:  # the 20 ms the window allows for lateness is all there is
        logger.warning("page %d: could not re-date a late grant, Redis failed", page_id)
