"""The rules of sending outbound webhooks (issue 22), decided in the database: which
deliveries are due, the claim that keeps two workers from sending one at once, the signed
body, and what an attempt's outcome changes (delivered, retried later, failed; the endpoint's
failing state and the rule that turns it off after 3 days).

The worker (worker/outbound.py) does the sending with outbound_http.py; every time here is
the worker's clock, handed in as `now`. These functions take a session and never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pagecast.models import OutboundAttempt, OutboundDelivery, OutboundEvent, WebhookEndpoint
from pagecast.permissions import Actor
from pagecast.services import audit
from pagecast.services.webhook_endpoints import SYSTEM

__all__ = [
    "DISABLE_AFTER",
    "RETRY_FOR",
    "STATUSES",
    "Counts",
    "Due",
    "backoff",
    "body_of",
    "claim",
    "counts",
    "disable_long_failing",
    "due",
    "long_failing",
    "record",
    "signature",
]

logger = logging.getLogger(__name__)

# A delivery is retried for this long after its event, then failed (issue 22).
RETRY_FOR = timedelta(hours=24)
# An endpoint failing without a single success for this long is turned off (issue 22).
DISABLE_AFTER = timedelta(days=3)
# Exponential backoff: 30 s, 1 min, 2 min... at most an hour between attempts, each delay
# drawn between 75% and 125% of its step so that many failed deliveries spread out.
_BACKOFF_FIRST = 30.0
_BACKOFF_CAP = 3600.0
_JITTER = (0.75, 1.25)
_PENDING, _DELIVERED, _FAILED = "pending", "delivered", "failed"
STATUSES = (_PENDING, _DELIVERED, _FAILED)


@dataclass(frozen=True)
class Counts:
    """Deliveries by status and endpoints on and off: `/metrics` and the queue page."""

    deliveries: dict[str, int]
    endpoints: dict[str, int]


async def counts(session: AsyncSession) -> Counts:
    by_status = await session.execute(
        select(OutboundDelivery.status, func.count()).group_by(OutboundDelivery.status)
    )
    by_state = await session.execute(
        select(WebhookEndpoint.enabled, func.count()).group_by(WebhookEndpoint.enabled)
    )
    return Counts(
        deliveries={s: 0 for s in STATUSES} | {str(s): int(n) for s, n in by_status},
        endpoints={"on": 0, "off": 0} | {("on" if on else "off"): int(n) for on, n in by_state},
    )


@dataclass(frozen=True)
class Due:
    """A claimed delivery, with what sending it needs."""

    delivery_id: int
    endpoint_id: int
    url: str
    secret_encrypted: str
    body: bytes


def body_of(event: OutboundEvent) -> bytes:
    """The JSON body receivers get: `id`, `type`, `created_at` and `data`."""
    return json.dumps(
        {
            "id": event.uid,
            "type": event.type,
            "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": event.data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Pagecast-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1, 2, ...)."""
    step = min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** max(0, attempts - 1))
    return timedelta(seconds=step * (rng or random).uniform(*_JITTER))


async def due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Deliveries that may be sent now: pending, due, to an enabled endpoint, and (in order
    per campaign) with no earlier event of the same campaign still pending to that endpoint.
    Events without a campaign are independent."""
    earlier = aliased(OutboundDelivery)
    earlier_event = aliased(OutboundEvent)
    blocked = exists().where(
        earlier.endpoint_id == OutboundDelivery.endpoint_id,
        earlier.status == _PENDING,
        earlier.event_id == earlier_event.id,
        earlier_event.campaign_id == OutboundEvent.campaign_id,
        earlier_event.id < OutboundEvent.id,
    )
    query = (
        select(OutboundDelivery.id)
        .join(OutboundEvent, OutboundEvent.id == OutboundDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == OutboundDelivery.endpoint_id)
        .where(
            *_claimable(now),
            WebhookEndpoint.enabled.is_(True),
            ~and_(OutboundEvent.campaign_id.is_not(None), blocked),
        )
        .order_by(OutboundDelivery.next_attempt_at, OutboundDelivery.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


def _claimable(now: datetime) -> tuple[Any, ...]:
    """Pending, due, and under no live worker's lease."""
    return (
        OutboundDelivery.status == _PENDING,
        OutboundDelivery.next_attempt_at <= now,
        or_(OutboundDelivery.leased_until.is_(None), OutboundDelivery.leased_until <= now),
    )


