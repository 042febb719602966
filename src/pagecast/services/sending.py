"""The sending state machine: start, pause, resume, cancel, retry failed, complete.

DESIGN.md invariant 8: `draft -> scheduled -> sending <-> paused -> completed | cancelled`.
The edges enqueue work after these commit; the worker calls `finish_if_done`. A campaign
never ends `failed`: what failed is counted on its deliveries (docs/sending.md, "States").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidState
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Page,
    PageStatus,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.schemas import Content, check_policy
from pagecast.services import audience, audit, campaigns, content, deliveries, pages

__all__ = [
    "SNAPSHOT_FIRST",
    "SNAPSHOT_SLICE",
    "Rest",
    "cancel",
    "due_schedules",
    "effective_rate",
    "finish_if_done",
    "first_chunks",
    "pause",
    "plan_ahead",
    "resume",
    "retry_failed",
    "schedule",
    "snapshot_done",
    "snapshot_resume_point",
    "snapshot_slice",
    "start",
    "start_scheduled",
    "start_sliced",
    "stop_page",
]

# A large audience on PostgreSQL is snapshotted in slices (docs/performance.md, P4): the
# first SNAPSHOT_FIRST contacts inside the start transaction, so the start answers and the
# first chunk is sent at once, the rest by a `snapshot` job, SNAPSHOT_SLICE contact ids per
# transaction. Until the last slice the campaign's `n_pending` also counts the contacts
# not inserted yet, so the campaign cannot complete before its snapshot does.
SNAPSHOT_FIRST = 2_000
# A campaign keeps this many seconds of its rate queued as chunks (`plan_ahead`), at most
# PLAN_MOST chunks.
PLAN_AHEAD_S = 2.0
PLAN_MOST = 500
# A chunk holds about this many seconds of its campaign's rate (`chunk_for`), at most
# CHUNK_MOST deliveries.
CHUNK_SPAN_S = 1.0
CHUNK_MOST = 500
SNAPSHOT_SLICE = 100_000


@dataclass(frozen=True)
class Rest:
    """The part of an audience snapshotted after the start answered: contact ids in
    (`after`, `upto`], `upto` being the highest id of the audience at the start."""

    campaign_id: int
    after: int
    upto: int


def _require_active(page: Page) -> None:
    if page.status is not PageStatus.ACTIVE:
        raise InvalidState(
            f"Page {page.name} is {page.status.value}"
            f"{': ' + page.status_reason if page.status_reason else ''}. Reconnect it with a new "
            f"token (PATCH /api/pages/{page.id}) before sending.",
            field="page_id",
        )


async def start(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: datetime | None = None
) -> Campaign:
    """Snapshot the audience into deliveries and mark the campaign `sending`."""
    campaign, _ = await _start(session, actor, campaign_id, now=now, sliced=False)
    return campaign


async def start_sliced(
    session: AsyncSession, actor: Actor, campaign_id: int
) -> tuple[Campaign, Rest | None]:
    """`start`, but a large audience on PostgreSQL gets only its first slice now.

    Returns the campaign and, when some of the audience is still to be snapshotted, the
    `Rest` that a `snapshot` job must insert with `snapshot_slice` (then `snapshot_done`).
    """
    return await _start(session, actor, campaign_id, now=None, sliced=True)


async def _start(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: datetime | None, sliced: bool
) -> tuple[Campaign, Rest | None]:
    now = now or utcnow()
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(campaign, (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED), "starting")
    page = await pages.get(session, campaign.page_id)
    _require_active(page)
    message = await campaigns.effective_content(session, campaign)
    check_policy(campaign.messaging_type, campaign.tag)
    if campaign.expires_at is not None and campaign.expires_at <= now:
        raise InvalidState(
            f"Campaign {campaign.id} expired at {campaign.expires_at.isoformat()}; change expires_at "
            "or clear it to send.",
            field="expires_at",
        )
    # The names are read only when the widest ones could make the text too long (P4: a scan
    # of every contact of the Page otherwise).
    check = None if campaigns.fits_any_name(session, message) else message
    rest = None
    if sliced and session.bind.dialect.name == "postgresql":
        counts, rest = await _snapshot_first(session, campaign, now, check)
    else:
        if check is not None:
            content.check_length(check, await campaigns.longest_names(session, page.id))
        counts = await deliveries.snapshot(session, campaign, now)
    campaign.status, campaign.status_reason, campaign.missed = CampaignStatus.SENDING, None, False
    campaign.started_at = now
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.started",
        object_type="campaign",
        object_id=campaign.id,
        details=counts,
    )
    await session.refresh(campaign)
    return campaign, rest


def _insert_slice(campaign: Campaign, now: datetime, after: int, upto: int) -> Any:
    """The snapshot's INSERT … SELECT for contact ids in (after, upto]."""
    return deliveries.snapshot_insert(campaign, now, Contact.id > after, Contact.id <= upto)


