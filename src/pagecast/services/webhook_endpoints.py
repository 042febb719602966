"""Outbound webhook endpoints (issue 22): what admins register, their secret, the delivery
log, "send again" and the test ping.

The secret is made here, kept encrypted by the `Vault` (as Page tokens are) and handed back
in clear only by `create` and `rotate_secret`, for the caller to show once. Every change is
in the audit log, never with the secret. These functions take a session and never commit;
the worker sends what they leave pending (worker/outbound.py, services/outbound_deliveries.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.endpoint_schema import EndpointCreate, EndpointUpdate
from pagecast.errors import InvalidInput, InvalidState, NotFound
from pagecast.models import (
    OutboundAttempt,
    OutboundDelivery,
    OutboundEvent,
    WebhookEndpoint,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.security import Vault
from pagecast.services import audit, outbound_events

__all__ = [
    "LOG_LIMIT",
    "SYSTEM",
    "Created",
    "LogItem",
    "LogPage",
    "create",
    "delete",
    "delivery_log",
    "disabled_by_rule",
    "get",
    "list_all",
    "log_entry",
    "ping",
    "redeliver",
    "rotate_secret",
    "update",
]

LOG_LIMIT = 50
# `disabled_by` of an endpoint the failure rule turned off (services/outbound_deliveries.py).
SYSTEM = "system"


@dataclass(frozen=True)
class Created:
    """An endpoint with its secret in clear: the one answer that shows it."""

    endpoint: WebhookEndpoint
    secret: str


@dataclass(frozen=True)
class LogItem:
    delivery: OutboundDelivery
    event: OutboundEvent
    last: OutboundAttempt | None


@dataclass(frozen=True)
class LogPage:
    items: list[LogItem]
    next_cursor: str | None


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


async def get(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} does not exist.", field="webhook_id")
    return endpoint


async def list_all(session: AsyncSession) -> list[WebhookEndpoint]:
    return list(await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


async def disabled_by_rule(session: AsyncSession) -> list[WebhookEndpoint]:
    """Endpoints the failure rule turned off and nobody turned on again: the admins' notice."""
    return list(
        await session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.enabled.is_(False), WebhookEndpoint.disabled_by == SYSTEM)
            .order_by(WebhookEndpoint.id)
        )
    )


async def create(
    session: AsyncSession, actor: Actor, vault: Vault, body: EndpointCreate
) -> Created:
    secret = _new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        url=body.url,
        description=body.description,
        events=list(body.events),
        secret_encrypted=vault.encrypt(secret),
        enabled=True,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webhook.created",
        object_type="webhook",
        object_id=endpoint.id,
        details={"url": endpoint.url, "events": endpoint.events},
    )
    return Created(endpoint, secret)


async def update(
    session: AsyncSession, actor: Actor, endpoint_id: int, body: EndpointUpdate
) -> WebhookEndpoint:
    """Change the URL, events or description; `enabled` turns it off, or on again (which
    clears the failing state: the 3 days start again at the next failure)."""
    endpoint = await get(session, endpoint_id)
    fields = ("url", "events", "description", "enabled")
    before = {name: getattr(endpoint, name) for name in fields}
    for name in ("url", "events", "description"):
        if name in body.model_fields_set:
            value = getattr(body, name)
            if value != getattr(endpoint, name):
                setattr(endpoint, name, list(value) if name == "events" else value)
    if "enabled" in body.model_fields_set and body.enabled != endpoint.enabled:
        now = utcnow()
        endpoint.enabled = bool(body.enabled)
        if endpoint.enabled:
            endpoint.disabled_at = endpoint.disabled_reason = endpoint.disabled_by = None
            endpoint.failing_since = None
        else:
            endpoint.disabled_at = now
            endpoint.disabled_by = actor.name
            endpoint.disabled_reason = f"Turned off by {actor.name}."
    # Before and after, as every update's audit entry (the Audit page reads `changes`).
    changes = audit.changes(before, {name: getattr(endpoint, name) for name in fields})
    if changes:
        endpoint.updated_at = utcnow()
        await audit.record(
            session,
            actor,
            "webhook.updated",
            object_type="webhook",
            object_id=endpoint.id,
            details={"changes": changes},
        )
    await session.flush()
    return endpoint


