"""The `chunk` job: claim a range's due deliveries, re-check each contact (`precheck`), and
send them as the Page's limiter allows: the send loop.

A chunk claims its due pending deliveries in the database, takes a slot from the Page's
limiter for every send, sends through the shared Graph client with the delivery id as
`metadata` (send.py), and writes every outcome in one bulk update (results.py). What it
claimed but did not send goes back to `pending` (attempt refunded) before the job ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bullmq.custom_errors import DelayedError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from pagecast.graph import PageCredentials
from pagecast.jobs import ChunkJob
from pagecast.message_schema import Content
from pagecast.models import Campaign, CampaignStatus, DeliveryStatus, Page
from pagecast.priority_gate import PriorityGate
from pagecast.queue import REDIS_DOWN
from pagecast.ratelimit import Grant, default_burst
from pagecast.services import audience, campaigns, deliveries, pacing, pages, sending, variants
from pagecast.worker.outcome import regain_after
from pagecast.worker.results import finish_chunk, schedule_retry
from pagecast.worker.send import SharedGrant, send
from pagecast.worker.state import Env

__all__ = ["chunk", "precheck"]

logger = logging.getLogger(__name__)

# A limiter wait up to this long is slept inside the job; longer waits (a throttled Page)
# delay the whole job instead, so it does not hold a worker slot.
_MAX_INLINE_WAIT = 2.0
# Chunks of one Page that claim and send at once in a worker: two, so that the next is
# claimed and waiting for the Page's slots when one has sent its last.
_CHUNKS_PER_PAGE = 2
# A chunk asks the limiter for its next slots this long before they free, and the limiter
# grants slots that free within _GRANT_LEAD: the request is built meanwhile and leaves as
# its slots open, not a Redis round trip and a build later (which the Page's window would
# count as lost time at every turn of it).
_ASK_AHEAD = 0.015
_GRANT_LEAD = 0.03
_BATCH_SPAN = 0.2
# Redis failing under a chunk that holds claimed deliveries: record what was sent, put the
# rest back, and try the job again this much later.
_REDIS_RETRY = 5.0


async def chunk(env: Env, job: Any, token: str, payload: ChunkJob) -> str:
    """Claim the chunk's due deliveries and send them as the Page's limiter allows.

    At most `_CHUNKS_PER_PAGE` chunks of one Page claim and send at once in a worker;
    the others wait unclaimed. A claim is a promise to send soon: deliveries claimed
    while their Page's slots go to other chunks would wait in `sending`, and a worker
    that died then would leave them to reconciliation instead of back in the queue.
    """
    campaign_id = payload.campaign_id
    state = env.state
    page_id = state.page_of.get(campaign_id)
    if page_id is None:
        async with env.db.transaction() as session:
            page_id = await session.scalar(
                select(Campaign.page_id).where(Campaign.id == campaign_id)
            )
        if page_id is None:
            return "not sending"
        state.page_of[campaign_id] = page_id
    gate = state.page_gates.setdefault(page_id, PriorityGate(_CHUNKS_PER_PAGE))
    # The job's queue priority decides who claims next (a high-priority campaign's
    # chunk goes before the normal chunks already waiting here).
    priority = int(getattr(job, "priority", 0) or 0)
    await gate.acquire(priority)
    held = True

    def let_next_claim() -> None:
        nonlocal held
        if held:
            held = False
            gate.release(priority)

    try:
        return await _claim_and_send(env, job, token, payload, let_next_claim)
    finally:
        let_next_claim()


async def _claim_and_send(
    env: Env, job: Any, token: str, payload: ChunkJob, let_next_claim: Callable[[], None]
) -> str:
    campaign_id, first_id, last_id = payload.campaign_id, payload.first_id, payload.last_id
    state, clock = env.state, env.clock
    now = clock.now()
    async with env.db.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.status is not CampaignStatus.SENDING:
            return "not sending"
        if campaign.bad_streak == 0:  # a resume cleared the breaker
            state.bad_streak.pop(campaign_id, None)
        claimed = await deliveries.claim(
            session, campaign_id, first_id, last_id, worker_id=state.id, now=now
        )
        if not claimed:
            await schedule_retry(env, session, campaign, first_id, last_id)
            await sending.finish_if_done(session, campaign_id)
            return "nothing due"
        page = await session.get(Page, campaign.page_id)
        assert page is not None
        messages = await campaigns.effective_messages(session, campaign)
        by_variant = variants.by_variant(campaign)  # A/B: once per chunk, not per delivery
        token_, page_secret = pages.credentials(env.vault, page)
    creds = PageCredentials(token_, page_secret or env.app_secret)
    configured = pacing.rate_within(page.send_rate, campaign.send_rate)
    rate = await env.limiter.capped(page.id, configured)
    dispatch = _Dispatch(env, campaign, page.id, creds, messages, configured, rate, by_variant)
    outcomes: list[deliveries.Outcome] = []
    going: list[deliveries.Claimed] = []
    for item in claimed:
        verdict = precheck(campaign, item.recipient, now)
        if verdict is not None:
            outcomes.append(dataclasses.replace(verdict, delivery_id=item.delivery_id))
        elif item.parts_sent >= len(messages):  # echoes proved every message arrived
            outcomes.append(
                deliveries.Outcome(item.delivery_id, DeliveryStatus.SENT, parts_sent=len(messages))
            )
        else:
            going.append(item)
    released: list[deliveries.Claimed] = []
    sent_outcomes: list[deliveries.Outcome] = []
    delay_job_for = 0.0
    # One round sends each delivery its next message: a single message is one round; a
    # sequence's deliveries go through up to three, each person's next message only once
    # the previous was accepted (docs/sending.md, "Message sequences").
    while going:
        sent = await dispatch.round(going)
        outcomes += sent.expired
        released += sent.released
        delay_job_for = max(delay_job_for, sent.delay_job_for)
        if all(item.parts_sent + 1 >= len(messages) for item in going):
            # Everything this chunk sends is on its way: the Page's next chunk may claim
            # while these answers come in and their results are written.
            let_next_claim()
        answers = [o for one in await asyncio.gather(*sent.tasks) for o in one]
        accepted = [o for o in answers if o.status is DeliveryStatus.SENDING]
        sent_outcomes += [o for o in answers if o.status is not DeliveryStatus.SENDING]
        if accepted:
            await _note_parts(env, accepted)
        by_id = {item.delivery_id: item for item in going}
        going = [
            dataclasses.replace(by_id[o.delivery_id], parts_sent=o.parts_sent or 0)
            for o in accepted
        ]
    let_next_claim()
    outcomes += sent_outcomes
    outcomes += [
        deliveries.Outcome(
            i.delivery_id,
            DeliveryStatus.PENDING,
            refund_attempt=True,
            parts_sent=i.parts_sent or None,
        )
        for i in released
    ]
    delay_job_for = max(delay_job_for, regain_after(sent_outcomes))
    await finish_chunk(env, campaign, page, claimed, outcomes, first_id, last_id)
    if delay_job_for or (released and state.stopping.is_set()):
        await job.moveToDelayed(int((clock.time() + delay_job_for) * 1000), token)
        raise DelayedError()
    return f"{len(sent_outcomes)} sent or tried, {len(released)} released"


@dataclasses.dataclass
class _Round:
    """What one round put on its way (`tasks`: their answers), and what it did not send."""

    tasks: list[asyncio.Task[list[deliveries.Outcome]]]
    released: list[deliveries.Claimed]
    expired: list[deliveries.Outcome]
    delay_job_for: float = 0.0


class _Dispatch:
    """The send loop of a chunk: each round takes the Page's limiter slots for its
    deliveries' next messages and puts them on the wire; pause, cancel, shutdown, the
    breaker and a throttle stop it between requests."""

    def __init__(
        self,
        env: Env,
        campaign: Campaign,
        page_id: int,
        creds: PageCredentials,
        messages: list[Content],
        configured: float,
        rate: float,
        by_variant: dict[str, list[Content]] | None = None,
    ) -> None:
        self.env, self.campaign, self.page_id, self.creds = env, campaign, page_id, creds
        self.messages, self.configured, self.rate = messages, configured, rate
        self.by_variant = by_variant or {}
        self.halt = asyncio.Event()  # set by a send whose answer throttled or stopped the Page
        self.last_check = env.clock.monotonic()

    async def round(self, sends: list[deliveries.Claimed]) -> _Round:
        env, campaign = self.env, self.campaign
        state, clock, config = env.state, env.clock, env.config
        campaign_id, halt = campaign.id, self.halt
        done = _Round([], [], [])
        index = 0
        while index < len(sends):
            rate = self.rate
            # At most a fifth of a second of the rate per batch, so a slow Page is still
            # paced in small steps (and pause acts between them).
            batch = max(1, min(config.send_batch, int(rate * _BATCH_SPAN)))
            burst = max(default_burst(rate), batch)
            if clock.monotonic() - self.last_check > 1.0:  # pause and cancel act within a second
                self.last_check = clock.monotonic()
                if not await _still_sending(env, campaign_id):
                    halt.set()
            if state.bad_streak.get(campaign_id, 0) >= config.breaker_consecutive:
                halt.set()
            if halt.is_set() or state.stopping.is_set():
                done.released = sends[index:]
                break
            if campaigns.expired(campaign, clock.now()):
                done.expired = [
                    deliveries.Outcome(
                        i.delivery_id, DeliveryStatus.EXPIRED, reason="expired", refund_attempt=True
                    )
                    for i in sends[index:]
                ]
                break
            # Room in flight first, then the Page's slots, so that what the limiter grants
            # goes on the wire as its slots open (a grant that waited here could land in
            # Graph's next second with the slots granted after it). The limiter grants a
            # whole batch at once, up to _GRANT_LEAD ahead, or says when it can. Single
            # sends take every free place in flight and as many slots as the schedule has
            # (at most its burst): one Redis call for several requests when the Page's
            # limit is not what holds them back.
            left_to_send = len(sends) - index
            if batch == 1:
                want = await state.in_flight.take_free(min(burst, left_to_send))
            else:
                want = await state.in_flight.take(min(batch, left_to_send))
            asked = time.monotonic()
            try:
                grant = await env.limiter.take(
                    self.page_id,
                    rate,
                    want,
                    burst=burst,
                    least=want if batch > 1 else 1,
                    lead=_GRANT_LEAD,
                )
            except REDIS_DOWN as exc:
                logger.warning(
                    "campaign %d: Redis failed under the limiter (%s); %d deliveries go back",
                    campaign_id,
                    exc,
                    len(sends) - index,
                )
                grant = Grant(0, _REDIS_RETRY)
            except BaseException:  # a bug or a cancel: the places in flight are not ours to keep
                await state.in_flight.give_back(want)
                raise
            granted, wait = grant.granted, grant.wait
            if granted < want:
                await state.in_flight.give_back(want - granted)
            if not granted and wait <= _MAX_INLINE_WAIT:
                # Ask again a little before the slots free, so they are granted with a lead;
                # a shorter wait is a throttle's last moments (no lead for those).
                await clock.sleep(wait - _ASK_AHEAD if wait > _GRANT_LEAD else wait)
                # Another worker may have seen a 613.
                self.rate = await env.limiter.capped(self.page_id, self.configured)
                continue  # and look at pause, cancel and shutdown again
            if not granted:
                done.released = sends[index:]
                done.delay_job_for = wait
                break
            group = sends[index : index + granted]
            index += granted
            # The wire's clock, which the Graph client waits on (state.Clock).
            leaves_at = time.monotonic() + wait
            requests = [group] if batch > 1 else [[item] for item in group]
            shared = SharedGrant(grant, len(requests), due=asked + wait)
            done.tasks += [
                asyncio.create_task(
                    send(
                        env,
                        self.creds,
                        campaign,
                        self.messages,
                        request,
                        halt,
                        rate=rate,
                        grant=shared,
                        leaves_at=leaves_at,
                        by_variant=self.by_variant,
                    )
                )
                for request in requests
            ]
        return done


async def _note_parts(env: Env, accepted: list[deliveries.Outcome]) -> None:
    """Write the sequence messages just accepted, so that a retry, a resume or a
    reconciliation starts after them; with the database down the chunk goes on (the result
    write and the echoes record them too)."""
    try:
        async with env.db.transaction() as session:
            await deliveries.note_parts(
                session, accepted, worker_id=env.state.id, now=env.clock.now()
            )
    except (DBAPIError, OSError) as exc:
        logger.warning("could not note %d accepted sequence messages: %s", len(accepted), exc)


def precheck(
    campaign: Campaign, person: deliveries.Recipient, now: datetime
) -> deliveries.Outcome | None:
    """Re-check at send time what may have changed since the snapshot (invariant 7)."""
    if campaigns.expired(campaign, now):
        return deliveries.Outcome(0, DeliveryStatus.EXPIRED, reason="expired", refund_attempt=True)
    reason = audience.excluded_now(person, campaign.messaging_type, now)
    if reason is not None:
        return deliveries.Outcome(0, DeliveryStatus.SKIPPED, reason=reason, refund_attempt=True)
    return None


async def _still_sending(env: Env, campaign_id: int) -> bool:
    try:
        async with env.db.transaction() as session:
            status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    except (DBAPIError, OSError):
        # Database unreachable mid-chunk: keep going; the results wait for it (db.until_written).
        return True
    return status is CampaignStatus.SENDING
