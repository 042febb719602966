"""Outbound events (issue 22): what Pagecast tells the endpoints admins registered.

`emit` is the one way an event is made. It is called inside the transaction of the change it
reports (the campaign started, the Page's token went bad...), so the event exists exactly when
the change does. It writes the event and one pending delivery for each enabled endpoint that
chose its type; the worker sends the due deliveries (worker/outbound.py). Nothing here talks to
the network."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import OutboundDelivery, OutboundEvent, WebhookEndpoint, utcnow

__all__ = ["EVENT_TYPES", "PING", "emit", "emit_many", "emit_ping"]

# Every event type an endpoint can choose, in the order the dashboard lists them.
EVENT_TYPES: tuple[str, ...] = (
    "campaign.created",
    "campaign.awaiting_approval",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.cancelled",
    "campaign.progress",
    "page.token_invalid",
    "page.restricted",
    "contact.opted_out",
    "import.completed",
)
# The test event of "Send test ping": never subscribed to (`emit` refuses it), made only for
# the one endpoint pinged (`emit_ping`).
PING = "webhook.ping"


async def emit(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    campaign_id: int | None = None,
    now: datetime | None = None,
) -> OutboundEvent:
    """Record one event and owe it to every enabled endpoint subscribed to `event_type`.
    `data` is the event's JSON `data` and must never hold a secret. `campaign_id` orders the
    event among its campaign's events for delivery; `now` is its time (the worker's clock)."""
    return (await emit_many(session, event_type, [data], campaign_id=campaign_id, now=now))[0]


async def emit_many(
    session: AsyncSession,
    event_type: str,
    datas: Sequence[dict[str, Any]],
    *,
    campaign_id: int | None = None,
    now: datetime | None = None,
) -> list[OutboundEvent]:
    """`emit` for several changes of one type at once (a bulk opt-out): one event each, in
    order, and the subscribed endpoints read once for all of them."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown outbound event type {event_type!r}")
    if not datas:
        return []
    now = now or utcnow()
    events = [_event(event_type, data, campaign_id, now) for data in datas]
    session.add_all(events)
    await session.flush()
    # Once per call, not per event or per delivery: with no endpoint (the common case) an
    # event costs its INSERT and this one SELECT.
    endpoints = [
        endpoint.id
        for endpoint in await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
        )
        if event_type in endpoint.events
    ]
    await _owe(session, events, endpoints, now)
    return events


async def emit_ping(session: AsyncSession, endpoint_id: int, data: dict[str, Any]) -> OutboundEvent:
    """Record a `webhook.ping` event owed to the one endpoint `endpoint_id` (enabled or not:
    the sender skips disabled endpoints until they are enabled again)."""
    now = utcnow()
    event = _event(PING, data, None, now)
    session.add(event)
    await session.flush()
    await _owe(session, [event], [endpoint_id], now)
    return event


def _event(
    event_type: str, data: dict[str, Any], campaign_id: int | None, now: datetime
) -> OutboundEvent:
    return OutboundEvent(
        uid=f"evt_{uuid.uuid4().hex}",
        type=event_type,
        created_at=now,
        campaign_id=campaign_id,
        data=data,
    )


async def _owe(
    session: AsyncSession, events: list[OutboundEvent], endpoint_ids: list[int], now: datetime
) -> None:
    """One pending delivery, due now, of each event to each endpoint."""
    if not endpoint_ids:
        return
    session.add_all(
        OutboundDelivery(
            endpoint_id=endpoint_id,
            event_id=event.id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for event in events
        for endpoint_id in endpoint_ids
    )
    await session.flush()