async def delete(session: AsyncSession, actor: Actor, endpoint_id: int) -> None:
    """Delete the endpoint with its deliveries and their attempts (the events stay)."""
    endpoint = await get(session, endpoint_id)
    url = endpoint.url
    ids = select(OutboundDelivery.id).where(OutboundDelivery.endpoint_id == endpoint_id)
    # Explicit, not only ON DELETE CASCADE: SQLite enforces foreign keys only when asked.
    await session.execute(
        sa_delete(OutboundAttempt)
        .where(OutboundAttempt.delivery_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        sa_delete(OutboundDelivery)
        .where(OutboundDelivery.endpoint_id == endpoint_id)
        .execution_options(synchronize_session=False)
    )
    await session.delete(endpoint)
    await audit.record(
        session,
        actor,
        "webhook.deleted",
        object_type="webhook",
        object_id=endpoint_id,
        details={"url": url},
    )
    await session.flush()


async def rotate_secret(
    session: AsyncSession, actor: Actor, vault: Vault, endpoint_id: int
) -> Created:
    """A new secret, at once: the next attempt is signed with it."""
    endpoint = await get(session, endpoint_id)
    secret = _new_secret()
    endpoint.secret_encrypted = vault.encrypt(secret)
    endpoint.updated_at = utcnow()
    await audit.record(
        session, actor, "webhook.secret_rotated", object_type="webhook", object_id=endpoint.id
    )
    await session.flush()
    return Created(endpoint, secret)


def _require_enabled(endpoint: WebhookEndpoint, what: str) -> None:
    if not endpoint.enabled:
        raise InvalidState(
            f"Webhook endpoint {endpoint.id} is turned off ({endpoint.disabled_reason or 'off'}), "
            f'so nothing is sent to it; turn it on (PATCH with "enabled": true) before {what}.',
            field="enabled",
        )


async def ping(session: AsyncSession, actor: Actor, endpoint_id: int) -> OutboundDelivery:
    """A `webhook.ping` event for this endpoint only, sent by the worker like any other."""
    endpoint = await get(session, endpoint_id)
    _require_enabled(endpoint, "a test ping")
    event = await outbound_events.emit_ping(
        session,
        endpoint.id,
        {"webhook_id": endpoint.id, "message": "A test ping from Pagecast.", "by": actor.name},
    )
    await audit.record(
        session,
        actor,
        "webhook.pinged",
        object_type="webhook",
        object_id=endpoint.id,
        details={"event": event.uid},
    )
    delivery = await session.scalar(
        select(OutboundDelivery).where(OutboundDelivery.event_id == event.id)
    )
    assert delivery is not None
    return delivery


async def redeliver(
    session: AsyncSession, actor: Actor, endpoint_id: int, delivery_id: int
) -> OutboundDelivery:
    """Send the delivery's event again now ("send again"), whatever its status. If that
    attempt fails, retries go on while the event is under 24 hours old, as for any delivery."""
    endpoint = await get(session, endpoint_id)
    delivery = await session.get(OutboundDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(
            f"Webhook endpoint {endpoint_id} has no delivery {delivery_id}; see its log "
            f"(GET /api/webhooks/{endpoint_id}/deliveries).",
            field="delivery_id",
        )
    _require_enabled(endpoint, "sending again")
    previous = delivery.status
    delivery.status = "pending"
    delivery.next_attempt_at = utcnow()
    delivery.delivered_at = None
    await audit.record(
        session,
        actor,
        "webhook.redelivered",
        object_type="webhook",
        object_id=endpoint.id,
        details={"delivery_id": delivery.id, "was": previous},
    )
    await session.flush()
    return delivery


def _cursor(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    # ASCII digits only, and few of them: str.isdigit() is also true for "²" or "１",
    # which int() refuses or reads as another number, and int() refuses thousands of digits.
    if not (len(value) <= 10 and value.isascii() and value.isdigit()) or not 0 < int(value) < 2**31:
        raise InvalidInput(
            "cursor: not a cursor of this log; pass `next_cursor` of the previous page as it "
            "was, or leave it out for the newest deliveries",
            field="cursor",
        )
    return int(value)


async def delivery_log(
    session: AsyncSession,
    endpoint_id: int,
    *,
    cursor: str | None = None,
    limit: int = LOG_LIMIT,
    status: str | None = None,
) -> LogPage:
    """The endpoint's deliveries, newest first, `limit` at a time; `next_cursor` continues."""
    await get(session, endpoint_id)
    before = _cursor(cursor)
    query = (
        select(OutboundDelivery, OutboundEvent)
        .join(OutboundEvent, OutboundEvent.id == OutboundDelivery.event_id)
        .where(OutboundDelivery.endpoint_id == endpoint_id)
        .order_by(OutboundDelivery.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(OutboundDelivery.id < before)
    if status is not None:
        query = query.where(OutboundDelivery.status == status)
    rows = [(d, e) for d, e in await session.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    last = await _last_attempts(session, [d.id for d, _ in rows])
    items = [LogItem(d, e, last.get(d.id)) for d, e in rows]
    return LogPage(items, str(rows[-1][0].id) if more and rows else None)


async def _last_attempts(
    session: AsyncSession, delivery_ids: list[int]
) -> dict[int, OutboundAttempt]:
    if not delivery_ids:
        return {}
    newest = (
        select(func.max(OutboundAttempt.id))
        .where(OutboundAttempt.delivery_id.in_(delivery_ids))
        .group_by(OutboundAttempt.delivery_id)
    )
    found = await session.scalars(select(OutboundAttempt).where(OutboundAttempt.id.in_(newest)))
    return {a.delivery_id: a for a in found}


async def log_entry(session: AsyncSession, endpoint_id: int, delivery_id: int) -> LogItem:
    """One delivery of the log (after "send again" or a ping)."""
    delivery = await session.get(OutboundDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"Webhook endpoint {endpoint_id} has no delivery {delivery_id}.")
    event = await session.get(OutboundEvent, delivery.event_id)
    assert event is not None
    last = await _last_attempts(session, [delivery.id])
    return LogItem(delivery, event, last.get(delivery.id))
