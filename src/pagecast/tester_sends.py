"""Test sends: a campaign's message, rendered for each chosen tester, sent at once through
the Graph client with the Page's credentials (not through the queue), shared by the API,
the dashboard and the CLI.

The rules (who may get a test, the audit line) are `services.testers`; this module makes
the calls. Each tester gets the campaign's messages (`campaigns.effective_messages`: one, or
a sequence of up to 3) in order, one Send API call each, each paced by the Page's limiter
like the Page's campaigns; a message refused stops that tester's sequence there, and a
throttling answer slows the Page down for its workers as theirs do.
"""

from __future__ import annotations

import asyncio
import logging

from pagecast.context import AppContext
from pagecast.graph import DEFAULT_THROTTLE_SECONDS, ErrorKind, GraphError, PageCredentials
from pagecast.message_schema import Content
from pagecast.models import Campaign, utcnow
from pagecast.permissions import Actor
from pagecast.queue import REDIS_DOWN
from pagecast.services import content, pages, testers
from pagecast.services.retries import PER_SECOND_PAUSE

__all__ = ["MAX_WAIT_S", "send_message_to", "send_tests"]

logger = logging.getLogger(__name__)

# A request waits this long at most, all its testers together, for slots of its Page's
# limiter (a campaign sending at the Page's full rate, or a throttle); the testers whose slot
# comes later are `failed` with a "try again" reason.
MAX_WAIT_S = 5.0

_KIND_WORDS = {
    ErrorKind.RETRY: "Facebook had a temporary problem; try again",
    ErrorKind.THROTTLE: "Facebook is rate-limiting the Page; try again in a minute",
    ErrorKind.STOP_PAGE: "Facebook refused the Page's token or permissions; reconnect the Page",
    ErrorKind.RECIPIENT_UNREACHABLE: "Facebook says this person cannot be messaged",
    ErrorKind.OUTSIDE_WINDOW: "Facebook says this person is outside the messaging window",
    ErrorKind.BAD_REQUEST: "Facebook refused the message as invalid",
    ErrorKind.AMBIGUOUS: "No answer from Facebook; the message may or may not have arrived",
}
_REDIS_FAILED = (
    "Redis (the Page's send limiter) stopped answering, so this test was not sent; "
    "check Redis (GET /api/admin/health), then send the test again."
)
_CUT_SHORT = "The request ended while this test was being sent; it may or may not have arrived."


async def send_tests(
    ctx: AppContext,
    actor: Actor,
    campaign_id: int,
    contact_ids: list[int],
    *,
    max_wait: float = MAX_WAIT_S,
) -> list[testers.Result]:
    """Send the campaign's test to the chosen contacts: one result per contact, in the order
    asked (each id once), recorded in the campaign's audit trail whatever happens once the
    sending began (an error or a cancellation records the results so far).

    `max_wait` is the most the whole request waits for its Page's limiter.

    Raises:
        NotFound, InvalidState: see `services.testers.plan` (nothing sent, nothing recorded).
        ServiceUnavailable: Redis (the Page's limiter) is configured but does not answer
            (nothing sent, nothing recorded).
    """
    async with ctx.db.transaction() as session:
        plan = await testers.plan(session, campaign_id, contact_ids, now=utcnow())
        token, page_secret = pages.credentials(ctx.vault, plan.page)
    if plan.ready and ctx.redis_url is not None:
        await ctx.queue.redis()  # a 503 naming Redis before anything is sent
    creds = PageCredentials(token, ctx.app_secret_for(page_secret))
    results = dict(plan.refused)
    try:
        await _send_all(ctx, creds, plan, results, max_wait)
    finally:
        ordered = [results[c] for c in plan.order if c in results]
        async with ctx.db.transaction() as session:
            await testers.record(session, actor, plan.campaign.id, ordered)
    return ordered


