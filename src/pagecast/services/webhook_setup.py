"""What to enter on the Facebook side to connect a Page's webhooks, and whether events arrive.

`describe` gathers it for one Page from setting *values* the edge passes in. The verify
token is included only when the edge says the caller may see it (admins); everyone else
learns whether it is set.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import WebhookEvent, utcnow
from pagecast.services import pages

__all__ = ["CALLBACK_PATH", "SUBSCRIBE_FIELDS", "describe", "recent_events"]

CALLBACK_PATH = "/webhooks/messenger"
# What Pagecast needs: inbound messages and postbacks (contacts, windows, opt-outs),
# receipts, echoes (which prove a send after a timeout) and Facebook's policy enforcement
# (which restricts the Page: docs/webhooks.md). "Connect with Facebook" subscribes these.
SUBSCRIBE_FIELDS = (
    "messages",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "messaging_policy_enforcement",
)
RECENT = timedelta(hours=24)


async def recent_events(
    session: AsyncSession, fb_page_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """The time of the Page's newest stored event and the counts of the last 24 h by kind."""
    now = now or utcnow()
    last = await session.scalar(
        select(func.max(WebhookEvent.received_at)).where(WebhookEvent.fb_page_id == fb_page_id)
    )
    rows = await session.execute(
        select(WebhookEvent.kind, func.count(WebhookEvent.id))
        .where(WebhookEvent.fb_page_id == fb_page_id, WebhookEvent.received_at >= now - RECENT)
        .group_by(WebhookEvent.kind)
    )
    counts = {kind: int(n) for kind, n in rows}
    return {"last_received_at": last, "last_24h": dict(sorted(counts.items()))}


async def describe(
    session: AsyncSession,
    page_id: int,
    *,
    public_url: str | None,
    fallback_base_url: str,
    verify_token: str | None,
    show_verify_token: bool,
    global_app_secret_set: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Webhook setup help for the Page: callback URL, verify token, fields, recent events.

    `global_app_secret_set`: whether PAGECAST_APP_SECRET is set (a Page may have its own).
    """
    now = now or utcnow()
    page = await pages.get(session, page_id)
    secret_from = (
        "page"
        if page.app_secret_encrypted
        else ("PAGECAST_APP_SECRET" if global_app_secret_set else None)
    )
    app_secret_set = secret_from is not None
    base = (public_url or fallback_base_url).rstrip("/")
    callback = base + CALLBACK_PATH
    warnings: list[str] = []
    if not public_url:
        warnings.append(
            "PAGECAST_PUBLIC_URL is not set, so this callback URL is the address this request "
            "reached Pagecast at. Set PAGECAST_PUBLIC_URL to the public https address Facebook "
            "can reach (e.g. https://pagecast.example.com)."
        )
    if not callback.startswith("https://"):
        warnings.append("Facebook only calls https callback URLs; put Pagecast behind TLS.")
    if verify_token is None:
        warnings.append(
            "PAGECAST_WEBHOOK_VERIFY_TOKEN is not set: Facebook's verification request will be "
            "refused. Set it to a random string and enter the same string on Facebook."
        )
    if not app_secret_set:
        warnings.append(
            "No app secret: every webhook POST is refused (403) because its signature cannot be "
            "checked. Set PAGECAST_APP_SECRET, or give the Page its app secret "
            f"(PATCH /api/pages/{page.id})."
        )
    events = await recent_events(session, page.fb_page_id, now)
    if events["last_received_at"] is None:
        warnings.append(
            f"No webhook event of Page {page.fb_page_id} has arrived yet. Subscribe the app to "
            "the Page with the fields listed, then send the Page a message to test."
        )
    elif not events["last_24h"]:
        warnings.append("No event in the last 24 hours; check the app is still subscribed.")
    return {
        "page_id": page.id,
        "fb_page_id": page.fb_page_id,
        "callback_url": callback,
        "callback_url_from": "PAGECAST_PUBLIC_URL" if public_url else "request",
        "verify_token_set": verify_token is not None,
        "verify_token": verify_token if show_verify_token else None,
        "app_secret_set": app_secret_set,
        "app_secret_from": secret_from,
        "fields": list(SUBSCRIBE_FIELDS),
        "events": {
            "last_received_at": events["last_received_at"],
            "last_24h": events["last_24h"],
            "receiving": bool(events["last_24h"]),
        },
        "warnings": warnings,
    }
