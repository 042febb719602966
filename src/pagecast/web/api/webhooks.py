"""The Messenger webhook: Meta's verification handshake and signed event deliveries.

These two routes need no login (Meta calls them); the POST is authenticated by its
`X-Hub-Signature-256` instead. Events are stored in one transaction and acknowledged at
once; processing happens after the answer, in the worker (`webhook` job), or inline in
this process when Redis is unreachable.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import PlainTextResponse
from redis.exceptions import RedisError
from sqlalchemy import select

from pagecast import webhook_runner
from pagecast.context import AppContext
from pagecast.errors import Forbidden, InvalidInput, ServiceUnavailable
from pagecast.graph.security import verify_signature
from pagecast.models import Page
from pagecast.services import pages, webhooks
from pagecast.web.deps import ContextDep

__all__ = ["router"]

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-hub-signature-256"


@router.get("/messenger", response_class=PlainTextResponse)
async def verify(request: Request, ctx: ContextDep) -> PlainTextResponse:
    """Meta's subscription check: echo `hub.challenge` when the verify token matches."""
    params = request.query_params
    expected = ctx.settings.webhook_verify_token
    given = params.get("hub.verify_token", "")
    if (
        expected is None
        or params.get("hub.mode") != "subscribe"
        or not hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
    ):
        raise Forbidden(
            "Webhook verification refused: hub.mode must be `subscribe` and hub.verify_token "
            "must equal PAGECAST_WEBHOOK_VERIFY_TOKEN."
        )
    return PlainTextResponse(params.get("hub.challenge", ""))


async def _secret(ctx: AppContext, body: Any) -> str | None:
    """The Page's own app secret when the body's Page has one, else PAGECAST_APP_SECRET."""
    ids = webhooks.page_ids(body)
    own: set[str] = set()
    if ids:
        async with ctx.db.transaction() as session:
            for page in await session.scalars(
                select(Page).where(Page.fb_page_id.in_(ids), Page.app_secret_encrypted.is_not(None))
            ):
                secret = pages.credentials(ctx.vault, page)[1]
                if secret:
                    own.add(secret)
    if len(own) > 1:
        return None  # one body cannot be signed by two apps
    return ctx.app_secret_for(next(iter(own), None))


@router.post("/messenger")
async def receive(request: Request, ctx: ContextDep, background: BackgroundTasks) -> dict[str, Any]:
    """Verify the signature over the raw bytes, store the events, acknowledge."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    secret = await _secret(ctx, body)
    if secret is None:
        raise Forbidden(
            "Webhook refused: no app secret to check X-Hub-Signature-256 with. Set "
            "PAGECAST_APP_SECRET (or give the Page its app secret)."
        )
    if not verify_signature(secret, raw, request.headers.get(SIGNATURE_HEADER)):
        raise Forbidden("Webhook refused: X-Hub-Signature-256 is missing or does not match.")
    if not isinstance(body, dict):
        raise InvalidInput("The webhook body is not a JSON object.")
    async with ctx.db.transaction() as session:
        stored = await webhooks.store(session, body)
    ids = [event.id for event in stored]
    if ids:
        background.add_task(_dispatch, ctx, ids, request.app)  # after the answer
    return {"ok": True, "stored": len(ids)}


def _reactions(ctx: AppContext, app: Any) -> webhook_runner.Reactions:
    """One per app, so the profile lookups of this process share one rate limit."""
    reactions = getattr(app.state, "webhook_reactions", None)
    if reactions is None:
        reactions = webhook_runner.Reactions(
            graph=ctx.graph, vault=ctx.vault, app_secret=ctx.app_secret_for(None)
        )
        app.state.webhook_reactions = reactions
    return reactions  # type: ignore[no-any-return]


async def _dispatch(ctx: AppContext, event_ids: list[int], app: Any) -> None:
    try:
        await ctx.queue.enqueue_webhook(event_ids)
    except (ServiceUnavailable, RedisError, OSError) as exc:
        # Without Redis the events are processed here, so contacts, opt-outs and receipts
        # still flow in; the worker's sweep picks up whatever this misses.
        logger.warning(
            "queue unavailable (%s); processing %d webhook events inline", exc, len(event_ids)
        )
        await webhook_runner.run(ctx.db, event_ids, _reactions(ctx, app))