async def _skipped_between(session: AsyncSession, campaign_id: int, after: int, upto: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Delivery.campaign_id == campaign_id,
                Delivery.contact_id > after,
                Delivery.contact_id <= upto,
                Delivery.status == DeliveryStatus.SKIPPED,
            )
        )
        or 0
    )


async def _snapshot_first(
    session: AsyncSession, campaign: Campaign, now: datetime, check: Content | None
) -> tuple[dict[str, int], Rest | None]:
    """The first slice; `check`, when given, is the text to check against the longest names
    (read in the same scan as the count when the audience is the whole Page)."""
    matching = audience.matches(campaign.page_id, campaign.audience)
    whole_page = check is not None and campaign.audience["type"] == "all"
    names = campaigns.name_length_columns() if whole_page else ()
    total, upto, *longest = (
        await session.execute(select(func.count(), func.max(Contact.id), *names).where(*matching))
    ).one()
    if check is not None:
        content.check_length(
            check,
            campaigns.names_of(*longest)
            if whole_page
            else await campaigns.longest_names(session, campaign.page_id),
        )
    if total <= SNAPSHOT_FIRST:
        return await deliveries.snapshot(session, campaign, now), None
    first_upto = await session.scalar(
        select(Contact.id).where(*matching).order_by(Contact.id).offset(SNAPSHOT_FIRST - 1).limit(1)
    )
    assert first_upto is not None
    await session.execute(_insert_slice(campaign, now, 0, first_upto))
    skipped = await _skipped_between(session, campaign.id, 0, first_upto)
    # Every contact not inserted yet counts as pending until its slice is written.
    await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(n_total=total, n_pending=total - skipped, n_skipped=skipped)
    )
    counts = {"total": total, "pending": total - skipped, "skipped": skipped, "sliced": 1}
    return counts, Rest(campaign.id, first_upto, upto)


def chunk_for(rate_per_s: float, least: int) -> int:
    """Deliveries per chunk for a campaign sending at `rate_per_s`: about a second of its
    rate, at least `least` (the `chunk_size` setting) and at most CHUNK_MOST (or `least`).

    A chunk job costs two transactions whatever its size, so a fast campaign sends larger
    chunks (a third less worker CPU a message at 500 than at 100, docs/performance.md); a
    worker lets two chunks of a Page claim at once, so what waits claimed stays near two
    seconds of the Page's rate.
    """
    return max(least, min(CHUNK_MOST, math.floor(rate_per_s * CHUNK_SPAN_S)))


def plan_ahead(rate_per_s: float, chunk_size: int) -> int:
    """How many chunks of a campaign the queue holds at once: PLAN_AHEAD_S seconds of its
    rate, at least 2 and at most PLAN_MOST.

    The queue is first in, first out: a campaign that queued all its chunks at once would
    hold every worker slot until it finished, and the campaigns of other Pages, each with
    its own limit to fill, would wait behind it. A few seconds of each campaign at a time
    keeps every Page's sends going side by side.
    """
    return max(2, min(PLAN_MOST, math.ceil(rate_per_s * PLAN_AHEAD_S / chunk_size)))


async def effective_rate(session: AsyncSession, campaign: Campaign) -> float:
    """The rate a campaign sends at: its own, within its Page's."""
    page_rate = float(
        await session.scalar(select(Page.send_rate).where(Page.id == campaign.page_id)) or 1.0
    )
    return min(page_rate, campaign.send_rate or page_rate)