async def claim(
    session: AsyncSession, delivery_id: int, now: datetime, lease: timedelta
) -> Due | None:
    """Take the delivery for one attempt, or None when another worker took it first.

    The claim is a conditional UPDATE that sets a lease (`leased_until`, and
    `next_attempt_at` with it) past the attempt's timeout: only one of several workers finds
    the row still claimable, "send again" during the attempt does not make it claimable
    before the attempt is recorded, and a worker that dies mid-attempt leaves a delivery that
    is due again once the lease is over."""
    taken = await session.execute(
        update(OutboundDelivery)
        .where(OutboundDelivery.id == delivery_id, *_claimable(now))
        .values(next_attempt_at=now + lease, leased_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", 0) != 1:
        return None
    row = (
        await session.execute(
            select(OutboundDelivery.endpoint_id, WebhookEndpoint, OutboundEvent)
            .join(WebhookEndpoint, WebhookEndpoint.id == OutboundDelivery.endpoint_id)
            .join(OutboundEvent, OutboundEvent.id == OutboundDelivery.event_id)
            .where(OutboundDelivery.id == delivery_id)
        )
    ).one()
    endpoint_id, endpoint, event = row
    return Due(delivery_id, endpoint_id, endpoint.url, endpoint.secret_encrypted, body_of(event))


async def record(
    session: AsyncSession,
    delivery_id: int,
    now: datetime,
    *,
    status: int | None,
    ms: int,
    excerpt: str = "",
    error: str | None = None,
    rng: random.Random | None = None,
) -> str:
    """Record one attempt and decide: a 2xx delivers; anything else is retried with backoff
    while the event is under `RETRY_FOR` old, then fails. Updates the endpoint's failing
    state and turns it off after `DISABLE_AFTER` of failures. Returns the delivery's status."""
    delivery = await session.get(OutboundDelivery, delivery_id)
    if delivery is None:  # its endpoint was deleted mid-attempt
        return _FAILED
    event = await session.get(OutboundEvent, delivery.event_id)
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    assert event is not None and endpoint is not None
    ok = status is not None and 200 <= status < 300
    # "Send again" while this attempt was under way moved `next_attempt_at` before the
    # lease's end: the event is sent once more after this attempt, whatever its outcome.
    again = (
        delivery.leased_until is not None
        and delivery.next_attempt_at is not None
        and delivery.next_attempt_at < delivery.leased_until
    )
    asked_at = delivery.next_attempt_at
    delivery.leased_until = None
    if error is None and not ok:
        error = f"HTTP {status}: only a 2xx answer counts as delivered"
    session.add(
        OutboundAttempt(
            delivery_id=delivery.id,
            at=now,
            status_code=status,
            response_ms=ms,
            excerpt=excerpt[:500],
            error=None if ok else (error or "")[:500],
        )
    )
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = status
    delivery.last_response_ms = ms
    delivery.last_error = None if ok else (error or "")[:500]
    if ok:
        delivery.status = _DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        endpoint.failing_since = None
    else:
        deadline = event.created_at + RETRY_FOR
        if now >= deadline:
            delivery.status = _FAILED
            delivery.next_attempt_at = None
        else:
            delivery.status = _PENDING
            delivery.next_attempt_at = min(now + backoff(delivery.attempts, rng), deadline)
        if endpoint.failing_since is None:
            endpoint.failing_since = now
        await _disable_if_long_failing(session, endpoint, now)
    if again:
        delivery.status, delivery.next_attempt_at, delivery.delivered_at = (
            _PENDING,
            asked_at,
            None,
        )
    await session.flush()
    return delivery.status


def _long_failing(now: datetime) -> Any:
    return select(WebhookEndpoint).where(
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.failing_since.is_not(None),
        WebhookEndpoint.failing_since <= now - DISABLE_AFTER,
    )


async def long_failing(session: AsyncSession, now: datetime) -> list[int]:
    """Enabled endpoints failing for `DISABLE_AFTER` or longer (a read: no lock taken)."""
    return list(await session.scalars(_long_failing(now).with_only_columns(WebhookEndpoint.id)))


async def disable_long_failing(session: AsyncSession, now: datetime) -> list[int]:
    """Turn off every enabled endpoint failing for `DISABLE_AFTER` or longer; their ids."""
    turned_off = [
        endpoint.id
        for endpoint in await session.scalars(_long_failing(now))
        if await _disable_if_long_failing(session, endpoint, now)
    ]
    await session.flush()
    return turned_off


async def _disable_if_long_failing(
    session: AsyncSession, endpoint: WebhookEndpoint, now: datetime
) -> bool:
    """Turn the endpoint off if it has failed for `DISABLE_AFTER`; whether this call did."""
    since = endpoint.failing_since
    if not endpoint.enabled or since is None or now - since < DISABLE_AFTER:
        return False
    await session.flush()  # this attempt's failing_since first
    # A conditional UPDATE, not the loaded row: two workers that both found the endpoint
    # failing turn it off once; the second finds it off (PostgreSQL re-checks the WHERE after
    # the first commits) and records nothing.
    turned_off = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint.id,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.failing_since.is_not(None),
            WebhookEndpoint.failing_since <= now - DISABLE_AFTER,
        )
        .values(
            enabled=False,
            disabled_at=now,
            disabled_by=SYSTEM,
            disabled_reason=(
                f"Every attempt failed since {since:%Y-%m-%d %H:%M} UTC (3 days or more). Fix "
                "the receiver, then turn the endpoint on again; its waiting deliveries are "
                "sent then."
            ),
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(endpoint)
    if getattr(turned_off, "rowcount", 0) != 1:
        return False
    details: dict[str, Any] = {"failing_since": since.isoformat(), "url": endpoint.url}
    await audit.record(
        session,
        Actor.system(),
        "webhook.disabled",
        object_type="webhook",
        object_id=endpoint.id,
        details=details,
    )
    logger.warning(
        "webhook endpoint %d turned off: failing since %s", endpoint.id, since.isoformat()
    )
    return True
