"""Reconciliation of `unknown` deliveries: exactly once, or honestly `ambiguous`.

A delivery is `unknown` when its Send call may have reached Facebook but Pagecast never saw
the answer (a timeout after the request was written, or a worker that died mid-send). Its
echo (`message_echoes`, carrying the delivery id in `metadata`) turns it `sent`
(services/echoes.py). This module decides the rest, once the grace period has passed:

- The Page's echo stream is proven live past the attempt (`Page.echo_seen_at`, the claim
  time of the latest delivery an echo confirmed, is later than the moment the delivery
  became unknown) and it was never resent: its echo would have arrived, so the message never
  reached Facebook. It goes back to `pending` and is sent once more (`resent_at` is set, so a
  second ambiguous attempt can never be resent again).
- Otherwise the absence of an echo proves nothing: it fails with reason `ambiguous`. A blind
  resend never happens; people can still choose "retry failed" for kind `ambiguous`.

Nothing is decided for a Page while it has webhook events stored but not processed: its echo
stream is behind, and an echo may be among them (so `reconciling_until` is the earliest
decision, not a promise while events are waiting).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    WebhookEvent,
)
from pagecast.services.counters import Shifts

__all__ = ["AMBIGUOUS_MESSAGE", "Reconciled", "reconcile", "reconciling_until"]

AMBIGUOUS_MESSAGE = (
    "The Send API call timed out or its worker stopped after the request was written, and no "
    "echo arrived within the grace period while the Page's echo stream could not be shown to "
    "be live, so Pagecast cannot tell whether the person got the message. It was not sent "
    "again, to never send twice. Check the webhook setup (message_echoes), then use "
    "'retry failed' for kind 'ambiguous' if you accept a possible duplicate."
)
_BATCH = 2_000
# Campaigns in these states may still send: a proven-absent message is sent again.
_RESEND = (CampaignStatus.SENDING, CampaignStatus.PAUSED)


@dataclass
class Reconciled:
    """What one pass did, by campaign: resent (back to pending), failed, cancelled."""

    resent: Counter[int] = field(default_factory=Counter)
    failed: Counter[int] = field(default_factory=Counter)
    cancelled: Counter[int] = field(default_factory=Counter)

    @property
    def campaigns(self) -> set[int]:
        return set(self.resent) | set(self.failed) | set(self.cancelled)


async def reconcile(session: AsyncSession, now: datetime, grace: timedelta) -> Reconciled:
    """Decide every `unknown` delivery whose grace period is over (see the module doc)."""
    done = Reconciled()
    campaign_ids = list(
        await session.scalars(
            select(Campaign.id).where(Campaign.n_unknown > 0).order_by(Campaign.id)
        )
    )
    shifts = Shifts()  # campaign rows locked last, in id order
    for campaign_id in campaign_ids:
        if await _page_backlog(session, campaign_id):
            continue
        rows = await session.execute(
            select(
                Delivery.id,
                Delivery.unknown_since,
                Delivery.resent_at,
                Page.echo_seen_at,
                Campaign.status,
            )
            .join(Contact, Contact.id == Delivery.contact_id)
            .join(Page, Page.id == Contact.page_id)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == DeliveryStatus.UNKNOWN,
                Delivery.unknown_since <= now - grace,
            )
            .order_by(Delivery.unknown_since, Delivery.id)
            .limit(_BATCH)
        )
        decided: dict[DeliveryStatus, list[int]] = {
            DeliveryStatus.PENDING: [],
            DeliveryStatus.FAILED: [],
            DeliveryStatus.CANCELLED: [],
        }
        for delivery_id, since, resent_at, echo_seen_at, status in rows:
            proven_absent = (
                resent_at is None
                and echo_seen_at is not None
                and since is not None
                and echo_seen_at > since
            )
            if not proven_absent:
                decided[DeliveryStatus.FAILED].append(delivery_id)
            elif status in _RESEND:
                decided[DeliveryStatus.PENDING].append(delivery_id)
            else:  # it never reached Facebook, and the campaign was cancelled or ended meanwhile
                decided[DeliveryStatus.CANCELLED].append(delivery_id)
        tallies = {
            DeliveryStatus.PENDING: done.resent,
            DeliveryStatus.FAILED: done.failed,
            DeliveryStatus.CANCELLED: done.cancelled,
        }
        for target, ids in decided.items():
            moved = await _move(session, shifts, campaign_id, ids, target, now)
            if moved:
                tallies[target][campaign_id] += moved
    await shifts.flush(session)
    return done


async def _page_backlog(session: AsyncSession, campaign_id: int) -> bool:
    """Whether the campaign's Page has webhook events stored but not processed yet: until
    they are, its echo stream is behind, and neither the proof of absence nor its lack
    means anything (the echo may be among them)."""
    waiting = await session.scalar(
        select(WebhookEvent.id)
        .join(Page, Page.fb_page_id == WebhookEvent.fb_page_id)
        .join(Campaign, Campaign.page_id == Page.id)
        .where(Campaign.id == campaign_id, WebhookEvent.processed_at.is_(None))
        .limit(1)
    )
    return waiting is not None


async def _move(
    session: AsyncSession,
    shifts: Shifts,
    campaign_id: int,
    ids: list[int],
    target: DeliveryStatus,
    now: datetime,
) -> int:
    if not ids:
        return 0
    values: dict[str, object] = {"status": target, "updated_at": now, "unknown_since": None}
    if target is DeliveryStatus.PENDING:
        values |= {"reason": "resent_no_echo", "resent_at": now, "next_attempt_at": None}
    elif target is DeliveryStatus.FAILED:
        values |= {
            "reason": "ambiguous",
            "error_kind": "ambiguous",
            "error_message": AMBIGUOUS_MESSAGE,
        }
    else:
        values |= {"reason": "cancelled"}
    result = await session.execute(
        update(Delivery)
        .where(
            and_(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.UNKNOWN),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    count = rowcount(result)
    shifts.add(campaign_id, {DeliveryStatus.UNKNOWN: -count, target: count})
    return count


async def reconciling_until(
    session: AsyncSession, campaign_id: int, grace: timedelta
) -> datetime | None:
    """When the grace period of the campaign's last `unknown` delivery ends (it is decided
    then, unless its person's webhook events are still waiting to be processed)."""
    latest = await session.scalar(
        select(func.max(Delivery.unknown_since)).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.UNKNOWN
        )
    )
    return None if latest is None else latest + grace
