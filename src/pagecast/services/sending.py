"""The sending state machine: start, pause, resume, cancel, retry failed, complete.

docs/design.md invariant 8: `draft -> scheduled -> sending <-> paused -> completed | cancelled`;
issue 22 puts `awaiting_approval` before `scheduled` or `sending` when the Page asks for it
(services/approvals.py).
The edges enqueue work after these commit; the worker calls `finish_if_done`. A campaign
never ends `failed`: what failed is counted on its deliveries (docs/sending.md, "States").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.db import rowcount
from pagecast.errors import InvalidState, NobodyEligible
from pagecast.models import (
    Campaign,
    CampaignStatus,
    Page,
    PageStatus,
    utcnow,
)
from pagecast.permissions import Actor
from pagecast.services import (
    audience,
    audit,
    campaign_events,
    campaigns,
    deliveries,
    message_lengths,
    page_events,
    pages,
    send_checks,
    snapshot_insert,
    snapshots,
)

__all__ = [
    "APPROVED",
    "STARTABLE",
    "cancel",
    "due_schedules",
    "finish_if_done",
    "pause",
    "require_active",
    "resume",
    "retry_failed",
    "schedule",
    "start",
    "start_scheduled",
    "start_sliced",
    "stop_page",
]

# The states a start (or a schedule) accepts: what the review before sending is shown for.
STARTABLE: tuple[CampaignStatus, ...] = send_checks.STARTABLE
# Refuse (409, naming `page_id`) to send through a Page that is not active.
require_active = send_checks.require_active
# The state the start or schedule an approval makes accepts (services/approvals.py).
APPROVED = (CampaignStatus.AWAITING_APPROVAL,)


async def start(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    now: datetime | None = None,
    scheduled: bool = False,
) -> Campaign:
    """Snapshot the audience into deliveries and mark the campaign `sending`; a campaign
    that would reach nobody now is refused (`NobodyEligible`) and left as it was.
    `scheduled`: its schedule started it (the `campaign.started` event says so)."""
    campaign, _ = await _start(
        session, actor, campaign_id, now=now, sliced=False, scheduled=scheduled
    )
    return campaign


async def start_sliced(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    now: datetime | None = None,
    approved: bool = False,
) -> tuple[Campaign, snapshots.Rest | None]:
    """`start`, but a large audience on PostgreSQL gets only its first slice now.

    Returns the campaign and, when some of the audience is still to be snapshotted, the
    `snapshots.Rest` that a `snapshot` job must insert with `snapshots.insert_slice` (then
    `snapshots.finish`). `approved`: the start an approval makes (services/approvals.py),
    of a campaign awaiting approval.
    """
    return await _start(
        session, actor, campaign_id, now=now, sliced=True, approved=approved, scheduled=False
    )


async def _start(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    now: datetime | None,
    sliced: bool,
    scheduled: bool,
    approved: bool = False,
) -> tuple[Campaign, snapshots.Rest | None]:
    now = now or utcnow()
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(campaign, APPROVED if approved else STARTABLE, "starting")
    page = await pages.get(session, campaign.page_id)
    messages = await send_checks.check_start(session, campaign, page, now)
    # Issue 21: a segment is evaluated now, with its filter of this moment, and kept; a start
    # refused here leaves it unfrozen (a scheduled campaign stays scheduled and is tried again).
    unfrozen = campaign.audience
    await audience.freeze(session, campaign, now)
    if not await audience.any_eligible(session, campaign, now):
        refusal = await _nobody_eligible(session, campaign, page, now)
        campaign.audience = unfrozen
        raise refusal
    # The names are read only when the widest ones could make the text too long (P4: a scan
    # of every contact of the Page otherwise).
    fits = all(message_lengths.fits_any_name(session, m) for m in messages)
    check = [] if fits else messages
    rest = None
    if sliced and session.get_bind().dialect.name == "postgresql":
        counts, rest = await snapshots.first_slice(session, campaign, now, check)
    else:
        if check:
            await message_lengths.check_messages_length(session, check, page.id)
        counts = await snapshot_insert.snapshot(session, campaign, now)
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
    await campaign_events.started(session, campaign, scheduled=scheduled)
    return campaign, rest


async def _nobody_eligible(
    session: AsyncSession, campaign: Campaign, page: Page, now: datetime
) -> NobodyEligible:
    """The refusal of a start that would send to nobody, with who was excluded and why."""
    _, excluded = await audience.count(session, campaign, now)
    matched = sum(excluded.values())
    if matched:
        reasons = ", ".join(
            f"{number} {audience.reason_words(why, campaign.messaging_type)}"
            for why, number in excluded.items()
            if number
        )
        people = f"{matched} contact{'s' if matched != 1 else ''}"
        who = f"its audience matches {people} of Page {page.name}, but none can be messaged now: {reasons}"
    else:
        who = f"its audience matches no contact of Page {page.name}"
    stays = "a draft" if campaign.status is CampaignStatus.DRAFT else campaign.status.value
    return NobodyEligible(
        f"Campaign {campaign.id} has no eligible people: {who}. Nothing was sent and it stays "
        f"{stays}; change the audience, or start it once people have messaged the Page "
        f"(GET /api/campaigns/{campaign.id}/audience shows who it reaches).",
        excluded=excluded,
    )


async def schedule(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    now: datetime | None = None,
    approved: bool = False,
) -> Campaign:
    """Arm a draft's `scheduled_at`: the campaign starts by itself at that time.
    `approved`: the schedule an approval makes, of a campaign awaiting approval."""
    now = now or utcnow()
    campaign = await campaigns.get(session, campaign_id)
    campaigns.require_status(campaign, APPROVED if approved else STARTABLE, "scheduling")
    page = await pages.get(session, campaign.page_id)
    # A time that passed while the campaign awaited approval is the lateness rule's to judge
    # (`start_scheduled`, run at once by the schedule job), not a refusal.
    send_checks.check_schedule(campaign, page, now, in_future=not approved)
    assert campaign.scheduled_at is not None
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
        return await start(session, Actor.system(), campaign_id, now=now, scheduled=True)
    except InvalidState as exc:
        campaign.status_reason = f"Scheduled start failed: {exc.message}"
        await session.flush()
        return None


async def pause(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    reason: str | None = None,
    by_page: bool = False,
    by_breaker: bool = False,
) -> Campaign:
    """Pause a sending campaign (idempotent) with the reason shown to its users; an audit
    entry records who paused it and why. The user's pause, the circuit breaker, a spam
    warning (services/breaker.py) and a Page's stop (`stop_page`, `by_page`: the campaign
    resumes with its Page, services/policy.py) all pause through here; `by_breaker` says
    the breaker or the spam warning paused it (the `campaign.paused` event's reason)."""
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
    was_sending = campaign.status is CampaignStatus.SENDING
    campaign.status, campaign.status_reason = (
        CampaignStatus.PAUSED,
        reason or f"Paused by {actor.name}",
    )
    campaign.paused_by_page = by_page
    await session.flush()
    await audit.record(
        session,
        actor,
        "campaign.paused",
        object_type="campaign",
        object_id=campaign.id,
        details={"reason": campaign.status_reason},
    )
    if was_sending:  # a person re-pausing what its Page's stop paused changes no state
        cause = (
            campaign_events.PauseCause.PAGE
            if by_page
            else campaign_events.PauseCause.BREAKER
            if by_breaker
            else campaign_events.PauseCause.PERSON
        )
        await campaign_events.paused(session, campaign, cause, campaign.status_reason)
    return campaign


async def resume(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    campaign = await campaigns.get(session, campaign_id)
    if campaign.status is CampaignStatus.SENDING:
        return campaign
    campaigns.require_status(campaign, (CampaignStatus.PAUSED,), "resuming")
    send_checks.require_active(await pages.get(session, campaign.page_id))
    campaign.status, campaign.status_reason, campaign.bad_streak = CampaignStatus.SENDING, None, 0
    campaign.paused_by_page = False
    await session.flush()
    await audit.record(
        session, actor, "campaign.resumed", object_type="campaign", object_id=campaign.id
    )
    await campaign_events.resumed(session, campaign, after="pause")
    return campaign


async def cancel(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    campaign = await campaigns.get(session, campaign_id)
    if campaign.status is CampaignStatus.CANCELLED:
        return campaign
    campaigns.require_status(
        campaign,
        (
            CampaignStatus.DRAFT,
            CampaignStatus.AWAITING_APPROVAL,
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
        ),
        "cancelling",
    )
    if campaign.approval_state == "pending":
        campaign.approval_state = "withdrawn"  # nobody is asked any more
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
    await campaign_events.cancelled(
        session, campaign, campaign_events.CancelCause.PERSON, campaign.status_reason
    )
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
    reopened = bool(moved) and campaign.status is CampaignStatus.COMPLETED
    if reopened:
        send_checks.require_active(await pages.get(session, campaign.page_id))
        campaign.status, campaign.completed_at, campaign.status_reason = (
            CampaignStatus.SENDING,
            None,
            None,
        )
        # Issue 21: only a finished campaign is archived; sending again puts it back in
        # the list (services/campaign_archive.py).
        campaign.archived_at = None
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
    if reopened:
        await campaign_events.resumed(session, campaign, after="retry_failed")
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
    done = bool(rowcount(result))
    if done:
        await audit.record(
            session,
            Actor.system(),
            "campaign.completed",
            object_type="campaign",
            object_id=campaign_id,
        )
        await campaign_events.completed(session, campaign_id)
    return done


async def stop_page(
    session: AsyncSession, page_id: int, status: PageStatus, reason: str
) -> list[int]:
    """Mark the Page and pause every sending campaign of it with the reason, each through
    `pause` (audited per campaign, for the system, flagged `paused_by_page`); returns their
    ids. The stop itself is audited as `page.stopped`."""
    page = await pages.get(session, page_id)
    was = page.status
    page.status, page.status_reason = status, reason
    await page_events.status_changed(session, page, was)
    # Locked in id order (as every writer of several campaigns takes them); one cancelled
    # or completed before its lock came is no longer the stop's to pause.
    found = list(
        await session.scalars(
            select(Campaign.id)
            .where(Campaign.page_id == page_id, Campaign.status == CampaignStatus.SENDING)
            .order_by(Campaign.id)
            .with_for_update()
        )
    )
    ids = []
    for campaign_id in found:
        try:
            await pause(session, Actor.system(), campaign_id, reason=reason, by_page=True)
        except InvalidState:
            continue
        ids.append(campaign_id)
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
