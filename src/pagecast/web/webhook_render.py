"""The JSON of outbound webhook endpoints and their delivery log (issue 22), for the API, the
CLI's `--json` and the dashboard. The secret appears only in `created` (shown once)."""

from __future__ import annotations

from typing import Any

from pagecast.models import WebhookEndpoint
from pagecast.services.webhook_endpoints import Created, LogItem, LogPage
from pagecast.web.render import utc_text

__all__ = ["NO_STORE", "SECRET_NOTE", "created", "endpoint", "log", "log_item"]

# The Cache-Control of every answer that shows a secret (API and dashboard): no browser or
# proxy keeps a copy of what is shown only once.
NO_STORE = "no-store"
SECRET_NOTE = (
    "Store the secret now: Pagecast shows it only this once. Receivers verify "
    "Pagecast-Signature with it (docs/webhooks.md, 'Outbound webhooks')."
)


def endpoint(row: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "events": list(row.events),
        "enabled": row.enabled,
        "disabled_at": utc_text(row.disabled_at),
        "disabled_by": row.disabled_by,
        "disabled_reason": row.disabled_reason,
        "failing_since": utc_text(row.failing_since),
        "created_by": row.created_by,
        "created_at": utc_text(row.created_at),
        "updated_at": utc_text(row.updated_at),
    }


def created(made: Created) -> dict[str, Any]:
    """The endpoint with its secret in clear: the answer of create and rotate-secret only."""
    return endpoint(made.endpoint) | {"secret": made.secret, "note": SECRET_NOTE}


def log_item(item: LogItem) -> dict[str, Any]:
    d, e, last = item.delivery, item.event, item.last
    return {
        "id": d.id,
        "event": {
            "id": e.uid,
            "type": e.type,
            "created_at": utc_text(e.created_at),
            "campaign_id": e.campaign_id,
        },
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_response_ms": d.last_response_ms,
        "last_error": d.last_error,
        "excerpt": last.excerpt if last is not None else None,
        "last_attempt_at": utc_text(d.last_attempt_at),
        "next_attempt_at": utc_text(d.next_attempt_at) if d.status == "pending" else None,
        "delivered_at": utc_text(d.delivered_at),
    }


def log(page: LogPage) -> dict[str, Any]:
    return {"items": [log_item(i) for i in page.items], "next_cursor": page.next_cursor}