async def first_chunks(
    session: AsyncSession, campaign: Campaign, *, chunk_size: int
) -> list[tuple[int, int]]:
    """The first chunks of the deliveries the start wrote (at most `plan_ahead` of them,
    `chunk_for` the campaign's rate with `chunk_size` the least), for the start to enqueue
    itself: the first send then waits for no `plan` job (P4)."""
    rate = await effective_rate(session, campaign)
    chunk = chunk_for(rate, chunk_size)
    return await deliveries.pending_ranges(
        session,
        campaign.id,
        after_id=0,
        chunk_size=chunk,
        max_chunks=max(1, min(plan_ahead(rate, chunk), SNAPSHOT_FIRST // chunk)),
    )


async def snapshot_resume_point(session: AsyncSession, campaign_id: int) -> int:
    """The highest contact id already snapshotted (a restarted snapshot job goes on from it)."""
    return int(
        await session.scalar(
            select(func.max(Delivery.contact_id)).where(Delivery.campaign_id == campaign_id)
        )
        or 0
    )


async def snapshot_slice(session: AsyncSession, campaign_id: int, *, after: int, upto: int) -> int:
    """Insert the deliveries of contact ids in (after, after + SNAPSHOT_SLICE], at most `upto`.

    Contacts the start could not send to are `skipped` with the reason, as in the start.
    Returns the id to go on after; `upto` or more means the audience is complete. A
    cancelled or deleted campaign gets no more rows (returns `upto`).
    """
    # One lock on the campaign row for the slice, in place of the per-row check of a foreign
    # key: deleting the campaign waits for the slice's commit (campaigns.delete).
    campaign = await session.scalar(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if (
        campaign is None
        or campaign.status is CampaignStatus.CANCELLED
        or campaign.started_at is None
    ):
        return upto
    last = min(after + SNAPSHOT_SLICE, upto)
    await session.execute(_insert_slice(campaign, campaign.started_at, after, last))
    skipped = await _skipped_between(session, campaign_id, after, last)
    await deliveries.shift(
        session, campaign_id, {DeliveryStatus.PENDING: -skipped, DeliveryStatus.SKIPPED: skipped}
    )
    return last


async def snapshot_done(session: AsyncSession, campaign_id: int) -> int:
    """End a sliced snapshot: the counters stop counting contacts that were never inserted
    (deleted since the start, or a cancel). Returns how many that was (0 when the campaign
    itself was deleted)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return 0
    written = int(
        await session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id)) or 0
    )
    missing = campaign.n_total - written
    if missing:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(n_total=written, n_pending=Campaign.n_pending - missing)
        )
    await finish_if_done(session, campaign_id)
    return missing


async def schedule(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: datetime | None = None
) -> Campaign:
    """Arm a draft's `scheduled_at`: the campaign starts by itself at that time."""
    now = now or utcnow()
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(
        campaign, (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED), "scheduling"
    )
    if campaign.scheduled_at is None:
        raise InvalidState(
            f"Campaign {campaign.id} has no scheduled_at; set it (PATCH) before scheduling.",
            field="scheduled_at",
        )
    if campaign.scheduled_at <= now:
        raise InvalidState(
            f"scheduled_at {campaign.scheduled_at.isoformat()} is in the past; choose a later time "
            "or start the campaign now.",
            field="scheduled_at",
        )
    _require_active(await pages.get(session, campaign.page_id))
    campaign.status, campaign.missed, campaign.status_reason = CampaignStatus.SCHEDULED, False, None
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.scheduled",
        object_type="campaign",
        object_id=campaign.id,
        details={"scheduled_at": campaign.scheduled_at.isoformat()},
    )
    return campaign


async def due_schedules(session: AsyncSession, now: datetime) -> list[int]:
    """Scheduled campaigns whose time has come (missed ones excluded)."""
    return list(
        await session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.SCHEDULED,
                Campaign.missed.is_(False),
                Campaign.scheduled_at <= now,
            )
        )
    )


async def start_scheduled(
    session: AsyncSession, campaign_id: int, *, now: datetime, max_lateness_s: float
) -> Campaign | None:
    """Start a due scheduled campaign, or flag it `missed` when its time is long past.

    A schedule more than `max_lateness_s` late never fires by surprise (invariant 8): the
    campaign stays scheduled, flagged missed, until someone starts or reschedules it.
    """
    campaign = await campaigns.get(session, campaign_id)
    if (
        campaign.status is not CampaignStatus.SCHEDULED
        or campaign.missed
        or campaign.scheduled_at is None
        or campaign.scheduled_at > now
    ):
        return None
    late = (now - campaign.scheduled_at).total_seconds()
    if late > max_lateness_s:
        campaign.missed = True
        campaign.status_reason = (
            f"Missed: the scheduled time passed {late / 60:.0f} minutes ago (more than "
            f"{max_lateness_s / 60:.0f}). Start it now or set a new scheduled_at."
        )
        await audit.record(
            session,
            Actor.system(),
            "campaign.missed",
            object_type="campaign",
            object_id=campaign.id,
            details={"late_seconds": int(late)},
        )
        await session.flush()
        return None
    try:
        return await start(session, Actor.system(), campaign_id, now=now)
    except InvalidState as exc:
        campaign.status_reason = f"Scheduled start failed: {exc.message}"
        await session.flush()
        return None


