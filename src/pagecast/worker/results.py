"""Writing a chunk's results: the Page's throttle, stopping a Page whose token or
permission failed, the campaign's circuit breaker (`breaker`), the retry round of what is
due again (`schedule_retry`), and the chunk's metrics."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from pagecast.db import until_written
from pagecast.graph import (
    ErrorKind,
    code_text,
    is_spam_warning,
    revokes_token,
)
from pagecast.models import (
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    Page,
)
from pagecast.queue import REDIS_DOWN
from pagecast.services import breaker as breakers
from pagecast.services import campaign_events, deliveries, pages, retries, sending
from pagecast.worker.outcome import regain_after
from pagecast.worker.state import Env

__all__ = ["breaker", "count", "finish_chunk", "schedule_retry"]

logger = logging.getLogger(__name__)

_DB_PATIENCE = 300.0  # seconds a worker keeps retrying a result write while the database is down


async def finish_chunk(
    env: Env,
    campaign: Campaign,
    page: Page,
    claimed: Sequence[deliveries.Claimed],
    outcomes: list[deliveries.Outcome],
    first_id: int,
    last_id: int,
) -> None:
    now = env.clock.now()
    contact_of = {c.delivery_id: c.contact_id for c in claimed}
    throttles = [o for o in outcomes if o.error_kind == ErrorKind.THROTTLE.value]
    stops = [o for o in outcomes if o.error_kind == ErrorKind.STOP_PAGE.value]
    if throttles:
        first = throttles[0]
        try:
            await env.limiter.throttle(
                page.id,
                regain_after(throttles),
                f"Graph error {code_text(first.error_code, first.error_subcode)}",
            )
        except REDIS_DOWN:  # the results must still be written
            logger.warning("page %d: could not throttle, Redis failed", page.id)

    async def write() -> None:
        nonlocal outcomes
        async with env.db.transaction() as session:
            status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign.id))
            if status is CampaignStatus.CANCELLED:
                # Cancelled while this chunk held them: what it did not send ends cancelled too.
                outcomes = [
                    dataclasses.replace(o, status=DeliveryStatus.CANCELLED, reason="cancelled")
                    if o.status is DeliveryStatus.PENDING
                    else o
                    for o in outcomes
                ]
            # Contacts before deliveries before the campaign row: the order webhook
            # batches take them in too (record locks the people first).
            await deliveries.record(session, campaign.id, outcomes, worker_id=env.state.id, now=now)
            unreachable = [
                contact_of[o.delivery_id] for o in outcomes if o.reason == "recipient_unreachable"
            ]
            await deliveries.mark_unreachable(session, unreachable, now)
            if stops:
                code = stops[0]
                page_status = pages.stopped_status(revokes_token(code.error_code))
                reason = (
                    f"{code.error_message} (code {code_text(code.error_code, code.error_subcode)})"
                )
                await sending.stop_page(session, page.id, page_status, reason)
                logger.warning("page %d stopped: %s", page.id, reason)
            await breaker(env, session, campaign.id, outcomes)
            if not (throttles or stops or env.state.stopping.is_set()):
                await schedule_retry(env, session, campaign, first_id, last_id)
            if not await sending.finish_if_done(session, campaign.id):
                await _progress(env, session, campaign.id)

    # The messages are out: their results must land even if the database blips.
    await until_written(write, patience=_DB_PATIENCE, sleep=env.clock.sleep)
    logger.info(
        "campaign %d: chunk %d-%d done (%s)",
        campaign.id,
        first_id,
        last_id,
        ", ".join(f"{s.value} {n}" for s, n in sorted(count(outcomes).items())),
    )
    try:
        await env.queue.record_metrics(
            page.fb_page_id,
            latencies=[o.latency for o in outcomes if o.latency is not None],
            outcomes={k.value: n for k, n in count(outcomes).items()},
            throttled=bool(throttles),
        )
    except Exception:
        logger.debug("metrics not recorded", exc_info=True)


async def _progress(env: Env, session: Any, campaign_id: int) -> None:
    """`campaign.progress` at most every `PROGRESS_EVERY` per campaign: this worker asks the
    database (`campaign_events.progress`, which knows every worker's last event) only when
    it has not asked for that long, so most chunks add no query."""
    now = env.clock.now()
    looked = env.state.progress_looked.get(campaign_id)
    if looked is not None and now - looked < campaign_events.PROGRESS_EVERY:
        return
    env.state.progress_looked[campaign_id] = now
    await campaign_events.progress(session, campaign_id, now=now)


async def breaker(
    env: Env, session: Any, campaign_id: int, outcomes: Sequence[deliveries.Outcome]
) -> None:
    """Pause the campaign when Facebook warned it looks like spam, or when its requests
    keep being refused (services/breaker.py); the pause is audited."""
    warned = next((o for o in outcomes if is_spam_warning(o.error_code, o.error_subcode)), None)
    if warned is not None:
        # Its deliveries are back to pending with the attempt refunded (a throttle):
        # a resume sends them.
        reason = await breakers.stop(
            session,
            campaign_id,
            "Facebook warned that this campaign's messages could be seen as spam "
            f"(Graph error 613/2018338): {warned.error_message}. Check the content and "
            "audience, then resume.",
        )
    else:
        reason = await breakers.check(
            session,
            campaign_id,
            outcomes,
            consecutive=env.config.breaker_consecutive,
            ratio=env.config.breaker_ratio,
            window=env.config.breaker_window,
        )
    if reason:
        logger.warning("campaign %d paused: %s", campaign_id, reason)


async def schedule_retry(
    env: Env, session: Any, campaign: Campaign, first_id: int, last_id: int
) -> None:
    due = await retries.next_retry_due(session, campaign.id, first_id, last_id)
    if due is not None:
        delay = max(0.0, (due - env.clock.now()).total_seconds())
        try:
            await env.queue.enqueue_chunks(
                campaign.id,
                [(first_id, last_id)],
                priority=campaign.priority.value,
                delay_s=delay + 0.05,
                round_=int(due.timestamp() * 1000),
            )
        except REDIS_DOWN:  # the periodic sweep re-plans the pending deliveries
            logger.warning("campaign %d: retry round not enqueued, Redis failed", campaign.id)


def count(outcomes: Sequence[deliveries.Outcome]) -> dict[DeliveryStatus, int]:
    result: dict[DeliveryStatus, int] = {}
    for outcome in outcomes:
        result[outcome.status] = result.get(outcome.status, 0) + 1
    return result
