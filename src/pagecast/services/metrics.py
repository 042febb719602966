"""The database's side of `/metrics`: deliveries, Pages and campaigns as Prometheus reads them.

The web edge (web/metrics.py) adds what lives in Redis (queues, workers, send latencies)
and turns both into metric families.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import AuditLog, Campaign, CampaignStatus, DeliveryStatus, Page, PageStatus
from pagecast.permissions import Actor
from pagecast.services import outbound_deliveries

__all__ = ["DatabaseFigures", "database_figures"]

_DELIVERY_STATUSES = tuple(status.value for status in DeliveryStatus)
_SYSTEM = Actor.system()


@dataclass
class DatabaseFigures:
    """What `/metrics` reads from the database, keyed by the Page's Facebook id."""

    # fb page id -> delivery status -> count (over all the Page's campaigns)
    deliveries: dict[str, dict[str, int]] = field(default_factory=dict)
    # fb page id -> the Page's status (active, token_invalid, restricted, disconnected)
    page_status: dict[str, str] = field(default_factory=dict)
    # campaign status -> count
    campaigns: dict[str, int] = field(default_factory=dict)
    # fb page id -> campaigns paused by the circuit breaker or a spam warning
    paused_by_breaker: dict[str, int] = field(default_factory=dict)
    # Issue 22: outbound webhook deliveries by status, and endpoints on and off
    outbound_deliveries: dict[str, int] = field(default_factory=dict)
    webhook_endpoints: dict[str, int] = field(default_factory=dict)
    # Issue 22: fb page id -> campaigns awaiting approval; when the oldest request was made
    awaiting_approval: dict[str, int] = field(default_factory=dict)
    oldest_approval_request: datetime | None = None


async def database_figures(session: AsyncSession) -> DatabaseFigures:
    """Read every figure of `DatabaseFigures` in one transaction."""
    figures = DatabaseFigures()
    sums = [func.sum(getattr(Campaign, f"n_{s}")) for s in _DELIVERY_STATUSES]
    rows = await session.execute(
        select(Page.fb_page_id, *sums)
        .join(Campaign, Campaign.page_id == Page.id)
        .group_by(Page.fb_page_id)
    )
    for fb_page_id, *values in rows:
        figures.deliveries[fb_page_id] = {
            s: int(v or 0) for s, v in zip(_DELIVERY_STATUSES, values, strict=True)
        }
    for fb_page_id, status in await session.execute(select(Page.fb_page_id, Page.status)):
        figures.page_status[fb_page_id] = PageStatus(status).value
    counted = await session.execute(select(Campaign.status, func.count()).group_by(Campaign.status))
    figures.campaigns = {s.value: 0 for s in CampaignStatus} | {
        CampaignStatus(s).value: int(n) for s, n in counted
    }
    for fb_page_id, n in await session.execute(_paused_by_breaker()):
        figures.paused_by_breaker[fb_page_id] = int(n)
    outbound = await outbound_deliveries.counts(session)
    figures.outbound_deliveries = outbound.deliveries
    figures.webhook_endpoints = outbound.endpoints
    awaiting = (
        select(Page.fb_page_id, func.count(), func.min(Campaign.approval_requested_at))
        .join(Campaign, Campaign.page_id == Page.id)
        .where(Campaign.status == CampaignStatus.AWAITING_APPROVAL)
        .group_by(Page.fb_page_id)
    )
    for fb_page_id, n, oldest in await session.execute(awaiting):
        figures.awaiting_approval[fb_page_id] = int(n)
        if oldest is not None:
            # min() keeps the column's type, so this is UTC-aware on both backends
            before = figures.oldest_approval_request
            figures.oldest_approval_request = oldest if before is None else min(before, oldest)
    return figures


def _paused_by_breaker() -> Select[str, int]:
    """Paused campaigns whose latest pause came from the system and not from their Page's
    stop: the circuit breaker and the spam warning (services/breaker.py pauses them as
    `Actor.system()`). A person's pause is not one, with or without a user id: the CLI's
    actor has none (`cli`), nor has a deleted user's entry (`actor_id` set to NULL)."""
    latest_pause = (
        select(func.max(AuditLog.id))
        .where(
            AuditLog.object_type == "campaign",
            AuditLog.object_id == Campaign.id,
            AuditLog.action == "campaign.paused",
        )
        .correlate(Campaign)
        .scalar_subquery()
    )
    by_system = (
        select(AuditLog.id)
        .where(
            AuditLog.id == latest_pause,
            AuditLog.actor_id.is_(None),
            AuditLog.actor == _SYSTEM.name,
        )
        .correlate(Campaign)
        .exists()
    )
    return (
        select(Page.fb_page_id, func.count(Campaign.id))
        .join(Campaign, Campaign.page_id == Page.id)
        .where(
            Campaign.status == CampaignStatus.PAUSED,
            Campaign.paused_by_page.is_(False),
            by_system,
        )
        .group_by(Page.fb_page_id)
    )