async def _send_all(
    ctx: AppContext,
    creds: PageCredentials,
    plan: testers.Plan,
    results: dict[int, testers.Result],
    max_wait: float,
) -> None:
    """Send to `plan.ready` one after the other, filling `results` as each answer comes."""
    page = plan.page
    limited = ctx.redis_url is not None
    # The Page's own rate, lowered while a recent 613 cut it (as chunk.py sends at).
    rate = await ctx.limiter.capped(page.id, page.send_rate) if limited else page.send_rate
    deadline = asyncio.get_running_loop().time() + max_wait
    stop_reason: str | None = None
    count = len(plan.messages)
    for tester in plan.ready:
        result: testers.Result | None = None
        for index, message in enumerate(plan.messages):
            if stop_reason is None and limited:
                stop_reason = await _slot(ctx, page.id, rate, deadline)
            if stop_reason is not None:
                result = _failed(tester, stop_reason, index, count)
                break
            try:
                result = await _send_one(ctx, creds, plan, message, tester, rate)
            except BaseException:
                results[tester.contact_id] = _failed(tester, _CUT_SHORT, index, count)
                raise
            if result.status != "sent":
                result = _failed(tester, result.reason or "", index, count)
                break
        assert result is not None
        results[tester.contact_id] = result


def _failed(tester: testers.Tester, reason: str, index: int, count: int) -> testers.Result:
    """A tester's failure; in a sequence, which message it stopped at (those before it
    were sent)."""
    if count > 1:
        before = {0: "", 1: " Message 1 was sent."}.get(index, f" Messages 1-{index} were sent.")
        reason = f"Message {index + 1} of {count}: {reason}{before}"
    return testers.Result(tester.contact_id, "failed", reason=reason)


async def _send_one(
    ctx: AppContext,
    creds: PageCredentials,
    plan: testers.Plan,
    message: Content,
    tester: testers.Tester,
    rate: float,
) -> testers.Result:
    try:
        message_id = await send_message_to(ctx, creds, plan.campaign, message, tester)
    except GraphError as exc:
        logger.info(
            "test of campaign %d to contact %d failed: %s (fbtrace_id %s)",
            plan.campaign.id,
            tester.contact_id,
            exc.kind.value,
            exc.fbtrace_id,
        )
        if exc.kind is ErrorKind.THROTTLE and ctx.redis_url is not None:
            await _throttled(ctx, plan.page.id, rate, exc)
        said = _KIND_WORDS.get(exc.kind, "Facebook refused the message")
        return testers.Result(tester.contact_id, "failed", reason=f"{said} ({exc.message}).")
    return testers.Result(tester.contact_id, "sent", message_id=message_id)


async def _throttled(ctx: AppContext, page_id: int, rate: float, exc: GraphError) -> None:
    """Tell the Page's limiter, as the worker does for a throttled chunk: Graph's per-second
    limit lowers the Page's rate (`slow_down`, worker/outcome.py) and pauses it a window;
    any throttle pauses the Page for every worker for its regain time (worker/results.py)."""
    try:
        if exc.per_second_limit:
            await ctx.limiter.slow_down(page_id, rate)
            pause = PER_SECOND_PAUSE
        else:
            pause = exc.regain_seconds or DEFAULT_THROTTLE_SECONDS
        await ctx.limiter.throttle(page_id, pause, f"Graph error {exc.code_text}")
    except REDIS_DOWN:  # the test's result matters more than the slowdown
        logger.warning("page %d: could not throttle after a test, Redis failed", page_id)


async def _slot(ctx: AppContext, page_id: int, rate: float, deadline: float) -> str | None:
    """Take a slot of the Page's limiter (shared with its campaigns), waiting until the
    request's `deadline` at most: None once taken, else why the test was not sent."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            wait = await ctx.limiter.reserve(page_id, rate)
        except REDIS_DOWN as exc:
            logger.warning("page %d: Redis failed under a test send (%s)", page_id, exc)
            return _REDIS_FAILED
        if wait <= 0:
            return None
        if loop.time() + wait > deadline:
            return (
                f"The Page's send rate is taken for the next {max(1, round(wait))} s (a "
                "campaign is sending, or Facebook slowed the Page down); send the test again "
                "shortly."
            )
        await asyncio.sleep(wait)


async def send_message_to(
    ctx: AppContext,
    creds: PageCredentials,
    campaign: Campaign,
    message: Content,
    tester: testers.Tester,
) -> str | None:
    """Send one of the campaign's messages, rendered for `tester`, through the Graph client;
    the message id Facebook gave. No `metadata`: an echo of it matches no delivery.

    Raises:
        GraphError: Facebook (or the network) refused it.
    """
    person = {"first_name": tester.first_name, "last_name": tester.last_name}
    result = await ctx.graph.send_message(
        creds,
        psid=tester.psid,
        message=content.to_message(message, person),
        messaging_type=campaign.messaging_type.value,
        tag=campaign.tag,
    )
    return result.message_id
