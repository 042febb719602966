"""Test sends: a campaign's message, rendered for each chosen tester, sent at once through
the Graph client with the Page's credentials (not through the queue), shared by the API,
the dashboard and the CLI.

The rules (who may get a test, the audit line) are `services.testers`; this module makes
the calls. `send_message_to` is the one place a test message goes out: a campaign of several
messages sends them there, in order.
"""

from __future__ import annotations

import asyncio
import logging

from pagecast.context import AppContext
from pagecast.graph import ErrorKind, GraphError, PageCredentials
from pagecast.message_schema import Content
from pagecast.models import Campaign, utcnow
from pagecast.permissions import Actor
from pagecast.services import content, pacing, pages, testers

__all__ = ["MAX_WAIT_S", "send_message_to", "send_tests"]

logger = logging.getLogger(__name__)

# A test waits this long at most for a slot of its Page's limiter (a campaign sending at the
# Page's full rate, or a throttle); longer, and that tester's result says to try again.
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


async def send_tests(
    ctx: AppContext, actor: Actor, campaign_id: int, contact_ids: list[int]
) -> list[testers.Result]:
    """Send the campaign's test to the chosen contacts: one result per contact, in the order
    asked (each id once), recorded in the campaign's audit trail.

    Raises:
        NotFound, InvalidState: see `services.testers.plan` (nothing sent, nothing recorded).
        ServiceUnavailable: Redis (the Page's limiter) is configured but does not answer.
    """
    async with ctx.db.transaction() as session:
        plan = await testers.plan(session, campaign_id, contact_ids, now=utcnow())
        token, page_secret = pages.credentials(ctx.vault, plan.page)
    if plan.ready and ctx.redis_url is not None:
        await ctx.queue.redis()  # a 503 naming Redis before anything is sent
    creds = PageCredentials(token, ctx.app_secret_for(page_secret))
    rate = pacing.rate_within(plan.page.send_rate, plan.campaign.send_rate)
    results = dict(plan.refused)
    for tester in plan.ready:
        results[tester.contact_id] = await _send_one(ctx, creds, plan, tester, rate)
    ordered = [results[contact_id] for contact_id in plan.order]
    async with ctx.db.transaction() as session:
        await testers.record(session, actor, plan.campaign.id, ordered)
    return ordered


async def _send_one(
    ctx: AppContext, creds: PageCredentials, plan: testers.Plan, tester: testers.Tester, rate: float
) -> testers.Result:
    waited = await _slot(ctx, plan.page.id, rate)
    if waited is not None:
        return testers.Result(tester.contact_id, "failed", reason=waited)
    try:
        message_id = await send_message_to(ctx, creds, plan.campaign, plan.content, tester)
    except GraphError as exc:
        logger.info(
            "test of campaign %d to contact %d failed: %s (fbtrace_id %s)",
            plan.campaign.id,
            tester.contact_id,
            exc.kind.value,
            exc.fbtrace_id,
        )
        said = _KIND_WORDS.get(exc.kind, "Facebook refused the message")
        return testers.Result(tester.contact_id, "failed", reason=f"{said} ({exc.message}).")
    return testers.Result(tester.contact_id, "sent", message_id=message_id)


async def _slot(ctx: AppContext, page_id: int, rate: float) -> str | None:
    """Take a slot of the Page's limiter (shared with its campaigns) when Redis is
    configured; None once taken, else why the test was not sent."""
    if ctx.redis_url is None:  # a CLI without Redis: no campaign of this process sends
        return None
    waited = 0.0
    while (wait := await ctx.limiter.reserve(page_id, rate)) > 0:
        if waited + wait > MAX_WAIT_S:
            return (
                f"The Page's send rate is taken for the next {wait:.0f} s (a campaign is "
                "sending, or Facebook slowed the Page down); send the test again shortly."
            )
        await asyncio.sleep(wait)
        waited += wait
    return None


async def send_message_to(
    ctx: AppContext,
    creds: PageCredentials,
    campaign: Campaign,
    message: Content,
    tester: testers.Tester,
) -> str | None:
    """Send the campaign's message, rendered for `tester`, through the Graph client; the
    message id Facebook gave. No `metadata`: an echo of it matches no delivery.

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