async def pause(
    session: AsyncSession, actor: Actor, campaign_id: int, *, reason: str | None = None
) -> Campaign:
    """Pause a sending campaign (idempotent) with the reason shown to its users; an audit
    entry records who paused it and why. The user's pause, the circuit breaker and a spam
    warning all pause through here (services/breaker.py)."""
    # Read fresh and locked: the worker pauses in the transaction that wrote its results.
    campaign = await session.get(
        Campaign, campaign_id, populate_existing=True, with_for_update=True
    )
    if campaign is None:
        campaign = await campaigns.get(session, campaign_id)  # raises NotFound
    # A person pausing what its Page's stop paused keeps it paused when the Page comes back
    # (services/policy.py resumes only what the stop paused).
    if campaign.status is CampaignStatus.PAUSED and not (
        campaign.paused_by_page and actor.user_id is not None
    ):
        return campaign
    campaigns.require_status(campaign, (CampaignStatus.SENDING, CampaignStatus.PAUSED), "pausing")
    campaign.status, campaign.status_reason = (
        CampaignStatus.PAUSED,
        reason or f"Paused by {actor.name}",
    )
    campaign.paused_by_page = False
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.paused",
        object_type="campaign",
        object_id=campaign.id,
        details={"reason": campaign.status_reason},
    )
    return campaign


async def resume(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    campaign = await campaigns.get(session, campaign_id)
    if campaign.status is CampaignStatus.SENDING:
        return campaign
    campaigns.require_status(campaign, (CampaignStatus.PAUSED,), "resuming")
    _require_active(await pages.get(session, campaign.page_id))
    campaign.status, campaign.status_reason, campaign.bad_streak = CampaignStatus.SENDING, None, 0
    campaign.paused_by_page = False
    await session.flush()
    await audit.record(
        session, actor, "campaign.resumed", object_type="campaign", object_id=campaign.id
    )
    return campaign


async def cancel(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    campaign = await campaigns.get(session, campaign_id)
    if campaign.status is CampaignStatus.CANCELLED:
        return campaign
    campaigns.require_status(
        campaign,
        (
            CampaignStatus.DRAFT,
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
        ),
        "cancelling",
    )
    now = utcnow()
    cancelled = await deliveries.cancel_pending(session, campaign.id, now)
    campaign.status, campaign.completed_at = CampaignStatus.CANCELLED, now
    campaign.status_reason = f"Cancelled by {actor.name}"
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.cancelled",
        object_type="campaign",
        object_id=campaign.id,
        details={"cancelled_deliveries": cancelled},
    )
    await session.refresh(campaign)
    return campaign


async def retry_failed(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    kinds: Sequence[str] | None = None,
    codes: Sequence[int] | None = None,
) -> tuple[Campaign, int]:
    """Send failed deliveries again (the dead letters), optionally only some error kinds or codes."""
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(
        campaign,
        (
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
            CampaignStatus.COMPLETED,
        ),
        "retrying failed deliveries",
    )
    moved = await deliveries.retry_failed(
        session, campaign.id, kinds=kinds, codes=codes, now=utcnow()
    )
    if moved and campaign.status is CampaignStatus.COMPLETED:
        _require_active(await pages.get(session, campaign.page_id))
        campaign.status, campaign.completed_at, campaign.status_reason = (
            CampaignStatus.SENDING,
            None,
            None,
        )
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.retry_failed",
        object_type="campaign",
        object_id=campaign.id,
        details={"deliveries": moved, "kinds": list(kinds or []), "codes": list(codes or [])},
    )
    await session.refresh(campaign)
    return campaign, moved


async def finish_if_done(session: AsyncSession, campaign_id: int) -> bool:
    """Complete a sending campaign with nothing pending (retries included), in flight or
    `unknown` (being reconciled: services/reconcile.py)."""
    result = await session.execute(
        update(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.status == CampaignStatus.SENDING,
            Campaign.n_pending == 0,
            Campaign.n_sending == 0,
            Campaign.n_unknown == 0,
        )
        .values(status=CampaignStatus.COMPLETED, completed_at=utcnow())
    )
    done = bool(result.rowcount)  # type: ignore[attr-defined]
    if done:
        await audit.record(
            session,
            Actor.system(),
            "campaign.completed",
            object_type="campaign",
            object_id=campaign_id,
        )
    return done


async def stop_page(
    session: AsyncSession, page_id: int, status: PageStatus, reason: str
) -> list[int]:
    """Mark the Page and pause every sending campaign of it with the reason; returns their ids."""
    page = await pages.get(session, page_id)
    page.status, page.status_reason = status, reason
    ids = list(
        await session.scalars(
            select(Campaign.id).where(
                Campaign.page_id == page_id, Campaign.status == CampaignStatus.SENDING
            )
        )
    )
    if ids:
        await session.execute(
            update(Campaign)
            .where(Campaign.id.in_(ids))
            .values(status=CampaignStatus.PAUSED, status_reason=reason, paused_by_page=True)
        )
    await audit.record(
        session,
        Actor.system(),
        "page.stopped",
        object_type="page",
        object_id=page_id,
        details={"status": status.value, "reason": reason, "paused_campaigns": ids},
    )
    await session.flush()
    return ids
