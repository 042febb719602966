"""The Messenger webhook: Meta's verification handshake and signed event deliveries.

These two routes need no login (Meta calls them); the POST is authenticated by its
`X-Hub-Signature-256` instead. A body over PAGECAST_WEBHOOK_MAX_BODY_BYTES is refused (413)
unread (`web.body_limit`). Concurrent POSTs are checked and stored together (`web.webhook_intake`) and
acknowledged once committed; processing happens after the answer, in the worker (`webhook` job), or inline in
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

from pagecast import webhook_runner
from pagecast.context import AppContext
from pagecast.errors import Forbidden, ServiceUnavailable
from pagecast.web.deps import ContextDep
from pagecast.web.openapi import documented, errors
from pagecast.web.webhook_intake import Intake

__all__ = ["router"]

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-hub-signature-256"


@router.get("/messenger", response_class=PlainTextResponse, responses=errors(403, text_route=True))
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


@router.post("/messenger", **documented(None, 400, 403, 413, 503))
async def receive(request: Request, ctx: ContextDep, background: BackgroundTasks) -> dict[str, Any]:
    """Verify the signature over the raw bytes, store the events, acknowledge."""
    raw = await request.body()  # bounded by `web.body_limit` before it is read
    try:  # not JSON, NaN or Infinity (not JSON either), nested too deep: a 4xx
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        body = None
    stored = await _intake(ctx, request.app).submit(
        raw, request.headers.get(SIGNATURE_HEADER), body
    )
    if stored.dispatch:
        background.add_task(_dispatch, ctx, stored.dispatch, request.app)  # after the answer
    return {"ok": True, "stored": len(stored.ids)}


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _intake(ctx: AppContext, app: Any) -> Intake:
    intake = getattr(app.state, "webhook_intake", None)
    if intake is None:
        intake = app.state.webhook_intake = Intake(ctx)
    return intake


def _reactions(ctx: AppContext, app: Any) -> webhook_runner.Reactions:
    """One per app, so the profile lookups of this process share one rate limit."""
    reactions = getattr(app.state, "webhook_reactions", None)
    if reactions is None:
        reactions = webhook_runner.Reactions(
            graph=ctx.graph, vault=ctx.vault, app_secret=ctx.app_secret_for(None)
        )
        app.state.webhook_reactions = reactions
    return reactions


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
